// Executor: the seam between the scheduler and the things that run tasks (ninja's
// CommandRunner). The scheduler starts task attempts and collects their completions;
// a task's failure is data (Completion), never an exception. Implementations:
// LocalExecutor (subprocesses) and KubeExecutor (batch/v1 Jobs). Not thread-safe: one
// thread (the scheduler's) calls every method.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "spec/flow.h"

namespace mflow::exec {

using Clock = std::chrono::system_clock;

/// One attempt of one task, fully resolved by the scheduler.
struct TaskLaunch {
  std::string key;     // unique within the run, "<step>/<task_id>"
  std::string run_id;
  std::string step;
  std::string task_id;
  int attempt = 0;     // 0 for the first attempt
  spec::Command command;
  /// Variables added to (or replacing) mflow's own environment: the task contract
  /// (MFLOW_*), the step's `env`, and for a foreach body MFLOW_INPUT and friends.
  std::map<std::string, std::string> env;
  std::string stdout_path;  // output is streamed here as it arrives (append)
  std::string stderr_path;
  std::optional<std::chrono::seconds> timeout;
  const spec::Step* step_spec = nullptr;  // for executors that need more (Kubernetes)
  /// The resources the scheduler resolved for this task (defaults applied).
  spec::Resources resources;
  /// What makes the task what it is, independent of the run: its step's spec hash and its
  /// input hash. Equal hashes in two runs mean the same work (Kubernetes Job adoption).
  std::string task_hash;
  /// Resume after a lost mflow: the origin run whose still-running (or unrecorded) attempt
  /// of this task may be adopted instead of started anew; empty when none may be.
  std::string adopt_from_run;
};

enum class Outcome {
  kSucceeded,
  kFailed,         // non-zero exit or killed by a signal it did not expect
  kTimedOut,       // the step's timeout elapsed; the whole process tree was killed
  kCancelled,      // stopped by mflow (Ctrl-C, SIGTERM, fail-fast abort)
  kLaunchFailed,   // could not start at all (bad command, missing executable, API refusal)
  kOomKilled,      // out of memory (cgroup or Kubernetes)
  kUnschedulable,  // Kubernetes could not place the pod within the grace period
  kImagePull,      // Kubernetes could not pull the image within the grace period
  kEvicted,        // the node evicted the pod; does not use up a retry
};

const char* to_string(Outcome outcome);

struct Completion {
  std::string key;
  int attempt = 0;
  Outcome outcome = Outcome::kFailed;
  int exit_code = -1;  // -1 when it did not exit normally
  int signal = 0;      // the terminating signal, 0 if none
  std::string reason;  // human-readable detail ("exit code 3", "OOMKilled", scheduler message)
  Clock::time_point started;
  Clock::time_point finished;
  std::string host;    // hostname or node name
  int64_t pid = 0;     // local pid, 0 on Kubernetes
  /// Set when the attempt was an adopted Job of the origin run (TaskLaunch::adopt_from_run):
  /// its name, and the directory its outputs are in (the origin attempt's output directory).
  std::string adopted_job;
  std::string output_dir;
};

enum class Stream { kStdout, kStderr };

/// Receives task output line by line as it arrives (the console prefixer implements it).
/// The bytes are already stored in TaskLaunch::{stdout,stderr}_path when this is called.
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual void on_output(const TaskLaunch& task, int64_t pid, Stream stream,
                         std::string_view line) = 0;
};

class Executor {
 public:
  virtual ~Executor() = default;

  /// Starts one attempt; returns quickly. A launch problem may be reported either here (a
  /// non-ok Status: the scheduler records kLaunchFailed) or later as a Completion.
  virtual base::Status start(const TaskLaunch& launch) = 0;

  /// Number of attempts started and not yet returned as completions.
  virtual size_t running() const = 0;

  /// Blocks until at least one completion is available, one of the `wake_fds` given to the
  /// executor becomes readable, or `deadline` passes; appends completions to `out`.
  virtual void wait(std::optional<Clock::time_point> deadline, std::vector<Completion>* out) = 0;

  /// Appends completions already available without blocking.
  virtual void poll(std::vector<Completion>* out) = 0;

  /// Stops every running attempt (process groups: SIGTERM, then SIGKILL after a grace;
  /// Jobs: deleted with propagation). Their completions arrive through wait() as kCancelled.
  virtual void cancel_all() = 0;
  /// After cancel_all(), for a second Ctrl-C: what is still stopping is killed now, without
  /// waiting out the grace. Executors whose cancel is already final need do nothing.
  virtual void kill_all() {}
};

}  // namespace mflow::exec
