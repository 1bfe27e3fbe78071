#include "s3/http_fetch.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/ssl.hpp>
#include <cpprest/http_client.h>
#include <fmt/core.h>

namespace mflow::s3 {

namespace http = web::http;

base::Result<HttpResponse> http_fetch(const HttpRequest& request) {
  const std::string& what = request.what.empty() ? request.url : request.what;
  try {
    web::uri uri(request.url);
    http::client::http_client_config cfg;
    cfg.set_timeout(std::chrono::duration_cast<std::chrono::microseconds>(request.timeout));
    cfg.set_validate_certificates(true);
    if (!request.ca_bundle.empty()) {
      std::string ca = request.ca_bundle;
      // AWS_CA_BUNDLE replaces the trust store (as in the SDKs). A store of our own keeps the
      // process-wide system store (kube/rest_api_client.cc shares it between contexts) clean.
      cfg.set_ssl_context_callback([ca](boost::asio::ssl::context& ctx) {
        X509_STORE* store = X509_STORE_new();
        if (store != nullptr && X509_STORE_load_file(store, ca.c_str()) != 1) {
          X509_STORE_free(store);
          store = X509_STORE_new();  // trusts nothing: the handshake fails, naming the URL
        }
        SSL_CTX_set_cert_store(ctx.native_handle(), store);
      });
    }
    http::client::http_client client(uri.authority(), cfg);
    http::http_request req(request.method);
    req.set_request_uri(uri.resource());
    for (const auto& [name, value] : request.headers) req.headers().add(name, value);
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
      req.set_body(request.body, request.content_type.empty() ? "application/octet-stream"
                                                              : request.content_type);
    }
    http::http_response resp = client.request(req).get();
    HttpResponse out;
    out.status = resp.status_code();
    auto bytes = resp.extract_vector().get();
    out.body.assign(bytes.begin(), bytes.end());
    return out;
  } catch (const std::exception& e) {
    // cpprest's messages name the failing step ("Failed to connect", "Request canceled by
    // user." for the timeout), never our headers or body.
    std::string why = e.what();
    if (why.find("canceled") != std::string::npos) {
      why = fmt::format("no answer within {} ms", request.timeout.count());
    }
    return base::Status::unavailable(fmt::format("{} {}: {}", request.method, what, why));
  }
}

}  // namespace mflow::s3
