// The default credential provider chain, in the AWS SDKs' order (docs/s3.md, "Credentials
// and settings"): environment, web identity (IRSA), the shared config/credentials profile
// (static keys, credential_process, role_arn via STS AssumeRole), container credentials (ECS, EKS Pod Identity), EC2
// instance metadata (IMDSv2). The first source that is configured decides; a source that is
// configured but fails stops the chain with its error. Temporary credentials are cached and
// refreshed ahead of their expiry. Thread-safe: concurrent callers share one refresh.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/status.h"
#include "s3/config.h"
#include "s3/credentials.h"

namespace mflow::s3 {

struct ChainOptions {
  Env env = process_env();
  /// A profile named by a flag; empty: AWS_PROFILE, else "default".
  std::string profile;
  /// Runs a profile's credential_process. Without one, such a profile is an error.
  ProcessRunner run_process;
  /// The wall clock expiry is judged by (tests move it forward).
  std::function<Clock::time_point()> now = [] { return Clock::now(); };
  /// Temporary credentials are refreshed this long before they expire, or at half their
  /// lifetime when that is shorter (so short-lived credentials are not fetched on every call).
  std::chrono::seconds refresh_ahead{300};
  /// The whole EC2 instance metadata exchange (token, role, credentials) gets at most this
  /// long, so a machine without IMDS does not hang; each request at most half of it.
  std::chrono::milliseconds imds_budget{2000};
  /// STS and container-credential requests.
  std::chrono::milliseconds http_timeout{10000};
  std::chrono::seconds process_timeout{60};
};

/// Builds the default chain. The shared files are read here (a malformed file is an error
/// naming file:line), as is a profile asked for by name that does not exist. Nothing is
/// fetched until the first get().
base::Result<std::unique_ptr<CredentialProvider>> make_default_chain(ChainOptions options);

/// The container credentials URL: http://169.254.170.2 + AWS_CONTAINER_CREDENTIALS_RELATIVE_URI,
/// else AWS_CONTAINER_CREDENTIALS_FULL_URI, which must be https or name a loopback address,
/// the ECS address (169.254.170.2) or the EKS Pod Identity address (169.254.170.23,
/// fd00:ec2::23), as in the SDKs. nullopt when neither is set.
base::Result<std::optional<std::string>> container_credentials_url(const Env& env);

}  // namespace mflow::s3
