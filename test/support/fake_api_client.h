// FakeApiClient: an in-memory kube::ApiClient for KubeExecutor tests. It keeps Jobs and pods
// with a monotonic resourceVersion and an event history, serves list + watch (resume from a
// resourceVersion, bookmarks, ERROR 410 Expired after compaction, injectable dropped
// connections), records every create/delete, and plays pod logs (follow or not). Tests script
// the "cluster" through the public helpers (add_pod, update_pod, set_job_condition, ...).
// Thread-safe: one mutex guards everything; watch and log calls block on a condition variable.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kube/api_client.h"

namespace mflow::test {

class FakeApiClient : public kube::ApiClient {
 public:
  FakeApiClient() = default;

  // kube::ApiClient
  kube::ApiResult<nlohmann::json> create_job(const std::string& ns, const nlohmann::json& job,
                                             const std::atomic<bool>& stop) override;
  kube::ApiResult<nlohmann::json> get_job(const std::string& ns, const std::string& name) override;
  kube::ApiResult<nlohmann::json> delete_job(const std::string& ns,
                                             const std::string& name) override;
  kube::ApiResult<kube::ObjectList> list(kube::Resource resource, const std::string& ns,
                                         const std::string& label_selector) override;
  kube::ApiResult<bool> watch(kube::Resource resource, const std::string& ns,
                              const std::string& label_selector,
                              const std::string& resource_version,
                              const std::function<bool(kube::WatchEvent&)>& on_event,
                              const std::atomic<bool>& stop) override;
  kube::ApiResult<bool> read_pod_log(const std::string& ns, const std::string& pod, bool follow,
                                     const std::function<void(std::string_view)>& on_chunk,
                                     const std::atomic<bool>& stop) override;
  const kube::RequestStats& stats() const override { return stats_; }

  // --- scripting the cluster ---

  /// Every Job created so far (in creation order), as stored (with metadata filled in).
  std::vector<nlohmann::json> created_jobs() const;
  /// Names of Jobs deleted through delete_job(), in order (Background propagation).
  std::vector<std::string> deleted_jobs() const;
  std::optional<nlohmann::json> job(const std::string& ns, const std::string& name) const;
  /// Waits (up to `timeout`) until `count` Jobs exist in total (created ever); true if so.
  bool wait_for_jobs(size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  /// Waits until at least `count` watch calls are blocked waiting for events.
  bool wait_for_watchers(size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(5));

  /// Inserts a Job directly (as if another orchestrator had created it).
  void put_job(const std::string& ns, nlohmann::json job);
  /// Sets a condition (status "True") on a Job's status; e.g. ("Failed", "DeadlineExceeded").
  void set_job_condition(const std::string& ns, const std::string& job, const std::string& type,
                         const std::string& reason, const std::string& message = "");
  /// Deletes a Job without going through delete_job() (someone else deleted it).
  void remove_job(const std::string& ns, const std::string& job);

  /// Creates pod `pod` of Job `job` (labels from the template plus job-name labels), Pending.
  void add_pod(const std::string& ns, const std::string& job, const std::string& pod);
  /// Replaces the pod's `status` with `status` (e.g. a phase and containerStatuses).
  void set_pod_status(const std::string& ns, const std::string& pod, nlohmann::json status);
  void remove_pod(const std::string& ns, const std::string& pod);

  /// Appends to a pod's log. With `follow_visible` false the bytes are returned only by a
  /// non-follow read (a follow stream that ends before the kubelet flushed the last lines).
  void append_log(const std::string& ns, const std::string& pod, const std::string& text,
                  bool follow_visible = true);
  /// Ends follow streams of the pod's log (the container terminated).
  void finish_log(const std::string& ns, const std::string& pod);

  // --- faults ---

  /// The next create_job() fails with this error (without storing the Job, or with
  /// `store_anyway` storing it first: a response lost after the write).
  void fail_next_create(kube::ApiError error, bool store_anyway = false);
  /// Every open watch returns (connection dropped); callers re-watch from their last RV.
  void drop_watches();
  /// Forgets history up to the current revision and drops open watches: resuming from any
  /// older RV yields an ERROR event with Status 410 Expired (HTTP 200), forcing a relist.
  void compact_history();
  /// While paused, open watches deliver nothing (events still accumulate in the history).
  void pause_watches(bool paused);
  /// Sends a BOOKMARK with the current revision to every open watch.
  void send_bookmarks();
  /// Number of list calls per resource so far.
  int64_t lists(kube::Resource resource) const;

 private:
  struct Event {
    int64_t rv;
    kube::Resource resource;
    std::string ns;
    kube::WatchEventType type;
    nlohmann::json object;
  };
  struct Log {
    std::string visible;  // what follow streams see
    std::string all;      // what a plain read sees
    bool finished = false;
  };
  using Key = std::pair<std::string, std::string>;  // namespace, name

  void record(kube::Resource r, const std::string& ns, kube::WatchEventType type,
              nlohmann::json object);  // requires mu_
  nlohmann::json& stamp(nlohmann::json& obj, const std::string& ns);  // requires mu_
  static bool matches(const nlohmann::json& obj, const std::string& selector);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t rv_ = 100;             // guarded by mu_
  int64_t compacted_rv_ = 0;     // guarded by mu_
  int64_t drop_generation_ = 0;  // guarded by mu_
  int64_t bookmark_generation_ = 0;  // guarded by mu_
  int64_t uid_counter_ = 0;      // guarded by mu_
  size_t watchers_ = 0;          // guarded by mu_
  bool paused_ = false;          // guarded by mu_
  std::map<Key, nlohmann::json> jobs_, pods_;  // guarded by mu_
  std::map<Key, Log> logs_;                    // guarded by mu_
  std::vector<Event> history_;                 // guarded by mu_
  std::vector<nlohmann::json> created_;        // guarded by mu_
  std::vector<std::string> deleted_;           // guarded by mu_
  std::optional<std::pair<kube::ApiError, bool>> next_create_error_;  // guarded by mu_
  int64_t job_lists_ = 0, pod_lists_ = 0;      // guarded by mu_
  kube::RequestStats stats_;
};

}  // namespace mflow::test
