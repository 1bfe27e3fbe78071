#include "s3/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <ctime>

#include <fmt/core.h>

#include "base/hash.h"

namespace mflow::s3 {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// SigV4's Trimall: no leading or trailing whitespace, each inner run of it one space. botocore
// (and so the AWS CLI) splits on any whitespace, which is what S3 compares against.
std::string trim_all(std::string_view value) {
  std::string out;
  bool pending_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

std::string date_part(Clock::time_point time) { return amz_date(time).substr(0, 8); }

std::string scope(Clock::time_point time, std::string_view region, std::string_view service) {
  return fmt::format("{}/{}/{}/aws4_request", date_part(time), region, service);
}

// Canonical headers and the signed-headers list: names lower-cased and sorted, values of a
// repeated name joined with ',' in the order given.
std::pair<std::string, std::string> canonical_headers(
    const std::vector<std::pair<std::string, std::string>>& headers) {
  std::vector<std::pair<std::string, std::string>> sorted;
  sorted.reserve(headers.size());
  for (const auto& [name, value] : headers) sorted.emplace_back(lower(trim_all(name)), trim_all(value));
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string canonical;
  std::string names;
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (i > 0 && sorted[i].first == sorted[i - 1].first) {
      canonical.back() = ',';
      canonical += sorted[i].second + "\n";
      continue;
    }
    canonical += sorted[i].first + ":" + sorted[i].second + "\n";
    if (!names.empty()) names += ';';
    names += sorted[i].first;
  }
  return {canonical, names};
}

void set_header(std::vector<std::pair<std::string, std::string>>& headers, std::string_view name,
                std::string value) {
  std::erase_if(headers, [&](const auto& h) { return lower(h.first) == name; });
  headers.emplace_back(std::string(name), std::move(value));
}

}  // namespace

std::string uri_encode(std::string_view text, bool encode_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~' || (c == '/' && !encode_slash)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kDigits[c >> 4];
      out += kDigits[c & 15];
    }
  }
  return out;
}

std::string encoded_path(std::string_view path) {
  if (path.empty()) return "/";
  return uri_encode(path, false);
}

std::string canonical_query(const std::vector<std::pair<std::string, std::string>>& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) encoded.emplace_back(uri_encode(name, true), uri_encode(value, true));
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name + "=" + value;
  }
  return out;
}

std::string amz_date(Clock::time_point time) {
  std::time_t t = Clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string canonical_request(const SignableRequest& request) {
  auto [headers, names] = canonical_headers(request.headers);
  return fmt::format("{}\n{}\n{}\n{}\n{}\n{}", request.method, encoded_path(request.path),
                     canonical_query(request.query), headers, names, request.payload_hash);
}

std::string string_to_sign(std::string_view canonical_request, Clock::time_point time,
                           std::string_view region, std::string_view service) {
  return fmt::format("{}\n{}\n{}\n{}", kAlgorithm, amz_date(time), scope(time, region, service),
                     base::sha256_hex(canonical_request));
}

std::string signing_key(std::string_view secret_access_key, Clock::time_point time,
                        std::string_view region, std::string_view service) {
  std::string k_date = hmac_sha256("AWS4" + std::string(secret_access_key), date_part(time));
  std::string k_region = hmac_sha256(k_date, region);
  std::string k_service = hmac_sha256(k_region, service);
  return hmac_sha256(k_service, "aws4_request");
}

std::string signature(std::string_view key, std::string_view string_to_sign) {
  return to_hex(hmac_sha256(key, string_to_sign));
}

void sign_request(SignableRequest& request, const Credentials& credentials,
                  std::string_view region, Clock::time_point now, std::string_view service) {
  std::erase_if(request.headers, [](const auto& h) { return lower(h.first) == "authorization"; });
  set_header(request.headers, "x-amz-date", amz_date(now));
  set_header(request.headers, "x-amz-content-sha256", request.payload_hash);
  if (!credentials.session_token.empty()) {
    set_header(request.headers, "x-amz-security-token", credentials.session_token);
  } else {
    std::erase_if(request.headers,
                  [](const auto& h) { return lower(h.first) == "x-amz-security-token"; });
  }
  std::string canonical = canonical_request(request);
  std::string names = canonical_headers(request.headers).second;
  std::string sig = signature(signing_key(credentials.secret_access_key, now, region, service),
                              string_to_sign(canonical, now, region, service));
  request.headers.emplace_back(
      "Authorization",
      fmt::format("{} Credential={}/{},SignedHeaders={},Signature={}", kAlgorithm,
                  credentials.access_key_id, scope(now, region, service), names, sig));
}

base::Result<std::string> presign_url(SignableRequest request, std::string_view scheme,
                                      const Credentials& credentials, std::string_view region,
                                      Clock::time_point now, std::chrono::seconds expires,
                                      std::string_view service) {
  if (expires < std::chrono::seconds(1) || expires > kMaxPresignExpiry) {
    return base::Status::invalid(fmt::format(
        "a presigned URL's expiry must be between 1 second and 7 days (604800 s), not {} s",
        expires.count()));
  }
  std::string host;
  for (const auto& [name, value] : request.headers) {
    if (lower(name) == "host") host = trim_all(value);
  }
  if (host.empty()) return base::Status::invalid("a presigned URL needs the request's host header");
  std::erase_if(request.headers, [](const auto& h) {
    std::string n = lower(h.first);
    return n == "authorization" || n == "x-amz-date" || n == "x-amz-content-sha256" ||
           n == "x-amz-security-token";
  });
  request.payload_hash = std::string(kUnsignedPayload);
  // S3 signs the session token as part of the query (unlike some services that append it
  // after signing), so it is added before the canonical request is built.
  auto& q = request.query;
  q.emplace_back("X-Amz-Algorithm", std::string(kAlgorithm));
  q.emplace_back("X-Amz-Credential",
                 fmt::format("{}/{}", credentials.access_key_id, scope(now, region, service)));
  q.emplace_back("X-Amz-Date", amz_date(now));
  q.emplace_back("X-Amz-Expires", std::to_string(expires.count()));
  if (!credentials.session_token.empty()) q.emplace_back("X-Amz-Security-Token", credentials.session_token);
  q.emplace_back("X-Amz-SignedHeaders", canonical_headers(request.headers).second);
  std::string sig = signature(signing_key(credentials.secret_access_key, now, region, service),
                              string_to_sign(canonical_request(request), now, region, service));
  return fmt::format("{}://{}{}?{}&X-Amz-Signature={}", scheme, host, encoded_path(request.path),
                     canonical_query(request.query), sig);
}

}  // namespace mflow::s3
