// S3Server: mflow's S3 test server (test/support/s3/s3_test_server.py: s3rver behind a proxy
// that verifies every SigV4 signature with botocore and can inject faults), started on a
// loopback port for one test and stopped with it. With MFLOW_S3_SERVER_LOG=FILE set, the
// server's stderr (proxy tracebacks, s3rver errors) is appended to FILE when it stops.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "s3/credentials.h"
#include "support/temp_dir.h"

namespace mflow::test {

/// A CredentialProvider with fixed keys that counts invalidate() calls; `rotate_to` makes the
/// next get() after an invalidate() return other keys (a rotated secret).
class StaticCredentials : public s3::CredentialProvider {
 public:
  explicit StaticCredentials(s3::Credentials c) : current_(std::move(c)) {}
  base::Result<s3::Credentials> get() override { return current_; }
  void invalidate() override {
    ++invalidations;
    if (rotate_to_) current_ = *rotate_to_;
  }
  void rotate_on_invalidate(s3::Credentials next) { rotate_to_ = std::make_unique<s3::Credentials>(std::move(next)); }
  int invalidations = 0;

 private:
  s3::Credentials current_;
  std::unique_ptr<s3::Credentials> rotate_to_;
};

struct S3ServerOptions {
  std::vector<std::string> buckets = {"mflow-test"};
  double fault_rate = 0.0;
  std::string faults;  // comma-separated subset; empty: all
  int seed = 1;
};

class S3Server {
 public:
  /// The keys the server accepts (and the tests sign with).
  static constexpr const char* kAccessKey = "AKIAMFLOWTEST0000001";
  static constexpr const char* kSecret = "mflow-test-secret/+xyz";

  explicit S3Server(S3ServerOptions options = {});
  ~S3Server();
  S3Server(const S3Server&) = delete;
  S3Server& operator=(const S3Server&) = delete;

  /// False (with why()) when the server did not start, e.g. s3rver is not installed; tests
  /// then fail with the set-up instruction (packaging/install-deps.sh installs it).
  bool ok() const { return port_ != 0; }
  const std::string& why() const { return why_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  s3::ConnectionSettings settings() const;
  static s3::Credentials credentials();
  /// The proxy's counters (requests, rejected by code, faults by kind) as JSON text.
  std::string stats() const;

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string why_;
};

}  // namespace mflow::test
