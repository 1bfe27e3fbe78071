// Credentials and connection settings for S3-compatible object storage, resolved the way the
// AWS SDKs resolve them (docs/s3.md). This header is the seam between the credential chain
// (credentials.cc, config.cc) and the request signer / HTTP client (sigv4, client): the client
// asks a CredentialProvider for credentials before each request and never knows their source.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/status.h"

namespace mflow::s3 {

using Clock = std::chrono::system_clock;

/// One set of credentials. `source` names where they came from ("environment",
/// "profile ci in /home/me/.aws/credentials", "web identity (AWS_ROLE_ARN)", ...) for messages;
/// it never contains a secret. Secrets must never be printed, logged or put in an error.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;               // empty for long-term keys
  std::optional<Clock::time_point> expiration;  // set for temporary credentials
  std::string source;
};

/// Gives the credentials to sign the next request with. Implementations cache temporary
/// credentials and refresh them before they expire (a few minutes ahead), and are safe to
/// call from several threads at once. An error says which sources were tried and why each
/// gave nothing (without secrets); its code is kUnavailable when a source could not be
/// reached, kInvalid when configuration is wrong, kNotFound when no source had credentials.
class CredentialProvider {
 public:
  virtual ~CredentialProvider() = default;
  virtual base::Result<Credentials> get() = 0;
  /// The service rejected the credentials last returned (403 InvalidAccessKeyId,
  /// ExpiredToken, ...): the next get() must not return them from cache.
  virtual void invalidate() {}
};

/// How requests are addressed: https://bucket.host/key (virtual) or https://host/bucket/key
/// (path). kAuto: virtual-hosted for AWS endpoints and DNS-compatible bucket names, path
/// style for custom endpoints (what MinIO, Ceph and local servers need) and dotted names.
enum class Addressing { kAuto, kPath, kVirtual };

/// Where and how to reach the service, resolved from the environment and the shared config
/// file (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, profile endpoint_url; AWS_REGION,
/// AWS_DEFAULT_REGION, profile region, default us-east-1; AWS_CA_BUNDLE / profile ca_bundle).
struct ConnectionSettings {
  std::string endpoint;        // "https://s3.us-east-1.amazonaws.com" or an override
  bool custom_endpoint = false;
  std::string region = "us-east-1";
  Addressing addressing = Addressing::kAuto;
  std::string ca_bundle;       // PEM file; empty: the system trust store. TLS is always verified.
  std::string profile;         // the profile the settings were read from ("default", ...)
};


/// Fixed credentials: keys a caller already has (tests, a flag). get() always returns them.
class StaticCredentialProvider : public CredentialProvider {
 public:
  explicit StaticCredentialProvider(Credentials credentials) : credentials_(std::move(credentials)) {}
  base::Result<Credentials> get() override { return credentials_; }

 private:
  Credentials credentials_;
};

/// What a process run through a ProcessRunner printed, once it exited.
struct ProcessOutput {
  int exit_code = 0;  // -1 when it was killed by a signal
  std::string out;
  std::string err;
};

/// Runs `command` with /bin/sh -c (stdin /dev/null) and returns its output once it exits; an
/// error when it cannot start or runs past `timeout` (it is then killed). lib/s3 may not spawn
/// processes (docs/CONTRIBUTING.md rule 5): cli/ supplies one built on exec/subprocess.
using ProcessRunner =
    std::function<base::Result<ProcessOutput>(const std::string& command, std::chrono::seconds timeout)>;

/// Parses what a credential_process printed: JSON with Version 1, AccessKeyId,
/// SecretAccessKey, optional SessionToken and Expiration. Errors name `where` and never
/// quote the output (it may hold a secret).
base::Result<Credentials> parse_process_credentials(const std::string& text, const std::string& where);

/// Parses the JSON of the container credentials endpoint and of EC2 instance metadata
/// (AccessKeyId, SecretAccessKey, Token, Expiration; IMDS's Code must be "Success").
base::Result<Credentials> parse_metadata_credentials(const std::string& text, const std::string& where);

/// Parses an STS answer (AssumeRoleWithWebIdentityResponse / AssumeRoleResponse XML) with
/// its HTTP status: the Credentials element, or for an ErrorResponse an error with STS's
/// Code and Message (kInvalid for the caller's mistakes, kUnavailable for throttling and
/// server errors).
base::Result<Credentials> parse_sts_response(int http_status, const std::string& body,
                                             const std::string& where);

}  // namespace mflow::s3
