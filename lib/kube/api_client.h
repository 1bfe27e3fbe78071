// ApiClient: the narrow interface mflow needs from the Kubernetes API (batch/v1 Jobs, core/v1
// Pods and their logs, list + watch). RestApiClient (kube/rest_api_client.h) implements it
// over HTTPS with cpprestsdk; tests use FakeApiClient (test/support). Objects travel as
// nlohmann::json exactly as the API returns them. Errors carry the HTTP status and the
// Kubernetes Status reason. Implementations are thread-safe: the watch runs on its own thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace mflow::kube {

/// A failed API call: HTTP status (0 when the server could not be reached), the Status
/// object's `reason` (e.g. "Forbidden", "AlreadyExists", "Expired") and a full message that
/// already names the verb, resource, namespace and object.
struct ApiError {
  int http_status = 0;
  std::string reason;
  std::string message;
  /// Seconds from Retry-After on 429/503, 0 if absent.
  int retry_after_seconds = 0;
};

template <typename T>
struct ApiResult {
  std::optional<T> value;
  ApiError error;
  bool ok() const { return value.has_value(); }
};

/// A list response: the items and the collection's resourceVersion to start a watch from.
struct ObjectList {
  nlohmann::json items = nlohmann::json::array();
  std::string resource_version;
};

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };

struct WatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  nlohmann::json object;  // the Job/Pod, or for kError the Status (410 Expired => relist)
};

enum class Resource { kJobs, kPods };

/// Counters a run reports with -v (requests by verb, watches opened, retries).
struct RequestStats {
  std::atomic<int64_t> creates{0}, gets{0}, lists{0}, deletes{0}, watches{0}, log_reads{0},
      retries{0};
  /// TLS connections opened (each one a handshake); reused keep-alive connections do not count.
  std::atomic<int64_t> tls_connections{0};
};

class ApiClient {
 public:
  virtual ~ApiClient() = default;

  /// POST a Job. Never retried blindly: an AlreadyExists after a lost response is reported
  /// as such so the caller can adopt the existing Job (same name = same task attempt).
  /// A 5xx is retried (with backoff) only while a GET shows that no Job of that name exists.
  /// `stop` ends a back-off (429, 5xx) wait with an error; a request already sent is let
  /// finish, so the caller learns whether the Job exists.
  virtual ApiResult<nlohmann::json> create_job(const std::string& ns, const nlohmann::json& job,
                                               const std::atomic<bool>& stop) = 0;
  virtual ApiResult<nlohmann::json> get_job(const std::string& ns, const std::string& name) = 0;
  /// DELETE with propagationPolicy=Background so the Job's pods go too.
  virtual ApiResult<nlohmann::json> delete_job(const std::string& ns,
                                               const std::string& name) = 0;
  virtual ApiResult<ObjectList> list(Resource resource, const std::string& ns,
                                     const std::string& label_selector) = 0;
  /// Streams watch events from `resource_version` (with bookmarks) until `on_event` returns
  /// false, `stop` becomes true, or the connection ends (then returns ok and the caller
  /// re-watches from the last seen resourceVersion). Blocks the calling thread. `on_event` may
  /// move the event's object out (the client does not read it afterwards), which spares a copy
  /// of every Job and Pod the watch delivers.
  virtual ApiResult<bool> watch(Resource resource, const std::string& ns,
                                const std::string& label_selector,
                                const std::string& resource_version,
                                const std::function<bool(WatchEvent&)>& on_event,
                                const std::atomic<bool>& stop) = 0;
  /// Reads a pod's log. With `follow`, streams chunks to `on_chunk` until the container
  /// ends (then returns ok). Without `follow`, delivers the whole current log once.
  virtual ApiResult<bool> read_pod_log(const std::string& ns, const std::string& pod,
                                       bool follow,
                                       const std::function<void(std::string_view)>& on_chunk,
                                       const std::atomic<bool>& stop) = 0;

  virtual const RequestStats& stats() const = 0;
};

}  // namespace mflow::kube
