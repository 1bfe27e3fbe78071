// RestApiClient against the project's protocol-faithful fake API server
// (test/support/fake_kube/server.py) over HTTPS: kubeconfig loading end to end, client
// certificates, a Job's life (create, watch to completion, pods, logs, delete).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "kube/config.h"
#include "kube/rest_api_client.h"
#include "support/temp_dir.h"

namespace mflow::kube {
namespace {

const std::atomic<bool> kNoStop{false};

using Catch::Matchers::Contains;
using json = nlohmann::json;
using namespace std::chrono_literals;

// Starts server.py in the background and stops it (by its pid) at the end of the test.
class FakeKube {
 public:
  /// "{certs}" in `extra_args` stands for the directory of the minted certificates.
  explicit FakeKube(std::string extra_args) {
    for (size_t at; (at = extra_args.find("{certs}")) != std::string::npos;) {
      extra_args.replace(at, 7, dir_.path() + "/certs");
    }
    const std::string src = std::string(MFLOW_SOURCE_DIR) + "/test/support/fake_kube";
    REQUIRE(std::system(("bash " + src + "/mkcerts.sh " + dir_.path() + "/certs").c_str()) == 0);
    std::string cmd = "python3 " + src + "/server.py --port 0 --state-dir " + dir_.path() +
                      "/state --tls-cert " + dir_.path() + "/certs/server.crt --tls-key " + dir_.path() +
                      "/certs/server.key --start-delay 0 --exit-with-pid " + std::to_string(::getpid()) +
                      " " + extra_args + " > " + dir_.path() +
                      "/server.log 2>&1 & echo $! > " + dir_.path() + "/pid";
    REQUIRE(std::system(cmd.c_str()) == 0);
    pid_ = std::stoi(base::read_file(dir_.path() + "/pid").value());
    for (int i = 0; i < 200 && !base::read_file(dir_.path() + "/state/port").ok(); ++i) {
      std::this_thread::sleep_for(50ms);
    }
    auto port = base::read_file(dir_.path() + "/state/port");
    auto server_log = base::read_file(dir_.path() + "/server.log");
    INFO("fake-kube output: " << (server_log.ok() ? *server_log : std::string()));
    REQUIRE(port.ok());
    port_ = std::stoi(*port);
  }
  ~FakeKube() {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
  }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  std::string cert(const std::string& name) const { return dir_.path() + "/certs/" + name; }
  /// Writes a kubeconfig with the fake's own script and returns its path.
  std::string kubeconfig(const std::string& args) const {
    std::string path = dir_.path() + "/kubeconfig";
    std::string cmd = "bash " + std::string(MFLOW_SOURCE_DIR) + "/test/support/fake_kube/kubeconfig.sh --server " +
                      url() + " --ca " + cert("ca.crt") + " " + args + " > " + path;
    REQUIRE(std::system(cmd.c_str()) == 0);
    return path;
  }

 private:
  test::TempDir dir_;
  int pid_ = -1;
  int port_ = 0;
};

TEST_CASE("RestApiClient on fake-kube: a Job's life over HTTPS with a bearer token", "[kube]") {
  FakeKube fake("--token s3cret");
  LoadOptions lo;
  lo.kubeconfig = fake.kubeconfig("--token s3cret --namespace default");
  auto config = load_config(lo);
  REQUIRE(config.ok());
  RestOptions ro;
  ro.watch_timeout_seconds = 30;
  auto client = std::move(RestApiClient::create(*config, ro)).value();

  json job = {{"apiVersion", "batch/v1"},
              {"kind", "Job"},
              {"metadata", {{"name", "hello-1"}, {"labels", {{"app", "mflow-client-test"}}}}},
              {"spec",
               {{"backoffLimit", 0},
                {"template",
                 {{"spec",
                   {{"restartPolicy", "Never"},
                    {"containers", {{{"name", "main"}, {"image", "busybox"},
                                     {"command", {"sh", "-c", "echo hello from the pod"}}}}}}}}}}}};
  auto created = client->create_job("default", job, kNoStop);
  INFO(created.error.message);
  REQUIRE(created.ok());
  CHECK((*created.value)["metadata"]["uid"].is_string());

  auto again = client->create_job("default", job, kNoStop);
  REQUIRE(!again.ok());
  CHECK(again.error.reason == "AlreadyExists");

  auto jobs = client->list(Resource::kJobs, "default", "app=mflow-client-test");
  REQUIRE(jobs.ok());
  REQUIRE(jobs.value->items.size() == 1);
  REQUIRE(!jobs.value->resource_version.empty());

  // Watch from the create's resourceVersion (the Job may well have finished by the time of
  // the list) and see every change after it, until the Job is Complete.
  bool complete = false;
  std::string rv = (*created.value)["metadata"]["resourceVersion"];
  auto deadline = std::chrono::steady_clock::now() + 30s;
  std::atomic<bool> stop{false};
  while (!complete && std::chrono::steady_clock::now() < deadline) {
    auto w = client->watch(Resource::kJobs, "default", "app=mflow-client-test", rv,
                           [&](const WatchEvent& ev) {
                             REQUIRE(ev.type != WatchEventType::kError);
                             rv = ev.object.value(json::json_pointer("/metadata/resourceVersion"), rv);
                             json conditions =
                                 ev.object.value(json::json_pointer("/status/conditions"), json::array());
                             for (const auto& c : conditions) {
                               if (c.value("type", "") == "Complete" && c.value("status", "") == "True") complete = true;
                             }
                             return !complete;
                           },
                           stop);
    INFO(w.error.message);
    REQUIRE(w.ok());
  }
  REQUIRE(complete);

  auto pods = client->list(Resource::kPods, "default", "batch.kubernetes.io/job-name=hello-1");
  REQUIRE(pods.ok());
  REQUIRE(pods.value->items.size() == 1);
  std::string pod = pods.value->items[0]["metadata"]["name"];
  std::string log;
  auto read = client->read_pod_log("default", pod, true, [&](std::string_view c) { log += c; }, stop);
  INFO(read.error.message);
  REQUIRE(read.ok());
  CHECK_THAT(log, Contains("hello from the pod"));

  REQUIRE(client->delete_job("default", "hello-1").ok());
  auto gone = client->get_job("default", "hello-1");
  REQUIRE(!gone.ok());
  CHECK(gone.error.http_status == 404);
  CHECK(client->stats().creates == 2);
  CHECK(client->stats().watches >= 1);
}

TEST_CASE("RestApiClient on fake-kube: client certificates and rejected credentials", "[kube]") {
  FakeKube fake("--client-ca {certs}/ca.crt --token good");
  SECTION("a client certificate from client-certificate-data authenticates") {
    LoadOptions lo;
    lo.kubeconfig = fake.kubeconfig("--client-cert " + fake.cert("client.crt") + " --client-key " +
                                    fake.cert("client.key"));
    auto config = load_config(lo);
    REQUIRE(config.ok());
    CHECK(!config->client_cert_pem.empty());
    auto client = std::move(RestApiClient::create(*config)).value();
    auto jobs = client->list(Resource::kJobs, "default", "");
    INFO(jobs.error.message);
    CHECK(jobs.ok());
  }
  SECTION("a wrong token is a 401 naming the kubeconfig context") {
    LoadOptions lo;
    lo.kubeconfig = fake.kubeconfig("--token wrong");
    auto config = load_config(lo);
    REQUIRE(config.ok());
    auto client = std::move(RestApiClient::create(*config)).value();
    auto jobs = client->list(Resource::kJobs, "default", "");
    REQUIRE(!jobs.ok());
    CHECK(jobs.error.http_status == 401);
    CHECK_THAT(jobs.error.message, Contains("cannot list jobs in namespace \"default\" (HTTP 401)") &&
                                       Contains("credentials of context \"fake-kube\" in " + lo.kubeconfig));
    CHECK(client->stats().lists == 1);  // a static token cannot change: no retry
  }
  SECTION("the fake's certificate is refused when the kubeconfig names another CA") {
    LoadOptions lo;
    lo.kubeconfig = fake.kubeconfig("--token good");
    auto config = load_config(lo);
    REQUIRE(config.ok());
    config->ca_pem = base::read_file(fake.cert("other-ca.crt")).value();
    auto client = std::move(RestApiClient::create(*config)).value();
    auto r = client->get_job("default", "x");
    REQUIRE(!r.ok());
    CHECK_THAT(r.error.message, Contains("TLS certificate verification of " + fake.url() +
                                         " failed: certificate verify failed"));
  }
}

}  // namespace
}  // namespace mflow::kube
