#include "runtime/console_reporter.h"

#include <sys/ioctl.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>

#include <fmt/core.h>

#include "base/strings.h"
#include "runtime/run_ledger.h"

namespace mflow::runtime {

std::string timestamp_now() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  localtime_r(&tv.tv_sec, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return fmt::format("{}.{:03d}", buf, static_cast<int>(tv.tv_usec / 1000));
}

ConsoleReporter::ConsoleReporter(std::FILE* out, std::FILE* err, bool quiet)
    : out_(out), err_(err), quiet_(quiet) {
  const char* term = std::getenv("TERM");
  color_ = isatty(fileno(err)) && std::getenv("NO_COLOR") == nullptr &&
           !(term && std::string_view(term) == "dumb");
  live_ = color_ && !quiet;
}

ConsoleReporter::~ConsoleReporter() { stop_ticker(); }

void ConsoleReporter::stop_ticker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ticking_ = false;
  }
  tick_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

std::string ConsoleReporter::status_line() const {
  auto now = std::chrono::steady_clock::now();
  auto secs = [&](std::chrono::steady_clock::time_point since) {
    return std::chrono::duration_cast<std::chrono::seconds>(now - since).count();
  };
  long long elapsed = secs(run_start_);
  std::string line = fmt::format("[{} done, {} running, {} queued, {} failed] {}:{:02d}", done_,
                                 running_.size(), queued_, failed_, elapsed / 60, elapsed % 60);
  if (!running_.empty()) {
    auto oldest = std::min_element(running_.begin(), running_.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
    line += fmt::format("  oldest: {} ({}s)", oldest->first, secs(oldest->second));
  }
  // A line wider than the terminal wraps, and \r then returns to the wrong row.
  struct winsize ws;
  size_t width = ioctl(fileno(err_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? ws.ws_col - 1 : 79;
  if (line.size() > width) line.resize(width);
  return line;
}

void ConsoleReporter::clear_status() {
  if (!status_shown_) return;
  status_shown_ = false;
  put(err_, "\r\033[K");
}

void ConsoleReporter::draw_status() {
  if (!live_ || !ticking_) return;
  put(err_, "\r\033[K" + status_line());
  status_shown_ = true;
}

std::string ConsoleReporter::prefix(const exec::TaskLaunch& task, int64_t pid) const {
  std::string who = fmt::format("{}/{}/{}", task.run_id, task.step, task.task_id);
  std::string extra;
  if (pid > 0) extra = fmt::format("pid {}", pid);
  if (task.attempt > 0) extra += fmt::format("{}attempt {}", extra.empty() ? "" : ", ", task.attempt);
  if (!extra.empty()) who += " (" + extra + ")";
  return fmt::format("{} [{}]", timestamp_now(), who);
}

void ConsoleReporter::on_output(const exec::TaskLaunch& task, int64_t pid, exec::Stream stream,
                                std::string_view line) {
  std::string p = prefix(task, pid);
  std::lock_guard<std::mutex> lock(mu_);
  // A task's stderr goes to mflow's stderr (CI keeps the streams apart), its lines marked so
  // they stay distinguishable where both streams end up in one terminal.
  std::FILE* to = stream == exec::Stream::kStderr ? err_ : out_;
  clear_status();
  put(to, fmt::format("{}{} {}\n", p, stream == exec::Stream::kStderr ? " stderr:" : "", line));
  draw_status();
}

void ConsoleReporter::run_started(const std::string& run_id, const std::string& flow,
                                  const std::string& datastore) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string resuming = resuming_.empty() ? "" : fmt::format(", resuming run {}", resuming_);
  put(err_, fmt::format("{} {}mflow{}: flow {} run {} started{} (datastore {})\n", timestamp_now(),
                        color("\033[1m"), color("\033[0m"), flow, run_id, resuming, datastore));
  if (!live_ || ticking_) return;
  run_start_ = std::chrono::steady_clock::now();
  ticking_ = true;
  draw_status();
  // Elapsed time and the oldest task's age move without events: redraw every second.
  ticker_ = std::thread([this] {
    std::unique_lock<std::mutex> held(mu_);
    while (ticking_) {
      tick_.wait_for(held, std::chrono::seconds(1));
      if (ticking_) draw_status();
    }
  });
}

void ConsoleReporter::task_started(const exec::TaskLaunch& task, const char* where) {
  if (quiet_) return;
  std::string p = prefix(task, 0);
  std::lock_guard<std::mutex> lock(mu_);
  if (live_) {
    running_[task.key] = std::chrono::steady_clock::now();
    draw_status();
    return;
  }
  put(err_, fmt::format("{} task starting ({})\n", p, where));
}

void ConsoleReporter::task_finished(const exec::TaskLaunch& task, const exec::Completion& c,
                                    int retry_in_seconds) {
  std::string p = prefix(task, c.pid);
  auto secs = std::chrono::duration<double>(c.finished - c.started).count();
  std::lock_guard<std::mutex> lock(mu_);
  if (live_) {
    running_.erase(task.key);
    if (c.outcome == exec::Outcome::kSucceeded) ++done_;
    else if (retry_in_seconds < 0) ++failed_;
  }
  if (c.outcome == exec::Outcome::kSucceeded) {
    if (live_) draw_status();
    else if (!quiet_) put(err_, fmt::format("{} task succeeded in {:.2f}s\n", p, secs));
    return;
  }
  clear_status();
  std::string what = c.reason.empty() ? exec::to_string(c.outcome) : c.reason;
  if (retry_in_seconds >= 0) {
    put(err_, fmt::format("{} {}task failed{}: {}; retrying in {}s\n", p, color("\033[33m"),
               color("\033[0m"), what, retry_in_seconds));
  } else {
    put(err_, fmt::format("{} {}task failed{}: {}\n", p, color("\033[31m"), color("\033[0m"), what));
  }
  draw_status();
}

void ConsoleReporter::task_reused(const std::string& run_id, const std::string& step,
                                  const std::string& task_id, const std::string& from) {
  if (quiet_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (live_) {
    ++done_;
    draw_status();
    return;
  }
  put(err_, fmt::format("{} [{}/{}/{}] reused from {} (not executed again)\n", timestamp_now(), run_id,
             step, task_id, from));
}

void ConsoleReporter::tasks_queued(size_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!live_ || queued_ == count) return;
  queued_ = count;
  draw_status();
}

void ConsoleReporter::note(const std::string& text) {
  std::lock_guard<std::mutex> lock(mu_);
  clear_status();
  put(err_, fmt::format("{} mflow: {}\n", timestamp_now(), text));
  draw_status();
}

void ConsoleReporter::run_finished(const RunSummary& s) {
  stop_ticker();
  std::lock_guard<std::mutex> lock(mu_);
  clear_status();
  double secs = static_cast<double>(s.elapsed.count()) / 1000.0;
  std::string counts = task_counts(s);
  if (s.succeeded) {
    put(err_, fmt::format("{} {}mflow: run {} of {} succeeded{} in {:.2f}s ({})\n", timestamp_now(),
               color("\033[32m"), s.run_id, s.flow, color("\033[0m"), secs, counts));
    return;
  }
  put(err_, fmt::format("{} {}mflow: run {} of {} {}{} after {:.2f}s ({})\n", timestamp_now(),
             color("\033[31m"), s.run_id, s.flow, s.interrupted ? "was interrupted" : "failed",
             color("\033[0m"), secs, counts));
  for (const auto& f : s.failures) {
    // Attempts count from 0 everywhere (MFLOW_ATTEMPT, `mflow logs --attempt`, the JSON).
    if (f.fan_out_refused) {
      put(err_, fmt::format("  refused: {}/{} (the task succeeded): {}\n", f.step, f.task_id, f.reason));
    } else {
      put(err_, fmt::format("  failed: {}/{} (attempt {}, the last of {}): {}\n", f.step, f.task_id,
                 f.attempt, f.attempts, f.reason.empty() ? exec::to_string(f.outcome) : f.reason));
    }
    put(err_, fmt::format("    see its output:  mflow logs {}/{}/{}{}\n", s.run_id, f.step, f.task_id,
               command_options_));
  }
  put(err_, fmt::format("  to continue:       mflow resume {} --origin-run-id {}{}\n",
             base::shell_quote(s.flow_file), s.run_id, command_options_));
}

void ConsoleReporter::put(std::FILE* to, std::string_view text) {
  // A stream whose reader went away (`mflow run ... 2>&1 | head -1`, a closed terminal after
  // SIGHUP) is written no more: the run goes on and is recorded; only the console is lost. A
  // failed write must never end the run, which fmt::print would do by throwing.
  bool& closed = to == err_ ? err_closed_ : out_closed_;
  if (closed) return;
  if (std::fwrite(text.data(), 1, text.size(), to) != text.size() || std::fflush(to) != 0) {
    closed = true;
    std::clearerr(to);
  }
}

}  // namespace mflow::runtime
