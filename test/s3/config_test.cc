// The AWS shared-file parser and the precedence of S3 connection settings (environment >
// profile > default), each case with its own temp HOME and environment map.
#include "s3/config.h"

#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "base/file_util.h"
#include "support/temp_dir.h"

namespace mflow::s3 {
namespace {

using Catch::Matchers::Contains;

// A temp HOME with ~/.aws/config and ~/.aws/credentials as given ("" = no file).
class AwsHome {
 public:
  AwsHome(const std::string& config, const std::string& credentials) {
    REQUIRE(base::make_dirs(dir_.path() + "/.aws").ok());
    if (!config.empty()) std::ofstream(config_path()) << config;
    if (!credentials.empty()) std::ofstream(credentials_path()) << credentials;
  }
  std::string home() const { return dir_.path(); }
  std::string config_path() const { return dir_.path() + "/.aws/config"; }
  std::string credentials_path() const { return dir_.path() + "/.aws/credentials"; }
  Env env(std::map<std::string, std::string> vars = {}) const {
    vars.emplace("HOME", home());
    return map_env(std::move(vars));
  }

 private:
  test::TempDir dir_;
};

base::Result<ConnectionSettings> settings(const AwsHome& home, std::map<std::string, std::string> vars = {},
                                          const std::string& profile = "") {
  Env env = home.env(std::move(vars));
  auto config = SharedConfig::load(env);
  if (!config.ok()) return config.status();
  return resolve_connection_settings(*config, env, profile);
}

TEST_CASE("parse_ini: sections, comments, nested settings, CRLF, merged duplicates", "[s3][ini]") {
  auto ini = parse_ini(
      "# a comment\n"
      "; another\n"
      "[default]\r\n"
      "region = eu-west-1\r\n"
      "  \n"
      "[profile   ci]\n"
      "Endpoint_URL=http://127.0.0.1:9000/\n"
      "s3 =\n"
      "  addressing_style = path\n"
      "\tsignature_version = s3v4\n"
      "region = us-west-2\n"
      "[default]\n"
      "output = json\n",
      "cfg");
  REQUIRE(ini.ok());
  REQUIRE(ini->size() == 2);
  const IniSection& def = (*ini)[0];
  CHECK(def.name == "default");
  CHECK(def.values.at("region").value == "eu-west-1");
  CHECK(def.values.at("region").where == "cfg:4");
  CHECK(def.values.at("output").value == "json");  // the second [default] merged in
  const IniSection& ci = (*ini)[1];
  CHECK(ci.name == "profile ci");
  CHECK(ci.values.at("endpoint_url").value == "http://127.0.0.1:9000/");  // keys lower-cased
  CHECK(ci.nested.at("s3").at("addressing_style").value == "path");
  CHECK(ci.nested.at("s3").at("signature_version").value == "s3v4");
  CHECK(ci.values.at("region").value == "us-west-2");  // the nested block ended
}

TEST_CASE("parse_ini: malformed lines are errors naming file:line and what to write", "[s3][ini]") {
  auto before_section = parse_ini("region = x\n", "/h/.aws/config");
  REQUIRE(!before_section.ok());
  CHECK(before_section.status().code() == base::StatusCode::kInvalid);
  CHECK_THAT(before_section.status().message(), Contains("/h/.aws/config:1: a setting before any [section]"));

  auto no_eq = parse_ini("[default]\n\nregion eu-west-1\n", "cfg");
  REQUIRE(!no_eq.ok());
  CHECK_THAT(no_eq.status().message(), Contains("cfg:3: expected '[section]', 'key = value'"));

  auto unclosed = parse_ini("[profile x\n", "cfg");
  REQUIRE(!unclosed.ok());
  CHECK_THAT(unclosed.status().message(), Contains("cfg:1: a section header must end with ']'"));

  auto continued = parse_ini("[default]\nregion = a\n  b = c\n", "cfg");
  REQUIRE(!continued.ok());
  CHECK_THAT(continued.status().message(), Contains("cfg:3: an indented line continues 'region'"));

  auto nested_no_eq = parse_ini("[default]\ns3 =\n  path\n", "cfg");
  REQUIRE(!nested_no_eq.ok());
  CHECK_THAT(nested_no_eq.status().message(), Contains("cfg:3: expected 'key = value' nested under 's3 ='"));
}

TEST_CASE("SharedConfig: profiles from both files, the credentials file winning", "[s3][ini]") {
  AwsHome home("[profile ci]\nregion = eu-central-1\naws_access_key_id = FROMCONFIG\n",
               "[ci]\naws_access_key_id = FROMCREDS\naws_secret_access_key = s\n");
  auto config = SharedConfig::load(home.env());
  REQUIRE(config.ok());
  auto ci = config->profile("ci");
  REQUIRE(ci);
  CHECK(ci->get("aws_access_key_id")->value == "FROMCREDS");
  CHECK(ci->get("aws_access_key_id")->where == home.credentials_path() + ":2");
  CHECK(ci->get("region")->value == "eu-central-1");
  CHECK(!config->profile("default"));
  CHECK(!config->profile("profile ci"));
}

TEST_CASE("SharedConfig: AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE replace the defaults; "
          "missing files are empty", "[s3][ini]") {
  AwsHome home("[default]\nregion = eu-west-1\n", "");
  test::TempDir other;
  std::ofstream(other.path() + "/cfg") << "[default]\nregion = ap-south-1\n";
  auto from_var = settings(home, {{"AWS_CONFIG_FILE", other.path() + "/cfg"}});
  REQUIRE(from_var.ok());
  CHECK(from_var->region == "ap-south-1");

  auto missing = settings(home, {{"AWS_CONFIG_FILE", other.path() + "/none"},
                                 {"AWS_SHARED_CREDENTIALS_FILE", other.path() + "/none2"}});
  REQUIRE(missing.ok());
  CHECK(missing->region == "us-east-1");

  auto broken = settings(home, {{"AWS_SHARED_CREDENTIALS_FILE", other.path() + "/bad"}});
  REQUIRE(broken.ok());  // does not exist yet
  std::ofstream(other.path() + "/bad") << "[default]\nthis is not ini\n";
  broken = settings(home, {{"AWS_SHARED_CREDENTIALS_FILE", other.path() + "/bad"}});
  REQUIRE(!broken.ok());
  CHECK_THAT(broken.status().message(), Contains(other.path() + "/bad:2:"));
}

TEST_CASE("ConnectionSettings: defaults with no files and no environment", "[s3][settings]") {
  AwsHome home("", "");
  auto s = settings(home);
  REQUIRE(s.ok());
  CHECK(s->endpoint == "https://s3.us-east-1.amazonaws.com");
  CHECK(!s->custom_endpoint);
  CHECK(s->region == "us-east-1");
  CHECK(s->addressing == Addressing::kAuto);
  CHECK(s->ca_bundle.empty());
  CHECK(s->profile == "default");
}

TEST_CASE("ConnectionSettings: region precedence AWS_REGION > AWS_DEFAULT_REGION > profile", "[s3][settings]") {
  AwsHome home("[default]\nregion = eu-west-3\n[profile cn]\nregion = cn-north-1\n", "");
  CHECK(settings(home)->region == "eu-west-3");
  CHECK(settings(home)->endpoint == "https://s3.eu-west-3.amazonaws.com");
  CHECK(settings(home, {{"AWS_DEFAULT_REGION", "us-west-1"}})->region == "us-west-1");
  CHECK(settings(home, {{"AWS_DEFAULT_REGION", "us-west-1"}, {"AWS_REGION", "sa-east-1"}})->region == "sa-east-1");
  CHECK(settings(home, {{"AWS_PROFILE", "cn"}})->endpoint == "https://s3.cn-north-1.amazonaws.com.cn");
  auto bad = settings(home, {{"AWS_REGION", "eu west/1"}});
  REQUIRE(!bad.ok());
  CHECK_THAT(bad.status().message(), Contains("AWS_REGION: 'eu west/1' is not a region name"));
}

TEST_CASE("ConnectionSettings: endpoint precedence", "[s3][settings]") {
  AwsHome home(
      "[default]\nendpoint_url = http://profile:1\n"
      "[profile svc]\nendpoint_url = http://profile:1\nservices = local\n"
      "[services local]\ns3 =\n  endpoint_url = http://services:2/\nsts =\n  endpoint_url = http://sts:3\n",
      "");
  CHECK(settings(home)->endpoint == "http://profile:1");
  CHECK(settings(home)->custom_endpoint);
  CHECK(settings(home, {}, "svc")->endpoint == "http://services:2");  // trailing '/' removed
  CHECK(settings(home, {{"AWS_ENDPOINT_URL", "http://all:4"}}, "svc")->endpoint == "http://all:4");
  CHECK(settings(home, {{"AWS_ENDPOINT_URL", "http://all:4"}, {"AWS_ENDPOINT_URL_S3", "https://s3only:5"}}, "svc")
            ->endpoint == "https://s3only:5");
  auto ignored = settings(home, {{"AWS_ENDPOINT_URL", "http://all:4"}, {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"}});
  CHECK(ignored->endpoint == "https://s3.us-east-1.amazonaws.com");
  CHECK(!ignored->custom_endpoint);

  auto bad = settings(home, {{"AWS_ENDPOINT_URL_S3", "minio:9000"}});
  REQUIRE(!bad.ok());
  CHECK_THAT(bad.status().message(), Contains("AWS_ENDPOINT_URL_S3: 'minio:9000' is not a usable URL"));
  AwsHome bad_profile("[default]\nendpoint_url = ftp://x\n", "");
  auto bad2 = settings(bad_profile);
  REQUIRE(!bad2.ok());
  CHECK_THAT(bad2.status().message(), Contains(bad_profile.config_path() + ":2 (endpoint_url)"));
  AwsHome no_services("[default]\nservices = nope\n", "");
  auto bad3 = settings(no_services);
  REQUIRE(!bad3.ok());
  CHECK_THAT(bad3.status().message(), Contains("[services nope] section"));
}

TEST_CASE("ConnectionSettings: addressing from MFLOW_S3_ADDRESSING over the profile's s3 section",
          "[s3][settings]") {
  AwsHome home("[default]\ns3 =\n  addressing_style = virtual\n[profile p]\ns3 =\n  addressing_style = path\n", "");
  CHECK(settings(home)->addressing == Addressing::kVirtual);
  CHECK(settings(home, {{"AWS_PROFILE", "p"}})->addressing == Addressing::kPath);
  CHECK(settings(home, {{"AWS_PROFILE", "p"}, {"MFLOW_S3_ADDRESSING", "auto"}})->addressing == Addressing::kAuto);
  auto bad = settings(home, {{"MFLOW_S3_ADDRESSING", "dns"}});
  REQUIRE(!bad.ok());
  CHECK_THAT(bad.status().message(), Contains("MFLOW_S3_ADDRESSING: addressing style 'dns' is not one of auto, path, virtual"));
  AwsHome bad_file("[default]\ns3 =\n  addressing_style = pathy\n", "");
  auto bad2 = settings(bad_file);
  REQUIRE(!bad2.ok());
  CHECK_THAT(bad2.status().message(), Contains(bad_file.config_path() + ":3"));
}

TEST_CASE("ConnectionSettings: CA bundle AWS_CA_BUNDLE > profile ca_bundle; it must exist", "[s3][settings]") {
  AwsHome home("[default]\nca_bundle = ~/profile-ca.pem\n", "");
  std::ofstream(home.home() + "/profile-ca.pem") << "PEM";
  std::ofstream(home.home() + "/env-ca.pem") << "PEM";
  CHECK(settings(home)->ca_bundle == home.home() + "/profile-ca.pem");
  CHECK(settings(home, {{"AWS_CA_BUNDLE", home.home() + "/env-ca.pem"}})->ca_bundle == home.home() + "/env-ca.pem");
  auto missing = settings(home, {{"AWS_CA_BUNDLE", home.home() + "/nope.pem"}});
  REQUIRE(!missing.ok());
  CHECK_THAT(missing.status().message(), Contains("AWS_CA_BUNDLE: cannot read the CA bundle " + home.home() + "/nope.pem"));
}

TEST_CASE("ConnectionSettings: a profile asked for by name must exist", "[s3][settings]") {
  AwsHome home("[ci]\nregion = x\n[profile dev]\n", "[prod]\n");
  CHECK(settings(home, {{"AWS_PROFILE", "dev"}})->profile == "dev");
  CHECK(settings(home, {}, "prod")->profile == "prod");
  auto missing = settings(home, {{"AWS_PROFILE", "ci"}});
  REQUIRE(!missing.ok());
  CHECK(missing.status().code() == base::StatusCode::kInvalid);
  CHECK_THAT(missing.status().message(), Contains("AWS profile 'ci' (AWS_PROFILE) is not in"));
  CHECK_THAT(missing.status().message(), Contains("profiles there: dev, prod"));
  CHECK_THAT(missing.status().message(), Contains("in the config file a profile is written [profile ci]"));
  auto flag = settings(home, {{"AWS_PROFILE", "dev"}}, "nope");
  REQUIRE(!flag.ok());
  CHECK_THAT(flag.status().message(), Contains("'nope' (--profile)"));
}

TEST_CASE("parse_url: hosts, ports, IPv6, paths", "[s3][settings]") {
  auto u = parse_url("http://[::1]:8080/a/b", "x");
  REQUIRE(u.ok());
  CHECK(u->host == "::1");
  CHECK(u->port == 8080);
  CHECK(u->path == "/a/b");
  CHECK(parse_url("HTTPS://s3.example.com", "x")->path == "/");
  CHECK(!parse_url("https://:80", "x").ok());
  CHECK(!parse_url("https://h:0", "x").ok());
  CHECK(!parse_url("https://h:99999", "x").ok());
  CHECK(!parse_url("https://user:pw@h", "x").ok());
}

}  // namespace
}  // namespace mflow::s3
