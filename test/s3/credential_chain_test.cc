// The default credential chain against real loopback fakes of STS, the container credentials
// endpoint and EC2 instance metadata (test/support/aws/fake_aws.py), and real
// credential_process scripts run through cli's process runner: order of the sources,
// refresh before expiry, one refresh for concurrent callers, and errors that list every
// source and never carry a secret.
#include "s3/credential_chain.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "base/file_util.h"
#include "base/rfc3339.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "cli/s3_access.h"
#include "s3/http_fetch.h"
#include "support/temp_dir.h"

namespace mflow::s3 {
namespace {

using Catch::Matchers::Contains;
using namespace std::chrono_literals;

constexpr const char* kWebToken = "eyJhbGciOiJSUzI1NiJ9.fake-web-identity.sig";
constexpr const char* kRole = "arn:aws:iam::123456789012:role/mflow";
constexpr const char* kContainerToken = "fakeContainerAuthToken";

// Every secret a test hands out or configures; none may appear in any error message.
const std::vector<std::string> kSecrets = {"fakeSecret", "fakeToken", kContainerToken, kWebToken,
                                           "envSecretValue", "profileSecretValue", "processSecretValue"};

void check_no_secret(const std::string& text) {
  for (const auto& secret : kSecrets) {
    INFO("message: " << text);
    CHECK(text.find(secret) == std::string::npos);
  }
}

// Starts fake_aws.py and stops it (by its pid) at the end of the test.
class FakeAws {
 public:
  explicit FakeAws(const std::string& args = "") {
    std::string src = std::string(MFLOW_SOURCE_DIR) + "/test/support/aws/fake_aws.py";
    std::string cmd = "python3 " + src + " --port-file " + dir_.path() + "/port --log " + log_path() +
                      " --exit-with-pid " + std::to_string(::getpid()) + " " + args + " > " + dir_.path() +
                      "/server.out 2>&1 & echo $! > " + dir_.path() + "/pid";
    REQUIRE(std::system(cmd.c_str()) == 0);
    pid_ = std::stoi(base::read_file(dir_.path() + "/pid").value());
    for (int i = 0; i < 400 && !base::read_file(dir_.path() + "/port").ok(); ++i) std::this_thread::sleep_for(25ms);
    auto port = base::read_file(dir_.path() + "/port");
    auto out = base::read_file(dir_.path() + "/server.out");
    INFO("fake_aws output: " << (out.ok() ? *out : std::string()));
    REQUIRE(port.ok());
    url_ = (args.find("--tls-cert") != std::string::npos ? "https" : "http") + std::string("://127.0.0.1:") + *port;
  }
  ~FakeAws() { stop(); }
  void stop() {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
    pid_ = -1;
  }
  const std::string& url() const { return url_; }
  /// The directory for files the test makes next to the fake (certificates).
  const std::string& dir() const { return dir_.path(); }
  std::string log_path() const { return dir_.path() + "/requests.log"; }
  /// The requests served, one "METHOD PATH STATUS" each.
  std::vector<std::string> requests() const {
    auto text = base::read_file(log_path());
    std::vector<std::string> lines;
    if (!text.ok()) return lines;
    for (auto& line : base::split(*text, '\n')) {
      if (!line.empty()) lines.push_back(line);
    }
    return lines;
  }

 private:
  test::TempDir dir_;
  int pid_ = -1;
  std::string url_;
};

// A temp HOME with optional ~/.aws files, plus the environment of one case. IMDS is off unless
// a case points it somewhere, so no test ever reaches for 169.254.169.254.
class Setup {
 public:
  Setup(const std::string& config = "", const std::string& credentials = "") {
    REQUIRE(base::make_dirs(home() + "/.aws").ok());
    if (!config.empty()) std::ofstream(home() + "/.aws/config") << config;
    if (!credentials.empty()) std::ofstream(home() + "/.aws/credentials") << credentials;
    vars["HOME"] = home();
    vars["AWS_EC2_METADATA_DISABLED"] = "true";
  }
  std::string home() const { return dir_.path(); }
  std::string write(const std::string& name, const std::string& text, bool executable = false) const {
    std::string path = home() + "/" + name;
    std::ofstream(path) << text;
    if (executable) ::chmod(path.c_str(), 0755);
    return path;
  }
  ChainOptions options() const {
    ChainOptions o;
    o.env = map_env(vars);
    o.run_process = cli::credential_process_runner();
    o.now = [offset = &offset_] { return Clock::now() + std::chrono::seconds(offset->load()); };
    return o;
  }
  std::unique_ptr<CredentialProvider> chain() const {
    auto c = make_default_chain(options());
    INFO((c.ok() ? std::string() : c.status().message()));
    REQUIRE(c.ok());
    return std::move(c).value();
  }
  /// Moves the chain's clock forward, and the fake's (a FakeAws given --clock-file clock_file()).
  void advance(std::chrono::seconds s) {
    offset_ += s.count();
    std::ofstream(clock_file()) << offset_.load();
  }
  std::string clock_file() const { return home() + "/clock"; }

  std::map<std::string, std::string> vars;

 private:
  test::TempDir dir_;
  std::atomic<int64_t> offset_{0};
};

// Temporary credentials as expected, good for about an hour.
void check_hour_long(const base::Result<Credentials>& creds, const std::string& id, const std::string& secret,
                     const std::string& token) {
  INFO((creds.ok() ? "" : creds.status().message()));
  REQUIRE(creds.ok());
  CHECK(creds->access_key_id == id);
  CHECK(creds->secret_access_key == secret);
  CHECK(creds->session_token == token);
  REQUIRE(creds->expiration);
  CHECK(*creds->expiration > Clock::now() + std::chrono::minutes(50));
}

// Points the container credentials source at the fake, with the right token.
void use_agent(Setup& setup, const FakeAws& agent) {
  setup.vars["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = agent.url() + "/v2/credentials/fake";
  setup.vars["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = kContainerToken;
}

// The error of a chain that must fail; checks that no secret is in it.
base::Status chain_error(const Setup& setup) {
  auto chain = make_default_chain(setup.options());
  if (!chain.ok()) {
    check_no_secret(chain.status().message());
    return chain.status();
  }
  auto creds = (*chain)->get();
  REQUIRE(!creds.ok());
  check_no_secret(creds.status().message());
  return creds.status();
}

TEST_CASE("chain: environment keys come first, with the session token", "[s3][creds]") {
  Setup setup("", "[default]\naws_access_key_id = PROFILEKEY\naws_secret_access_key = profileSecretValue\n");
  setup.vars["AWS_ACCESS_KEY_ID"] = "ENVKEY";
  setup.vars["AWS_SECRET_ACCESS_KEY"] = "envSecretValue";
  setup.vars["AWS_SESSION_TOKEN"] = "envToken";
  auto creds = setup.chain()->get();
  REQUIRE(creds.ok());
  CHECK(creds->access_key_id == "ENVKEY");
  CHECK(creds->secret_access_key == "envSecretValue");
  CHECK(creds->session_token == "envToken");
  CHECK(!creds->expiration);
  CHECK(creds->source == "environment (AWS_ACCESS_KEY_ID)");

  setup.vars.erase("AWS_ACCESS_KEY_ID");
  setup.vars.erase("AWS_SECRET_ACCESS_KEY");
  auto from_profile = setup.chain()->get();
  REQUIRE(from_profile.ok());
  CHECK(from_profile->access_key_id == "PROFILEKEY");
  CHECK(from_profile->session_token.empty());
  CHECK_THAT(from_profile->source, Contains("profile default (" + setup.home() + "/.aws/credentials:2)"));
}

TEST_CASE("chain: half-set keys are errors naming what is missing, never the secret", "[s3][creds]") {
  Setup setup;
  setup.vars["AWS_SECRET_ACCESS_KEY"] = "envSecretValue";
  auto env_error = chain_error(setup);
  CHECK(env_error.code() == base::StatusCode::kInvalid);
  CHECK_THAT(env_error.message(), Contains("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"));

  Setup profile("", "[default]\n\naws_secret_access_key = profileSecretValue\n");
  auto profile_error = chain_error(profile);
  CHECK(profile_error.code() == base::StatusCode::kInvalid);
  CHECK_THAT(profile_error.message(), Contains(profile.home() + "/.aws/credentials:3: profile default has "
                                               "aws_secret_access_key but no aws_access_key_id"));
}

TEST_CASE("chain: AWS_PROFILE picks the profile; a missing one is an error at construction", "[s3][creds]") {
  Setup setup("[profile ci]\nregion = eu-west-1\n", "[ci]\naws_access_key_id = CIKEY\naws_secret_access_key = s\n");
  setup.vars["AWS_PROFILE"] = "ci";
  auto creds = setup.chain()->get();
  REQUIRE(creds.ok());
  CHECK(creds->access_key_id == "CIKEY");
  setup.vars["AWS_PROFILE"] = "nope";
  auto missing = make_default_chain(setup.options());
  REQUIRE(!missing.ok());
  CHECK_THAT(missing.status().message(), Contains("AWS profile 'nope' (AWS_PROFILE) is not in"));
  ChainOptions explicit_profile = setup.options();
  explicit_profile.profile = "ci";
  CHECK((*make_default_chain(explicit_profile))->get()->access_key_id == "CIKEY");
}

TEST_CASE("chain: nothing configured lists every source tried (kNotFound)", "[s3][creds]") {
  Setup setup("[default]\nregion = eu-west-1\n");
  auto error = chain_error(setup);
  CHECK(error.code() == base::StatusCode::kNotFound);
  const std::string& m = error.message();
  CHECK_THAT(m, Contains("no AWS credentials for S3; tried, in order:"));
  CHECK_THAT(m, Contains("environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"));
  CHECK_THAT(m, Contains("web identity: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE are not set"));
  CHECK_THAT(m, Contains("shared profile: profile default ([default] in " + setup.home() +
                         "/.aws/config:1) has no aws_access_key_id, credential_process or role_arn"));
  CHECK_THAT(m, Contains("container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and "
                         "AWS_CONTAINER_CREDENTIALS_FULL_URI are not set"));
  CHECK_THAT(m, Contains("EC2 instance metadata: AWS_EC2_METADATA_DISABLED=true"));
  CHECK(m.find("environment") < m.find("web identity"));
  CHECK(m.find("web identity") < m.find("shared profile"));
  CHECK(m.find("shared profile") < m.find("container credentials"));
  CHECK(m.find("container credentials") < m.find("EC2 instance metadata"));
}

TEST_CASE("chain: SSO and MFA profiles are refused with the workaround", "[s3][creds]") {
  Setup setup("[profile sso]\nsso_session = corp\nsso_account_id = 1\n"
              "[profile mfa]\nrole_arn = arn:aws:iam::1:role/admin\nsource_profile = sso\nmfa_serial = arn:mfa\n");
  setup.vars["AWS_PROFILE"] = "sso";
  auto sso = chain_error(setup);
  CHECK(sso.code() == base::StatusCode::kInvalid);
  CHECK_THAT(sso.message(), Contains("IAM Identity Center (SSO)"));
  CHECK_THAT(sso.message(), Contains("aws configure export-credentials --profile sso --format process"));
  setup.vars["AWS_PROFILE"] = "mfa";
  CHECK_THAT(chain_error(setup).message(), Contains(setup.home() + "/.aws/config:7: profile mfa needs an MFA code"));
}

TEST_CASE("chain: role_arn + source_profile assumes the role with STS AssumeRole, signed (checked "
          "with botocore)", "[s3][creds]") {
  FakeAws sts("--role-arn arn:aws:iam::123456789012:role/admin,arn:aws:iam::123456789012:role/deeper");
  Setup setup("[profile base]\nregion = eu-west-1\n"
              "[profile admin]\nrole_arn = arn:aws:iam::123456789012:role/admin\nsource_profile = base\n"
              "external_id = ext-1\nrole_session_name = ci\n"
              "[profile deeper]\nrole_arn = arn:aws:iam::123456789012:role/deeper\nsource_profile = admin\n"
              "[profile wrong]\nrole_arn = arn:aws:iam::123456789012:role/admin\nsource_profile = badkeys\n"
              "[profile loop1]\nrole_arn = arn:aws:iam::123456789012:role/admin\nsource_profile = loop2\n"
              "[profile loop2]\nrole_arn = arn:aws:iam::123456789012:role/admin\nsource_profile = loop1\n"
              "[profile fromecs]\nrole_arn = arn:aws:iam::123456789012:role/admin\ncredential_source = EcsContainer\n"
              "[profile nosource]\nrole_arn = arn:aws:iam::123456789012:role/admin\nsource_profile = ghost\n",
              "[base]\naws_access_key_id = AKIDSOURCE\naws_secret_access_key = sourceSecretValue\n"
              "[badkeys]\naws_access_key_id = AKIDSOURCE\naws_secret_access_key = profileSecretValue\n");
  setup.vars["AWS_ENDPOINT_URL_STS"] = sts.url();
  setup.vars["AWS_PROFILE"] = "admin";
  auto creds = setup.chain()->get();
  check_hour_long(creds, "ASIAFAKE0001", "fakeSecret0001", "fakeToken0001");
  CHECK_THAT(creds->source, Contains("role arn:aws:iam::123456789012:role/admin assumed for profile admin with "
                                     "profile base"));
  CHECK(sts.requests() == std::vector<std::string>{"POST / 200"});

  // Two hops: base's keys assume admin, whose temporary credentials assume deeper.
  setup.vars["AWS_PROFILE"] = "deeper";
  check_hour_long(setup.chain()->get(), "ASIAFAKE0003", "fakeSecret0003", "fakeToken0003");
  CHECK(sts.requests().size() == 3);

  // The secret is wrong: STS's answer, never the secret.
  setup.vars["AWS_PROFILE"] = "wrong";
  auto wrong = chain_error(setup);
  CHECK(wrong.code() == base::StatusCode::kInvalid);
  CHECK_THAT(wrong.message(), Contains("STS answered HTTP 403 SignatureDoesNotMatch"));
  CHECK_THAT(wrong.message(), Contains("assuming role arn:aws:iam::123456789012:role/admin for profile wrong with "
                                       "source_profile badkeys"));

  setup.vars["AWS_PROFILE"] = "loop1";
  CHECK_THAT(chain_error(setup).message(), Contains("source_profile goes round in a circle: loop1 -> loop2 -> loop1"));
  setup.vars["AWS_PROFILE"] = "nosource";
  CHECK_THAT(chain_error(setup).message(), Contains("AWS profile 'ghost' (source_profile at "));

  // credential_source = EcsContainer: the container's credentials sign AssumeRole.
  setup.vars["AWS_PROFILE"] = "fromecs";
  use_agent(setup, sts);
  auto via_ecs = setup.chain()->get();
  check_hour_long(via_ecs, "ASIAFAKE0005", "fakeSecret0005", "fakeToken0005");
  CHECK_THAT(via_ecs->source, Contains("with container credentials from " + sts.url()));
}

TEST_CASE("chain: credential_process (JSON Version 1, Expiration) through the process runner",
          "[s3][creds]") {
  Setup setup;
  std::string script = setup.write("creds.sh",
                                   "#!/bin/sh\n"
                                   "n=$(cat \"$(dirname \"$0\")/count\" 2>/dev/null || echo 0); n=$((n+1)); "
                                   "echo $n > \"$(dirname \"$0\")/count\"\n"
                                   "cat <<EOF\n{\"Version\": 1, \"AccessKeyId\": \"PROC$n\", "
                                   "\"SecretAccessKey\": \"processSecretValue\", \"SessionToken\": \"tok\", "
                                   "\"Expiration\": \"$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)\"}\nEOF\n",
                                   true);
  setup.write(".aws/config", "[default]\ncredential_process = " + script + " --profile x\n");
  auto chain = setup.chain();
  auto creds = chain->get();
  check_hour_long(creds, "PROC1", "processSecretValue", "tok");
  CHECK_THAT(creds->source, Contains("credential_process of profile default (" + setup.home() + "/.aws/config:2)"));
  CHECK(chain->get()->access_key_id == "PROC1");  // cached: an hour is left
  setup.advance(40min);                            // 20 minutes left: inside no window yet
  CHECK(chain->get()->access_key_id == "PROC1");
  setup.advance(16min);  // 4 minutes left: refreshed 5 minutes ahead
  CHECK(chain->get()->access_key_id == "PROC2");
}

TEST_CASE("chain: credential_process failures say what happened without the output", "[s3][creds]") {
  Setup setup;
  auto run = [&](const std::string& body) {
    std::string script = setup.write("p.sh", "#!/bin/sh\n" + body, true);
    setup.write(".aws/config", "[default]\ncredential_process = " + script + "\n");
    return chain_error(setup);
  };
  auto failed = run("echo 'token expired, run aws sso login' >&2\nexit 3\n");
  CHECK(failed.code() == base::StatusCode::kUnavailable);
  CHECK_THAT(failed.message(), Contains("exited with status 3: token expired, run aws sso login"));

  auto not_json = run("echo '{\"Version\": 1, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"processSecretValue\"'\n");
  CHECK_THAT(not_json.message(), Contains("the answer is not valid JSON (syntax error at byte"));

  auto version = run("echo '{\"Version\": 2, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"processSecretValue\"}'\n");
  CHECK_THAT(version.message(), Contains("\"Version\": 1"));

  auto no_secret = run("echo '{\"Version\": 1, \"AccessKeyId\": \"A\"}'\n");
  CHECK_THAT(no_secret.message(), Contains("the answer lacks SecretAccessKey"));

  auto expired = run("echo '{\"Version\": 1, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"processSecretValue\", "
                     "\"Expiration\": \"2001-01-01T00:00:00Z\"}'\n");
  CHECK_THAT(expired.message(), Contains("expired at 2001-01-01 00:00:00 UTC already"));

  auto missing = run("exec /nonexistent/credential-helper\n");
  CHECK_THAT(missing.message(), Contains("exited with status 127"));

  // A helper that hangs (waiting for a browser login, say) is killed at the timeout.
  std::string script = setup.write("hang.sh", "#!/bin/sh\nsleep 30\n", true);
  setup.write(".aws/config", "[default]\ncredential_process = " + script + "\n");
  ChainOptions o = setup.options();
  o.process_timeout = 1s;
  auto start = std::chrono::steady_clock::now();
  auto hung = (*make_default_chain(o))->get();
  REQUIRE(!hung.ok());
  CHECK_THAT(hung.status().message(), Contains("did not finish within 1 s and was killed"));
  CHECK(std::chrono::steady_clock::now() - start < 20s);
}

TEST_CASE("chain: web identity from the environment against STS (AssumeRoleWithWebIdentity)", "[s3][creds]") {
  FakeAws sts;
  Setup setup;
  setup.vars["AWS_ROLE_ARN"] = kRole;
  setup.vars["AWS_WEB_IDENTITY_TOKEN_FILE"] = setup.write("token", std::string(kWebToken) + "\n");
  setup.vars["AWS_ENDPOINT_URL_STS"] = sts.url();
  setup.vars["AWS_ROLE_SESSION_NAME"] = "ci-run";
  auto creds = setup.chain()->get();
  check_hour_long(creds, "ASIAFAKE0001", "fakeSecret0001", "fakeToken0001");
  CHECK_THAT(creds->source, Contains("web identity (role " + std::string(kRole)));
  CHECK(sts.requests() == std::vector<std::string>{"POST / 200"});

  // A wrong token: STS's ErrorResponse, its Code and Message, never the token.
  setup.vars["AWS_WEB_IDENTITY_TOKEN_FILE"] = setup.write("token2", "eyJwrong");
  auto bad_token = chain_error(setup);
  CHECK(bad_token.code() == base::StatusCode::kInvalid);
  CHECK_THAT(bad_token.message(), Contains("STS answered HTTP 400 InvalidIdentityToken: Couldn't retrieve"));
  setup.vars["AWS_WEB_IDENTITY_TOKEN_FILE"] = setup.home() + "/token";
  setup.vars["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/other";
  CHECK_THAT(chain_error(setup).message(), Contains("STS answered HTTP 403 AccessDenied"));
  setup.vars["AWS_WEB_IDENTITY_TOKEN_FILE"] = setup.home() + "/no-token";
  CHECK_THAT(chain_error(setup).message(), Contains(setup.home() + "/no-token"));
  setup.vars.erase("AWS_WEB_IDENTITY_TOKEN_FILE");
  CHECK_THAT(chain_error(setup).message(),
             Contains("AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not"));
}

// Throwaway certificates for 127.0.0.1 (fake_kube's script): DIR/ca.crt, server.*, other-ca.crt.
std::string mint_certs(const std::string& dir) {
  std::string certs = dir + "/certs";
  std::string cmd = "bash " + std::string(MFLOW_SOURCE_DIR) + "/test/support/fake_kube/mkcerts.sh " + certs;
  REQUIRE(std::system(cmd.c_str()) == 0);
  return certs;
}

TEST_CASE("chain: STS over https is verified against AWS_CA_BUNDLE, and only it", "[s3][creds]") {
  test::TempDir tls;
  std::string certs = mint_certs(tls.path());
  FakeAws sts("--tls-cert " + certs + "/server.crt --tls-key " + certs + "/server.key");
  REQUIRE(base::starts_with(sts.url(), "https://"));
  Setup setup;
  setup.vars["AWS_ROLE_ARN"] = kRole;
  setup.vars["AWS_WEB_IDENTITY_TOKEN_FILE"] = setup.write("token", kWebToken);
  setup.vars["AWS_ENDPOINT_URL_STS"] = sts.url();
  setup.vars["AWS_CA_BUNDLE"] = certs + "/ca.crt";
  check_hour_long(setup.chain()->get(), "ASIAFAKE0001", "fakeSecret0001", "fakeToken0001");
  // An unrelated CA: the handshake fails and nothing is sent.
  setup.vars["AWS_CA_BUNDLE"] = certs + "/other-ca.crt";
  auto wrong_ca = chain_error(setup);
  CHECK(wrong_ca.code() == base::StatusCode::kUnavailable);
  CHECK_THAT(wrong_ca.message(), Contains("STS AssumeRoleWithWebIdentity at " + sts.url()));
  // No bundle: the system store does not know the test CA either.
  setup.vars.erase("AWS_CA_BUNDLE");
  CHECK(chain_error(setup).code() == base::StatusCode::kUnavailable);
  CHECK(sts.requests().size() == 1);
}

TEST_CASE("chain: web identity from a profile (role_arn + web_identity_token_file), STS endpoint "
          "from the services section", "[s3][creds]") {
  FakeAws sts;
  Setup setup;
  setup.write("token", kWebToken);
  setup.write(".aws/config", "[default]\nrole_arn = " + std::string(kRole) +
                                 "\nweb_identity_token_file = ~/token\nservices = fake\n"
                                 "[services fake]\nsts =\n  endpoint_url = " + sts.url() + "\n");
  auto creds = setup.chain()->get();
  INFO((creds.ok() ? "" : creds.status().message()));
  REQUIRE(creds.ok());
  CHECK(creds->access_key_id == "ASIAFAKE0001");
  CHECK_THAT(creds->source, Contains("profile default at " + setup.home() + "/.aws/config:3"));
  // STS down: an error naming the endpoint.
  sts.stop();
  std::this_thread::sleep_for(200ms);
  CHECK_THAT(chain_error(setup).message(), Contains("STS AssumeRoleWithWebIdentity at " + sts.url()));
}

TEST_CASE("chain: container credentials with the authorization token file", "[s3][creds]") {
  FakeAws agent;
  Setup setup;
  setup.vars["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = agent.url() + "/v2/credentials/fake";
  setup.vars["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = setup.write("auth", std::string(kContainerToken) + "\n");
  auto creds = setup.chain()->get();
  INFO((creds.ok() ? "" : creds.status().message()));
  REQUIRE(creds.ok());
  CHECK(creds->access_key_id == "ASIAFAKE0001");
  CHECK(creds->session_token == "fakeToken0001");
  CHECK(creds->expiration);

  // The token from the variable when there is no file; a wrong one gets the agent's 401.
  setup.vars.erase("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  setup.vars["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = kContainerToken;
  CHECK(setup.chain()->get()->access_key_id == "ASIAFAKE0002");
  setup.vars["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "wrong";
  CHECK_THAT(chain_error(setup).message(), Contains("the endpoint answered HTTP 401"));
  setup.vars.erase("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  CHECK_THAT(chain_error(setup).message(), Contains("the endpoint answered HTTP 401"));
  // The SDKs' rule for plain http: loopback, ECS or EKS Pod Identity addresses only.
  setup.vars["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://10.1.2.3/creds";
  auto far = chain_error(setup);
  CHECK(far.code() == base::StatusCode::kInvalid);
  CHECK_THAT(far.message(), Contains("an http URL must name a loopback address"));
}

TEST_CASE("container_credentials_url: relative URI, allowed full URIs", "[s3][creds]") {
  auto url = [](std::map<std::string, std::string> vars) { return container_credentials_url(map_env(vars)); };
  CHECK(!url({})->has_value());
  CHECK(url({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc"}})->value() ==
        "http://169.254.170.2/v2/credentials/abc");
  CHECK(url({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/r"}, {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://x"}})
            ->value() == "http://169.254.170.2/r");
  for (const char* ok : {"http://169.254.170.23/v1/credentials", "http://[fd00:ec2::23]/v1/credentials",
                         "http://localhost:51679/", "http://127.0.0.5/c", "http://[::1]:8/c", "https://creds.example.com/c"}) {
    INFO(ok);
    CHECK(url({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", ok}}).ok());
  }
  for (const char* bad : {"http://169.254.169.254/", "http://example.com/c", "http://127.0.0.1.evil.com/", "file:///x"}) {
    INFO(bad);
    CHECK(!url({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", bad}}).ok());
  }
}

TEST_CASE("chain: EC2 instance metadata, IMDSv2 (token first; without it 401)", "[s3][creds]") {
  FakeAws imds;
  // The fake is faithful: the credentials path refuses a request without a session token.
  HttpRequest bare;
  bare.url = imds.url() + "/latest/meta-data/iam/security-credentials/";
  auto refused = http_fetch(bare);
  REQUIRE(refused.ok());
  CHECK(refused->status == 401);

  Setup setup;
  setup.vars.erase("AWS_EC2_METADATA_DISABLED");
  setup.vars["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.url() + "/";
  auto creds = setup.chain()->get();
  INFO((creds.ok() ? "" : creds.status().message()));
  REQUIRE(creds.ok());
  CHECK(creds->access_key_id == "ASIAFAKE0001");
  CHECK(creds->session_token == "fakeToken0001");
  CHECK_THAT(creds->source, Contains("(role mflow-node-role)"));
  CHECK(imds.requests() == std::vector<std::string>{"GET /latest/meta-data/iam/security-credentials/ 401",
                                                     "PUT /latest/api/token 200",
                                                     "GET /latest/meta-data/iam/security-credentials/ 200",
                                                     "GET /latest/meta-data/iam/security-credentials/mflow-node-role 200"});
}

TEST_CASE("chain: an unreachable or silent IMDS gives up within its budget", "[s3][creds]") {
  // A socket that accepts connections (the kernel's backlog) and never answers.
  base::UniqueFd silent(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(silent.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(silent.get(), 8) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(silent.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);

  Setup setup;
  setup.vars.erase("AWS_EC2_METADATA_DISABLED");
  setup.vars["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  auto start = std::chrono::steady_clock::now();
  auto error = chain_error(setup);
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(error.code() == base::StatusCode::kNotFound);
  CHECK_THAT(error.message(), Contains("EC2 instance metadata: no instance metadata service at http://127.0.0.1:"));
  CHECK(took < 4s);  // the budget is 2 s; generous for a loaded machine
}

TEST_CASE("chain: temporary credentials are refreshed ahead of expiry; invalidate() drops them",
          "[s3][creds]") {
  Setup setup;
  FakeAws agent("--expires-in 600 --clock-file " + setup.clock_file());
  use_agent(setup, agent);
  auto chain = setup.chain();
  CHECK(chain->get()->access_key_id == "ASIAFAKE0001");
  setup.advance(200s);  // 400 s left: more than the 300 s refresh window
  CHECK(chain->get()->access_key_id == "ASIAFAKE0001");
  CHECK(agent.requests().size() == 1);
  setup.advance(110s);  // 290 s left
  CHECK(chain->get()->access_key_id == "ASIAFAKE0002");
  CHECK(agent.requests().size() == 2);
  chain->invalidate();
  CHECK(chain->get()->access_key_id == "ASIAFAKE0003");

  // The agent goes away: the credentials in hand serve until they expire, then an error.
  agent.stop();
  std::this_thread::sleep_for(200ms);
  setup.advance(400s);  // 200 s left of ASIAFAKE0003's 600: due for refresh, which fails
  CHECK(chain->get()->access_key_id == "ASIAFAKE0003");
  setup.advance(300s);
  auto gone = chain->get();
  REQUIRE(!gone.ok());
  check_no_secret(gone.status().message());
  CHECK_THAT(gone.status().message(), Contains("container credentials from " + agent.url()));
}

TEST_CASE("chain: credentials that live seconds are refreshed at half their lifetime", "[s3][creds]") {
  FakeAws agent("--expires-in 4");
  Setup setup;
  use_agent(setup, agent);
  auto chain = setup.chain();
  auto first = chain->get();
  REQUIRE(first.ok());
  CHECK(first->access_key_id == "ASIAFAKE0001");
  // The server's Expiration has second precision: refresh is due at most 2 s after the fetch.
  std::this_thread::sleep_for(2500ms);
  auto second = chain->get();
  REQUIRE(second.ok());
  CHECK(second->access_key_id == "ASIAFAKE0002");
  CHECK(*second->expiration > Clock::now());
}

TEST_CASE("chain: concurrent callers share one refresh", "[s3][creds]") {
  FakeAws agent("--delay 0.5");
  Setup setup;
  use_agent(setup, agent);
  auto chain = setup.chain();
  std::vector<std::string> keys(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < keys.size(); ++i) {
    threads.emplace_back([&, i] {
      auto c = chain->get();
      keys[i] = c.ok() ? c->access_key_id : c.status().message();
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& k : keys) CHECK(k == "ASIAFAKE0001");
  CHECK(agent.requests().size() == 1);
}

TEST_CASE("parse_sts_response and RFC 3339 expiry times", "[s3][creds]") {
  auto throttled = parse_sts_response(
      400, "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
      "w");
  CHECK(throttled.status().code() == base::StatusCode::kUnavailable);
  CHECK(parse_sts_response(503, "", "w").status().code() == base::StatusCode::kUnavailable);
  auto no_creds = parse_sts_response(200, "<AssumeRoleWithWebIdentityResponse/>", "w");
  CHECK_THAT(no_creds.status().message(), Contains("without a Credentials element"));
  auto entities = parse_sts_response(
      200, "<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>a&amp;b&lt;</SecretAccessKey>"
           "<SessionToken>t</SessionToken><Expiration>2030-01-01T00:00:00.000Z</Expiration></Credentials>",
      "w");
  REQUIRE(entities.ok());
  CHECK(entities->secret_access_key == "a&b<");
  CHECK(Clock::to_time_t(*entities->expiration) == 1893456000);
  CHECK(Clock::to_time_t(*base::parse_rfc3339("2030-01-01T02:00:00+02:00")) == 1893456000);
  CHECK(!base::parse_rfc3339("2030-01-01 00:00:00"));
  CHECK(!base::parse_rfc3339("tomorrow"));
}

}  // namespace
}  // namespace mflow::s3

namespace mflow::cli {
namespace {

using Catch::Matchers::Contains;

// Sets (or with nullptr unsets) environment variables for one test, restoring them after.
class ScopedEnv {
 public:
  explicit ScopedEnv(std::map<std::string, const char*> vars) {
    for (const auto& [name, value] : vars) {
      const char* old = std::getenv(name.c_str());
      saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
      value ? ::setenv(name.c_str(), value, 1) : ::unsetenv(name.c_str());
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) value ? ::setenv(name.c_str(), value->c_str(), 1) : ::unsetenv(name.c_str());
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST_CASE("resolve_s3_access: settings and chain from the process environment and a profile flag",
          "[s3][creds]") {
  test::TempDir dir;
  std::string cfg = dir.path() + "/config";
  std::ofstream(cfg) << "[profile store]\nregion = eu-north-1\nendpoint_url = http://127.0.0.1:9000\n"
                        "s3 =\n  addressing_style = path\n"
                        "credential_process = echo '{\"Version\": 1, \"AccessKeyId\": \"PROCKEY\", "
                        "\"SecretAccessKey\": \"processSecretValue\"}'\n";
  ScopedEnv env({{"AWS_CONFIG_FILE", cfg.c_str()}, {"AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"},
                 {"AWS_PROFILE", "elsewhere"}, {"AWS_ACCESS_KEY_ID", nullptr}, {"AWS_SECRET_ACCESS_KEY", nullptr},
                 {"AWS_ROLE_ARN", nullptr}, {"AWS_WEB_IDENTITY_TOKEN_FILE", nullptr}, {"AWS_REGION", nullptr},
                 {"AWS_DEFAULT_REGION", nullptr}, {"AWS_ENDPOINT_URL", nullptr}, {"AWS_ENDPOINT_URL_S3", nullptr},
                 {"MFLOW_S3_ADDRESSING", nullptr}, {"AWS_CA_BUNDLE", nullptr}});
  auto access = resolve_s3_access("store");  // the flag wins over AWS_PROFILE
  INFO((access.ok() ? "" : access.status().message()));
  REQUIRE(access.ok());
  CHECK(access->settings.profile == "store");
  CHECK(access->settings.region == "eu-north-1");
  CHECK(access->settings.endpoint == "http://127.0.0.1:9000");
  CHECK(access->settings.addressing == s3::Addressing::kPath);
  auto creds = access->credentials->get();
  REQUIRE(creds.ok());
  CHECK(creds->access_key_id == "PROCKEY");
  auto missing = resolve_s3_access();
  REQUIRE(!missing.ok());
  CHECK_THAT(missing.status().message(), Contains("AWS profile 'elsewhere' (AWS_PROFILE) is not in " + cfg));
}

}  // namespace
}  // namespace mflow::cli
