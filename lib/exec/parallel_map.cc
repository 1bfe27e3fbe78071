#include "exec/parallel_map.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>

#include <fmt/core.h>

#include "base/unique_fd.h"
#include "exec/local_executor.h"
#include "exec/subprocess.h"

namespace mflow::exec {

std::string default_temp_dir() {
  const char* t = std::getenv("TMPDIR");
  return (t && *t) ? t : "/tmp";
}

base::Result<base::UniqueFd> anonymous_file(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return base::UniqueFd(fd);
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
    return base::Status::from_errno("cannot create a temp file in " + dir +
                                        " (set TMPDIR or --temp-dir to a writable directory)",
                                    errno);
  }
  std::string path = dir + "/mflow-map-XXXXXX";
  fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return base::Status::from_errno("cannot create a temp file in " + dir, errno);
  ::unlink(path.c_str());
  return base::UniqueFd(fd);
}

namespace {

std::vector<std::string> tail_lines(int fd, size_t max_lines) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return {};
  constexpr off_t kTailBytes = 16 * 1024;
  off_t from = std::max<off_t>(0, st.st_size - kTailBytes);
  std::string text(static_cast<size_t>(st.st_size - from), '\0');
  ssize_t n = ::pread(fd, text.data(), text.size(), from);
  if (n < 0) return {};
  text.resize(static_cast<size_t>(n));
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  if (from > 0 && !lines.empty()) lines.erase(lines.begin());  // the first one is partial
  if (lines.size() > max_lines) lines.erase(lines.begin(), lines.end() - max_lines);
  return lines;
}

// One started item: its temp files until its stdout is handed out.
struct Slot {
  size_t index = 0;
  base::UniqueFd out;
  base::UniqueFd err;
  bool done = false;
};

}  // namespace

int online_cpus() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

std::vector<std::string> substitute_item(const std::vector<std::string>& command,
                                         const std::string& item) {
  std::vector<std::string> argv;
  argv.reserve(command.size());
  for (const auto& arg : command) {
    size_t pos = arg.find("{}");
    if (pos == std::string::npos) {
      argv.push_back(arg);
      continue;
    }
    std::string out;
    size_t start = 0;
    for (; pos != std::string::npos; pos = arg.find("{}", start)) {
      out.append(arg, start, pos - start);
      out.append(item);
      start = pos + 2;
    }
    out.append(arg, start);
    argv.push_back(std::move(out));
  }
  return argv;
}

base::Result<MapResult> run_parallel_map(const std::vector<std::string>& items,
                                         const MapOptions& options, const MapOutputFn& on_output,
                                         const MapStderrFn& on_stderr) {
  MFLOW_CHECK(options.jobs >= 1, "jobs must be >= 1");
  MFLOW_CHECK(!options.command.empty(), "empty command");
  const std::string temp_dir = options.temp_dir.empty() ? default_temp_dir() : options.temp_dir;
  size_t window = options.window;
  if (window == 0) {
    // Each started item holds up to two files until handed out; stay well inside the limit.
    rlimit lim{};
    size_t fd_budget = 1024;
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
      fd_budget = static_cast<size_t>(lim.rlim_cur);
    }
    size_t by_fds = fd_budget > 128 ? (fd_budget - 64) / 3 : 16;
    window = std::min(by_fds, std::max<size_t>(256, static_cast<size_t>(options.jobs) * 16));
  }
  window = std::max(window, static_cast<size_t>(options.jobs));

  MapResult result;
  SubprocessSet set(options.wake_fds);
  std::deque<Slot> pending;  // started, not yet handed out; pending[i].index == next_emit + i
  size_t next_start = 0;
  size_t next_emit = 0;
  bool stopping = false;
  base::Status error;

  auto stop = [&] {
    if (stopping) return;
    stopping = true;
    set.set_wake_fds({});  // acted on; do not spin on a still-readable interrupt fd
    set.stop_all(options.kill_grace);  // the set sends the SIGKILL after the grace
  };
  auto fail_item = [&](size_t index, int exit_code, int sig, std::string reason, int err_fd) {
    if (result.kind == MapResult::Kind::kOk) {
      MapFailure f;
      f.index = index;
      f.item = items[index];
      f.exit_code = exit_code;
      f.signal = sig;
      f.reason = std::move(reason);
      if (err_fd >= 0) f.stderr_tail = tail_lines(err_fd, kStderrTailLines);
      result.kind = MapResult::Kind::kItemFailed;
      result.failure = std::move(f);
    }
    stop();
  };

  std::vector<size_t> placeholder_args;
  for (size_t i = 0; i < options.command.size(); ++i) {
    if (options.command[i].find("{}") != std::string::npos) placeholder_args.push_back(i);
  }
  SpawnRequest request;
  request.command.shell = false;
  request.out.kind = OutputSpec::Kind::kFd;
  request.err.kind = OutputSpec::Kind::kFd;

  std::vector<std::unique_ptr<Subprocess>> finished;
  for (;;) {
    // Fill the workers.
    while (!stopping && set.running() < static_cast<size_t>(options.jobs) &&
           next_start < items.size() && next_start - next_emit < window) {
      size_t index = next_start++;
      Slot slot;
      slot.index = index;
      auto out = anonymous_file(temp_dir);
      if (!out.ok()) {
        error = out.status();
        stop();
        break;
      }
      auto err = anonymous_file(temp_dir);
      if (!err.ok()) {
        error = err.status();
        stop();
        break;
      }
      slot.out = std::move(out.value());
      slot.err = std::move(err.value());
      request.command.argv = placeholder_args.empty() ? options.command
                                                      : substitute_item(options.command, items[index]);
      request.env["MFLOW_ITEM"] = items[index];
      request.env["MFLOW_ITEM_INDEX"] = std::to_string(index);
      request.out.fd = slot.out.get();
      request.err.fd = slot.err.get();
      auto proc = set.add(request);
      if (!proc.ok()) {
        pending.push_back(std::move(slot));
        fail_item(index, -1, 0, proc.status().message(), -1);
        break;
      }
      proc.value()->tag = index;
      pending.push_back(std::move(slot));
    }

    // Hand out finished outputs in input order.
    while (!stopping && !pending.empty() && pending.front().done) {
      Slot& front = pending.front();
      ::lseek(front.out.get(), 0, SEEK_SET);
      if (auto s = on_output(front.index, front.out.get()); !s.ok()) {
        error = s;
        stop();
        break;
      }
      pending.pop_front();
      ++next_emit;
      ++result.items_done;
    }

    if (set.running() == 0 && (stopping || next_emit == items.size())) break;

    auto wake = set.wait(std::nullopt, &finished);
    if (wake == SubprocessSet::WaitResult::kWoken && !stopping && options.interrupted()) {
      if (result.kind == MapResult::Kind::kOk) result.kind = MapResult::Kind::kInterrupted;
      stop();
    }
    for (auto& proc : finished) {
      size_t index = static_cast<size_t>(proc->tag);
      Slot& slot = pending.at(index - next_emit);
      slot.done = true;
      bool ok = proc->exit_code() == 0 && proc->term_signal() == 0;
      if (!ok) {
        if (!stopping) {
          fail_item(index, proc->exit_code(), proc->term_signal(),
                    LocalExecutor::describe_exit(proc->exit_code(), proc->term_signal()),
                    slot.err.get());
        }
      } else if (!stopping) {
        ::lseek(slot.err.get(), 0, SEEK_SET);
        if (auto s = on_stderr(index, slot.err.get()); !s.ok()) {
          error = s;
          stop();
        }
      }
      slot.err.reset();  // the stderr file is no longer needed; free the descriptor
    }
    finished.clear();
  }
  if (!error.ok()) return error;
  return result;
}

}  // namespace mflow::exec
