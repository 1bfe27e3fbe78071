// KubeExecutor: runs task attempts as batch/v1 Jobs (exec::Executor for steps on Kubernetes).
// start() queues one Job per attempt (build_job) for a bounded pool of creator threads
// (KubeDefaults::parallel_creates creates in flight; cancel_all stops them at once); ONE list+watch of Jobs and ONE of pods per
// namespace, by the run's label selector, follow them on background threads (resume from the
// last resourceVersion, relist on 410 Expired, re-watch after a dropped connection); pod logs
// are streamed to the attempt's stdout file and the OutputSink by one thread per pod; a
// supervisor thread applies the pending / image-pull graces. Completions are queued under a
// mutex and signalled on an eventfd (wake_fd()) that the scheduler's poll includes. The
// Executor methods are called from the scheduler's thread only; the OutputSink is called
// from log threads and must be thread-safe (runtime::Reporter is).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "exec/executor.h"
#include "exec/kube_options.h"
#include "kube/api_client.h"

namespace mflow::exec {

struct KubeExecutorOptions {
  /// The datastore's identity: in every Job's name, labels and annotations, and in every
  /// selector, so that no run sees, adopts or deletes another datastore's Jobs.
  std::string datastore_id;
  std::string flow;            // flow name: Job names and labels
  std::string datastore_root;  // the orchestrator's datastore root (absolute)
  KubeDefaults defaults;       // environment + --with kubernetes:...
  /// Resume: the origin run, whose Jobs a task with TaskLaunch::adopt_from_run may adopt
  /// (followed to their end instead of created anew); they are watched with this run's.
  std::string origin_run_id;
  /// The clock used for the graces (tests inject a fake one).
  std::function<Clock::time_point()> now = [] { return Clock::now(); };
  /// How often the supervisor re-checks the graces.
  std::chrono::milliseconds tick{1000};
  /// Pause before re-listing / re-watching after an API error, and before re-reading a log.
  std::chrono::milliseconds retry_delay{1000};
  /// How long a pod that runs is left before its log is followed: a pod that ends sooner has
  /// its whole log fetched with one plain read.
  std::chrono::milliseconds log_follow_delay{1000};
  /// After a log follow ended cleanly, how long to wait for the watch to report the pod
  /// ended (then one final read) before following again.
  std::chrono::milliseconds log_settle_wait{3000};
  /// How long to wait for the pod's final state after the Job's outcome is known (the Job
  /// and pod watches are separate streams) before reporting without it.
  std::chrono::seconds settle{10};
  /// Receives what the run waits on: a task created but not started (pod Pending,
  /// unschedulable, image pull failing, no pod yet) once it has waited `waiting_first`, then
  /// every `waiting_every`; many such tasks share one line. Called from the supervisor thread
  /// without mu_ held. Unset: nothing is reported.
  std::function<void(const std::string&)> on_waiting;
  std::chrono::milliseconds waiting_first{std::chrono::seconds(15)};
  std::chrono::milliseconds waiting_every{std::chrono::seconds(30)};
};

/// Outcome diagnosis from one pod's status (pure; exposed for tests and `mflow show`).
struct PodDiagnosis {
  bool terminated = false;        // phase Succeeded/Failed or the container terminated
  bool running = false;           // the container runs (its log can be followed)
  bool unschedulable = false;     // PodScheduled=False, reason Unschedulable
  bool image_pull_failing = false;  // ErrImagePull / ImagePullBackOff (transient)
  bool image_invalid = false;     // InvalidImageName / ErrImageNeverPull (permanent)
  bool config_error = false;      // CreateContainerConfigError / CreateContainerError
  bool evicted = false;           // status.reason Evicted or DisruptionTarget=True
  bool disruption = false;        // DisruptionTarget=True: the Job's podFailurePolicy ignores it
  bool oom_killed = false;
  bool deadline = false;          // pod-level DeadlineExceeded
  int exit_code = -1;
  std::string reason;   // the Kubernetes reason of the state above
  std::string message;  // the scheduler's / kubelet's message
  std::string node;
};
PodDiagnosis diagnose_pod(const nlohmann::json& pod);

class KubeExecutor : public Executor {
 public:
  /// `api` and `sink` must outlive the executor.
  KubeExecutor(kube::ApiClient& api, OutputSink& sink, KubeExecutorOptions options);
  ~KubeExecutor() override;
  KubeExecutor(const KubeExecutor&) = delete;
  KubeExecutor& operator=(const KubeExecutor&) = delete;

  /// With TaskLaunch::adopt_from_run, first looks for the origin run's Job of the same task
  /// (its highest attempt): when its mflow.dev/task-hash annotation matches, that Job is
  /// followed instead (log into this attempt's stdout, Completion::adopted_job/output_dir
  /// set) and deleted once its outcome is taken; when it does not match and the Job still
  /// runs, it is deleted (Background) and a Job is created as usual.
  /// Queues the attempt's Job for creation and returns. On AlreadyExists the creator adopts
  /// the existing Job when its annotations name the same datastore, run and task key (a
  /// create whose response was lost); an API refusal (the message names the Job/namespace)
  /// arrives as a kLaunchFailed completion. Errors here: no PVC configured, a bad manifest.
  base::Status start(const TaskLaunch& launch) override;
  size_t running() const override { return outstanding_; }
  void wait(std::optional<Clock::time_point> deadline, std::vector<Completion>* out) override;
  void poll(std::vector<Completion>* out) override;
  /// Deletes every Job of the run (propagationPolicy Background) and reports each running
  /// attempt as kCancelled.
  void cancel_all() override;

  /// Becomes readable when completions are queued; add it to the scheduler's poll set.
  int wake_fd() const { return wake_fd_.get(); }
  /// API request counters for `-v`.
  const kube::RequestStats& stats() const { return api_.stats(); }

  /// The Job start() would create for `launch` (for --dry-run and tests).
  base::Result<nlohmann::json> manifest_for(const TaskLaunch& launch) const;

 private:
  struct Attempt;
  struct Follower;
  enum class CreateState { kQueued, kSending, kDone };

  /// The adoption described at start(); true when `launch` now follows an origin Job.
  bool try_adopt(const TaskLaunch& launch, const KubeTaskSpec& task);
  /// A creator thread: sends the queued creates, one at a time, until stopped.
  void create_loop();
  /// Creates (or adopts) the attempt's Job; a refusal becomes its kLaunchFailed completion.
  void create(const std::shared_ptr<Attempt>& a);

  void ensure_watch(const std::string& ns);
  void watch_loop(kube::Resource resource, std::string ns);
  void handle_object(kube::Resource resource, bool deleted, nlohmann::json obj);
  void handle_relist(kube::Resource resource, const std::string& ns, const nlohmann::json& items);
  void supervise();
  /// Applies the Job and pod state to `a`: starts log followers, applies the graces, and
  /// decides the outcome. Requires mu_. Jobs to delete are appended to `to_delete`.
  void evaluate(const std::shared_ptr<Attempt>& a, Clock::time_point now,
                std::vector<std::pair<std::string, std::string>>* to_delete);
  void decide(Attempt& a, Outcome outcome, int exit_code, std::string reason);  // requires mu_
  void maybe_post(Attempt& a);  // requires mu_
  void start_follower(const std::shared_ptr<Attempt>& a, const std::string& pod);  // requires mu_
  void follow_log(std::shared_ptr<Attempt> a, std::string pod, std::shared_ptr<Follower> f);
  void delete_jobs(const std::vector<std::pair<std::string, std::string>>& ns_and_names);
  void note_watch_error(const std::string& ns, const std::string& what, const kube::ApiError& e);
  /// The lines for on_waiting due at `now` (none between rounds). Requires mu_.
  std::vector<std::string> waiting_notes(Clock::time_point now);
  void clear_watch_error(const std::string& ns);
  void sleep_for(std::chrono::milliseconds d);
  void reap_followers();

  kube::ApiClient& api_;
  OutputSink& sink_;
  KubeExecutorOptions options_;
  std::string selector_;
  base::UniqueFd wake_fd_;
  size_t outstanding_ = 0;  // scheduler thread only

  std::mutex mu_;
  std::condition_variable cv_;  // wakes the supervisor, sleeping threads and followers
  std::atomic<bool> stop_{false};
  std::map<std::string, std::shared_ptr<Attempt>> attempts_;  // by Job name; guarded by mu_
  std::set<std::string> watched_ns_;                          // guarded by mu_
  std::vector<std::thread> watchers_;                         // guarded by mu_
  std::condition_variable create_cv_;  // wakes creator threads
  std::deque<std::shared_ptr<Attempt>> create_queue_;         // guarded by mu_
  std::vector<std::thread> creators_;                         // guarded by mu_
  size_t creators_idle_ = 0;                                  // guarded by mu_
  std::atomic<bool> creates_stopped_{false};  // set by cancel_all: no create is sent after it
  std::vector<std::shared_ptr<Follower>> followers_;          // guarded by mu_
  std::vector<Completion> ready_;                             // guarded by mu_
  std::map<std::string, Clock::time_point> watch_failing_since_;  // by namespace; guarded by mu_
  std::string watch_error_;                                   // guarded by mu_
  std::optional<Clock::time_point> last_waiting_note_;        // guarded by mu_
  std::thread supervisor_;
  /// The origin run's Jobs not yet adopted, by namespace then task key (highest attempt
  /// only); filled on the first adoption in a namespace. Scheduler thread only.
  std::map<std::string, std::map<std::string, nlohmann::json>> origin_jobs_;
  /// Adopted Jobs whose outcome was taken: deleted by poll(), so no resume adopts them again.
  std::vector<std::pair<std::string, std::string>> adopted_done_;  // guarded by mu_
};

}  // namespace mflow::exec
