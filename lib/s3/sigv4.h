// AWS Signature Version 4 for S3 (docs/s3.md): canonical requests with S3's rules, the
// signing-key derivation, the Authorization header and presigned URLs, on OpenSSL's HMAC and
// SHA-256. Pure functions of their arguments (the time is a parameter), so the signer is
// tested against AWS's published examples and against botocore. Thread-safe.
//
// S3's rules differ from the generic SigV4 ones in two places that clients get wrong: the
// path is URI-encoded once (each byte outside A-Z a-z 0-9 - . _ ~ as %XX, '/' kept), never
// normalised and never double-encoded; and the payload hash is always sent as
// x-amz-content-sha256 (hex SHA-256 of the body, or UNSIGNED-PAYLOAD).
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "s3/credentials.h"

namespace mflow::s3 {

inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
/// SHA-256 of the empty string: the payload hash of GET, HEAD and DELETE.
inline constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The longest validity of a presigned URL S3 accepts (7 days).
inline constexpr std::chrono::seconds kMaxPresignExpiry{604800};

/// SigV4's URI encoding: unreserved characters (A-Z a-z 0-9 - . _ ~) kept, every other byte
/// as %XX in upper case; '/' kept unless `encode_slash` (query names and values encode it).
std::string uri_encode(std::string_view text, bool encode_slash);

/// A request as it will be sent, in decoded form: the signer and the HTTP client both take the
/// wire form of the path and query from encoded_path() and canonical_query(), so what is
/// signed is exactly what is sent.
struct SignableRequest {
  std::string method;  // "GET", "PUT", ...
  /// Decoded path starting with '/': "/bucket/dir/a b.txt" (path style) or "/dir/a b.txt".
  std::string path;
  /// Decoded query parameters; a parameter without a value ("?uploads") has an empty value.
  std::vector<std::pair<std::string, std::string>> query;
  /// Headers to sign and send; must include "host" (with ":port" when not the scheme's
  /// default). Names in any case; values are trimmed and inner whitespace runs collapsed.
  std::vector<std::pair<std::string, std::string>> headers;
  /// Hex SHA-256 of the body, kEmptyPayloadSha256, or kUnsignedPayload.
  std::string payload_hash = std::string(kEmptyPayloadSha256);
};

/// The path as sent on the wire: uri_encode(path, false); "/" when empty.
std::string encoded_path(std::string_view path);
/// The query as sent on the wire and as signed: each name and value encoded, pairs sorted by
/// name then value, joined with '&' ("a=1&b=&c=x%2Fy"); empty when there is none.
std::string canonical_query(const std::vector<std::pair<std::string, std::string>>& query);
/// "20130524T000000Z" (UTC).
std::string amz_date(Clock::time_point time);

/// The canonical request of `request` with all of its headers signed.
std::string canonical_request(const SignableRequest& request);
/// The string to sign for a canonical request made at `time` in `region` for `service`.
std::string string_to_sign(std::string_view canonical_request, Clock::time_point time,
                           std::string_view region, std::string_view service);
/// The derived signing key (32 raw bytes): HMAC chain over date, region, service, aws4_request.
std::string signing_key(std::string_view secret_access_key, Clock::time_point time,
                        std::string_view region, std::string_view service);
/// Lower-case hex HMAC-SHA256 of `string_to_sign` with `key`.
std::string signature(std::string_view key, std::string_view string_to_sign);

/// Signs `request` for header-based authentication: adds x-amz-date, x-amz-content-sha256 (the
/// payload hash), x-amz-security-token (with a session token) and finally Authorization.
/// Headers of these names already present are replaced.
void sign_request(SignableRequest& request, const Credentials& credentials,
                  std::string_view region, Clock::time_point now, std::string_view service = "s3");

/// A presigned URL for `request` (its payload hash is ignored: presigned requests are
/// UNSIGNED-PAYLOAD) valid for `expires` from `now`: "<scheme>://<host><path>?<query with
/// X-Amz-Algorithm, -Credential, -Date, -Expires, -SignedHeaders, -Security-Token,
/// -Signature>". kInvalid when `expires` is not within 1 s .. 7 days or host is missing.
base::Result<std::string> presign_url(SignableRequest request, std::string_view scheme,
                                      const Credentials& credentials, std::string_view region,
                                      Clock::time_point now, std::chrono::seconds expires,
                                      std::string_view service = "s3");

}  // namespace mflow::s3
