#include "s3/credentials.h"

#include <algorithm>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base/rfc3339.h"
#include "base/strings.h"

namespace mflow::s3 {
namespace {

using base::Result;
using base::Status;
using json = nlohmann::json;

// The text of the first <tag>...</tag> in `xml`, with XML's predefined entities decoded, or
// nullopt. STS answers are small, flat documents without attributes on these elements, so a
// search is enough; a full XML parser would be a new dependency for six elements.
std::optional<std::string> xml_element(std::string_view xml, std::string_view tag) {
  std::string open = fmt::format("<{}>", tag), close = fmt::format("</{}>", tag);
  size_t start = xml.find(open);
  if (start == std::string_view::npos) return std::nullopt;
  start += open.size();
  size_t end = xml.find(close, start);
  if (end == std::string_view::npos) return std::nullopt;
  std::string_view raw = xml.substr(start, end - start);
  std::string out;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '&') {
      out += raw[i];
      continue;
    }
    static const std::pair<std::string_view, char> kEntities[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    bool decoded = false;
    for (const auto& [entity, c] : kEntities) {
      if (raw.substr(i, entity.size()) == entity) {
        out += c;
        i += entity.size() - 1;
        decoded = true;
        break;
      }
    }
    if (!decoded) out += '&';
  }
  return std::string(base::trim(out));
}

// Reads the string member `key`; an empty string when absent. A present member that is not a
// string is an error naming the key (never its value).
Result<std::string> string_member(const json& doc, const char* key, const std::string& where) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return std::string();
  if (!it->is_string()) return Status::invalid(fmt::format("{}: \"{}\" must be a string", where, key));
  return it->get<std::string>();
}

// Fills the fields shared by the JSON formats. `token_key` is "SessionToken" for
// credential_process and "Token" for the metadata services.
Result<Credentials> credentials_from_json(const std::string& text, const std::string& where,
                                          const char* token_key, json* doc_out) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    // e.what() quotes the text around the error, which may be a secret: only the offset.
    return Status::invalid(fmt::format("{}: the answer is not valid JSON (syntax error at byte {})",
                                       where, e.byte));
  }
  if (!doc.is_object()) return Status::invalid(fmt::format("{}: the answer is not a JSON object", where));
  Credentials creds;
  auto id = string_member(doc, "AccessKeyId", where);
  auto secret = string_member(doc, "SecretAccessKey", where);
  auto token = string_member(doc, token_key, where);
  auto expiration = string_member(doc, "Expiration", where);
  for (const auto* r : {&id, &secret, &token, &expiration}) {
    if (!r->ok()) return r->status();
  }
  if (id->empty() || secret->empty()) {
    return Status::invalid(fmt::format("{}: the answer lacks {}", where,
                                       id->empty() ? "AccessKeyId" : "SecretAccessKey"));
  }
  creds.access_key_id = *id;
  creds.secret_access_key = *secret;
  creds.session_token = *token;
  if (!expiration->empty()) {
    creds.expiration = base::parse_rfc3339(*expiration);
    if (!creds.expiration) {
      return Status::invalid(fmt::format("{}: Expiration \"{}\" is not an ISO 8601 time such as "
                                         "2026-01-01T00:00:00Z",
                                         where, base::printable(expiration->substr(0, 40))));
    }
  }
  if (doc_out != nullptr) *doc_out = std::move(doc);
  return creds;
}

}  // namespace

Result<Credentials> parse_process_credentials(const std::string& text, const std::string& where) {
  json doc;
  auto creds = credentials_from_json(text, where, "SessionToken", &doc);
  if (!creds.ok()) return creds;
  auto version = doc.find("Version");
  if (version == doc.end() || !version->is_number_integer() || version->get<int64_t>() != 1) {
    return Status::invalid(fmt::format("{}: the output must have \"Version\": 1 (the only version "
                                       "the AWS SDKs define)",
                                       where));
  }
  return creds;
}

Result<Credentials> parse_metadata_credentials(const std::string& text, const std::string& where) {
  json doc;
  auto creds = credentials_from_json(text, where, "Token", &doc);
  if (!creds.ok()) return creds;
  auto code = string_member(doc, "Code", where);
  if (!code.ok()) return code.status();
  if (!code->empty() && *code != "Success") {
    return Status::unavailable(fmt::format("{}: the service answered Code \"{}\"", where,
                                           base::printable(code->substr(0, 60))));
  }
  return creds;
}

Result<Credentials> parse_sts_response(int http_status, const std::string& body, const std::string& where) {
  if (http_status != 200) {
    std::string code = xml_element(body, "Code").value_or("");
    std::string message = xml_element(body, "Message").value_or("");
    std::string text = fmt::format("{}: STS answered HTTP {}{}{}", where, http_status,
                                   code.empty() ? "" : " " + base::printable(code),
                                   message.empty() ? "" : ": " + base::printable(message.substr(0, 300)));
    // Throttling and server errors may pass; everything else is the caller's configuration
    // (a wrong role, an expired or foreign token) and retrying cannot help.
    if (http_status >= 500 || code == "Throttling" || code == "IDPCommunicationError") {
      return Status::unavailable(text);
    }
    return Status::invalid(text);
  }
  auto block = xml_element(body, "Credentials");
  if (!block) {
    return Status::unavailable(fmt::format("{}: STS answered HTTP 200 without a Credentials element", where));
  }
  Credentials creds;
  creds.access_key_id = xml_element(*block, "AccessKeyId").value_or("");
  creds.secret_access_key = xml_element(*block, "SecretAccessKey").value_or("");
  creds.session_token = xml_element(*block, "SessionToken").value_or("");
  std::string expiration = xml_element(*block, "Expiration").value_or("");
  if (creds.access_key_id.empty() || creds.secret_access_key.empty() || creds.session_token.empty()) {
    return Status::unavailable(fmt::format(
        "{}: STS's Credentials element lacks AccessKeyId, SecretAccessKey or SessionToken", where));
  }
  creds.expiration = base::parse_rfc3339(expiration);
  if (!creds.expiration) {
    return Status::unavailable(fmt::format("{}: STS's Expiration \"{}\" is not an ISO 8601 time", where,
                                           base::printable(expiration.substr(0, 40))));
  }
  return creds;
}

}  // namespace mflow::s3
