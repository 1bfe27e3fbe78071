// RestApiClient: ApiClient over HTTPS with cpprestsdk (kept out of this header; the .cc is
// the only file in mflow that includes <cpprest/...>). TLS is verified against the
// kubeconfig's CA (or the system store) unless the kubeconfig says insecure-skip-tls-verify.
// Reads retry 429/5xx/connection failures with exponential backoff honouring Retry-After;
// writes retry only what the server provably did not process (429, refused connections, and
// a create answered 5xx whose Job a GET then shows absent); a 401 refreshes the credential
// (exec plugin, token file) and retries once. A 429 holds back every request of the client
// until its Retry-After (or backoff) has passed. Connections are
// kept alive and reused (one pool per inactivity timeout), and every TLS connection shares
// one parsed CA store. Thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "kube/api_client.h"
#include "kube/config.h"

namespace mflow::kube {

struct RestOptions {
  /// Attempts per request after the first one (429/5xx/transport errors).
  int max_retries = 6;
  /// Backoff before retry n (0-based) is min(initial * 2^n, max), or Retry-After if longer.
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(30)};
  /// Retry-After values above this are capped (a misbehaving proxy must not stall a run).
  std::chrono::seconds max_retry_after{std::chrono::seconds(60)};
  /// Inactivity timeout of ordinary requests (cpprest resets it on every read/write).
  std::chrono::seconds request_timeout{std::chrono::seconds(30)};
  /// timeoutSeconds of one watch request; the client's inactivity timeout is set above it.
  int watch_timeout_seconds = 300;
  /// Page size of list(); the `continue` token fetches the rest.
  int list_page_size = 500;
  /// How often a token file (tokenFile, in-cluster service account) is re-read.
  std::chrono::seconds token_file_refresh{std::chrono::seconds(60)};
  std::string user_agent = "mflow/" MFLOW_VERSION;
  /// Receives the text of each distinct `Warning: 299 - "..."` header the API server sends
  /// (deprecated fields, unknown fields, odd names), once per client; kubectl prints these
  /// too. Called from request threads, never concurrently. Unset: warnings are dropped.
  std::function<void(const std::string&)> on_warning;
  /// Receives "connecting to https://host:port (attempt N; <why the last one failed>)" when
  /// a request is sent again after a connection failure, so that an unreachable API server
  /// is not silence while the backoff runs. Across concurrent requests only a new highest
  /// attempt (or a 10 s reminder) is reported; an answer from the server resets that.
  /// Called from request threads, never concurrently. Unset: nothing is reported.
  std::function<void(const std::string&)> on_connecting;
};

/// How many times this process loaded the system trust store (OpenSSL's default verify
/// paths): at most once, however many TLS connections were opened. For `-v` and tests.
int64_t system_trust_store_loads();

/// The warn-texts of a Warning header value (RFC 7234 §5.5: `299 - "text"`, several
/// separated by commas; `\"` escapes a quote). Exposed for tests.
std::vector<std::string> parse_warning_header(std::string_view value);

class RestApiClient : public ApiClient {
 public:
  /// Validates the TLS material of `config` (PEM parse errors name the kubeconfig key) and
  /// builds the client. Makes no request.
  static base::Result<std::unique_ptr<RestApiClient>> create(Config config,
                                                             RestOptions options = {});
  ~RestApiClient() override;
  RestApiClient(const RestApiClient&) = delete;
  RestApiClient& operator=(const RestApiClient&) = delete;

  ApiResult<nlohmann::json> create_job(const std::string& ns, const nlohmann::json& job,
                                       const std::atomic<bool>& stop) override;
  ApiResult<nlohmann::json> get_job(const std::string& ns, const std::string& name) override;
  ApiResult<nlohmann::json> delete_job(const std::string& ns, const std::string& name) override;
  /// Follows `continue` tokens (limit = list_page_size) and returns all items with the
  /// first page's resourceVersion. An empty `ns` lists across all namespaces.
  ApiResult<ObjectList> list(Resource resource, const std::string& ns,
                             const std::string& label_selector) override;
  /// One watch request (watch=true, allowWatchBookmarks=true, timeoutSeconds). Events are
  /// parsed line by line as they arrive. An ERROR event (or an HTTP 410) is delivered as
  /// kError with the Status object. Returns value true when stopped by `stop` or `on_event`,
  /// false when the server ended the stream or the connection dropped mid-stream (re-watch
  /// from the last resourceVersion seen); an error only when the watch could not start.
  ApiResult<bool> watch(Resource resource, const std::string& ns, const std::string& label_selector,
                        const std::string& resource_version,
                        const std::function<bool(WatchEvent&)>& on_event,
                        const std::atomic<bool>& stop) override;
  /// Returns value true when stopped by `stop`, false when the log ended.
  ApiResult<bool> read_pod_log(const std::string& ns, const std::string& pod, bool follow,
                               const std::function<void(std::string_view)>& on_chunk,
                               const std::atomic<bool>& stop) override;
  const RequestStats& stats() const override;

  /// GET of a single Pod (core/v1).
  ApiResult<nlohmann::json> get_pod(const std::string& ns, const std::string& name);
  /// How many times the exec credential plugin ran.
  int64_t exec_plugin_runs() const;
  const Config& config() const;

 private:
  struct Impl;
  explicit RestApiClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mflow::kube
