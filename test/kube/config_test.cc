#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "base/file_util.h"
#include "kube/config.h"
#include "kube/credentials.h"
#include "support/temp_dir.h"

namespace mflow::kube {
namespace {

using Catch::Matchers::Contains;

void write(const std::string& path, const std::string& text, bool executable = false) {
  std::ofstream(path) << text;
  if (executable) ::chmod(path.c_str(), 0755);
}

std::string read(const std::string& path) {
  auto r = base::read_file(path);
  return r.ok() ? *r : "";
}

// base64 of "CA-PEM\n" and "TOKEN-DATA".
constexpr const char* kCaPemB64 = "Q0EtUEVNCg==";

TEST_CASE("kubeconfig: KUBECONFIG files merge, first file to set a key wins", "[kube]") {
  test::TempDir dir;
  const std::string a = dir.path() + "/a.yaml", b = dir.path() + "/b.yaml";
  write(a, R"(apiVersion: v1
kind: Config
current-context: ctx-a
clusters:
- name: shared
  cluster: {server: "https://a.example:6443"}
contexts:
- name: ctx-a
  context: {cluster: shared, user: dev, namespace: team-a}
users:
- name: dev
  user: {token: token-from-a}
)");
  write(b, R"(current-context: ctx-b
clusters:
- name: shared
  cluster: {server: "https://b.example:6443"}
- name: other
  cluster: {server: "https://other.example"}
contexts:
- name: ctx-b
  context: {cluster: other, user: dev}
users:
- name: dev
  user: {token: token-from-b}
)");
  LoadOptions o;
  o.kubeconfig_env = dir.path() + "/missing.yaml::" + a + ":" + b;
  auto c = load_config(o);
  REQUIRE(c.ok());
  CHECK(c->context == "ctx-a");
  CHECK(c->server == "https://a.example:6443");
  CHECK(c->auth == AuthMethod::kToken);
  CHECK(c->token == "token-from-a");
  CHECK(c->default_namespace == "team-a");
  CHECK_THAT(c->source, Contains("ctx-a") && Contains(a));

  SECTION("--kubernetes-context selects a context of the second file") {
    o.context = "ctx-b";
    auto cb = load_config(o);
    REQUIRE(cb.ok());
    CHECK(cb->server == "https://other.example");
    CHECK(cb->token == "token-from-a");  // user "dev" of the first file wins
    CHECK(cb->default_namespace == "default");
  }
  SECTION("an unknown context is an error naming the choices") {
    o.context = "ctx-c";
    auto bad = load_config(o);
    REQUIRE(!bad.ok());
    CHECK_THAT(bad.status().message(),
               Contains("--kubernetes-context \"ctx-c\" is not defined") && Contains("ctx-a, ctx-b"));
  }
  SECTION("the order of KUBECONFIG decides") {
    o.kubeconfig_env = b + ":" + a;
    auto cb = load_config(o);
    REQUIRE(cb.ok());
    CHECK(cb->context == "ctx-b");
    CHECK(cb->token == "token-from-b");
  }
}

TEST_CASE("kubeconfig: ~/.kube/config by default; relative paths resolve against the file", "[kube]") {
  test::TempDir dir;
  base::make_dirs(dir.path() + "/.kube/certs");
  write(dir.path() + "/.kube/certs/ca.crt", "CA-FROM-FILE\n");
  write(dir.path() + "/.kube/certs/client.crt", "CERT\n");
  write(dir.path() + "/.kube/certs/client.key", "KEY\n");
  write(dir.path() + "/.kube/tok", "file-token\n");
  write(dir.path() + "/.kube/config", R"(current-context: c
clusters:
- name: k
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority: certs/ca.crt
    tls-server-name: kubernetes.default
contexts:
- name: c
  context: {cluster: k, user: u}
users:
- name: u
  user:
    client-certificate: certs/client.crt
    client-key: certs/client.key
    tokenFile: tok
)");
  LoadOptions o;
  o.home = dir.path();
  auto c = load_config(o);
  REQUIRE(c.ok());
  CHECK(c->server == "https://127.0.0.1:6443");
  CHECK(c->ca_pem == "CA-FROM-FILE\n");
  CHECK_THAT(c->ca_where, Contains("clusters[k].cluster.certificate-authority"));
  CHECK(c->tls_server_name == "kubernetes.default");
  CHECK(c->client_cert_pem == "CERT\n");
  CHECK(c->client_key_pem == "KEY\n");
  CHECK(c->auth == AuthMethod::kTokenFile);
  CHECK(c->token_file == dir.path() + "/.kube/tok");
  CHECK(!c->insecure_skip_tls_verify);

  Credentials creds(*c);
  auto cred = creds.get();
  REQUIRE(cred.ok());
  CHECK(cred->token == "file-token");
  CHECK(cred->client_cert_pem == "CERT\n");
}

TEST_CASE("kubeconfig: -data fields win and are base64-decoded; insecure only when set", "[kube]") {
  test::TempDir dir;
  const std::string f = dir.path() + "/config";
  write(f, std::string(R"(current-context: c
clusters:
- name: k
  cluster:
    server: https://k:1
    certificate-authority: does-not-matter.crt
    certificate-authority-data: )") + kCaPemB64 + R"(
- name: insecure
  cluster: {server: "https://k:2", insecure-skip-tls-verify: true}
contexts:
- {name: c, context: {cluster: k}}
- {name: i, context: {cluster: insecure}}
)");
  auto c = load_kubeconfig_files({f}, "");
  REQUIRE(c.ok());
  CHECK(c->ca_pem == "CA-PEM\n");
  CHECK(!c->insecure_skip_tls_verify);
  CHECK(c->auth == AuthMethod::kNone);
  auto i = load_kubeconfig_files({f}, "i");
  REQUIRE(i.ok());
  CHECK(i->insecure_skip_tls_verify);
  CHECK(i->ca_pem.empty());
}

TEST_CASE("kubeconfig: errors name the file and the key", "[kube]") {
  test::TempDir dir;
  const std::string f = dir.path() + "/config";
  auto load_error = [&](const std::string& text, const std::string& ctx = "") {
    write(f, text);
    auto c = load_kubeconfig_files({f}, ctx);
    REQUIRE(!c.ok());
    return c.status().message();
  };
  const std::string head = "current-context: c\ncontexts:\n- {name: c, context: {cluster: k, user: u}}\n";

  CHECK_THAT(load_error(head + "clusters:\n- {name: k, cluster: {server: https://x}}\n"
                                "users:\n- name: u\n  user: {client-certificate: c.crt, client-key: nope.key}\n"),
             Contains(f) && Contains("users[u].user.client-certificate: cannot read " + dir.path() + "/c.crt"));
  write(dir.path() + "/c.crt", "x");
  CHECK_THAT(load_error(head + "clusters:\n- {name: k, cluster: {server: https://x}}\n"
                                "users:\n- name: u\n  user: {client-certificate: c.crt, client-key: nope.key}\n"),
             Contains(f + ": users[u].user.client-key: cannot read " + dir.path() + "/nope.key"));
  CHECK_THAT(load_error(head + "clusters:\n- {name: k, cluster: {certificate-authority-data: Q0E=}}\nusers:\n- {name: u, user: {}}\n"),
             Contains(f + ": clusters[k].cluster.server: missing"));
  CHECK_THAT(load_error(head + "clusters:\n- {name: k, cluster: {server: https://x, certificate-authority-data: Q0E=, "
                                "insecure-skip-tls-verify: true}}\nusers:\n- {name: u, user: {}}\n"),
             Contains("clusters[k].cluster: insecure-skip-tls-verify: true together with a certificate authority"));
  CHECK_THAT(load_error(head + "clusters:\n- {name: k, cluster: {server: https://x, certificate-authority-data: \"!!\"}}\n"),
             Contains(f + ": clusters[k].cluster.certificate-authority-data: not valid base64"));
  CHECK_THAT(load_error(head + "clusters:\n- {name: k, cluster: {server: https://x}}\n"),
             Contains(f + ": contexts[c].context.user: user \"u\" is not defined"));
  CHECK_THAT(load_error(head + "clusters:\n- {name: k, cluster: {server: https://x}}\n"
                                "users:\n- name: u\n  user:\n    exec: {apiVersion: client.authentication.k8s.io/v1alpha1, command: x}\n"),
             Contains(f + ": users[u].user.exec.apiVersion: \"client.authentication.k8s.io/v1alpha1\" is not supported"));
  CHECK_THAT(load_error(head + "clusters:\n- {name: k, cluster: {server: https://x}}\n"
                                "users:\n- name: u\n  user:\n    auth-provider: {name: gcp}\n"),
             Contains(f + ":") && Contains("users[u].user.auth-provider: not supported"));
  CHECK_THAT(load_error("clusters: [\n  {name: k\n"), Contains(f + ":") && Contains("not a valid kubeconfig"));
  CHECK_THAT(load_error("clusters: []\n"), Contains(f + ": no current-context is set; pass --kubernetes-context"));
  CHECK_THAT(load_error(head + "clusters:\n- {name: k, cluster: {server: https://x, insecure-skip-tls-verify: maybe}}\n"),
             Contains(f + ":5:") && Contains("clusters[k].cluster.insecure-skip-tls-verify: expected true or false"));

  LoadOptions o;
  o.kubeconfig_env = dir.path() + "/none1:" + dir.path() + "/none2";
  auto missing = load_config(o);
  REQUIRE(!missing.ok());
  CHECK_THAT(missing.status().message(), Contains("KUBECONFIG=" + o.kubeconfig_env) && Contains("no existing file"));
}

TEST_CASE("in-cluster config: service account files, namespace, rotating token", "[kube]") {
  test::TempDir dir;
  write(dir.path() + "/token", "token-1\n");
  write(dir.path() + "/ca.crt", "CLUSTER-CA\n");
  write(dir.path() + "/namespace", "pipelines\n");
  LoadOptions o;
  o.home = dir.path();  // no ~/.kube/config there: falls back to in-cluster
  o.service_host = "10.96.0.1";
  o.service_port = "443";
  o.service_account_dir = dir.path();
  auto c = load_config(o);
  REQUIRE(c.ok());
  CHECK(c->server == "https://10.96.0.1:443");
  CHECK(c->ca_pem == "CLUSTER-CA\n");
  CHECK(c->default_namespace == "pipelines");
  CHECK(c->auth == AuthMethod::kTokenFile);
  CHECK_THAT(c->source, Contains("in-cluster service account"));

  Credentials creds(*c, std::chrono::seconds(0));  // re-read on every request
  CHECK(creds.get()->token == "token-1");
  write(dir.path() + "/token", "token-2\n");
  CHECK(creds.get()->token == "token-2");

  SECTION("the default refresh keeps the token a minute but a 401 re-reads it") {
    Credentials slow(*c);
    CHECK(slow.get()->token == "token-2");
    write(dir.path() + "/token", "token-3\n");
    CHECK(slow.get()->token == "token-2");
    CHECK(slow.invalidate());
    CHECK(slow.get()->token == "token-3");
  }
  SECTION("POD_NAMESPACE wins, IPv6 hosts are bracketed") {
    o.pod_namespace = "from-env";
    o.service_host = "fd00::1";
    auto c6 = load_in_cluster_config(o);
    REQUIRE(c6.ok());
    CHECK(c6->default_namespace == "from-env");
    CHECK(c6->server == "https://[fd00::1]:443");
  }
  SECTION("a missing token file is an error naming the path") {
    ::unlink((dir.path() + "/token").c_str());
    auto bad = load_in_cluster_config(o);
    REQUIRE(!bad.ok());
    CHECK_THAT(bad.status().message(), Contains(dir.path() + "/token"));
  }
}

// A plugin that counts its runs in a file and prints an ExecCredential built from its args,
// its env entry and the apiVersion it was asked for in KUBERNETES_EXEC_INFO.
std::string write_plugin(const std::string& dir, const std::string& expiry) {
  const std::string path = dir + "/plugin.sh";
  const std::string expiry_field = expiry.empty() ? "" : ",\"expirationTimestamp\":\"" + expiry + "\"";
  write(path, "#!/bin/sh\n"
              "d='" + dir + "'\n" +
              R"SH(echo run >> "$d/runs"
printf '%s' "$KUBERNETES_EXEC_INFO" > "$d/exec_info"
n=$(wc -l < "$d/runs")
api=$(sed 's/.*"apiVersion":"\([^"]*\)".*/\1/' "$d/exec_info")
printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"%s-%s-%s"EXPIRY}}' "$api" "$1" "$PLUGIN_SUFFIX" "$n"
)SH",
        true);
  std::string text = base::read_file(path).value();
  text.replace(text.find("EXPIRY"), 6, expiry_field);
  write(path, text, true);
  return path;
}

std::string exec_kubeconfig(const std::string& api_version) {
  return R"(current-context: c
clusters:
- {name: k, cluster: {server: "https://127.0.0.1:1"}}
contexts:
- {name: c, context: {cluster: k, user: u}}
users:
- name: u
  user:
    exec:
      apiVersion: )" + api_version + R"(
      command: ./plugin.sh
      args: [tok]
      env: [{name: PLUGIN_SUFFIX, value: sfx}]
      interactiveMode: Never
      installHint: install the test plugin
)";
}

TEST_CASE("exec credential plugins v1 and v1beta1: run, cache, re-run after 401", "[kube]") {
  for (const std::string api : {"client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"}) {
    DYNAMIC_SECTION(api) {
      test::TempDir dir;
      write_plugin(dir.path(), "");
      write(dir.path() + "/config", exec_kubeconfig(api));
      auto c = load_kubeconfig_files({dir.path() + "/config"}, "");
      REQUIRE(c.ok());
      CHECK(c->auth == AuthMethod::kExec);
      CHECK(c->exec.command == dir.path() + "/plugin.sh");  // relative to the kubeconfig
      Credentials creds(*c);
      auto first = creds.get();
      REQUIRE(first.ok());
      CHECK(first->token == "tok-sfx-1");
      CHECK(creds.get()->token == "tok-sfx-1");  // no expiry: cached
      CHECK(creds.exec_runs() == 1);
      CHECK_THAT(read(dir.path() + "/exec_info"),
                 Contains("\"apiVersion\":\"" + api + "\"") && Contains("\"interactive\":false"));
      CHECK(creds.invalidate());
      CHECK(creds.get()->token == "tok-sfx-2");
      CHECK(creds.exec_runs() == 2);
    }
  }
}

TEST_CASE("exec credential plugins: expiry re-runs, errors are explained", "[kube]") {
  test::TempDir dir;
  write(dir.path() + "/config", exec_kubeconfig("client.authentication.k8s.io/v1"));
  auto c = load_kubeconfig_files({dir.path() + "/config"}, "");
  REQUIRE(c.ok());

  SECTION("an expired credential is fetched again, a valid one is reused") {
    write_plugin(dir.path(), "2001-01-01T00:00:00Z");
    Credentials expired(*c);
    CHECK(expired.get()->token == "tok-sfx-1");
    CHECK(expired.get()->token == "tok-sfx-2");
    write_plugin(dir.path(), "2200-01-01T00:00:00.5+02:00");
    Credentials valid(*c);
    CHECK(valid.get()->token == "tok-sfx-3");
    CHECK(valid.get()->token == "tok-sfx-3");
    CHECK(valid.exec_runs() == 1);
  }
  SECTION("a failing plugin: exit status and stderr") {
    write(dir.path() + "/plugin.sh", "#!/bin/sh\necho 'token expired, run login' >&2\nexit 3\n", true);
    auto r = Credentials(*c).get();
    REQUIRE(!r.ok());
    CHECK_THAT(r.status().message(),
               Contains(dir.path() + "/config: users[u].user.exec") && Contains("exited with status 3") &&
                   Contains("token expired, run login"));
  }
  SECTION("a missing plugin shows the install hint") {
    auto r = Credentials(*c).get();
    REQUIRE(!r.ok());
    CHECK_THAT(r.status().message(), Contains("cannot run the credential plugin") &&
                                         Contains("install the test plugin"));
  }
  SECTION("a plugin answering with another apiVersion") {
    write(dir.path() + "/plugin.sh",
          "#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\"}}'\n",
          true);
    auto r = Credentials(*c).get();
    REQUIRE(!r.ok());
    CHECK_THAT(r.status().message(), Contains("apiVersion \"client.authentication.k8s.io/v1beta1\"") &&
                                         Contains("asks for \"client.authentication.k8s.io/v1\""));
  }
}

TEST_CASE("exec credentials: parse rules and RFC 3339 times", "[kube]") {
  const std::string v1 = "client.authentication.k8s.io/v1";
  auto cert = parse_exec_credential(
      R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"clientCertificateData":"C","clientKeyData":"K"}})",
      v1, "w");
  REQUIRE(cert.ok());
  CHECK(cert->client_cert_pem == "C");
  CHECK(!cert->expires);
  auto half = parse_exec_credential(
      R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"clientCertificateData":"C"}})",
      v1, "w");
  CHECK_THAT(half.status().message(), Contains("both clientCertificateData and clientKeyData"));
  auto empty = parse_exec_credential(
      R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{}})", v1, "w");
  CHECK_THAT(empty.status().message(), Contains("neither status.token"));
  CHECK_THAT(parse_exec_credential("not json", v1, "w").status().message(), Contains("w: the plugin did not print"));

  auto t = parse_rfc3339("2026-01-01T00:00:00Z");
  REQUIRE(t);
  CHECK(std::chrono::system_clock::to_time_t(*t) == 1767225600);
  auto off = parse_rfc3339("2026-01-01T02:00:00.123+02:00");
  REQUIRE(off);
  CHECK(*off == *t);
  CHECK(!parse_rfc3339("2026-01-01 00:00:00"));
  CHECK(!parse_rfc3339("2026-01-01T00:00:00"));
}

}  // namespace
}  // namespace mflow::kube
