#include "s3/client.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <boost/asio/ssl.hpp>
#include <cpprest/containerstream.h>
#include <cpprest/filestream.h>
#include <cpprest/http_client.h>
#include <fmt/core.h>

#include "base/hash.h"
#include "base/unique_fd.h"
#include "s3/sigv4.h"

namespace mflow::s3 {
namespace {

namespace http = web::http;
namespace client = web::http::client;
using base::Result;
using base::Status;

constexpr int64_t kMinPartSize = 5 << 20;
constexpr int64_t kMaxParts = 10000;

struct Endpoint {
  std::string scheme;  // "http" or "https"
  std::string host;    // without brackets for IPv6 literals? kept as written, brackets included
  int port = 0;        // 0: the scheme's default
};

Result<Endpoint> parse_endpoint(const std::string& url) {
  Endpoint e;
  size_t sep = url.find("://");
  if (sep == std::string::npos) {
    return Status::invalid(fmt::format("S3 endpoint \"{}\" is not a URL (expected https://host[:port])", url));
  }
  e.scheme = url.substr(0, sep);
  for (char& c : e.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (e.scheme != "http" && e.scheme != "https") {
    return Status::invalid(fmt::format("S3 endpoint \"{}\": the scheme must be http or https", url));
  }
  std::string rest = url.substr(sep + 3);
  if (size_t slash = rest.find('/'); slash != std::string::npos) {
    if (rest.find_first_not_of('/', slash) != std::string::npos) {
      return Status::invalid(fmt::format("S3 endpoint \"{}\" must not have a path", url));
    }
    rest.resize(slash);
  }
  size_t colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find(']', colon) == std::string::npos) {
    std::string port = rest.substr(colon + 1);
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || p <= 0 || p > 65535) {
      return Status::invalid(fmt::format("S3 endpoint \"{}\": bad port \"{}\"", url, port));
    }
    e.port = static_cast<int>(p);
    rest.resize(colon);
  }
  if (rest.empty()) return Status::invalid(fmt::format("S3 endpoint \"{}\" has no host", url));
  e.host = rest;
  if ((e.scheme == "http" && e.port == 80) || (e.scheme == "https" && e.port == 443)) e.port = 0;
  return e;
}

// Bucket names that can be a DNS label of a virtual host (no dots: a dotted name breaks the
// *.s3.amazonaws.com wildcard certificate).
bool dns_compatible(std::string_view bucket) {
  if (bucket.size() < 3 || bucket.size() > 63) return false;
  for (char c : bucket) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return false;
    }
  }
  return bucket.front() != '-' && bucket.back() != '-';
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string xml_unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out += s[i];
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else if (!ent.empty() && ent[0] == '#') {
      unsigned long cp = ent.size() > 1 && (ent[1] == 'x' || ent[1] == 'X')
                             ? std::strtoul(std::string(ent.substr(2)).c_str(), nullptr, 16)
                             : std::strtoul(std::string(ent.substr(1)).c_str(), nullptr, 10);
      // UTF-8 encoding of the code point.
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      }
    } else {
      out += s.substr(i, semi - i + 1);
    }
    i = semi;
  }
  return out;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// Every element <tag>...</tag> of `xml` in order, unescaped. S3's responses are flat enough
// that elements of one name never nest.
std::vector<std::string_view> xml_elements(std::string_view xml, std::string_view tag) {
  std::vector<std::string_view> out;
  const std::string open = fmt::format("<{}>", tag), close = fmt::format("</{}>", tag);
  size_t at = 0;
  while ((at = xml.find(open, at)) != std::string_view::npos) {
    size_t start = at + open.size();
    size_t end = xml.find(close, start);
    if (end == std::string_view::npos) break;
    out.push_back(xml.substr(start, end - start));
    at = end + close.size();
  }
  return out;
}

std::string xml_text(std::string_view xml, std::string_view tag) {
  auto all = xml_elements(xml, tag);
  return all.empty() ? "" : xml_unescape(all.front());
}

std::optional<Clock::time_point> parse_time(const std::string& text, const char* format) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), format, &tm);
  if (end == nullptr) return std::nullopt;
  return Clock::from_time_t(timegm(&tm));
}

// "Wed, 03 Dec 2026 15:02:14 GMT" (HTTP Date, Last-Modified).
Clock::time_point http_date(const std::string& text) {
  return parse_time(text, "%a, %d %b %Y %H:%M:%S").value_or(Clock::time_point{});
}

// "2026-12-03T15:02:14.000Z" (listings).
Clock::time_point iso_date(const std::string& text) {
  return parse_time(text, "%Y-%m-%dT%H:%M:%S").value_or(Clock::time_point{});
}

std::string unquote_etag(std::string etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return etag;
}

// A request body, in memory: a small object, or one part of a file being uploaded (so the
// bytes hashed for x-amz-content-sha256 are exactly the bytes sent, even if the file changes).
struct Body {
  std::string_view bytes;
  int64_t size() const { return static_cast<int64_t>(bytes.size()); }
};

struct Request {
  const char* action = "";  // "put", "get", ... for messages
  std::string method;
  std::string bucket;
  std::string key;
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string, std::string>> headers;
  Body body;
  std::string payload_hash = std::string(kEmptyPayloadSha256);
  std::string response_file;  // non-empty: the 2xx body streams into this file
  std::atomic<int64_t>* counter = nullptr;
};

Request make_request(const char* action, const char* method, const std::string& bucket, const std::string& key,
                     std::atomic<int64_t>* counter) {
  Request r;
  r.action = action;
  r.method = method;
  r.bucket = bucket;
  r.key = key;
  r.counter = counter;
  return r;
}

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // empty when streamed to a file
  /// An earlier attempt of this request may have been applied by the service (it failed
  /// after the request was sent): a conditional write's 412 may be our own first write.
  bool maybe_applied_before = false;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// Reads `length` bytes of `path` from `offset`.
Result<std::string> read_file_range(const std::string& path, int64_t offset, int64_t length) {
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::from_errno(path, errno);
  std::string out(static_cast<size_t>(length), '\0');
  int64_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd.get(), out.data() + done, static_cast<size_t>(length - done), offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::from_errno(path, errno);
    if (n == 0) return Status::io_error(fmt::format("{}: the file shrank while it was uploaded", path));
    done += n;
  }
  return out;
}

}  // namespace

struct Client::Impl {
  ConnectionSettings settings;
  Endpoint endpoint;
  bool virtual_hosted = false;
  std::shared_ptr<CredentialProvider> credentials;
  ClientOptions options;
  X509_STORE* ca_store = nullptr;  // AWS_CA_BUNDLE's certificates; null: the system store
  ClientStats stats;

  std::mutex mu;
  // Guarded by mu: one cpprest client (a keep-alive connection pool) per base URI (one for
  // path style; one per bucket for virtual-hosted style).
  std::map<std::string, std::shared_ptr<client::http_client>> clients;
  std::mt19937_64 rng;  // guarded by mu: backoff jitter

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu);
      clients.clear();
    }
    if (ca_store != nullptr) X509_STORE_free(ca_store);
  }

  bool use_virtual(const std::string& bucket) const {
    switch (settings.addressing) {
      case Addressing::kPath: return false;
      case Addressing::kVirtual: return true;
      case Addressing::kAuto: return !settings.custom_endpoint && dns_compatible(bucket);
    }
    return false;
  }

  std::string host_of(const std::string& bucket) const {
    std::string host = use_virtual(bucket) ? bucket + "." + endpoint.host : endpoint.host;
    if (endpoint.port != 0) host += ":" + std::to_string(endpoint.port);
    return host;
  }

  std::string path_of(const std::string& bucket, const std::string& key) const {
    if (use_virtual(bucket)) return "/" + key;
    return key.empty() ? "/" + bucket : "/" + bucket + "/" + key;
  }

  std::shared_ptr<client::http_client> client_for(const std::string& base) {
    std::lock_guard<std::mutex> lock(mu);
    auto& c = clients[base];
    if (c) return c;
    client::http_client_config cfg;
    cfg.set_timeout(std::chrono::duration_cast<std::chrono::microseconds>(options.request_timeout));
    cfg.set_validate_certificates(true);  // TLS is always verified (docs/s3.md)
    X509_STORE* store = ca_store;
    cfg.set_ssl_context_callback([store](boost::asio::ssl::context& ctx) {
      // Only the bundle's CAs are trusted when AWS_CA_BUNDLE is set, as in the AWS SDKs.
      if (store != nullptr) SSL_CTX_set1_cert_store(ctx.native_handle(), store);
    });
    c = std::make_shared<client::http_client>(base, cfg);
    return c;
  }

  // A failed connection can poison cpprest's pooled connection (cpprestsdk #660): start over.
  void drop_client(const std::string& base) {
    std::lock_guard<std::mutex> lock(mu);
    clients.erase(base);
  }

  std::chrono::milliseconds backoff(int attempt) {
    int64_t cap = options.initial_backoff.count() << std::min(attempt, 20);
    cap = std::min<int64_t>(cap, options.max_backoff.count());
    std::lock_guard<std::mutex> lock(mu);
    // "Full jitter": many clients backing off from one SlowDown spread out over the window.
    return std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(cap / 2, cap)(rng));
  }

  // What went wrong, for a message: "s3://b/k: cannot get: NoSuchKey: The specified key does
  // not exist. (HTTP 404)". Never includes a header or credential.
  static Status http_error(const Request& req, const Response& resp) {
    std::string code = xml_text(resp.body, "Code");
    std::string message = xml_text(resp.body, "Message");
    if (code.empty()) {
      switch (resp.status) {
        case 301: code = "PermanentRedirect"; break;
        case 400: code = "BadRequest"; break;
        case 403: code = "AccessDenied"; break;
        case 404: code = req.key.empty() ? "NoSuchBucket" : "NoSuchKey"; break;
        case 409: code = "Conflict"; break;
        case 412: code = "PreconditionFailed"; break;
        case 416: code = "InvalidRange"; break;
        case 503: code = "ServiceUnavailable"; break;
        default: code = resp.status >= 500 ? "InternalError" : "HTTP" + std::to_string(resp.status);
      }
    }
    std::string text = fmt::format("{}: cannot {}: {}", url(req.bucket, req.key), req.action, code);
    if (!message.empty()) text += ": " + message;
    text += fmt::format(" (HTTP {})", resp.status);
    if (code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed") {
      std::string region = xml_text(resp.body, "Region");
      if (!region.empty()) text += fmt::format("; the bucket is in region {} (set AWS_REGION)", region);
    }
    if (code == "NoSuchBucket") text += "; create the bucket or check the datastore URL";
    switch (resp.status) {
      case 404: return code == "NoSuchBucket" ? Status::unavailable(text) : Status::not_found(text);
      case 409:
      case 412: return Status::conflict(text);
      case 400: return Status::invalid(text);
      default: return Status::unavailable(text);
    }
  }

  static bool credentials_rejected(const Response& resp) {
    if (resp.status != 403 && resp.status != 400) return false;
    std::string code = xml_text(resp.body, "Code");
    return code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId" || code == "ExpiredToken" ||
           code == "InvalidToken" || code == "TokenRefreshRequired";
  }

  static bool retryable_status(const Response& resp) {
    if (resp.status == 500 || resp.status == 502 || resp.status == 503 || resp.status == 504) return true;
    std::string code = xml_text(resp.body, "Code");
    return code == "RequestTimeout" || code == "SlowDown" || code == "InternalError";
  }

  // One attempt. A transport failure (connection refused or reset, timeout, a body cut
  // short) is returned as a non-ok Status; any HTTP answer as a Response.
  Result<Response> send_once(const Request& req, const Credentials& creds) {
    const std::string host = host_of(req.bucket);
    const std::string base = endpoint.scheme + "://" + host;
    SignableRequest sr;
    sr.method = req.method;
    sr.path = path_of(req.bucket, req.key);
    sr.query = req.query;
    sr.headers = req.headers;
    sr.headers.emplace_back("Host", host);
    sr.payload_hash = req.payload_hash;
    sign_request(sr, creds, settings.region, Clock::now());

    http::http_request hr(req.method);
    std::string target = encoded_path(sr.path);
    std::string query = canonical_query(sr.query);
    if (!query.empty()) target += "?" + query;
    hr.set_request_uri(web::uri(target));
    for (const auto& [name, value] : sr.headers) hr.headers().add(name, value);

    concurrency::streams::ostream file_out;
    try {
      if (req.method == "PUT" || req.method == "POST") {
        hr.set_body(concurrency::streams::bytestream::open_istream(std::string(req.body.bytes)),
                    req.body.bytes.size(), req.method == "POST" && !req.body.bytes.empty()
                                               ? "application/xml"
                                               : "application/octet-stream");
      }
      if (!req.response_file.empty()) {
        file_out = concurrency::streams::fstream::open_ostream(
                       req.response_file, std::ios::out | std::ios::binary | std::ios::trunc)
                       .get();
        hr.set_response_stream(file_out);
      }
    } catch (const std::exception& ex) {
      return Status::io_error(fmt::format("{}: {}", req.response_file, ex.what()));
    }
    auto close_streams = [&] {
      try {
        if (file_out.is_valid()) file_out.close().wait();
      } catch (const std::exception&) {
        // Closing after a failed transfer: the attempt's outcome is already decided.
      }
    };

    Response resp;
    try {
      auto c = client_for(base);
      http::http_response hresp = c->request(hr).get();
      resp.status = hresp.status_code();
      for (const auto& [name, value] : hresp.headers()) resp.headers[lower(name)] = value;
      if (req.response_file.empty() || resp.status >= 300) {
        auto bytes = hresp.extract_vector().get();
        resp.body.assign(bytes.begin(), bytes.end());
      } else {
        hresp.content_ready().get();
      }
    } catch (const std::exception& ex) {
      close_streams();
      drop_client(base);
      return Status::unavailable(fmt::format("{}: cannot {}: {} ({})", url(req.bucket, req.key), req.action,
                                             "connection failed", ex.what()));
    }
    close_streams();
    stats.bytes_sent += req.body.size();
    // A body shorter than its Content-Length is a transfer cut short (connection reset).
    std::string length = resp.header("content-length");
    if (!length.empty() && req.method != "HEAD") {
      int64_t expected = std::strtoll(length.c_str(), nullptr, 10);
      int64_t got = static_cast<int64_t>(resp.body.size());
      if (!req.response_file.empty() && resp.status < 300) {
        struct stat st {};
        got = ::stat(req.response_file.c_str(), &st) == 0 ? st.st_size : -1;
      }
      stats.bytes_received += std::max<int64_t>(got, 0);
      if (got != expected) {
        drop_client(base);
        return Status::unavailable(fmt::format("{}: cannot {}: the response body was cut short ({} of {} bytes)",
                                               url(req.bucket, req.key), req.action, got, expected));
      }
    }
    return resp;
  }

  // Sends `req` with the retry policy of the header comment. Returns the final HTTP answer
  // (any status that is not retried), or why no answer came.
  Result<Response> execute(const Request& req) {
    bool reauthenticated = false;
    bool maybe_applied = false;
    Status last;
    for (int attempt = 0; attempt < options.max_attempts; ++attempt) {
      if (attempt > 0) {
        stats.retries++;
        std::this_thread::sleep_for(backoff(attempt - 1));
      }
      auto creds = credentials->get();
      if (!creds.ok()) {
        return creds.status().with_context(fmt::format("{}: cannot {}", url(req.bucket, req.key), req.action));
      }
      if (req.counter != nullptr) (*req.counter)++;
      auto outcome = send_once(req, *creds);
      if (!outcome.ok()) {
        if (outcome.status().code() == base::StatusCode::kIoError) return outcome.status();
        last = outcome.status();
        maybe_applied = maybe_applied || req.method != "GET";
        continue;
      }
      Response& resp = *outcome;
      if (credentials_rejected(resp) && !reauthenticated) {
        // Rotated or expired credentials: fetch fresh ones and try again, once.
        reauthenticated = true;
        stats.reauthentications++;
        credentials->invalidate();
        --attempt;
        continue;
      }
      if (retryable_status(resp)) {
        last = http_error(req, resp);
        maybe_applied = maybe_applied || req.method != "GET";
        continue;
      }
      resp.maybe_applied_before = maybe_applied;
      return std::move(resp);
    }
    return Status::unavailable(fmt::format("{} (gave up after {} attempts)", last.message(), options.max_attempts));
  }

  Status put_bytes(const std::string& bucket, const std::string& key, std::string_view bytes, bool if_absent);
  Status put_multipart(const std::string& bucket, const std::string& key, const std::string& path,
                       int64_t size, bool if_absent, const std::function<bool()>& stored_ours);
  Status complete_multipart(Request& complete, const std::string& expected_etag,
                            const std::function<bool()>& stored_ours);
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

std::string Client::url(std::string_view bucket, std::string_view key) {
  return fmt::format("s3://{}/{}", bucket, key);
}

const ClientStats& Client::stats() const { return impl_->stats; }

Result<std::unique_ptr<Client>> Client::create(ConnectionSettings settings,
                                               std::shared_ptr<CredentialProvider> credentials,
                                               ClientOptions options) {
  auto endpoint = parse_endpoint(settings.endpoint);
  if (!endpoint.ok()) return endpoint.status();
  auto impl = std::make_unique<Impl>();
  if (!settings.ca_bundle.empty()) {
    std::ifstream in(settings.ca_bundle, std::ios::binary);
    if (!in) return Status::from_errno(fmt::format("CA bundle {} (AWS_CA_BUNDLE)", settings.ca_bundle), errno);
    std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    X509_STORE* store = X509_STORE_new();
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    int count = 0;
    while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, cert);
      X509_free(cert);
      ++count;
    }
    BIO_free(bio);
    ERR_clear_error();
    if (count == 0) {
      X509_STORE_free(store);
      return Status::invalid(fmt::format("CA bundle {} (AWS_CA_BUNDLE): no PEM certificate found",
                                         settings.ca_bundle));
    }
    impl->ca_store = store;
  }
  if (options.part_size < kMinPartSize) options.part_size = kMinPartSize;
  options.parallel_parts = std::max(1, options.parallel_parts);
  options.max_attempts = std::max(1, options.max_attempts);
  impl->settings = std::move(settings);
  impl->endpoint = std::move(endpoint).value();
  impl->credentials = std::move(credentials);
  impl->options = options;
  impl->rng.seed(options.jitter_seed != 0
                     ? options.jitter_seed
                     : static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Status Client::Impl::put_bytes(const std::string& bucket, const std::string& key, std::string_view bytes,
                               bool if_absent) {
  Request req = make_request(if_absent ? "create" : "put", "PUT", bucket, key, &stats.puts);
  req.body.bytes = bytes;
  req.payload_hash = base::sha256_hex(bytes);
  if (if_absent) req.headers.emplace_back("If-None-Match", "*");
  auto resp = execute(req);
  if (!resp.ok()) return resp.status();
  if (resp->status == 412 && resp->maybe_applied_before) {
    // The first attempt may have created the object before its answer was lost: the object
    // is ours if it holds exactly our bytes.
    Request get = make_request("read back", "GET", bucket, key, &stats.gets);
    auto back = execute(get);
    if (back.ok() && back->status == 200 && back->body == bytes) return Status::ok_status();
  }
  if (resp->status >= 300) return http_error(req, *resp);
  return Status::ok_status();
}

Status Client::put_object(const std::string& bucket, const std::string& key, std::string_view bytes,
                          bool if_absent) {
  return impl_->put_bytes(bucket, key, bytes, if_absent);
}

Status Client::put_file(const std::string& bucket, const std::string& key, const std::string& path,
                        bool if_absent) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::from_errno(path, errno);
  if (!S_ISREG(st.st_mode)) return Status::invalid(fmt::format("{}: not a regular file", path));
  if (st.st_size >= impl_->options.multipart_threshold) {
    // After a lost answer to CompleteMultipartUpload: whether the object now at the key holds
    // the file's bytes (downloaded to a temp file and compared by SHA-256).
    auto stored_ours = [&]() {
      auto want = base::sha256_file(path);
      if (!want.ok()) return false;
      std::string tmp = (std::filesystem::temp_directory_path() /
                         fmt::format("mflow-s3-verify-{}-{}", ::getpid(), std::hash<std::string>()(key)))
                            .string();
      Status got = get_file(bucket, key, tmp, *want);
      ::unlink(tmp.c_str());
      return got.ok();
    };
    return impl_->put_multipart(bucket, key, path, st.st_size, if_absent, stored_ours);
  }
  auto bytes = read_file_range(path, 0, st.st_size);
  if (!bytes.ok()) return bytes.status();
  return impl_->put_bytes(bucket, key, *bytes, if_absent);
}

Status Client::Impl::complete_multipart(Request& complete, const std::string& expected_etag,
                                        const std::function<bool()>& stored_ours) {
  auto resp = execute(complete);
  if (!resp.ok()) return resp.status();
  // CompleteMultipartUpload can answer 200 and still fail: the error is in the body.
  if (resp->status == 200 && xml_elements(resp->body, "Error").empty()) return Status::ok_status();
  if (resp->status == 404 && resp->maybe_applied_before) {
    // NoSuchUpload after a lost answer: the first attempt completed it. The object's ETag is
    // the MD5 of the parts' MD5s, which we know.
    Request head = make_request("check", "HEAD", complete.bucket, complete.key, &stats.heads);
    auto h = execute(head);
    if (h.ok() && h->status == 200 && unquote_etag(h->header("etag")) == expected_etag) return Status::ok_status();
    // Some servers (s3rver) give multipart objects the whole object's MD5 instead: the
    // object's bytes decide.
    if (h.ok() && h->status == 200 && stored_ours()) return Status::ok_status();
  }
  if (resp->status == 200) {
    Response fake = *resp;
    fake.status = 500;
    return http_error(complete, fake);
  }
  return http_error(complete, *resp);
}

Status Client::Impl::put_multipart(const std::string& bucket, const std::string& key, const std::string& path,
                                   int64_t size, bool if_absent, const std::function<bool()>& stored_ours) {
  int64_t part_size = options.part_size;
  while ((size + part_size - 1) / part_size > kMaxParts) part_size *= 2;
  const int parts = static_cast<int>((size + part_size - 1) / part_size);

  Request create = make_request("start a multipart upload of", "POST", bucket, key, &stats.multipart);
  create.query = {{"uploads", ""}};
  auto created = execute(create);
  if (!created.ok()) return created.status();
  if (created->status >= 300) return http_error(create, *created);
  const std::string upload_id = xml_text(created->body, "UploadId");
  if (upload_id.empty()) {
    return Status::unavailable(fmt::format("{}: cannot upload: the service's answer to CreateMultipartUpload "
                                           "has no UploadId", url(bucket, key)));
  }

  std::vector<std::string> etags(parts);
  std::vector<std::string> md5s(parts);
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  Status first_error;
  auto worker = [&] {
    for (int i = next++; i < parts && !failed; i = next++) {
      Request part;
      part.action = "upload a part of";
      part.method = "PUT";
      part.bucket = bucket;
      part.key = key;
      part.query = {{"partNumber", std::to_string(i + 1)}, {"uploadId", upload_id}};
      const int64_t offset = static_cast<int64_t>(i) * part_size;
      part.counter = &stats.multipart;
      Status st;
      auto bytes = read_file_range(path, offset, std::min(part_size, size - offset));
      if (!bytes.ok()) {
        st = bytes.status();
      } else {
        part.body.bytes = *bytes;
        part.payload_hash = base::sha256_hex(*bytes);
        auto resp = execute(part);
        if (!resp.ok()) {
          st = resp.status();
        } else if (resp->status >= 300) {
          st = http_error(part, *resp);
        } else {
          etags[i] = resp->header("etag");
          if (etags[i].empty()) {
            st = Status::unavailable(fmt::format("{}: part {} was answered without an ETag", url(bucket, key), i + 1));
          }
        }
      }
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (first_error.ok()) first_error = st;
        failed = true;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::min(options.parallel_parts, parts); ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();

  Status result = first_error;
  if (result.ok()) {
    std::string xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
    std::string etag_digests;
    for (int i = 0; i < parts; ++i) {
      xml += fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", i + 1, xml_escape(etags[i]));
      // The composite ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, "-N".
      std::string hex = unquote_etag(etags[i]);
      for (size_t j = 0; j + 1 < hex.size(); j += 2) {
        etag_digests += static_cast<char>(std::stoi(hex.substr(j, 2), nullptr, 16));
      }
    }
    xml += "</CompleteMultipartUpload>";
    unsigned char md5[16];
    unsigned int md5_len = 0;
    EVP_Digest(etag_digests.data(), etag_digests.size(), md5, &md5_len, EVP_md5(), nullptr);
    std::string expected;
    for (unsigned i = 0; i < md5_len; ++i) expected += fmt::format("{:02x}", md5[i]);
    expected += "-" + std::to_string(parts);

    Request complete = make_request("complete the multipart upload of", "POST", bucket, key, &stats.multipart);
    complete.query = {{"uploadId", upload_id}};
    complete.body.bytes = xml;
    complete.payload_hash = base::sha256_hex(xml);
    if (if_absent) complete.headers.emplace_back("If-None-Match", "*");
    result = complete_multipart(complete, expected, stored_ours);
  }
  if (!result.ok()) {
    // Parts of an abandoned upload are stored (and billed) until aborted.
    Request abort = make_request("abort the multipart upload of", "DELETE", bucket, key, &stats.multipart);
    abort.query = {{"uploadId", upload_id}};
    (void)execute(abort);
  }
  return result;
}

Result<std::string> Client::get_object(const std::string& bucket, const std::string& key) {
  Request req = make_request("get", "GET", bucket, key, &impl_->stats.gets);
  auto resp = impl_->execute(req);
  if (!resp.ok()) return resp.status();
  if (resp->status >= 300) return Impl::http_error(req, *resp);
  return std::move(resp->body);
}

Result<std::string> Client::get_range(const std::string& bucket, const std::string& key, int64_t offset,
                                      int64_t length) {
  if (length <= 0) {
    auto meta = head_object(bucket, key);
    if (!meta.ok()) return meta.status();
    if (!*meta) return Status::not_found(fmt::format("{}: no such object", url(bucket, key)));
    return std::string();
  }
  Request req = make_request("get", "GET", bucket, key, &impl_->stats.gets);
  req.headers.emplace_back("Range", fmt::format("bytes={}-{}", offset, offset + length - 1));
  auto resp = impl_->execute(req);
  if (!resp.ok()) return resp.status();
  if (resp->status == 416) return std::string();  // the range starts at or past the end
  if (resp->status >= 300) return Impl::http_error(req, *resp);
  if (resp->status == 200) {
    // A server that ignores Range sends the whole object.
    std::string& all = resp->body;
    if (offset >= static_cast<int64_t>(all.size())) return std::string();
    return all.substr(static_cast<size_t>(offset), static_cast<size_t>(length));
  }
  return std::move(resp->body);
}

Status Client::get_file(const std::string& bucket, const std::string& key, const std::string& dest,
                        const std::optional<std::string>& expect_sha256) {
  const std::string tmp = dest + ".mflow-part";
  Status last;
  for (int attempt = 0; attempt < impl_->options.max_attempts; ++attempt) {
    if (attempt > 0) {
      impl_->stats.retries++;
      std::this_thread::sleep_for(impl_->backoff(attempt - 1));
    }
    Request req = make_request("get", "GET", bucket, key, &impl_->stats.gets);
    req.response_file = tmp;
    auto resp = impl_->execute(req);
    if (!resp.ok()) {
      ::unlink(tmp.c_str());
      return resp.status();
    }
    if (resp->status >= 300) {
      ::unlink(tmp.c_str());
      return Impl::http_error(req, *resp);
    }
    if (expect_sha256) {
      auto got = base::sha256_file(tmp);
      if (!got.ok()) {
        ::unlink(tmp.c_str());
        return got.status();
      }
      if (*got != *expect_sha256) {
        // Corrupted on the way (or by a faulty server): never placed at dest; fetched again.
        last = Status::unavailable(fmt::format("{}: the downloaded bytes have SHA-256 {}, expected {}",
                                               url(bucket, key), *got, *expect_sha256));
        ::unlink(tmp.c_str());
        continue;
      }
    }
    if (::rename(tmp.c_str(), dest.c_str()) != 0) {
      Status st = Status::from_errno(dest, errno);
      ::unlink(tmp.c_str());
      return st;
    }
    return Status::ok_status();
  }
  return Status::unavailable(fmt::format("{} (gave up after {} downloads)", last.message(),
                                         impl_->options.max_attempts));
}

Result<std::optional<ObjectMeta>> Client::head_object(const std::string& bucket, const std::string& key) {
  Request req = make_request("stat", "HEAD", bucket, key, &impl_->stats.heads);
  auto resp = impl_->execute(req);
  if (!resp.ok()) return resp.status();
  if (resp->status == 404) return std::optional<ObjectMeta>();
  if (resp->status >= 300) return Impl::http_error(req, *resp);
  ObjectMeta meta;
  meta.key = key;
  meta.size = std::strtoll(resp->header("content-length").c_str(), nullptr, 10);
  meta.etag = unquote_etag(resp->header("etag"));
  meta.last_modified = http_date(resp->header("last-modified"));
  meta.server_date = http_date(resp->header("date"));
  return std::optional<ObjectMeta>(std::move(meta));
}

Result<ListResult> Client::list_objects(const std::string& bucket, const std::string& prefix,
                                        const std::string& delimiter) {
  ListResult result;
  std::string token;
  for (;;) {
    Request req;
    req.action = "list";
    req.method = "GET";
    req.bucket = bucket;
    req.key = "";
    req.query = {{"list-type", "2"}, {"prefix", prefix},
                 {"max-keys", std::to_string(impl_->options.list_page_size)}};
    if (!delimiter.empty()) req.query.emplace_back("delimiter", delimiter);
    if (!token.empty()) req.query.emplace_back("continuation-token", token);
    req.counter = &impl_->stats.lists;
    auto resp = impl_->execute(req);
    if (!resp.ok()) return resp.status().with_context(fmt::format("prefix \"{}\"", prefix));
    if (resp->status >= 300) return Impl::http_error(req, *resp);
    Clock::time_point date = http_date(resp->header("date"));
    for (std::string_view contents : xml_elements(resp->body, "Contents")) {
      ObjectMeta meta;
      meta.key = xml_text(contents, "Key");
      meta.size = std::strtoll(xml_text(contents, "Size").c_str(), nullptr, 10);
      meta.etag = unquote_etag(xml_text(contents, "ETag"));
      meta.last_modified = iso_date(xml_text(contents, "LastModified"));
      meta.server_date = date;
      result.objects.push_back(std::move(meta));
    }
    for (std::string_view common : xml_elements(resp->body, "CommonPrefixes")) {
      result.prefixes.push_back(xml_text(common, "Prefix"));
    }
    if (xml_text(resp->body, "IsTruncated") != "true") break;
    token = xml_text(resp->body, "NextContinuationToken");
    if (token.empty()) {
      return Status::unavailable(fmt::format("{}: cannot list: a truncated listing without a continuation token",
                                             url(bucket, prefix)));
    }
  }
  return result;
}

Status Client::delete_object(const std::string& bucket, const std::string& key) {
  Request req = make_request("delete", "DELETE", bucket, key, &impl_->stats.deletes);
  auto resp = impl_->execute(req);
  if (!resp.ok()) return resp.status();
  if (resp->status == 404 && xml_text(resp->body, "Code") != "NoSuchBucket") return Status::ok_status();
  if (resp->status >= 300) return Impl::http_error(req, *resp);
  return Status::ok_status();
}

}  // namespace mflow::s3
