#include "kube/rest_api_client.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <boost/asio/ssl.hpp>
#include <cpprest/http_client.h>
#include <cpprest/uri_builder.h>
#include <fmt/core.h>

#include "base/signals.h"
#include "base/strings.h"
#include "kube/credentials.h"

namespace mflow::kube {
namespace {

namespace http = web::http;
namespace client = web::http::client;
using base::Result;
using base::Status;
using json = nlohmann::json;
using namespace std::chrono_literals;

// What one API call is, for URLs, statistics, retry policy and error messages.
enum class Verb { kCreate, kGet, kDelete, kList, kWatch, kLog };

struct Call {
  Verb verb = Verb::kGet;
  std::string resource;  // "jobs", "pods", "pods/log" (for messages)
  std::string ns;        // empty = all namespaces
  std::string name;      // object name, if any
  http::method method = http::methods::GET;
  std::string path_and_query;
  std::optional<std::string> body;

  bool is_write() const { return verb == Verb::kCreate || verb == Verb::kDelete; }
  std::string what() const {
    static constexpr const char* kWords[] = {"create", "get", "delete", "list", "watch", "read the log of"};
    std::string s = fmt::format("{} {}", kWords[static_cast<int>(verb)], resource);
    if (!name.empty()) s += fmt::format(" \"{}\"", name);
    s += ns.empty() ? " in all namespaces" : fmt::format(" in namespace \"{}\"", ns);
    return s;
  }
};

// Shared with the TLS callbacks (which run on cpprest's threads): the name the server
// certificate must carry, and the last verification failure for error messages.
struct TlsState {
  std::string expected_host;
  std::mutex mu;
  std::string last_error;   // guarded by mu
  std::atomic<uint64_t> failures{0};
};

int pass_through_verify(int ok, X509_STORE_CTX*) { return ok; }

// Replaces OpenSSL's chain verification so that we (not cpprest's rfc2818 callback) decide:
// this lets tls-server-name work and records the precise X509 error for the message.
int verify_chain(X509_STORE_CTX* store_ctx, void* arg) {
  auto* tls = static_cast<TlsState*>(arg);
  X509_STORE_CTX_set_verify_cb(store_ctx, pass_through_verify);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(store_ctx);
  const std::string& host = tls->expected_host;
  if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  }
  int ok = X509_verify_cert(store_ctx);
  if (ok <= 0) {
    int err = X509_STORE_CTX_get_error(store_ctx);
    std::lock_guard<std::mutex> lock(tls->mu);
    tls->last_error = err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH
                          ? fmt::format("{} (the certificate is not valid for \"{}\")",
                                        X509_verify_cert_error_string(err), host)
                          : X509_verify_cert_error_string(err);
    tls->failures.fetch_add(1);
  }
  return ok;
}

// Parsed PEM checks, so that bad kubeconfig material fails before any request.
Status check_pem_certs(const std::string& pem, const std::string& where) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  int count = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    X509_free(cert);
    ++count;
  }
  BIO_free(bio);
  ERR_clear_error();
  if (count == 0) return Status::invalid(fmt::format("{}: no PEM certificate found", where));
  return Status::ok_status();
}

Status check_pem_key(const std::string& pem, const std::string& where) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ERR_clear_error();
  if (!key) return Status::invalid(fmt::format("{}: no PEM private key found", where));
  EVP_PKEY_free(key);
  return Status::ok_status();
}

// A store holding every certificate of `pem` (checked by check_pem_certs beforehand).
X509_STORE* store_from_pem(const std::string& pem) {
  X509_STORE* store = X509_STORE_new();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, cert);
    X509_free(cert);
  }
  BIO_free(bio);
  ERR_clear_error();
  return store;
}

std::atomic<int64_t> g_system_store_loads{0};

// The system trust store (OpenSSL's default paths: SSL_CERT_FILE / SSL_CERT_DIR, else the
// distribution's bundle), loaded at the first use and shared for the life of the process, as
// Go's crypto/x509 loads its system pool once.
X509_STORE* system_store() {
  static X509_STORE* store = [] {
    X509_STORE* s = X509_STORE_new();
    X509_STORE_set_default_paths(s);
    ERR_clear_error();  // a missing bundle file is not an error (the hashed directory may do)
    g_system_store_loads.fetch_add(1);
    return s;
  }();
  return store;
}

std::string reason_for_status(int code) {
  switch (code) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 406: return "NotAcceptable";
    case 409: return "Conflict";
    case 410: return "Expired";
    case 413: return "RequestEntityTooLarge";
    case 415: return "UnsupportedMediaType";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 500: return "InternalError";
    case 503: return "ServiceUnavailable";
    case 504: return "Timeout";
    default: return code >= 500 ? "InternalError" : "Unknown";
  }
}

// "AlreadyExists" -> "already exists".
std::string reason_words(const std::string& reason) {
  std::string out;
  for (char c : reason) {
    if (std::isupper(static_cast<unsigned char>(c)) && !out.empty()) out += ' ';
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string percent_encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string collection_path(Resource resource, const std::string& ns) {
  const char* group = resource == Resource::kJobs ? "/apis/batch/v1" : "/api/v1";
  const char* plural = resource == Resource::kJobs ? "jobs" : "pods";
  if (ns.empty()) return fmt::format("{}/{}", group, plural);
  return fmt::format("{}/namespaces/{}/{}", group, percent_encode(ns), plural);
}

std::string resource_name(Resource resource) { return resource == Resource::kJobs ? "jobs" : "pods"; }

std::string with_query(std::string path, const std::vector<std::pair<std::string, std::string>>& q) {
  char sep = '?';
  for (const auto& [k, v] : q) {
    path += sep + k + "=" + percent_encode(v);
    sep = '&';
  }
  return path;
}

WatchEventType parse_event_type(const std::string& t, bool* ok) {
  *ok = true;
  if (t == "ADDED") return WatchEventType::kAdded;
  if (t == "MODIFIED") return WatchEventType::kModified;
  if (t == "DELETED") return WatchEventType::kDeleted;
  if (t == "BOOKMARK") return WatchEventType::kBookmark;
  if (t == "ERROR") return WatchEventType::kError;
  *ok = false;
  return WatchEventType::kError;
}

// How one HTTP exchange ended before any status was known.
struct TransportFailure {
  std::string message;
  bool not_sent = false;  // the request provably never reached the server (connect failed)
  bool tls = false;       // TLS handshake / verification failed: never transient
};

enum class StreamEnd { kEof, kStopped, kCallerDone, kDropped };

}  // namespace

int64_t system_trust_store_loads() { return g_system_store_loads.load(); }

}  // namespace mflow::kube

// cpprest 2.10's asio client builds a new boost::asio::ssl::context for every connection and
// calls set_default_verify_paths() on it before mflow's ssl_context_callback can act
// (http_client_asio.cpp, upgrade_to_ssl): OpenSSL then parses the whole system CA bundle
// (~140 certificates) per connection, which was 82% of mflow's CPU with one TLS connection
// per log stream. mflow defines the function itself; the dynamic linker binds libcpprest's
// call to the executable's definition, so every context shares the one store loaded at the
// first call. A context whose store already holds something (not cpprest's) gets OpenSSL's
// own behaviour. Trust is unchanged: the same default paths, read once per process.
extern "C" int SSL_CTX_set_default_verify_paths(SSL_CTX* ctx) {
  X509_STORE* own = SSL_CTX_get_cert_store(ctx);
  if (own != nullptr && sk_X509_OBJECT_num(X509_STORE_get0_objects(own)) > 0) {
    return X509_STORE_set_default_paths(own);
  }
  SSL_CTX_set1_cert_store(ctx, mflow::kube::system_store());
  return 1;
}

namespace mflow::kube {

std::vector<std::string> parse_warning_header(std::string_view value) {
  // Reads the quoted-string starting at value[i] (a '"'); leaves i after its closing quote.
  auto quoted = [&](size_t& i) {
    std::string text;
    for (++i; i < value.size() && value[i] != '"'; ++i) {
      if (value[i] == '\\' && i + 1 < value.size()) ++i;
      text += value[i];
    }
    ++i;
    return text;
  };
  std::vector<std::string> texts;
  size_t i = 0;
  while ((i = value.find('"', i)) != std::string_view::npos) {
    std::string text = quoted(i);  // warn-text
    if (!text.empty()) texts.push_back(std::move(text));
    while (i < value.size() && value[i] == ' ') ++i;
    if (i < value.size() && value[i] == '"') quoted(i);  // an optional warn-date
    if ((i = value.find(',', i)) == std::string_view::npos) break;
  }
  return texts;
}

struct RestApiClient::Impl {
  Config config;
  RestOptions options;
  Credentials credentials;
  RequestStats stats;
  std::shared_ptr<TlsState> tls = std::make_shared<TlsState>();

  // The kubeconfig's CA, parsed once; shared by every TLS connection (null: system store).
  X509_STORE* ca_store = nullptr;

  std::mutex mu;
  // Guarded by mu: one client per inactivity timeout (ordinary requests, watches, followed
  // logs), each with its own pool of keep-alive connections, and the client cert they were
  // built with. Sharing them means a log read or a watch reuses an idle connection instead
  // of paying a TCP and TLS handshake.
  std::map<std::chrono::seconds, std::shared_ptr<client::http_client>> clients;
  std::string clients_cert;
  // Guarded by mu: warnings already passed to options.on_warning (each is reported once;
  // the same deprecation comes back on every create).
  std::set<std::string> warned;
  // Guarded by mu: no request of this client is sent before this time, set by a 429 (the
  // API server's flow control asks every client to slow down, not just one request).
  std::chrono::steady_clock::time_point throttled_until{};
  // Guarded by mu: the highest attempt number reported to options.on_connecting during the
  // current outage (0: the API server answers) and when the last report was made. Many
  // requests retry at once when the server is unreachable (watches, creates of a wide
  // foreach); only a new highest attempt, or a reminder after 10 s, is reported.
  int connect_reported_attempt = 0;
  std::chrono::steady_clock::time_point connect_reported_at{};

  // A transport failure made request attempt `next` (1-based, >= 2) necessary.
  void report_connecting(int next, const std::string& why) {
    if (!options.on_connecting) return;
    std::lock_guard<std::mutex> lock(mu);
    auto now = std::chrono::steady_clock::now();
    if (next <= connect_reported_attempt && now - connect_reported_at < std::chrono::seconds(10)) {
      return;
    }
    connect_reported_attempt = std::max(connect_reported_attempt, next);
    connect_reported_at = now;
    options.on_connecting(fmt::format("connecting to {} (attempt {}; {})", config.server, next, why));
  }

  void connected() {
    if (!options.on_connecting) return;
    std::lock_guard<std::mutex> lock(mu);
    connect_reported_attempt = 0;
  }

  // Waits until the client's 429 back-off is over. False when `stop` ended the wait.
  bool wait_out_throttle(const std::atomic<bool>* stop) {
    std::chrono::steady_clock::time_point until;
    {
      std::lock_guard<std::mutex> lock(mu);
      until = throttled_until;
    }
    auto now = std::chrono::steady_clock::now();
    if (until <= now) return true;
    return sleep_for(std::chrono::ceil<std::chrono::milliseconds>(until - now), stop);
  }

  void throttle_for(std::chrono::milliseconds d) {
    std::lock_guard<std::mutex> lock(mu);
    throttled_until = std::max(throttled_until, std::chrono::steady_clock::now() + d);
  }

  void report_warnings(const http::http_headers& headers) {
    if (!options.on_warning) return;
    auto it = headers.find("Warning");
    if (it == headers.end()) return;
    std::lock_guard<std::mutex> lock(mu);
    for (auto& text : parse_warning_header(it->second)) {
      if (warned.insert(text).second) options.on_warning(text);
    }
  }

  Impl(Config c, RestOptions o)
      : config(std::move(c)), options(std::move(o)), credentials(config, options.token_file_refresh) {
    if (!config.ca_pem.empty()) ca_store = store_from_pem(config.ca_pem);
  }
  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu);
      clients.clear();
    }
    if (ca_store != nullptr) X509_STORE_free(ca_store);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  std::shared_ptr<client::http_client> make_client(std::chrono::seconds timeout, const Credential& cred) {
    client::http_client_config cfg;
    cfg.set_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
    cfg.set_validate_certificates(!config.insecure_skip_tls_verify);
    auto tls_state = tls;
    X509_STORE* store = ca_store;
    bool verify = !config.insecure_skip_tls_verify;
    std::string cert = cred.client_cert_pem, key = cred.client_key_pem;
    RequestStats* counters = &stats;
    // Runs once per new TLS connection (cpprest builds a context for each).
    cfg.set_ssl_context_callback([tls_state, store, verify, cert, key, counters](
                                     boost::asio::ssl::context& ctx) {
      counters->tls_connections++;
      if (store != nullptr) {
        // Only the kubeconfig's CA is trusted, as in client-go (not the system store too).
        SSL_CTX_set1_cert_store(ctx.native_handle(), store);
      }
      if (!cert.empty()) {
        ctx.use_certificate_chain(boost::asio::buffer(cert.data(), cert.size()));
        ctx.use_private_key(boost::asio::buffer(key.data(), key.size()),
                            boost::asio::ssl::context::pem);
      }
      if (verify) SSL_CTX_set_cert_verify_callback(ctx.native_handle(), verify_chain, tls_state.get());
    });
    return std::make_shared<client::http_client>(config.server, cfg);
  }

  // The shared client for requests with this inactivity timeout.
  std::shared_ptr<client::http_client> client_for(std::chrono::seconds timeout, const Credential& cred) {
    std::lock_guard<std::mutex> lock(mu);
    if (clients_cert != cred.client_cert_pem) {
      clients.clear();  // a rotated client certificate: new connections must present it
      clients_cert = cred.client_cert_pem;
    }
    auto& c = clients[timeout];
    if (!c) c = make_client(timeout, cred);
    return c;
  }

  // A failed connection can poison cpprest's pooled connection (cpprestsdk #660): start over.
  void drop_client(const std::shared_ptr<client::http_client>& c) {
    std::lock_guard<std::mutex> lock(mu);
    for (auto it = clients.begin(); it != clients.end();) {
      it = !c || it->second == c ? clients.erase(it) : std::next(it);
    }
  }

  void count(Verb verb, bool retry) {
    switch (verb) {
      case Verb::kCreate: stats.creates++; break;
      case Verb::kGet: stats.gets++; break;
      case Verb::kDelete: stats.deletes++; break;
      case Verb::kList: stats.lists++; break;
      case Verb::kWatch: stats.watches++; break;
      case Verb::kLog: stats.log_reads++; break;
    }
    if (retry) stats.retries++;
  }

  ApiError transport_error(const Call& call, const TransportFailure& f) {
    ApiError e;
    e.http_status = 0;
    if (f.tls) {
      e.reason = "TLSError";
      e.message = fmt::format(
          "cannot {}: TLS certificate verification of {} failed: {}; the server certificate is "
          "checked against {} ({}) — fix certificate-authority in the kubeconfig, or the server's "
          "certificate",
          call.what(), config.server, f.message,
          config.ca_where.empty() ? "the system trust store" : config.ca_where, config.source);
    } else {
      e.reason = "ConnectionFailed";
      e.message = fmt::format("cannot {}: cannot reach the Kubernetes API at {} ({}): {}",
                              call.what(), config.server, config.source, f.message);
    }
    return e;
  }

  ApiError status_error(const Call& call, int code, const std::string& body,
                        const http::http_headers& headers) {
    ApiError e;
    e.http_status = code;
    std::string server_message;
    try {
      json doc = json::parse(body);
      if (doc.is_object() && doc.value("kind", "") == "Status") {
        e.reason = doc.value("reason", "");
        server_message = doc.value("message", "");
        if (auto d = doc.find("details"); d != doc.end() && d->is_object()) {
          e.retry_after_seconds = d->value("retryAfterSeconds", 0);
        }
      }
    } catch (const json::exception&) {
      // Not a Status (APF's text/plain 429, an HTML page from a proxy): use the HTTP code.
    }
    if (e.reason.empty()) e.reason = reason_for_status(code);
    if (server_message.empty()) {
      std::string text(base::trim(body));
      if (text.size() > 300) text = text.substr(0, 300) + "…";
      server_message = text.empty() ? "(empty response)" : text;
    }
    if (auto it = headers.find("Retry-After"); it != headers.end()) {
      try {
        e.retry_after_seconds = std::stoi(it->second);
      } catch (const std::exception&) {
        e.retry_after_seconds = 1;  // an HTTP-date: wait a little rather than not at all
      }
    }
    e.message = fmt::format("{}: cannot {} (HTTP {}): {}", reason_words(e.reason), call.what(), code,
                            server_message);
    if (code == 401) {
      e.message += fmt::format(" — authentication failed: the credentials of {} were rejected",
                               config.source);
    }
    return e;
  }

  // Sleeps for `d`, in slices so that `stop` interrupts it. Returns false when stopped.
  static bool sleep_for(std::chrono::milliseconds d, const std::atomic<bool>* stop) {
    auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
      if (stop && stop->load()) return false;
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          20ms, until - std::chrono::steady_clock::now()));
    }
    return !(stop && stop->load());
  }

  std::chrono::milliseconds backoff(int attempt, int retry_after_seconds) {
    std::chrono::milliseconds b = options.initial_backoff * (int64_t{1} << std::min(attempt, 20));
    b = std::min(b, options.max_backoff);
    std::chrono::milliseconds ra(
        std::min<int64_t>(retry_after_seconds, options.max_retry_after.count()) * 1000);
    return std::max(b, ra);
  }

  // Sends `call` once on `c`. Returns the response once its headers are in, or why not.
  std::variant<http::http_response, TransportFailure> send_once(
      client::http_client& c, const Call& call, const Credential& cred,
      const pplx::cancellation_token& token) {
    http::http_request req(call.method);
    req.set_request_uri(call.path_and_query);
    req.headers().add("Accept", "application/json");
    req.headers().add("User-Agent", options.user_agent);
    if (!cred.token.empty()) req.headers().add("Authorization", "Bearer " + cred.token);
    if (call.body) req.set_body(*call.body, "application/json");
    const uint64_t tls_failures_before = tls->failures.load();
    try {
      return c.request(req, token).get();
    } catch (const std::exception& ex) {
      TransportFailure f;
      f.message = ex.what();
      if (tls->failures.load() != tls_failures_before) {
        std::lock_guard<std::mutex> lock(tls->mu);
        f.tls = true;
        f.message = "certificate verify failed: " + tls->last_error;
      } else if (f.message.find("handshake") != std::string::npos ||
                 f.message.find("SSL") != std::string::npos) {
        f.tls = true;
        f.message = "TLS handshake failed (" + f.message + ")";
      }
      if (auto* he = dynamic_cast<const http::http_exception*>(&ex)) {
        int v = he->error_code().value();
        f.not_sent = v == ECONNREFUSED || v == EHOSTUNREACH || v == ENETUNREACH ||
                     f.message.find("Failed to connect") != std::string::npos ||
                     f.message.find("resolve") != std::string::npos;
      }
      return f;
    }
  }

  // Runs `call` with the retry policy of the class comment. On success the response's body
  // has not been read yet (streams read it as it arrives). `stop` may be null.
  ApiResult<http::http_response> execute(const Call& call, std::chrono::seconds timeout,
                                         const pplx::cancellation_token& token,
                                         const std::atomic<bool>* stop) {
    ApiResult<http::http_response> result;
    bool reauthenticated = false;
    for (int attempt = 0;; ++attempt) {
      auto cred = credentials.get();
      if (!cred.ok()) {
        result.error = ApiError{0, "Unauthorized",
                                fmt::format("cannot {}: {}", call.what(), cred.status().message()), 0};
        return result;
      }
      if (!wait_out_throttle(stop)) {
        result.error = ApiError{0, "Cancelled",
                                fmt::format("cannot {}: stopped while the API server asked "
                                            "clients to back off (HTTP 429)", call.what()),
                                0};
        return result;
      }
      auto c = client_for(timeout, *cred);
      count(call.verb, attempt > 0);
      auto outcome = send_once(*c, call, *cred, token);
      ApiError error;
      bool retryable = false;
      std::optional<std::string> transport_failure;
      if (auto* f = std::get_if<TransportFailure>(&outcome)) {
        drop_client(c);
        error = transport_error(call, *f);
        retryable = !f->tls && (!call.is_write() || f->not_sent);
        transport_failure = f->message;
      } else {
        connected();
        http::http_response& resp = std::get<http::http_response>(outcome);
        int code = resp.status_code();
        if (code < 400) {
          report_warnings(resp.headers());
          result.value = std::move(resp);
          return result;
        }
        std::string body;
        try {
          body = resp.extract_utf8string(true).get();
        } catch (const std::exception&) {
          // The error body is only decoration; the status code decides.
        }
        error = status_error(call, code, body, resp.headers());
        if (code == 429) throttle_for(backoff(attempt, error.retry_after_seconds));
        report_warnings(resp.headers());
        if (code == 401 && !reauthenticated && credentials.invalidate()) {
          reauthenticated = true;
          --attempt;  // a credential refresh is not a backoff retry
          continue;
        }
        // A 429 was refused before processing; a 5xx on a write may have been applied, so it
        // is surfaced and the caller decides (GET the object, adopt on AlreadyExists).
        retryable = code == 429 || (code >= 500 && !call.is_write());
      }
      if (!retryable || attempt >= options.max_retries) {
        if (retryable) error.message += fmt::format(" (gave up after {} attempts)", attempt + 1);
        result.error = std::move(error);
        return result;
      }
      if (!sleep_for(backoff(attempt, error.retry_after_seconds), stop)) {
        result.error = std::move(error);
        return result;
      }
      if (transport_failure) report_connecting(attempt + 2, *transport_failure);
    }
  }

  ApiResult<json> execute_json(const Call& call, const std::atomic<bool>* stop = nullptr) {
    ApiResult<json> out;
    auto r = execute(call, options.request_timeout, pplx::cancellation_token::none(), stop);
    if (!r.ok()) {
      out.error = r.error;
      return out;
    }
    std::string body;
    try {
      body = r.value->extract_utf8string(true).get();
    } catch (const std::exception& ex) {
      drop_client(nullptr);
      out.error = transport_error(call, TransportFailure{ex.what(), false, false});
      return out;
    }
    try {
      out.value = body.empty() ? json::object() : json::parse(body);
    } catch (const json::exception& ex) {
      out.error = ApiError{r.value->status_code(), "InvalidResponse",
                           fmt::format("cannot {}: the server's response is not JSON ({})",
                                       call.what(), ex.what()),
                           0};
    }
    return out;
  }

  // Reads a streamed body as it arrives, handing each piece to `on_data` (which returns false
  // to stop). cpprest completes request() at the headers and keeps filling the body buffer,
  // so getc() returns as soon as one byte is there; the rest of what arrived is drained
  // without waiting.
  StreamEnd stream_body(http::http_response& resp, pplx::cancellation_token_source& cts,
                        const std::atomic<bool>& stop,
                        const std::function<bool(std::string_view)>& on_data) {
    auto buf = resp.body().streambuf();
    std::string chunk;
    // Hands what is in the buffer to on_data; false when the stream is over (`end` says how).
    // getn() on data already buffered completes inline (no thread hand-off), so only an
    // empty buffer costs the getc() continuation below: a watch's burst of events, or a
    // log's output that arrived together, is read in one go.
    StreamEnd end = StreamEnd::kEof;
    auto drain = [&](size_t avail) {
      chunk.resize(avail);
      size_t got = 0;
      try {
        got = buf.getn(reinterpret_cast<uint8_t*>(chunk.data()), avail).get();
      } catch (const std::exception&) {
        end = stop.load() ? StreamEnd::kStopped : StreamEnd::kDropped;
        return false;
      }
      chunk.resize(got);
      if (!on_data(chunk)) {
        cts.cancel();
        end = StreamEnd::kCallerDone;
        return false;
      }
      return true;
    };
    for (;;) {
      if (stop.load()) {
        cts.cancel();
        return StreamEnd::kStopped;
      }
      if (size_t avail = buf.in_avail(); avail > 0) {
        if (!drain(avail)) return end;
        continue;
      }
      auto next = buf.getc();
      auto ready = std::make_shared<std::promise<void>>();
      auto fut = ready->get_future();
      // get() inside the continuation marks a failure as observed: pplx raises SIGTRAP when
      // a task holding an unobserved exception (a read cancelled by stop) is destroyed.
      next.then([ready](decltype(next) t) {
        try {
          t.get();
        } catch (...) {
        }
        ready->set_value();
      });
      while (fut.wait_for(50ms) != std::future_status::ready) {
        if (stop.load()) {
          cts.cancel();
          fut.wait_for(5s);
          return StreamEnd::kStopped;
        }
      }
      decltype(buf)::int_type c;
      try {
        c = next.get();
      } catch (const std::exception&) {
        return stop.load() ? StreamEnd::kStopped : StreamEnd::kDropped;
      }
      if (c == decltype(buf)::traits::eof()) return StreamEnd::kEof;
      // getc() peeks without consuming; everything that has arrived (at least that byte)
      // is read now without waiting.
      if (!drain(std::max<size_t>(buf.in_avail(), 1))) return end;
    }
  }
};

RestApiClient::RestApiClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RestApiClient::~RestApiClient() = default;

Result<std::unique_ptr<RestApiClient>> RestApiClient::create(Config config, RestOptions options) {
  // OpenSSL writes with write(2): a server closing a TLS connection must give EPIPE, not
  // SIGPIPE (which killed a test process and could kill mflow before its handlers exist).
  base::ignore_broken_pipes();
  if (config.server.empty()) return Status::invalid(fmt::format("{}: no server URL", config.source));
  if (!config.ca_pem.empty()) {
    MFLOW_RETURN_IF_ERROR(check_pem_certs(config.ca_pem, config.ca_where));
  }
  if (!config.client_cert_pem.empty()) {
    MFLOW_RETURN_IF_ERROR(check_pem_certs(config.client_cert_pem,
                                          config.source + ": client-certificate"));
    MFLOW_RETURN_IF_ERROR(check_pem_key(config.client_key_pem, config.source + ": client-key"));
  }
  std::string host;
  try {
    web::uri uri(config.server);
    host = uri.host();
  } catch (const std::exception& ex) {
    return Status::invalid(fmt::format("{}: server \"{}\" is not a valid URL: {}", config.source,
                                       config.server, ex.what()));
  }
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  auto impl = std::make_unique<Impl>(std::move(config), std::move(options));
  impl->tls->expected_host = impl->config.tls_server_name.empty() ? host : impl->config.tls_server_name;
  return std::unique_ptr<RestApiClient>(new RestApiClient(std::move(impl)));
}

ApiResult<json> RestApiClient::create_job(const std::string& ns, const json& job,
                                          const std::atomic<bool>& stop) {
  Call call;
  call.verb = Verb::kCreate;
  call.resource = "jobs";
  call.ns = ns;
  call.name = job.contains("metadata") ? job["metadata"].value("name", "") : "";
  call.method = http::methods::POST;
  call.path_and_query = with_query(collection_path(Resource::kJobs, ns), {{"fieldManager", "mflow"}});
  call.body = job.dump();
  // A 5xx answer to a create may or may not have stored the Job. mflow's Job names are
  // deterministic, so a GET tells which: when the Job is absent the create is repeated
  // (bounded, with backoff honouring Retry-After); when it exists, the 5xx is returned and
  // the caller adopts the Job (or refuses one that is not its own).
  for (int attempt = 0;; ++attempt) {
    auto created = impl_->execute_json(call, &stop);
    int code = created.error.http_status;
    if (created.ok() || code < 500 || call.name.empty()) return created;
    if (attempt >= impl_->options.max_retries) {
      created.error.message += fmt::format(" (gave up after {} attempts)", attempt + 1);
      return created;
    }
    auto existing = get_job(ns, call.name);
    if (existing.ok() || existing.error.http_status != 404) return created;
    if (!impl_->sleep_for(impl_->backoff(attempt, created.error.retry_after_seconds), &stop)) {
      return created;
    }
    impl_->stats.retries++;
  }
}

ApiResult<json> RestApiClient::get_job(const std::string& ns, const std::string& name) {
  Call call;
  call.verb = Verb::kGet;
  call.resource = "jobs";
  call.ns = ns;
  call.name = name;
  call.path_and_query = collection_path(Resource::kJobs, ns) + "/" + percent_encode(name);
  return impl_->execute_json(call);
}

ApiResult<json> RestApiClient::get_pod(const std::string& ns, const std::string& name) {
  Call call;
  call.verb = Verb::kGet;
  call.resource = "pods";
  call.ns = ns;
  call.name = name;
  call.path_and_query = collection_path(Resource::kPods, ns) + "/" + percent_encode(name);
  return impl_->execute_json(call);
}

ApiResult<json> RestApiClient::delete_job(const std::string& ns, const std::string& name) {
  Call call;
  call.verb = Verb::kDelete;
  call.resource = "jobs";
  call.ns = ns;
  call.name = name;
  call.method = http::methods::DEL;
  call.path_and_query = collection_path(Resource::kJobs, ns) + "/" + percent_encode(name);
  call.body = json{{"kind", "DeleteOptions"}, {"apiVersion", "v1"}, {"propagationPolicy", "Background"}}
                  .dump();
  return impl_->execute_json(call);
}

ApiResult<ObjectList> RestApiClient::list(Resource resource, const std::string& ns,
                                          const std::string& label_selector) {
  ApiResult<ObjectList> out;
  ObjectList all;
  std::string cont;
  bool restarted = false;
  for (;;) {
    Call call;
    call.verb = Verb::kList;
    call.resource = resource_name(resource);
    call.ns = ns;
    std::vector<std::pair<std::string, std::string>> q;
    if (!label_selector.empty()) q.emplace_back("labelSelector", label_selector);
    q.emplace_back("limit", std::to_string(impl_->options.list_page_size));
    if (!cont.empty()) q.emplace_back("continue", cont);
    call.path_and_query = with_query(collection_path(resource, ns), q);
    auto page = impl_->execute_json(call);
    if (!page.ok()) {
      // An expired continue token (410): start the list over once, as client-go's pager does.
      if (!cont.empty() && page.error.http_status == 410 && !restarted) {
        restarted = true;
        cont.clear();
        all = ObjectList();
        continue;
      }
      out.error = page.error;
      return out;
    }
    const json& doc = *page.value;
    auto items = doc.find("items");
    if (items == doc.end() || !(items->is_array() || items->is_null())) {
      out.error = ApiError{200, "InvalidResponse",
                           fmt::format("cannot {}: the response has no items list", call.what()), 0};
      return out;
    }
    if (items->is_array()) {
      for (const auto& item : *items) all.items.push_back(item);
    }
    json meta = doc.value("metadata", json::object());
    if (cont.empty()) all.resource_version = meta.value("resourceVersion", "");
    cont = meta.value("continue", "");
    if (cont.empty()) break;
  }
  out.value = std::move(all);
  return out;
}

ApiResult<bool> RestApiClient::watch(Resource resource, const std::string& ns,
                                     const std::string& label_selector,
                                     const std::string& resource_version,
                                     const std::function<bool(WatchEvent&)>& on_event,
                                     const std::atomic<bool>& stop) {
  ApiResult<bool> out;
  Call call;
  call.verb = Verb::kWatch;
  call.resource = resource_name(resource);
  call.ns = ns;
  std::vector<std::pair<std::string, std::string>> q{{"watch", "true"}, {"allowWatchBookmarks", "true"}};
  if (!label_selector.empty()) q.emplace_back("labelSelector", label_selector);
  if (!resource_version.empty()) q.emplace_back("resourceVersion", resource_version);
  q.emplace_back("timeoutSeconds", std::to_string(impl_->options.watch_timeout_seconds));
  call.path_and_query = with_query(collection_path(resource, ns), q);

  // cpprest's timeout is an inactivity timer: keep it above the server-side watch timeout so a
  // quiet watch ends by the server's clean close, not by our socket being torn down.
  auto timeout = std::chrono::seconds(impl_->options.watch_timeout_seconds + 30);
  pplx::cancellation_token_source cts;
  auto resp = impl_->execute(call, timeout, cts.get_token(), &stop);
  if (!resp.ok()) {
    if (resp.error.http_status == 410) {
      // An HTTP-level 410 means the same as the ERROR event: relist.
      WatchEvent ev{WatchEventType::kError,
                    json{{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
                         {"reason", resp.error.reason}, {"code", 410}, {"message", resp.error.message}}};
      out.value = !on_event(ev);
      return out;
    }
    if (stop.load()) {
      out.value = true;
      return out;
    }
    out.error = resp.error;
    return out;
  }

  std::string pending;
  ApiError parse_error;
  auto on_data = [&](std::string_view data) {
    pending.append(data);
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line = base::trim(std::string_view(pending).substr(start, nl - start));
      if (line.empty()) continue;
      WatchEvent ev;
      try {
        json doc = json::parse(line);
        bool known = false;
        ev.type = parse_event_type(doc.value("type", ""), &known);
        if (!known || !doc.contains("object")) throw std::runtime_error("unknown event type");
        ev.object = std::move(doc["object"]);
      } catch (const std::exception& ex) {
        parse_error = ApiError{200, "InvalidResponse",
                               fmt::format("cannot {}: malformed watch event ({}): {}", call.what(),
                                           ex.what(), std::string(line.substr(0, 200))),
                               0};
        return false;
      }
      if (!on_event(ev)) {
        pending.erase(0, nl + 1);
        return false;
      }
    }
    pending.erase(0, start);
    return true;
  };
  StreamEnd end = impl_->stream_body(*resp.value, cts, stop, on_data);
  if (!parse_error.message.empty()) {
    out.error = parse_error;
    return out;
  }
  out.value = end == StreamEnd::kStopped || end == StreamEnd::kCallerDone;
  return out;
}

ApiResult<bool> RestApiClient::read_pod_log(const std::string& ns, const std::string& pod, bool follow,
                                            const std::function<void(std::string_view)>& on_chunk,
                                            const std::atomic<bool>& stop) {
  ApiResult<bool> out;
  Call call;
  call.verb = Verb::kLog;
  call.resource = "pods/log";
  call.ns = ns;
  call.name = pod;
  call.path_and_query = collection_path(Resource::kPods, ns) + "/" + percent_encode(pod) + "/log";
  if (follow) call.path_and_query += "?follow=true";
  // A followed log is quiet while the container is; the inactivity timeout must not end it.
  auto timeout = follow ? std::chrono::seconds(24 * 3600) : impl_->options.request_timeout;
  pplx::cancellation_token_source cts;
  auto resp = impl_->execute(call, timeout, cts.get_token(), &stop);
  if (!resp.ok()) {
    if (stop.load()) {
      out.value = true;
      return out;
    }
    out.error = resp.error;
    return out;
  }
  if (!follow) {
    try {
      std::string body = resp.value->extract_utf8string(true).get();
      if (!body.empty()) on_chunk(body);
    } catch (const std::exception& ex) {
      out.error = impl_->transport_error(call, TransportFailure{ex.what(), false, false});
      return out;
    }
    out.value = false;
    return out;
  }
  StreamEnd end = impl_->stream_body(*resp.value, cts, stop, [&](std::string_view data) {
    on_chunk(data);
    return true;
  });
  if (end == StreamEnd::kDropped) {
    out.error = ApiError{0, "ConnectionFailed",
                         fmt::format("cannot {}: the connection to {} dropped while following the log",
                                     call.what(), impl_->config.server),
                         0};
    return out;
  }
  out.value = end == StreamEnd::kStopped;
  return out;
}

const RequestStats& RestApiClient::stats() const { return impl_->stats; }
int64_t RestApiClient::exec_plugin_runs() const { return impl_->credentials.exec_runs(); }
const Config& RestApiClient::config() const { return impl_->config; }

}  // namespace mflow::kube
