// Reporter: everything the runtime tells the user while a run goes on (ninja's Status).
// ConsoleReporter prints it; tests use a recording implementation. Implementations must be
// thread-safe: the Kubernetes executor delivers task output from its log threads.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "exec/executor.h"

namespace mflow::runtime {

struct FailedTask {
  std::string step;
  std::string task_id;
  int attempt = 0;      // 0-based attempt that failed last
  int attempts = 1;     // how many attempts were allowed
  exec::Outcome outcome = exec::Outcome::kFailed;
  int exit_code = -1;
  std::string reason;
  /// The task succeeded but the fan-out it asked for was refused (--max-num-splits): no
  /// attempt failed, the run fails. attempt/attempts/outcome/exit_code do not apply.
  bool fan_out_refused = false;
};

struct RunSummary {
  std::string run_id;
  std::string flow;
  std::string flow_file;
  bool interrupted = false;
  bool succeeded = false;
  size_t tasks_succeeded = 0;
  size_t tasks_succeeded_after_retries = 0;  // of tasks_succeeded: needed more than one attempt
  size_t tasks_reused = 0;
  size_t tasks_failed = 0;
  size_t tasks_stopped = 0;  // running when the run was interrupted, and stopped by it
  std::vector<FailedTask> failures;
  std::chrono::milliseconds elapsed{0};
};

class Reporter : public exec::OutputSink {
 public:
  virtual void run_started(const std::string& run_id, const std::string& flow,
                           const std::string& datastore) = 0;
  virtual void task_started(const exec::TaskLaunch& task, const char* where) = 0;
  /// `retry_in` >= 0 when another attempt follows after that many seconds.
  virtual void task_finished(const exec::TaskLaunch& task, const exec::Completion& c,
                             int retry_in_seconds) = 0;
  virtual void task_reused(const std::string& run_id, const std::string& step,
                           const std::string& task_id, const std::string& from) = 0;
  /// How many tasks wait to start (ready, waiting for resources or for a retry delay);
  /// reported once per scheduling round, for the live status line.
  virtual void tasks_queued(size_t /*count*/) {}
  /// A notice from the runtime (why a step re-runs on resume, a warning).
  virtual void note(const std::string& text) = 0;
  virtual void run_finished(const RunSummary& summary) = 0;
};

}  // namespace mflow::runtime
