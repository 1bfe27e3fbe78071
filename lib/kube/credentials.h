// Credentials: turns a Config's auth method into the bearer token / client certificate of the
// next request. Static tokens are used as is; token files (tokenFile, the in-cluster service
// account) are re-read at most once a minute so rotated tokens are picked up; exec plugins
// (client.authentication.k8s.io v1/v1beta1) are run, their ExecCredential cached until its
// expirationTimestamp, and re-run after a 401. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "base/rfc3339.h"
#include "base/status.h"
#include "kube/config.h"

namespace mflow::kube {

struct Credential {
  std::string token;            // empty = no Authorization header
  std::string client_cert_pem;  // from the kubeconfig or an exec plugin
  std::string client_key_pem;
};

/// What an exec plugin printed (ExecCredential.status).
struct ExecCredential {
  std::string token;
  std::string client_cert_pem;
  std::string client_key_pem;
  /// Absent when the plugin gave no expirationTimestamp (then reuse until a 401).
  std::optional<std::chrono::system_clock::time_point> expires;
};

/// Runs the plugin once (environment + plugin env + KUBERNETES_EXEC_INFO, stdin /dev/null,
/// at most `timeout`) and parses its ExecCredential. Errors name `plugin.where`, the
/// command, its exit status and stderr, and the installHint when the command is missing.
base::Result<ExecCredential> run_exec_plugin(const ExecPluginConfig& plugin,
                                             const std::string& server,
                                             std::chrono::seconds timeout = std::chrono::seconds(60));

/// Parses an ExecCredential document printed by a plugin of `api_version`.
base::Result<ExecCredential> parse_exec_credential(const std::string& text,
                                                   const std::string& api_version,
                                                   const std::string& where);

/// Parses an RFC 3339 timestamp ("2026-01-01T00:00:00Z", fractions and offsets allowed).
using base::parse_rfc3339;

class Credentials {
 public:
  explicit Credentials(Config config,
                       std::chrono::seconds token_file_refresh = std::chrono::seconds(60));

  /// The credential for the next request (runs the exec plugin or re-reads the token file
  /// when due).
  base::Result<Credential> get();

  /// Called after a 401. Drops the cached exec credential / token-file content so the next
  /// get() fetches a fresh one. Returns true when that can change anything (exec plugin or
  /// token file), i.e. when retrying the request once is worthwhile.
  bool invalidate();

  /// How many times the exec plugin ran (for tests and -v statistics).
  int64_t exec_runs() const;

 private:
  Config config_;
  std::chrono::seconds token_file_refresh_;
  mutable std::mutex mu_;
  // Guarded by mu_.
  std::optional<Credential> cached_;
  std::optional<std::chrono::steady_clock::time_point> token_read_at_;
  std::optional<std::chrono::system_clock::time_point> expires_;
  int64_t exec_runs_ = 0;
};

}  // namespace mflow::kube
