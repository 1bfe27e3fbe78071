// Scheduler: the loop that runs one flow run (ninja's Builder::Build). It fills free
// capacity from the Plan, prepares each task (inputs materialised from the datastore,
// environment of the task contract), starts it on the local or the Kubernetes executor,
// waits for completions, stores results and artifacts, retries with delays, fails fast,
// and stops everything on an interrupt. On resume it reuses, without running them, tasks
// of the origin run whose spec and inputs are unchanged. Single-threaded: only the thread
// calling run() touches the plan, the store records and the executors.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "exec/executor.h"
#include "graph/graph.h"
#include "runtime/machine.h"
#include "runtime/plan.h"
#include "runtime/reporter.h"
#include "store/datastore.h"

namespace mflow::runtime {

struct SchedulerOptions {
  int max_workers = 16;
  int64_t max_num_splits = 100;
  /// Parameter name -> value text, every declared parameter resolved.
  std::map<std::string, std::string> params;
  /// Admission limits for local tasks that declare resources (steps without `resources`
  /// are limited only by max_workers).
  Machine capacity;
  /// Per graph node: does the step run on Kubernetes?
  std::vector<bool> on_kubernetes;
  /// Resume: the origin run's tasks by "<step>/<task_id>", and steps forced to run again.
  std::string origin_run_id;
  std::map<std::string, store::TaskRecord> origin_tasks;
  std::set<size_t> force_rerun;
  /// Variables added to every local task's environment (e.g. MFLOW_BIN); the step's `env`
  /// still wins. Kubernetes tasks get MFLOW_BIN=mflow, the binary inside the image.
  std::map<std::string, std::string> local_env;
  /// Polled after every wake-up; true once the user pressed Ctrl-C or sent SIGTERM.
  std::function<bool()> interrupted = [] { return false; };
  /// Called once after an interrupt was noticed (e.g. to drain the interrupt fd).
  std::function<void()> acknowledge_interrupt = [] {};
  /// How many interrupts arrived; one more after the run started stopping kills at once.
  std::function<int()> interrupt_count = [] { return 0; };
};

/// The environment variable that carries parameter `name` to tasks: MFLOW_PARAM_<NAME>, the
/// name upper-cased with every non-alphanumeric character as '_'.
std::string param_env_name(const std::string& name);

class Scheduler {
 public:
  Scheduler(const graph::Graph& graph, store::Datastore& store, const store::RunInfo& run,
            exec::Executor& local, exec::Executor* kubernetes, Reporter& reporter,
            SchedulerOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  /// Runs the flow to completion, failure or interrupt. Never throws for task failures.
  RunSummary run();

 private:
  struct Active;  // one task with an attempt started or waiting for its retry delay

  void start_ready_tasks();
  bool try_reuse(TaskIndex i, const std::string& input_hash);
  /// Prepares and starts the next attempt of `i`; failures to prepare end the task.
  void launch(TaskIndex i, std::unique_ptr<Active> active);
  void handle(const exec::Completion& c);
  /// Records what a succeeded (or reused) task's children will see.
  void remember(TaskIndex i, store::ArtifactMap view, std::string artifacts_dir);
  void succeed(TaskIndex i, Active& a, const exec::Completion& c);
  void fail(TaskIndex i, Active& a, const exec::Completion& c);
  /// Whether the attempt left its input directories (and the objects in them) as stored.
  base::Status inputs_unchanged(const Active& a) const;
  void finish_retry_delays(std::chrono::system_clock::time_point now);
  void stop_everything();
  void abandon_waiting();
  /// A foreach task `i` that succeeded with more than --max-num-splits items: the run fails
  /// (a failure naming the limit) and no split starts; the task keeps its successful record.
  /// Returns false, doing nothing, within the limit.
  bool refuse_fan_out(TaskIndex i, int64_t splits);
  bool fits(TaskIndex i) const;
  void acquire(Active& a);
  void release(Active& a);
  exec::Executor& executor_for(size_t step);
  std::string key_of(TaskIndex i) const;

  const graph::Graph& graph_;
  store::Datastore& store_;
  const store::RunInfo& run_;
  exec::Executor& local_;
  exec::Executor* kubernetes_;
  Reporter& reporter_;
  SchedulerOptions options_;
  Plan plan_;

  std::vector<std::string> spec_hashes_;             // per graph node
  std::vector<store::ArtifactMap> views_;            // per task, once succeeded
  std::vector<std::string> artifact_dirs_;           // per task, once succeeded
  std::map<TaskIndex, std::vector<std::string>> foreach_items_;  // per foreach task
  std::unordered_map<std::string, std::unique_ptr<Active>> active_;  // by key
  std::deque<TaskIndex> waiting_for_resources_;
  size_t attempts_in_flight_ = 0;
  int interrupts_when_stopping_ = -1;  // interrupt_count() when the first one was handled
  double cpu_in_use_ = 0;
  int64_t memory_in_use_ = 0;
  std::vector<bool> gpu_in_use_;
  std::set<size_t> told_changed_;  // steps whose spec change was already reported
  bool stopping_ = false;
  RunSummary summary_;
};

}  // namespace mflow::runtime
