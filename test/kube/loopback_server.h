// LoopbackServer: a scripted HTTP/1.1 (optionally HTTPS) server on 127.0.0.1 for the
// RestApiClient tests. Each accepted connection is served on its own thread; a test's handler
// sees the parsed request and writes the response through a Writer, so it controls status
// lines, headers, chunk boundaries and timing exactly (which a full fake API server hides).
// Header-only because the test glob compiles only *_test.cc outside test/support.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>

namespace mflow::test {

struct HttpRequest {
  std::string method;
  std::string target;  // path?query as sent
  std::string path;
  std::map<std::string, std::string> query;  // percent-decoded
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

class HttpWriter {
 public:
  HttpWriter(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
  bool raw(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      int n = ssl_ ? SSL_write(ssl_, data.data() + off, static_cast<int>(data.size() - off))
                   : static_cast<int>(::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL));
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  /// A complete response with Content-Length.
  bool respond(int status, const std::string& body, const std::string& content_type = "application/json",
               const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    std::string head = fmt::format("HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\n", status,
                                   content_type, body.size());
    for (const auto& [k, v] : headers) head += k + ": " + v + "\r\n";
    return raw(head + "\r\n" + body);
  }
  /// Starts a chunked response; then chunk() per piece and end_chunks().
  bool start_chunked(int status = 200, const std::string& content_type = "application/json") {
    return raw(fmt::format("HTTP/1.1 {} X\r\nContent-Type: {}\r\nTransfer-Encoding: chunked\r\n\r\n", status,
                           content_type));
  }
  bool chunk(const std::string& data) { return raw(fmt::format("{:x}\r\n{}\r\n", data.size(), data)); }
  bool end_chunks() { return raw("0\r\n\r\n"); }

 private:
  int fd_;
  SSL* ssl_;
};

class LoopbackServer {
 public:
  using Handler = std::function<void(const HttpRequest&, HttpWriter&)>;

  /// Plain HTTP, or HTTPS when cert/key files are given.
  explicit LoopbackServer(Handler handler, const std::string& cert_file = "", const std::string& key_file = "")
      : handler_(std::move(handler)) {
    if (!cert_file.empty()) {
      ctx_ = SSL_CTX_new(TLS_server_method());
      if (SSL_CTX_use_certificate_chain_file(ctx_, cert_file.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(ctx_, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        throw std::runtime_error("LoopbackServer: cannot load " + cert_file);
      }
    }
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 64) != 0) {
      throw std::runtime_error("LoopbackServer: bind/listen failed");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~LoopbackServer() {
    stopping_ = true;
    acceptor_.join();
    ::close(listen_fd_);
    std::vector<std::thread> conns;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
      conns.swap(connections_);
    }
    for (auto& t : conns) t.join();
    if (ctx_) SSL_CTX_free(ctx_);
  }

  int port() const { return port_; }
  std::string url() const { return fmt::format("{}://127.0.0.1:{}", ctx_ ? "https" : "http", port_); }
  std::vector<HttpRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  size_t request_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_.size();
  }
  /// Connections accepted so far (a client that reuses connections opens few).
  size_t connection_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return connections_.size();
  }
  bool stopping() const { return stopping_.load(); }

 private:
  static std::string decode(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size()) {
        out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        out += s[i] == '+' ? ' ' : s[i];
      }
    }
    return out;
  }

  void accept_loop() {
    while (!stopping_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::lock_guard<std::mutex> lock(mu_);
      open_fds_.push_back(fd);
      connections_.emplace_back([this, fd] { serve(fd); });
    }
  }

  // Reads until `buf` holds at least `want` bytes (or "\r\n\r\n" when want == 0).
  bool fill(int fd, SSL* ssl, std::string& buf, size_t want) {
    while (want == 0 ? buf.find("\r\n\r\n") == std::string::npos : buf.size() < want) {
      char tmp[4096];
      int n = ssl ? SSL_read(ssl, tmp, sizeof tmp) : static_cast<int>(::recv(fd, tmp, sizeof tmp, 0));
      if (n <= 0) return false;
      buf.append(tmp, static_cast<size_t>(n));
    }
    return true;
  }

  void serve(int fd) {
    SSL* ssl = nullptr;
    if (ctx_) {
      ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        ::close(fd);
        return;
      }
    }
    std::string buf;
    HttpWriter writer(fd, ssl);
    while (!stopping_ && fill(fd, ssl, buf, 0)) {
      size_t head_end = buf.find("\r\n\r\n");
      HttpRequest req;
      std::string head = buf.substr(0, head_end);
      buf.erase(0, head_end + 4);
      size_t line_end = head.find("\r\n");
      std::string line = head.substr(0, line_end);
      size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
      req.method = line.substr(0, sp1);
      req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      size_t q = req.target.find('?');
      req.path = req.target.substr(0, q);
      if (q != std::string::npos) {
        std::string qs = req.target.substr(q + 1);
        size_t start = 0;
        while (start <= qs.size()) {
          size_t amp = qs.find('&', start);
          std::string kv = qs.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
          size_t eq = kv.find('=');
          if (!kv.empty()) req.query[decode(kv.substr(0, eq))] = eq == std::string::npos ? "" : decode(kv.substr(eq + 1));
          if (amp == std::string::npos) break;
          start = amp + 1;
        }
      }
      size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
      while (pos < head.size()) {
        size_t e = head.find("\r\n", pos);
        if (e == std::string::npos) e = head.size();
        std::string h = head.substr(pos, e - pos);
        size_t colon = h.find(':');
        if (colon != std::string::npos) {
          std::string name = h.substr(0, colon);
          for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          size_t vs = h.find_first_not_of(' ', colon + 1);
          req.headers[name] = vs == std::string::npos ? "" : h.substr(vs);
        }
        pos = e + 2;
      }
      size_t length = req.headers.count("content-length") ? std::stoul(req.headers["content-length"]) : 0;
      if (length > 0 && !fill(fd, ssl, buf, length)) break;
      req.body = buf.substr(0, length);
      buf.erase(0, length);
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(req);
      }
      handler_(req, writer);
    }
    if (ssl) {
      SSL_shutdown(ssl);
      SSL_free(ssl);
    }
    std::lock_guard<std::mutex> lock(mu_);
    ::close(fd);
    for (auto& o : open_fds_) {
      if (o == fd) o = -1;
    }
  }

  Handler handler_;
  SSL_CTX* ctx_ = nullptr;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::vector<int> open_fds_;               // guarded by mu_
  std::vector<std::thread> connections_;    // guarded by mu_
  std::vector<HttpRequest> requests_;       // guarded by mu_
};

}  // namespace mflow::test
