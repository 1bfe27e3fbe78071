// One small HTTP exchange for the credential sources (STS, container credentials, EC2
// instance metadata): a request with a few headers and a short body, a whole-body answer,
// a hard timeout. The S3 data path has its own client (client.h); this one only fetches
// credentials. Thread-safe (no shared state).
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace mflow::s3 {

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type;  // with a body
  /// For the whole exchange (connect, send, receive).
  std::chrono::milliseconds timeout{5000};
  /// PEM file of the only certificates trusted for https (AWS_CA_BUNDLE); empty: the system
  /// store. Certificates are always verified.
  std::string ca_bundle;
  /// Names the request in errors instead of the URL when the URL must not be shown.
  std::string what;
};

struct HttpResponse {
  int status = 0;
  std::string body;
};

/// Sends the request. An error (kUnavailable) only when no HTTP answer came (connection
/// refused, timeout, TLS failure); it names `what` (or the URL) and never a header value or
/// the body. Any HTTP status is a response.
base::Result<HttpResponse> http_fetch(const HttpRequest& request);

}  // namespace mflow::s3
