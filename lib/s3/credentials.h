// Credentials and connection settings for S3-compatible object storage, resolved the way the
// AWS SDKs resolve them (docs/s3.md). This header is the seam between the credential chain
// (credentials.cc, config.cc) and the request signer / HTTP client (sigv4, client): the client
// asks a CredentialProvider for credentials before each request and never knows their source.
#pragma once

#include <chrono>
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

}  // namespace mflow::s3
