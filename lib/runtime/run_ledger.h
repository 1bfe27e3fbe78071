// RunLedger: a Reporter that remembers every task attempt of one run (executor, times,
// outcome, exit code, reason, whether a retry followed) and every reused task, in the order
// they happened. The CI outputs written at the end of a run (--junit, --summary-json's task
// list, the GitHub job summary) are made from it. FanoutReporter hands each report to several
// reporters (the console, the ledger, the --events stream). Both are thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/reporter.h"

namespace mflow::runtime {

struct AttemptEntry {
  int attempt = 0;
  exec::Clock::time_point started;
  std::optional<exec::Completion> completion;  // empty while it runs
  int retry_in_seconds = -1;                   // >= 0 when another attempt followed
};

struct TaskEntry {
  std::string step;
  std::string task_id;
  std::string executor;       // "local" or "kubernetes"; empty for a reused task
  std::string reused_from;    // "<run>/<step>/<task>" for a reused task
  std::string stdout_path;    // where the last attempt's output is stored
  std::string stderr_path;
  std::vector<AttemptEntry> attempts;

  /// The last attempt's completion, if it ended.
  const exec::Completion* last() const;
  bool reused() const { return !reused_from.empty(); }
  bool succeeded() const;
  /// Succeeded after at least one failed attempt.
  bool succeeded_after_retries() const { return succeeded() && attempts.size() > 1; }
};

class RunLedger : public Reporter {
 public:
  void on_output(const exec::TaskLaunch&, int64_t, exec::Stream, std::string_view) override {}
  void run_started(const std::string& run_id, const std::string& flow,
                   const std::string& datastore) override;
  void task_started(const exec::TaskLaunch& task, const char* where) override;
  void task_finished(const exec::TaskLaunch& task, const exec::Completion& c,
                     int retry_in_seconds) override;
  void task_reused(const std::string& run_id, const std::string& step,
                   const std::string& task_id, const std::string& from) override;
  void note(const std::string&) override {}
  void run_finished(const RunSummary&) override {}

  /// Every task seen, in the order each first started (or was reused).
  std::vector<TaskEntry> tasks() const;
  std::string run_id() const;

 private:
  TaskEntry& entry(const std::string& step, const std::string& task_id);

  mutable std::mutex mu_;
  std::string run_id_;
  std::vector<TaskEntry> tasks_;              // guarded by mu_
  std::map<std::string, size_t> index_;       // "<step>/<task>" -> tasks_ position
};

/// Forwards every report to each of its reporters, in order.
class FanoutReporter : public Reporter {
 public:
  explicit FanoutReporter(std::vector<Reporter*> to) : to_(std::move(to)) {}
  void on_output(const exec::TaskLaunch& task, int64_t pid, exec::Stream stream,
                 std::string_view line) override {
    for (auto* r : to_) r->on_output(task, pid, stream, line);
  }
  void run_started(const std::string& run_id, const std::string& flow,
                   const std::string& datastore) override {
    for (auto* r : to_) r->run_started(run_id, flow, datastore);
  }
  void task_started(const exec::TaskLaunch& task, const char* where) override {
    for (auto* r : to_) r->task_started(task, where);
  }
  void task_finished(const exec::TaskLaunch& task, const exec::Completion& c,
                     int retry_in_seconds) override {
    for (auto* r : to_) r->task_finished(task, c, retry_in_seconds);
  }
  void task_reused(const std::string& run_id, const std::string& step,
                   const std::string& task_id, const std::string& from) override {
    for (auto* r : to_) r->task_reused(run_id, step, task_id, from);
  }
  void tasks_queued(size_t count) override {
    for (auto* r : to_) r->tasks_queued(count);
  }
  void note(const std::string& text) override {
    for (auto* r : to_) r->note(text);
  }
  void run_finished(const RunSummary& summary) override {
    for (auto* r : to_) r->run_finished(summary);
  }

 private:
  std::vector<Reporter*> to_;
};

/// "15 succeeded (2 after retries), 1 reused, 0 failed": the task counts of the end-of-run
/// line, with how many of the succeeded needed a retry.
std::string task_counts(const RunSummary& summary);

}  // namespace mflow::runtime
