#include "cli/ci_outputs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>

#include <fmt/core.h>

#include "base/file_util.h"
#include "base/strings.h"
#include "store/record_json.h"

namespace mflow::cli {

namespace {

constexpr size_t kTailBytes = 8 * 1024;

// The last `max_bytes` of a log file, cut to its last `max_lines` lines. A log that is not a
// regular file (a damaged datastore) is said to be so rather than read.
std::string file_tail(const std::string& path, size_t max_lines, size_t max_bytes) {
  if (path.empty()) return "";
  auto fd = base::open_regular_file(path);
  if (!fd.ok()) return "";
  struct stat st;
  if (fstat(fd->get(), &st) != 0 || st.st_size == 0) return "";
  size_t size = static_cast<size_t>(st.st_size);
  size_t want = std::min(size, max_bytes);
  std::string buf(want, '\0');
  ssize_t got = pread(fd->get(), buf.data(), want, static_cast<off_t>(size - want));
  if (got <= 0) return "";
  buf.resize(static_cast<size_t>(got));
  if (want < size) {
    // Started mid-line (and maybe mid-character): drop up to the first full line.
    size_t nl = buf.find('\n');
    buf = nl == std::string::npos ? buf : buf.substr(nl + 1);
  }
  if (!buf.empty() && buf.back() == '\n') buf.pop_back();
  size_t lines = 0;
  size_t pos = buf.size();
  while (pos > 0) {
    size_t nl = buf.rfind('\n', pos - 1);
    if (++lines == max_lines || nl == std::string::npos) {
      if (nl != std::string::npos && lines == max_lines) buf = buf.substr(nl + 1);
      break;
    }
    pos = nl;
  }
  return base::printable(buf);
}

double seconds(exec::Clock::duration d) {
  return std::max(0.0, std::chrono::duration<double>(d).count());
}

double task_seconds(const runtime::TaskEntry& t) {
  double total = 0;
  for (const auto& a : t.attempts) {
    if (a.completion) total += seconds(a.completion->finished - a.completion->started);
  }
  return total;
}

std::string xml_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

// Text for XML: UTF-8 with no control characters but tab and newline (base::printable), then
// entity-escaped. XML 1.0 cannot carry the others at all, not even as character references.
std::string xml_text(std::string_view text) { return xml_escape(base::printable(text)); }

std::string reason_of(const exec::Completion& c) {
  return c.reason.empty() ? exec::to_string(c.outcome) : c.reason;
}

const runtime::FailedTask* failure_of(const runtime::RunSummary& s, const runtime::TaskEntry& t) {
  for (const auto& f : s.failures) {
    if (f.step == t.step && f.task_id == t.task_id) return &f;
  }
  return nullptr;
}

std::string iso_now() { return store::format_time(exec::Clock::now()); }

}  // namespace

std::string log_tail(const runtime::TaskEntry& task, size_t max_lines) {
  std::string err = file_tail(task.stderr_path, max_lines, kTailBytes / 2);
  std::string out = file_tail(task.stdout_path, max_lines, kTailBytes / 2);
  std::string text;
  if (!err.empty()) text += "--- stderr (last lines) ---\n" + err + "\n";
  if (!out.empty()) text += "--- stdout (last lines) ---\n" + out + "\n";
  return text;
}

std::string junit_xml(const runtime::RunSummary& s, const std::vector<runtime::TaskEntry>& tasks) {
  size_t failures = 0, errors = 0, skipped = 0;
  std::string cases;
  for (const auto& t : tasks) {
    std::string name = xml_escape(base::printable(t.step + "/" + t.task_id));
    cases += fmt::format("    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3f}\">\n", name,
                         xml_escape(base::printable(t.step)), task_seconds(t));
    if (t.reused()) {
      ++skipped;
      cases += fmt::format("      <skipped message=\"reused from {} (not run again)\"/>\n",
                           xml_text(t.reused_from));
      cases += "    </testcase>\n";
      continue;
    }
    const exec::Completion* last = t.last();
    const runtime::FailedTask* refused = failure_of(s, t);
    bool ok = t.succeeded();
    // Earlier failed attempts, in Surefire's vocabulary: a task that passed in the end is
    // flaky, one that failed in the end was re-run.
    std::string reruns;
    for (size_t k = 0; k + 1 < t.attempts.size(); ++k) {
      const auto& a = t.attempts[k];
      if (!a.completion) continue;
      const char* element = ok ? "flakyFailure" : "rerunFailure";
      reruns += fmt::format("      <{} message=\"attempt {}: {}\" type=\"{}\"/>\n", element,
                            a.attempt, xml_text(reason_of(*a.completion)),
                            xml_text(exec::to_string(a.completion->outcome)));
    }
    if (ok && refused && refused->fan_out_refused) {
      ++failures;
      cases += fmt::format("      <failure message=\"{}\" type=\"fan-out refused\"/>\n",
                           xml_text(refused->reason));
    } else if (!ok && last) {
      bool stopped = last->outcome == exec::Outcome::kCancelled;
      ++(stopped ? errors : failures);
      cases += fmt::format("      <{} message=\"attempt {} of {}: {}\" type=\"{}\">{}</{}>\n",
                           stopped ? "error" : "failure", last->attempt, t.attempts.size(),
                           xml_text(reason_of(*last)), xml_text(exec::to_string(last->outcome)),
                           xml_text(log_tail(t)), stopped ? "error" : "failure");
    } else if (!ok) {
      ++errors;  // started and never ended: the run ended under it
      cases += "      <error message=\"did not finish\" type=\"unfinished\"/>\n";
    }
    cases += reruns;
    cases += "    </testcase>\n";
  }
  double secs = static_cast<double>(s.elapsed.count()) / 1000.0;
  std::string suite_name = xml_text(fmt::format("mflow {} run {}", s.flow, s.run_id));
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += fmt::format(
      "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.3f}\">\n",
      suite_name, tasks.size(), failures, errors, secs);
  out += fmt::format(
      "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" "
      "time=\"{:.3f}\" timestamp=\"{}\">\n",
      suite_name, tasks.size(), failures, errors, skipped, secs, iso_now());
  out += "    <properties>\n";
  out += fmt::format("      <property name=\"run_id\" value=\"{}\"/>\n", xml_text(s.run_id));
  out += fmt::format("      <property name=\"flow\" value=\"{}\"/>\n", xml_text(s.flow));
  out += fmt::format("      <property name=\"flow_file\" value=\"{}\"/>\n", xml_text(s.flow_file));
  out += "    </properties>\n";
  out += cases;
  out += "  </testsuite>\n</testsuites>\n";
  return out;
}

nlohmann::json tasks_json(const std::vector<runtime::TaskEntry>& tasks) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& t : tasks) {
    nlohmann::json j = {{"step", t.step}, {"task", t.task_id}};
    if (t.reused()) {
      j["outcome"] = "reused";
      j["reused_from"] = t.reused_from;
      j["attempts"] = nlohmann::json::array();
      list.push_back(std::move(j));
      continue;
    }
    const exec::Completion* last = t.last();
    j["outcome"] = last ? exec::to_string(last->outcome) : "unfinished";
    j["executor"] = t.executor;
    j["duration_ms"] = std::llround(task_seconds(t) * 1000);
    j["attempts"] = nlohmann::json::array();
    for (const auto& a : t.attempts) {
      nlohmann::json aj = {{"attempt", a.attempt}, {"started", store::format_time(a.started)}};
      if (a.completion) {
        const auto& c = *a.completion;
        aj["finished"] = store::format_time(c.finished);
        aj["duration_ms"] = std::llround(seconds(c.finished - c.started) * 1000);
        aj["outcome"] = exec::to_string(c.outcome);
        aj["exit_code"] = c.exit_code >= 0 ? nlohmann::json(c.exit_code) : nlohmann::json(nullptr);
        aj["reason"] = c.reason;
      } else {
        aj["outcome"] = "unfinished";
      }
      j["attempts"].push_back(std::move(aj));
    }
    list.push_back(std::move(j));
  }
  return list;
}

bool on_github_actions() {
  const char* v = std::getenv("GITHUB_ACTIONS");
  return v && std::string_view(v) == "true";
}

bool on_gitlab_ci() {
  const char* v = std::getenv("GITLAB_CI");
  return v && std::string_view(v) == "true";
}

std::string github_escape_data(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '%': out += "%25"; break;
      case '\r': out += "%0D"; break;
      case '\n': out += "%0A"; break;
      default: out += c;
    }
  }
  return out;
}

std::string github_escape_property(std::string_view text) {
  std::string out;
  for (char c : github_escape_data(text)) {
    switch (c) {
      case ':': out += "%3A"; break;
      case ',': out += "%2C"; break;
      default: out += c;
    }
  }
  return out;
}

std::string github_diagnostic_annotations(const spec::Diagnostics& diags) {
  std::string out;
  for (const auto& d : diags.items()) {
    std::string props = "file=" + github_escape_property(d.file);
    if (d.pos.line > 0) props += fmt::format(",line={}", d.pos.line);
    if (d.pos.column > 0) props += fmt::format(",col={}", d.pos.column);
    props += ",title=" + github_escape_property("mflow: invalid flow");
    std::string message = d.message + (d.hint.empty() ? "" : "\nhint: " + d.hint);
    out += fmt::format("::{} {}::{}\n", d.severity == spec::Severity::kError ? "error" : "warning",
                       props, github_escape_data(message));
  }
  return out;
}

std::string github_failure_annotations(const runtime::RunSummary& s,
                                       const std::string& command_options) {
  std::string out;
  for (const auto& f : s.failures) {
    std::string title = fmt::format("mflow: {} {}/{}/{}", f.fan_out_refused ? "refused" : "failed",
                                    s.run_id, f.step, f.task_id);
    std::string what = f.fan_out_refused ? f.reason
                       : fmt::format("attempt {} of {}: {}", f.attempt, f.attempts,
                                     f.reason.empty() ? exec::to_string(f.outcome) : f.reason);
    std::string message = fmt::format("{}\nsee its output: mflow logs {}/{}/{}{}", what, s.run_id,
                                      f.step, f.task_id, command_options);
    std::string file = s.flow_file.empty() ? "" : "file=" + github_escape_property(s.flow_file) + ",";
    out += fmt::format("::error {}title={}::{}\n", file, github_escape_property(title),
                       github_escape_data(message));
  }
  return out;
}

namespace {

// A table cell: no line breaks, and '|' would end the cell.
std::string md_cell(std::string_view text) {
  std::string out;
  for (char c : base::printable(text)) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\t') out += ' ';
    else out += c;
  }
  return out;
}

}  // namespace

std::string github_step_summary(const runtime::RunSummary& s,
                                const std::vector<runtime::TaskEntry>& tasks,
                                const std::string& command_options) {
  const char* status = s.succeeded ? "succeeded" : s.interrupted ? "was interrupted" : "failed";
  std::string out = fmt::format("### {} mflow: run {} of `{}` {} in {:.2f}s\n\n",
                                s.succeeded ? "✅" : "❌", s.run_id, md_cell(s.flow), status,
                                static_cast<double>(s.elapsed.count()) / 1000.0);
  out += runtime::task_counts(s) + "\n\n";
  for (const auto& f : s.failures) {
    out += fmt::format("- **{} {}/{}**: {} — `mflow logs {}/{}/{}{}`\n",
                       f.fan_out_refused ? "refused" : "failed", md_cell(f.step),
                       md_cell(f.task_id), md_cell(f.reason.empty() ? exec::to_string(f.outcome) : f.reason),
                       s.run_id, md_cell(f.step), md_cell(f.task_id), md_cell(command_options));
  }
  if (!s.failures.empty()) out += "\n";
  // The table lists at most 200 tasks: a summary of a 10,000-way foreach must stay readable
  // (GitHub also caps a step summary at 1 MiB). Failures and retries come first.
  std::vector<const runtime::TaskEntry*> shown;
  for (const auto& t : tasks) {
    if (!t.succeeded() || t.attempts.size() > 1) shown.push_back(&t);
  }
  for (const auto& t : tasks) {
    if (t.succeeded() && t.attempts.size() <= 1) shown.push_back(&t);
  }
  constexpr size_t kMaxRows = 200;
  out += "| task | executor | attempts | duration | outcome |\n|---|---|---|---|---|\n";
  for (size_t k = 0; k < shown.size() && k < kMaxRows; ++k) {
    const auto& t = *shown[k];
    const exec::Completion* last = t.last();
    std::string outcome = t.reused()  ? "reused from " + t.reused_from
                          : last      ? (last->outcome == exec::Outcome::kSucceeded
                                             ? std::string("succeeded")
                                             : reason_of(*last))
                                      : std::string("unfinished");
    out += fmt::format("| {}/{} | {} | {} | {:.2f}s | {} |\n", md_cell(t.step), md_cell(t.task_id),
                       t.reused() ? "-" : t.executor, t.attempts.size(), task_seconds(t),
                       md_cell(outcome));
  }
  if (shown.size() > kMaxRows) {
    out += fmt::format("\n{} more tasks not shown (`mflow runs`, `--summary-json`).\n",
                       shown.size() - kMaxRows);
  }
  return out + "\n";
}

std::string gitlab_failure_sections(const runtime::RunSummary& s,
                                    const std::vector<runtime::TaskEntry>& tasks) {
  std::string out;
  int n = 0;
  for (const auto& t : tasks) {
    if (t.reused() || t.succeeded() || !t.last()) continue;
    // Section names may hold only letters, digits, '_', '.' and '-'.
    std::string name = fmt::format("mflow_failure_{}", n++);
    auto now = std::time(nullptr);
    out += fmt::format("\x1b[0Ksection_start:{}:{}[collapsed=true]\r\x1b[0K"
                       "mflow: {}/{}/{} failed: {}\n",
                       now, name, s.run_id, t.step, t.task_id, base::printable(reason_of(*t.last())));
    std::string tail = log_tail(t);
    out += tail.empty() ? "(no output)\n" : tail;
    out += fmt::format("\x1b[0Ksection_end:{}:{}\r\x1b[0K\n", now, name);
  }
  return out;
}

}  // namespace mflow::cli
