// LocalExecutor: runs task attempts as local subprocesses (exec::Executor for `mflow run`).
// Each attempt is a process group spawned through SubprocessSet; its stdout/stderr stream into
// the attempt's log files and, line by line, to an OutputSink. Enforces per-attempt timeouts
// (SIGTERM to the group, SIGKILL after a grace) and optional memory cgroups. Not thread-safe:
// the scheduler's thread calls every method.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "exec/executor.h"
#include "exec/memory_cgroup.h"
#include "exec/subprocess.h"

namespace mflow::exec {

struct LocalExecutorOptions {
  /// Time between SIGTERM and SIGKILL when a timeout or cancel_all() stops a task.
  std::chrono::milliseconds kill_grace{std::chrono::seconds(10)};
  /// Extra fds that make wait() return when readable (never read by the executor), e.g.
  /// base::interrupt_fd() and the Kubernetes executor's eventfd.
  std::vector<int> wake_fds;
  /// With --enforce-resources: each attempt with a memory request runs in its own memory
  /// cgroup under this root, and an OOM kill is reported as Outcome::kOomKilled. Not owned.
  MemoryCgroupRoot* memory_cgroups = nullptr;
};

class LocalExecutor : public Executor {
 public:
  /// `sink` receives every output line (it must outlive the executor).
  explicit LocalExecutor(OutputSink& sink, LocalExecutorOptions options = {});
  ~LocalExecutor() override;

  /// Spawns launch.command with launch.env added to mflow's environment. A command that
  /// cannot start is reported as a kLaunchFailed Completion by the next wait()/poll(), with
  /// the reason also appended to launch.stderr_path.
  base::Status start(const TaskLaunch& launch) override;
  size_t running() const override { return attempts_.size() + ready_.size(); }
  void wait(std::optional<Clock::time_point> deadline, std::vector<Completion>* out) override;
  void poll(std::vector<Completion>* out) override;
  /// SIGTERM to every running group now, SIGKILL after kill_grace; completions say kCancelled.
  void cancel_all() override;
  void kill_all() override;

  /// The reason text for an exit status: "exit code 3", "killed by signal 9 (SIGKILL)".
  static std::string describe_exit(int exit_code, int signal);

 private:
  struct Attempt;
  void enforce_deadlines(Clock::time_point now);
  /// cancel_all() and kill_all(): every attempt stopped, SIGKILL due at `kill_at`.
  void stop_all_by(Clock::time_point kill_at);
  std::optional<Clock::time_point> next_internal_deadline() const;
  void collect(std::vector<std::unique_ptr<Subprocess>>& finished, std::vector<Completion>* out);
  Completion launch_failure(const TaskLaunch& launch, const std::string& why);

  OutputSink& sink_;
  LocalExecutorOptions options_;
  std::string hostname_;
  SubprocessSet set_;
  uint64_t next_tag_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Attempt>> attempts_;  // by Subprocess::tag
  std::vector<Completion> ready_;  // launch failures not yet handed out
};

}  // namespace mflow::exec
