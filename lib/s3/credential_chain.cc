#include "s3/credential_chain.h"

#include <algorithm>
#include <mutex>
#include <vector>

#include <fmt/core.h>

#include "base/file_util.h"
#include "base/hash.h"
#include "base/rfc3339.h"
#include "base/strings.h"
#include "s3/http_fetch.h"
#include "s3/sigv4.h"

namespace mflow::s3 {
namespace {

using base::Result;
using base::Status;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

constexpr const char* kEcsHost = "169.254.170.2";
constexpr const char* kImdsEndpoint = "http://169.254.169.254";
constexpr const char* kImdsIpv6Endpoint = "http://[fd00:ec2::254]";
constexpr const char* kImdsTokenTtl = "21600";
// After a failed refresh while the cached credentials are still valid, the next attempt waits
// this long, so a service outage is not hit by every S3 request.
constexpr std::chrono::seconds kRetryAfterFailedRefresh{10};

// What one source made of the configuration: credentials, "not configured here" (the chain
// goes on; the reason is listed if nothing is found), or an error (the chain stops).
struct Outcome {
  enum class Kind { kFound, kSkipped, kFailed };
  Kind kind = Kind::kSkipped;
  Credentials creds;
  std::string reason;
  Status error;

  static Outcome found(Credentials c) { return Outcome{Kind::kFound, std::move(c), {}, {}}; }
  static Outcome skipped(std::string why) { return Outcome{Kind::kSkipped, {}, std::move(why), {}}; }
  static Outcome failed(Status s) { return Outcome{Kind::kFailed, {}, {}, std::move(s)}; }
};

bool is_true(const std::optional<std::string>& v) {
  if (!v) return false;
  std::string s(base::trim(*v));
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  return s == "true";
}

// application/x-www-form-urlencoded, as STS's query API expects.
std::string form_encode(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// A secret read from a file for a header: trailing newlines dropped; a line break inside
// would split the header, so it is refused (without quoting the file).
Result<std::string> read_header_secret(const std::string& path, const std::string& what) {
  auto text = base::read_regular_file(path);
  if (!text.ok()) return text.status().with_context(what);
  std::string value(base::trim(*text));
  if (value.empty()) return Status::invalid(fmt::format("{}: {} is empty", what, path));
  if (value.find_first_of("\r\n") != std::string::npos) {
    return Status::invalid(fmt::format("{}: {} holds more than one line", what, path));
  }
  return value;
}

bool is_loopback(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  return base::starts_with(host, "127.") && host.find_first_not_of("0123456789.") == std::string::npos;
}

class Chain : public CredentialProvider {
 public:
  Chain(ChainOptions options, SharedConfig config, std::string profile_name,
        std::optional<Profile> profile, bool profile_named)
      : options_(std::move(options)),
        config_(std::move(config)),
        profile_name_(std::move(profile_name)),
        profile_(std::move(profile)),
        profile_named_(profile_named) {}

  Result<Credentials> get() override {
    std::lock_guard<std::mutex> lock(mu_);
    Clock::time_point now = options_.now();
    if (cached_ && now < refresh_at_) return *cached_;
    auto fresh = resolve(now);
    if (fresh.ok()) {
      cached_ = *fresh;
      refresh_at_ = refresh_time(*fresh, now);
      return fresh;
    }
    // The credentials in hand still work until they expire: keep using them (as the SDKs do)
    // and try again a little later.
    if (cached_ && cached_->expiration && now < *cached_->expiration) {
      refresh_at_ = std::min(*cached_->expiration, now + kRetryAfterFailedRefresh);
      return *cached_;
    }
    cached_.reset();
    return fresh;
  }

  void invalidate() override {
    std::lock_guard<std::mutex> lock(mu_);
    cached_.reset();
  }

 private:
  Clock::time_point refresh_time(const Credentials& creds, Clock::time_point now) const {
    if (!creds.expiration) return Clock::time_point::max();
    auto lifetime = *creds.expiration - now;
    auto ahead = std::min<Clock::duration>(options_.refresh_ahead, lifetime / 2);
    return *creds.expiration - ahead;
  }

  Result<Credentials> resolve(Clock::time_point now) {
    using Source = Outcome (Chain::*)();
    static const std::pair<const char*, Source> kSources[] = {
        {"environment", &Chain::from_environment},
        {"web identity", &Chain::from_web_identity},
        {"shared profile", &Chain::from_profile},
        {"container credentials", &Chain::from_container},
        {"EC2 instance metadata", &Chain::from_imds},
    };
    std::vector<std::string> tried;
    for (const auto& [name, source] : kSources) {
      Outcome outcome = (this->*source)();
      switch (outcome.kind) {
        case Outcome::Kind::kFound:
          if (outcome.creds.expiration && *outcome.creds.expiration <= now) {
            return Status::unavailable(fmt::format(
                "S3 credentials from {} expired at {} UTC already (is this machine's clock right?)",
                outcome.creds.source, format_time(*outcome.creds.expiration)));
          }
          return outcome.creds;
        case Outcome::Kind::kSkipped:
          tried.push_back(fmt::format("  {}: {}", name, outcome.reason));
          break;
        case Outcome::Kind::kFailed: {
          std::string before =
              tried.empty() ? std::string()
                            : "\nsources tried before it:\n" + base::join(tried, "\n");
          return failed_status(outcome.error, name, before);
        }
      }
    }
    return Status::not_found(fmt::format(
        "no AWS credentials for S3; tried, in order:\n{}\nSet AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or pick a profile of ~/.aws/credentials with AWS_PROFILE "
        "(docs/s3.md, \"Credentials and settings\")",
        base::join(tried, "\n")));
  }

  static Status failed_status(const Status& error, const std::string& source, const std::string& before) {
    std::string message = fmt::format("S3 credentials from {}: {}{}", source, error.message(), before);
    switch (error.code()) {
      case base::StatusCode::kInvalid: return Status::invalid(message);
      case base::StatusCode::kIoError: return Status::io_error(message);
      case base::StatusCode::kInternal: return Status::internal(message);
      default: return Status::unavailable(message);
    }
  }

  static std::string format_time(Clock::time_point t) {
    time_t secs = Clock::to_time_t(t);
    struct tm tm {};
    ::gmtime_r(&secs, &tm);
    return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec);
  }

  const Env& env() const { return options_.env; }

  Outcome from_environment() {
    auto id = env()("AWS_ACCESS_KEY_ID");
    auto secret = env()("AWS_SECRET_ACCESS_KEY");
    if (!id && !secret) return Outcome::skipped("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
    if (!id || !secret) {
      return Outcome::failed(Status::invalid(fmt::format(
          "{} is set but {} is not; set both, or neither to use another source",
          id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
          id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID")));
    }
    Credentials creds;
    creds.access_key_id = *id;
    creds.secret_access_key = *secret;
    // AWS_SECURITY_TOKEN is the older name some tools still set.
    creds.session_token = env()("AWS_SESSION_TOKEN").value_or(env()("AWS_SECURITY_TOKEN").value_or(""));
    if (auto expiration = env()("AWS_CREDENTIAL_EXPIRATION")) {
      creds.expiration = base::parse_rfc3339(base::trim(*expiration));
      if (!creds.expiration) {
        return Outcome::failed(Status::invalid(fmt::format(
            "AWS_CREDENTIAL_EXPIRATION=\"{}\" is not an ISO 8601 time such as 2026-01-01T00:00:00Z",
            base::printable(expiration->substr(0, 40)))));
      }
    }
    creds.source = "environment (AWS_ACCESS_KEY_ID)";
    return Outcome::found(std::move(creds));
  }

  Outcome from_web_identity() {
    auto role = env()("AWS_ROLE_ARN");
    auto token_file = env()("AWS_WEB_IDENTITY_TOKEN_FILE");
    if (role.has_value() != token_file.has_value()) {
      return Outcome::failed(Status::invalid(fmt::format(
          "{} is set but {} is not; web identity (IRSA) needs both",
          role ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE",
          role ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN")));
    }
    if (role) {
      return assume_role_with_web_identity(*role, *token_file, env()("AWS_ROLE_SESSION_NAME"),
                                           "AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE");
    }
    if (profile_ && profile_->get("web_identity_token_file") != nullptr) {
      return profile_web_identity(profile_name_, *profile_);
    }
    return Outcome::skipped(fmt::format(
        "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE are not set{}",
        profile_ ? fmt::format(" and profile {} has no web_identity_token_file", profile_name_) : ""));
  }

  Outcome profile_web_identity(const std::string& name, const Profile& p) {
    const Setting* file = p.get("web_identity_token_file");
    const Setting* role = p.get("role_arn");
    if (role == nullptr) {
      return Outcome::failed(Status::invalid(
          fmt::format("{}: web_identity_token_file needs a role_arn in the same profile", file->where)));
    }
    std::optional<std::string> session;
    if (const Setting* s = p.get("role_session_name")) session = s->value;
    return assume_role_with_web_identity(role->value, expand_home(file->value, env()), session,
                                         fmt::format("profile {} at {}", name, file->where));
  }

  Outcome assume_role_with_web_identity(const std::string& role, const std::string& token_file,
                                        std::optional<std::string> session, const std::string& what) {
    auto token = base::read_regular_file(token_file);
    if (!token.ok()) {
      return Outcome::failed(token.status().with_context(fmt::format("the web identity token file ({})", what)));
    }
    std::string body = fmt::format(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
        form_encode(role), form_encode(session.value_or(default_session_name())),
        form_encode(base::trim(*token)));
    auto creds = call_sts("AssumeRoleWithWebIdentity", body, nullptr,
                          fmt::format("web identity for role {} ({})", role, what));
    if (!creds.ok()) return Outcome::failed(creds.status());
    creds->source = fmt::format("web identity (role {}, {})", role, what);
    return Outcome::found(std::move(creds).value());
  }

  std::string default_session_name() const {
    return fmt::format("mflow-{}", Clock::to_time_t(options_.now()));
  }

  // POSTs an STS query-API call (form body) to the STS endpoint; signed with `signer` when
  // given (AssumeRole), unsigned otherwise (AssumeRoleWithWebIdentity).
  Result<Credentials> call_sts(const std::string& action, const std::string& body, const Credentials* signer,
                               const std::string& where) {
    auto region = resolve_region(profile_, env());
    if (!region.ok()) return region.status();
    auto endpoint = configured_endpoint(config_, profile_, env(), "sts");
    if (!endpoint.ok()) return endpoint.status();
    std::string url = endpoint->value_or(default_endpoint("sts", *region));
    auto parts = parse_url(url, "the STS endpoint");
    if (!parts.ok()) return parts.status();
    HttpRequest req;
    req.method = "POST";
    req.url = url + "/";
    req.content_type = "application/x-www-form-urlencoded; charset=utf-8";
    req.body = body;
    req.timeout = options_.http_timeout;
    req.ca_bundle = ca_bundle();
    req.what = fmt::format("STS {} at {}", action, url);
    if (signer != nullptr) {
      SignableRequest signable;
      signable.method = "POST";
      signable.path = "/";
      std::string host = parts->host.find(':') != std::string::npos ? "[" + parts->host + "]" : parts->host;
      if (parts->port != 0) host += fmt::format(":{}", parts->port);
      signable.headers = {{"host", host}, {"content-type", req.content_type}};
      signable.payload_hash = base::sha256_hex(body);
      // The signature's date is the real time: the service checks it against its own clock.
      sign_request(signable, *signer, *region, Clock::now(), "sts");
      for (auto& [name, value] : signable.headers) {
        if (name != "content-type") req.headers.emplace_back(name, value);  // set with the body
      }
    }
    auto resp = http_fetch(req);
    if (!resp.ok()) return resp.status().with_context(where);
    return parse_sts_response(resp->status, resp->body, where);
  }

  std::string ca_bundle() const {
    if (auto ca = env()("AWS_CA_BUNDLE")) return expand_home(*ca, env());
    if (profile_) {
      if (const Setting* s = profile_->get("ca_bundle")) return expand_home(s->value, env());
    }
    return "";
  }

  Outcome from_profile() {
    std::string files = fmt::format("{} or {}", config_.config_path(), config_.credentials_path());
    if (!profile_) {
      if (profile_named_) {
        return Outcome::failed(config_.missing_profile_error(
            profile_name_, options_.profile.empty() ? "AWS_PROFILE" : "--profile"));
      }
      return Outcome::skipped(fmt::format("no [default] profile in {}", files));
    }
    std::vector<std::string> visited;
    return profile_credentials(profile_name_, *profile_, visited);
  }

  // The credentials profile `name` stands for: an assumed role (role_arn), static keys or a
  // credential_process. `visited` holds the profiles whose source_profile led here.
  Outcome profile_credentials(const std::string& name, const Profile& p, std::vector<std::string>& visited) {
    visited.push_back(name);
    if (const Setting* role = p.get("role_arn")) return assume_role(name, p, *role, visited);
    if (auto keys = static_keys(name, p)) return *keys;
    if (const Setting* process = p.get("credential_process")) return from_process(name, *process);
    if (p.get("sso_session") != nullptr || p.get("sso_start_url") != nullptr) {
      return Outcome::failed(Status::invalid(fmt::format(
          "profile {} ({}) signs in through IAM Identity Center (SSO), which mflow does not do; "
          "give mflow a profile with `credential_process = aws configure export-credentials "
          "--profile {} --format process` instead (docs/s3.md)",
          name, p.where, name)));
    }
    return Outcome::skipped(
        fmt::format("profile {} ({}) has no aws_access_key_id, credential_process or role_arn", name, p.where));
  }

  // The profile's aws_access_key_id / aws_secret_access_key, nullopt when it has neither.
  std::optional<Outcome> static_keys(const std::string& name, const Profile& p) {
    const Setting* id = p.get("aws_access_key_id");
    const Setting* secret = p.get("aws_secret_access_key");
    if (id == nullptr && secret == nullptr) return std::nullopt;
    if (id == nullptr || secret == nullptr) {
      return Outcome::failed(Status::invalid(fmt::format(
          "{}: profile {} has {} but no {}; set both", (id ? id : secret)->where, name,
          id ? "aws_access_key_id" : "aws_secret_access_key", id ? "aws_secret_access_key" : "aws_access_key_id")));
    }
    Credentials creds;
    creds.access_key_id = id->value;
    creds.secret_access_key = secret->value;
    if (const Setting* token = p.get("aws_session_token")) creds.session_token = token->value;
    creds.source = fmt::format("profile {} ({})", name, id->where);
    return Outcome::found(std::move(creds));
  }

  // role_arn with source_profile (recursively), credential_source or web_identity_token_file:
  // the source's credentials sign STS AssumeRole, as the SDKs do.
  Outcome assume_role(const std::string& name, const Profile& p, const Setting& role,
                      std::vector<std::string>& visited) {
    if (p.get("web_identity_token_file") != nullptr) return profile_web_identity(name, p);
    if (const Setting* mfa = p.get("mfa_serial")) {
      return Outcome::failed(Status::invalid(fmt::format(
          "{}: profile {} needs an MFA code (mfa_serial), which mflow cannot ask for; give mflow a "
          "profile with `credential_process = aws configure export-credentials --profile {} --format "
          "process` instead (docs/s3.md)",
          mfa->where, name, name)));
    }
    Outcome source;
    std::string via;
    if (const Setting* sp = p.get("source_profile")) {
      via = fmt::format("source_profile {} ({})", sp->value, sp->where);
      if (sp->value == name) {
        // A profile that is its own source uses its own keys (the SDKs allow this).
        auto keys = static_keys(name, p);
        if (!keys) {
          return Outcome::failed(Status::invalid(fmt::format(
              "{}: profile {} names itself as source_profile but has no aws_access_key_id", sp->where, name)));
        }
        source = std::move(*keys);
      } else if (std::find(visited.begin(), visited.end(), sp->value) != visited.end()) {
        visited.push_back(sp->value);
        return Outcome::failed(Status::invalid(fmt::format(
            "{}: source_profile goes round in a circle: {}", sp->where, base::join(visited, " -> "))));
      } else {
        auto next = config_.profile(sp->value);
        if (!next) {
          return Outcome::failed(config_.missing_profile_error(sp->value, "source_profile at " + sp->where));
        }
        source = profile_credentials(sp->value, *next, visited);
      }
    } else if (const Setting* cs = p.get("credential_source")) {
      via = fmt::format("credential_source {} ({})", cs->value, cs->where);
      if (cs->value == "Environment") {
        source = from_environment();
      } else if (cs->value == "Ec2InstanceMetadata") {
        source = from_imds();
      } else if (cs->value == "EcsContainer") {
        source = from_container();
      } else {
        return Outcome::failed(Status::invalid(fmt::format(
            "{}: credential_source must be Environment, Ec2InstanceMetadata or EcsContainer", cs->where)));
      }
    } else {
      return Outcome::failed(Status::invalid(fmt::format(
          "{}: role_arn needs source_profile, credential_source or web_identity_token_file", role.where)));
    }
    std::string where = fmt::format("assuming role {} for profile {} with {}", role.value, name, via);
    if (source.kind == Outcome::Kind::kSkipped) {
      return Outcome::failed(Status::invalid(fmt::format("{}: {}", where, source.reason)));
    }
    if (source.kind == Outcome::Kind::kFailed) return Outcome::failed(source.error.with_context(where));
    std::string body = fmt::format("Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={}",
                                   form_encode(role.value),
                                   form_encode(p.get("role_session_name") ? p.get("role_session_name")->value
                                                                          : default_session_name()));
    if (const Setting* id = p.get("external_id")) body += "&ExternalId=" + form_encode(id->value);
    if (const Setting* d = p.get("duration_seconds")) {
      if (d->value.find_first_not_of("0123456789") != std::string::npos) {
        return Outcome::failed(Status::invalid(fmt::format("{}: duration_seconds must be a number of seconds", d->where)));
      }
      body += "&DurationSeconds=" + d->value;
    }
    auto creds = call_sts("AssumeRole", body, &source.creds, where);
    if (!creds.ok()) return Outcome::failed(creds.status());
    creds->source = fmt::format("role {} assumed for profile {} with {}", role.value, name, source.creds.source);
    return Outcome::found(std::move(creds).value());
  }

  Outcome from_process(const std::string& name, const Setting& process) {
    std::string where = fmt::format("credential_process of profile {} ({})", name, process.where);
    if (!options_.run_process) {
      return Outcome::failed(Status::internal(where + ": no process runner was given to the credential chain"));
    }
    auto ran = options_.run_process(process.value, options_.process_timeout);
    if (!ran.ok()) return Outcome::failed(ran.status().with_context(where));
    if (ran->exit_code != 0) {
      // Its stderr is the tool's error message (the SDKs show it too); stdout may hold
      // credentials and is never shown.
      std::string err(base::trim(ran->err));
      if (err.size() > 500) err = err.substr(0, 500) + "...";
      return Outcome::failed(Status::unavailable(fmt::format(
          "{}: `{}` {}{}", where, process.value,
          ran->exit_code < 0 ? std::string("was killed by a signal")
                             : fmt::format("exited with status {}", ran->exit_code),
          err.empty() ? "" : ": " + base::printable(err))));
    }
    auto creds = parse_process_credentials(ran->out, where);
    if (!creds.ok()) return Outcome::failed(creds.status());
    creds->source = where;
    return Outcome::found(std::move(creds).value());
  }

  Outcome from_container() {
    auto url = container_credentials_url(env());
    if (!url.ok()) return Outcome::failed(url.status());
    if (!url->has_value()) {
      return Outcome::skipped("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set");
    }
    HttpRequest req;
    req.url = **url;
    req.timeout = options_.http_timeout;
    req.ca_bundle = ca_bundle();
    req.headers.emplace_back("Accept", "application/json");
    std::string where = fmt::format("container credentials from {}", **url);
    if (auto file = env()("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
      // Re-read on every fetch: EKS Pod Identity rotates the token in place.
      auto token = read_header_secret(*file, where + ": AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
      if (!token.ok()) return Outcome::failed(token.status());
      req.headers.emplace_back("Authorization", *token);
    } else if (auto token = env()("AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
      if (token->find_first_of("\r\n") != std::string::npos) {
        return Outcome::failed(Status::invalid(where + ": AWS_CONTAINER_AUTHORIZATION_TOKEN holds a line break"));
      }
      req.headers.emplace_back("Authorization", *token);
    }
    // One retry: the agent may be starting up next to us.
    Result<HttpResponse> resp = Status::unavailable("not sent");
    for (int attempt = 0; attempt < 2; ++attempt) {
      resp = http_fetch(req);
      if (resp.ok() && resp->status < 500) break;
    }
    if (!resp.ok()) return Outcome::failed(resp.status().with_context(where));
    if (resp->status != 200) {
      return Outcome::failed(Status::unavailable(fmt::format(
          "{}: the endpoint answered HTTP {}{}", where, resp->status,
          resp->status == 401 || resp->status == 403
              ? " (check AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE / AWS_CONTAINER_AUTHORIZATION_TOKEN)"
              : "")));
    }
    auto creds = parse_metadata_credentials(resp->body, where);
    if (!creds.ok()) return Outcome::failed(creds.status());
    creds->source = where;
    return Outcome::found(std::move(creds).value());
  }

  Outcome from_imds() {
    if (is_true(env()("AWS_EC2_METADATA_DISABLED"))) return Outcome::skipped("AWS_EC2_METADATA_DISABLED=true");
    std::string endpoint = kImdsEndpoint;
    if (auto set = env()("AWS_EC2_METADATA_SERVICE_ENDPOINT")) {
      endpoint = *set;
    } else if (auto mode = env()("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")) {
      if (base::trim(*mode) == "IPv6") endpoint = kImdsIpv6Endpoint;
    }
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    if (auto parts = parse_url(endpoint, "AWS_EC2_METADATA_SERVICE_ENDPOINT"); !parts.ok()) {
      return Outcome::failed(parts.status());
    }
    auto deadline = std::chrono::steady_clock::now() + options_.imds_budget;
    // Each request gets at most half the budget and never more than what is left of it.
    auto request = [&](const std::string& method, const std::string& path,
                       std::vector<std::pair<std::string, std::string>> headers) -> Result<HttpResponse> {
      auto left = duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left <= milliseconds(0)) {
        return Status::unavailable(fmt::format("no answer within {} ms", options_.imds_budget.count()));
      }
      HttpRequest req;
      req.method = method;
      req.url = endpoint + path;
      req.headers = std::move(headers);
      req.timeout = std::min(left, options_.imds_budget / 2);
      return http_fetch(req);
    };
    auto token = request("PUT", "/latest/api/token", {{"X-aws-ec2-metadata-token-ttl-seconds", kImdsTokenTtl}});
    if (!token.ok()) {
      return Outcome::skipped(fmt::format("no instance metadata service at {} ({})", endpoint,
                                          token.status().message()));
    }
    if (token->status != 200) {
      return Outcome::skipped(fmt::format("the instance metadata service at {} answered HTTP {} to the IMDSv2 "
                                          "token request",
                                          endpoint, token->status));
    }
    std::string session(base::trim(token->body));
    const std::string path = "/latest/meta-data/iam/security-credentials/";
    std::string where = fmt::format("EC2 instance metadata at {}", endpoint);
    auto role = request("GET", path, {{"X-aws-ec2-metadata-token", session}});
    if (!role.ok()) return Outcome::failed(role.status().with_context(where));
    if (role->status == 404) return Outcome::skipped(fmt::format("{}: the instance has no IAM role", where));
    if (role->status != 200) {
      return Outcome::failed(Status::unavailable(fmt::format("{}: HTTP {} for {}", where, role->status, path)));
    }
    std::string name(base::trim(role->body.substr(0, role->body.find('\n'))));
    if (name.empty() || name.find('/') != std::string::npos) {
      return Outcome::failed(Status::unavailable(fmt::format("{}: {} gave no role name", where, path)));
    }
    auto creds_resp = request("GET", path + name, {{"X-aws-ec2-metadata-token", session}});
    if (!creds_resp.ok()) return Outcome::failed(creds_resp.status().with_context(where));
    if (creds_resp->status != 200) {
      return Outcome::failed(
          Status::unavailable(fmt::format("{}: HTTP {} for {}{}", where, creds_resp->status, path, name)));
    }
    auto creds = parse_metadata_credentials(creds_resp->body, where);
    if (!creds.ok()) return Outcome::failed(creds.status());
    creds->source = fmt::format("{} (role {})", where, name);
    return Outcome::found(std::move(creds).value());
  }

  const ChainOptions options_;
  const SharedConfig config_;
  const std::string profile_name_;
  const std::optional<Profile> profile_;
  const bool profile_named_;  // asked for by name (it must exist)

  std::mutex mu_;
  // Guarded by mu_.
  std::optional<Credentials> cached_;
  Clock::time_point refresh_at_;
};

}  // namespace

Result<std::optional<std::string>> container_credentials_url(const Env& env) {
  if (auto relative = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")) {
    std::string path = (*relative)[0] == '/' ? *relative : "/" + *relative;
    return std::optional<std::string>(fmt::format("http://{}{}", kEcsHost, path));
  }
  auto full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (!full) return std::optional<std::string>();
  auto parts = parse_url(*full, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (!parts.ok()) return parts.status();
  const std::string& host = parts->host;
  // Plain http only to addresses that cannot leave the machine or the task's own network
  // namespace: otherwise the authorization token and the credentials travel in the clear.
  bool allowed = parts->scheme == "https" || is_loopback(host) || host == kEcsHost ||
                 host == "169.254.170.23" || host == "fd00:ec2::23";
  if (!allowed) {
    return Status::invalid(fmt::format(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI={}: an http URL must name a loopback address, 169.254.170.2 "
        "(ECS) or 169.254.170.23 / fd00:ec2::23 (EKS Pod Identity); use https for any other host",
        *full));
  }
  return std::optional<std::string>(*full);
}

Result<std::unique_ptr<CredentialProvider>> make_default_chain(ChainOptions options) {
  auto config = SharedConfig::load(options.env);
  if (!config.ok()) return config.status();
  std::string name = SharedConfig::profile_name(options.env, options.profile);
  bool named = !options.profile.empty() || options.env("AWS_PROFILE").has_value();
  std::optional<Profile> profile = config->profile(name);
  if (!profile && named) {
    return config->missing_profile_error(name, options.profile.empty() ? "AWS_PROFILE" : "--profile");
  }
  return std::unique_ptr<CredentialProvider>(
      new Chain(std::move(options), std::move(config).value(), name, std::move(profile), named));
}

}  // namespace mflow::s3
