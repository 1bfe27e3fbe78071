#include "exec/job_manifest.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>
#include <yaml-cpp/yaml.h>

#include "exec/kube_options.h"
#include "support/temp_dir.h"

using namespace mflow;
using nlohmann::json;

namespace {

// A datastore identity as store::Datastore::identity makes them.
const std::string kId = "0123456789abcdef0123456789abcdef";

const std::regex kDnsLabel("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
const std::regex kLabelValue("(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?");

std::string golden_dir() { return std::string(MFLOW_SOURCE_DIR) + "/test/exec/golden"; }

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Compares `actual` with the golden file; MFLOW_UPDATE_GOLDEN=1 rewrites the file instead.
void check_golden(const std::string& name, const json& actual) {
  std::string path = golden_dir() + "/" + name;
  std::string text = actual.dump(2) + "\n";
  if (const char* update = std::getenv("MFLOW_UPDATE_GOLDEN"); update && std::string(update) == "1") {
    std::ofstream(path) << text;
  }
  std::string expected = read_file(path);
  INFO("golden file " << path << " (regenerate with MFLOW_UPDATE_GOLDEN=1 after review)");
  REQUIRE(!expected.empty());
  CHECK(json::parse(expected) == actual);
}

exec::TaskLaunch basic_launch() {
  exec::TaskLaunch l;
  l.key = "start/0";
  l.run_id = "1732460000123";
  l.step = "start";
  l.task_id = "0";
  l.attempt = 0;
  l.command.shell = true;
  l.command.script = "echo hello > $MFLOW_OUTPUT_DIR/greeting";
  l.env = {{"MFLOW_FLOW", "bigsum"},
           {"MFLOW_RUN_ID", "1732460000123"},
           {"MFLOW_DATASTORE", "/data/mflow"},
           {"MFLOW_INPUT_DIR", "/data/mflow/runs/1732460000123/work/start/0/0/in"},
           {"MFLOW_OUTPUT_DIR", "/data/mflow/runs/1732460000123/work/start/0/0/out"},
           {"MFLOW_CPUS", "1"},
           {"CUDA_VISIBLE_DEVICES", "0"}};
  l.stdout_path = "/data/mflow/runs/1732460000123/tasks/start/0/0.stdout";
  return l;
}

exec::KubeDefaults defaults_with_pvc() {
  exec::KubeDefaults d;
  d.pvc = "mflow-datastore";
  d.image = "registry.example.com/mflow:0.1.0";
  return d;
}

// --- a small OpenAPI v3 (JSON-Schema dialect) checker: types, required, known properties ---

class SchemaChecker {
 public:
  explicit SchemaChecker(const json& doc) : schemas_(doc.at("components").at("schemas")) {}

  std::vector<std::string> check(const json& value, const std::string& schema_name) {
    errors_.clear();
    visit(value, schemas_.at(schema_name), "");
    return errors_;
  }

 private:
  const json& resolve(const json& schema) const {
    if (schema.contains("$ref")) {
      std::string ref = schema["$ref"];
      return schemas_.at(ref.substr(ref.rfind('/') + 1));
    }
    return schema;
  }

  void visit(const json& value, const json& raw, const std::string& path) {
    const json& schema = resolve(raw);
    if (schema.contains("allOf")) {
      for (const auto& s : schema["allOf"]) visit(value, s, path);
    }
    if (schema.contains("oneOf")) {
      bool any = false;
      for (const auto& s : schema["oneOf"]) {
        auto saved = errors_;
        visit(value, s, path);
        if (errors_.size() == saved.size()) any = true;
        errors_ = saved;
      }
      if (!any) errors_.push_back(path + ": matches none of oneOf");
    }
    if (schema.contains("enum") && std::find(schema["enum"].begin(), schema["enum"].end(), value) == schema["enum"].end()) {
      errors_.push_back(path + ": " + value.dump() + " is not one of " + schema["enum"].dump());
    }
    if (!schema.contains("type")) return;
    std::string type = schema["type"];
    bool ok = (type == "string" && value.is_string()) ||
              (type == "integer" && value.is_number_integer()) ||
              (type == "number" && value.is_number()) || (type == "boolean" && value.is_boolean()) ||
              (type == "array" && value.is_array()) || (type == "object" && value.is_object());
    if (!ok) {
      errors_.push_back(path + ": expected " + type + ", got " + value.dump());
      return;
    }
    if (type == "array" && schema.contains("items")) {
      for (size_t i = 0; i < value.size(); ++i) visit(value[i], schema["items"], path + "/" + std::to_string(i));
    }
    if (type != "object") return;
    if (schema.contains("required")) {
      for (const auto& r : schema["required"]) {
        if (!value.contains(r.get<std::string>())) errors_.push_back(path + ": missing required field " + r.get<std::string>());
      }
    }
    for (const auto& [key, v] : value.items()) {
      if (schema.contains("properties") && schema["properties"].contains(key)) {
        visit(v, schema["properties"][key], path + "/" + key);
      } else if (schema.contains("additionalProperties") && schema["additionalProperties"].is_object()) {
        visit(v, schema["additionalProperties"], path + "/" + key);
      } else {
        errors_.push_back(path + ": unknown field " + key);
      }
    }
  }

  const json& schemas_;
  std::vector<std::string> errors_;
};

std::string openapi_path() { return std::string(MFLOW_SOURCE_DIR) + "/../shared/k8s/apis__batch__v1_openapi.json"; }

exec::TaskLaunch full_launch() {
  exec::TaskLaunch l = basic_launch();
  l.key = "train_model/3.1";
  l.step = "train_model";
  l.task_id = "3.1";
  l.attempt = 2;
  l.command.shell = false;
  l.command.argv = {"python3", "train.py", "--epochs", "10"};
  return l;
}

exec::KubeTaskSpec full_task() {
  spec::Step step;
  step.name = "train_model";
  step.resources.cpu = 2.5;
  step.resources.memory_mb = 16000;
  step.timeout = std::chrono::hours(2);
  spec::KubernetesSpec k;
  k.resources.gpu = 2;
  k.resources.memory_mb = 12000;  // smaller than resources.memory: the larger wins
  k.gpu_vendor = "amd";
  k.namespace_name = "ml";
  k.service_account = "trainer";
  k.image_pull_policy = "Always";
  k.node_selector = {{"node.kubernetes.io/instance-type", "g5.xlarge"}};
  k.tolerations = {{"nvidia.com/gpu", "Exists", "", "NoSchedule", std::nullopt},
                   {"spot", "Equal", "true", "NoExecute", 300}};
  k.secrets = {"s3-credentials"};
  k.env = {{"WANDB_MODE", "offline"}};
  k.labels = {{"team", "research"}};
  k.annotations = {{"example.com/owner", "alice@example.com"}};
  step.kubernetes = k;
  exec::KubeDefaults d = defaults_with_pvc();
  d.mount_path = "/mnt/datastore";
  d.secrets = {"registry-token"};
  return exec::resolve_kube_task(step, d, "/data/mflow").value();
}

}  // namespace

TEST_CASE("job names are DNS labels of at most 63 characters", "[kube]") {
  std::string long_flow(200, 'F');
  std::string long_step = "a_very_long_step_name_" + std::string(150, 'x');
  for (const auto& [flow, step] : std::vector<std::pair<std::string, std::string>>{
           {"bigsum", "start"}, {long_flow, "end"}, {"f", long_step}, {long_flow, long_step},
           {"Über Flow!", "__weird__step__"}, {"---", "..."}}) {
    std::string name = exec::job_name(kId, flow, "123456789012345678", step, "12.3.4", 7);
    INFO(name);
    CHECK(name.size() <= 63);
    CHECK(std::regex_match(name, kDnsLabel));
    CHECK(exec::job_name(kId, flow, "123456789012345678", step, "12.3.4", 7) == name);
  }
  CHECK(exec::job_name(kId, "bigsum", "17", "start", "0", 1).rfind("mflow-bigsum-start-17-0-1-", 0) == 0);
  // Names that sanitize to the same text stay distinct.
  CHECK(exec::job_name(kId, "f", "1", "my_step", "0", 0) != exec::job_name(kId, "f", "1", "my-step", "0", 0));
  CHECK(exec::job_name(kId, "f", "1", "s", "1.2", 0) != exec::job_name(kId, "f", "1", "s", "1-2", 0));
  CHECK(exec::job_name(kId, "f", "1", "s", "0", 0) != exec::job_name(kId, "f", "1", "s", "0", 1));
  // The step keeps some room however long the flow name is.
  CHECK(exec::job_name(kId, long_flow, "1", "train", "0", 0).find("-train-") != std::string::npos);
}

TEST_CASE("issue_8 the datastore identity is in the Job's name, labels, annotations and selector", "[kube]") {
  const std::string other = "fedcba9876543210fedcba9876543210";
  CHECK(exec::job_name(kId, "f", "1", "s", "0", 0) != exec::job_name(other, "f", "1", "s", "0", 0));
  exec::TaskLaunch l = basic_launch();
  spec::Step step;
  step.name = "start";
  auto task = exec::resolve_kube_task(step, defaults_with_pvc(), "/data/mflow");
  REQUIRE(task.ok());
  json job = exec::build_job({kId, "bigsum", "/data/mflow", &l, &task.value()});
  CHECK(job["metadata"]["labels"][exec::kLabelDatastore] == kId);
  CHECK(job["spec"]["template"]["metadata"]["labels"][exec::kLabelDatastore] == kId);
  CHECK(job["metadata"]["annotations"][exec::kAnnotationDatastore] == kId);
  for (const auto& [k, v] : job["metadata"]["labels"].items()) CHECK(v.get<std::string>().size() <= 63);
  CHECK(exec::run_label_selector(kId, "17") == "mflow.dev/datastore=" + kId + ",mflow.dev/run=17");
}

TEST_CASE("issue_8 the task hash ignores run and attempt, not spec, inputs or settings", "[kube]") {
  exec::TaskLaunch l = basic_launch();
  l.task_hash = "spec+inputs";
  spec::Step step;
  step.name = "start";
  auto task = exec::resolve_kube_task(step, defaults_with_pvc(), "/data/mflow");
  REQUIRE(task.ok());
  const std::string base = exec::task_hash(l, task.value());
  json job = exec::build_job({kId, "bigsum", "/data/mflow", &l, &task.value()});
  CHECK(job["metadata"]["annotations"][exec::kAnnotationTaskHash] == base);

  exec::TaskLaunch later = l;  // the same task in a resume: another run, attempt, paths
  later.run_id = "1732460000999";
  later.attempt = 2;
  later.env["MFLOW_OUTPUT_DIR"] = "/data/mflow/runs/1732460000999/work/start/0/2/out";
  CHECK(exec::task_hash(later, task.value()) == base);

  exec::TaskLaunch changed = l;
  changed.task_hash = "other spec or inputs";
  CHECK(exec::task_hash(changed, task.value()) != base);
  exec::KubeTaskSpec bigger = task.value();
  bigger.cpu = 2;
  CHECK(exec::task_hash(l, bigger) != base);
  exec::KubeTaskSpec other_image = task.value();
  other_image.image = "registry.example.com/mflow:0.2.0";
  CHECK(exec::task_hash(l, other_image) != base);
}

TEST_CASE("label values are valid and keep distinct inputs distinct", "[kube]") {
  CHECK(exec::label_value("start") == "start");
  CHECK(exec::label_value("3.1") == "3.1");
  for (std::string v : {std::string(100, 'a'), std::string("_x_"), std::string("a b"),
                        std::string("ünïcode"), std::string("-")}) {
    std::string l = exec::label_value(v);
    INFO(v << " -> " << l);
    CHECK(l.size() <= 63);
    CHECK(std::regex_match(l, kLabelValue));
    CHECK(!l.empty());
  }
  CHECK(exec::label_value("a b") != exec::label_value("a-b"));
  CHECK(exec::label_value(std::string(70, 'a')) != exec::label_value(std::string(71, 'a')));
}

TEST_CASE("the task argv is the documented mflow task contract", "[kube]") {
  auto l = basic_launch();
  CHECK(exec::task_argv(l, "/data/mflow") ==
        std::vector<std::string>{"mflow", "task", "--datastore", "/data/mflow", "--run-id",
                                 "1732460000123", "--step", "start", "--task-id", "0",
                                 "--attempt", "0", "--", "/bin/sh", "-c", l.command.script});
  auto f = full_launch();
  auto argv = exec::task_argv(f, "/mnt/ds");
  CHECK(std::vector<std::string>(argv.end() - 5, argv.end()) ==
        std::vector<std::string>{"--", "python3", "train.py", "--epochs", "10"});
}

TEST_CASE("a basic Job matches its golden file", "[kube]") {
  auto l = basic_launch();
  spec::Step step;
  step.name = "start";
  auto task = exec::resolve_kube_task(step, defaults_with_pvc(), "/data/mflow");
  REQUIRE(task.ok());
  json job = exec::build_job({kId, "bigsum", "/data/mflow", &l, &task.value()});
  check_golden("basic_job.json", job);
  const json& c = job["spec"]["template"]["spec"]["containers"][0];
  CHECK(c["resources"]["requests"] == json{{"cpu", "1"}, {"memory", "4096Mi"}, {"ephemeral-storage", "10240Mi"}});
  CHECK(c["resources"]["limits"] == json{{"memory", "4096Mi"}});
  CHECK(job["spec"]["backoffLimit"] == 0);
  CHECK(job["spec"]["activeDeadlineSeconds"] == 5 * 24 * 3600);
  CHECK(job["spec"]["ttlSecondsAfterFinished"] == 24 * 3600);
  CHECK(job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mflow");
  CHECK(job["metadata"]["labels"] == job["spec"]["template"]["metadata"]["labels"]);
  // Local GPU slots are not passed on; MFLOW_CPUS is the pod's request.
  for (const auto& e : c["env"]) CHECK(e["name"] != "CUDA_VISIBLE_DEVICES");
}

TEST_CASE("a Job with every option matches its golden file", "[kube]") {
  auto l = full_launch();
  auto task = full_task();
  json job = exec::build_job({kId, "bigsum", "/data/mflow", &l, &task});
  check_golden("full_job.json", job);
  const json& pod = job["spec"]["template"]["spec"];
  const json& c = pod["containers"][0];
  CHECK(job["metadata"]["namespace"] == "ml");
  CHECK(c["resources"]["requests"]["cpu"] == "2500m");
  CHECK(c["resources"]["requests"]["memory"] == "16000Mi");
  CHECK(c["resources"]["limits"]["amd.com/gpu"] == "2");
  CHECK(job["spec"]["activeDeadlineSeconds"] == 7200);
  CHECK(pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "mflow-datastore");
  CHECK(c["volumeMounts"][0]["mountPath"] == "/mnt/datastore");
  // Datastore paths are rewritten to where the volume is mounted in the pod.
  bool saw_output = false;
  for (const auto& e : c["env"]) {
    if (e["name"] == "MFLOW_OUTPUT_DIR") {
      saw_output = true;
      CHECK(e["value"] == "/mnt/datastore/runs/1732460000123/work/start/0/0/out");
    }
  }
  CHECK(saw_output);
  CHECK(c["envFrom"] == json::parse(R"([{"secretRef":{"name":"registry-token"}},{"secretRef":{"name":"s3-credentials"}}])"));
}

TEST_CASE("Job manifests validate against the Kubernetes 1.35 OpenAPI schema", "[kube]") {
  std::ifstream in(openapi_path());
  if (!in) {
    WARN("skipped: " << openapi_path() << " is absent, cannot validate against the OpenAPI schema");
    return;
  }
  json doc = json::parse(in);
  SchemaChecker checker(doc);
  auto basic = basic_launch();
  spec::Step step;
  step.name = "start";
  auto task = exec::resolve_kube_task(step, defaults_with_pvc(), "/data/mflow").value();
  auto full = full_launch();
  auto full_spec = full_task();
  for (const json& job : {exec::build_job({kId, "bigsum", "/data/mflow", &basic, &task}),
                          exec::build_job({kId, "bigsum", "/data/mflow", &full, &full_spec})}) {
    auto errors = checker.check(job, "io.k8s.api.batch.v1.Job");
    INFO(job["metadata"]["name"]);
    for (const auto& e : errors) UNSCOPED_INFO(e);
    CHECK(errors.empty());
  }
  // The checker itself notices a misspelt field and a missing required one.
  json bad = exec::build_job({kId, "bigsum", "/data/mflow", &basic, &task});
  bad["spec"]["backofLimit"] = 1;
  bad["spec"]["template"]["spec"]["containers"][0].erase("name");
  auto errors = checker.check(bad, "io.k8s.api.batch.v1.Job");
  CHECK(errors.size() == 2);
}

TEST_CASE("the YAML printer round-trips through a YAML parser", "[kube]") {
  auto l = full_launch();
  l.command.shell = true;
  l.command.script = "echo 'a: b' \"quoted\"\nfor i in 1 2; do echo $i; done # yes";
  l.env["TRICKY"] = "yes";
  l.env["NUMBERISH"] = "0755";
  l.env["EMPTY"] = "";
  auto task = full_task();
  json job = exec::build_job({kId, "bigsum", "/data/mflow", &l, &task});
  std::string yaml = exec::to_yaml(job);
  YAML::Node node = YAML::Load(yaml);
  // Every scalar comes back with the same text, and strings YAML could retype are quoted.
  std::function<void(const json&, const YAML::Node&, const std::string&)> same =
      [&](const json& j, const YAML::Node& y, const std::string& path) {
        INFO(path);
        if (j.is_object()) {
          REQUIRE(y.IsMap());
          CHECK(y.size() == j.size());
          for (const auto& [k, v] : j.items()) same(v, y[k], path + "/" + k);
        } else if (j.is_array()) {
          REQUIRE(y.IsSequence());
          REQUIRE(y.size() == j.size());
          for (size_t i = 0; i < j.size(); ++i) same(j[i], y[i], path + "/" + std::to_string(i));
        } else if (j.is_string()) {
          CHECK(y.as<std::string>() == j.get<std::string>());
          std::string s = j.get<std::string>();
          if (s == "yes" || s == "0755" || s == "true" || s == "4" || s.empty()) CHECK(y.Tag() == "!");
        } else {
          CHECK(y.Tag() == "?");
          CHECK(y.as<std::string>() == j.dump());
        }
      };
  same(job, node, "");
}

TEST_CASE("kubectl accepts the dry-run YAML", "[kube]") {
  if (access("/usr/bin/kubectl", X_OK) != 0 || access("/usr/bin/python3", X_OK) != 0) {
    WARN("skipped: needs /usr/bin/kubectl and python3");
    return;
  }
  // kubectl resolves kinds through API discovery even for --dry-run=client, so serve the
  // discovery documents (and a 404 for the Job) from a tiny loopback server.
  test::TempDir dir;
  std::ofstream(dir.path() + "/disc.py") << R"PY(
import json, http.server
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def send(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_GET(self):
        p = self.path.split("?")[0]
        docs = {
          "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0"},
          "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
          "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}], "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}]},
          "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [{"name": "pods", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"]}]},
          "/apis/batch/v1": {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "batch/v1", "resources": [{"name": "jobs", "singularName": "job", "namespaced": True, "kind": "Job", "verbs": ["create", "delete", "get", "list", "watch"]}]},
        }
        if p in docs:
            self.send(200, docs[p])
        else:
            name = p.rsplit("/", 1)[-1]
            self.send(404, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "jobs.batch \"%s\" not found" % name, "reason": "NotFound", "details": {"name": name, "group": "batch", "kind": "jobs"}, "code": 404})
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
)PY";
  auto l = full_launch();
  auto task = full_task();
  auto basic = basic_launch();
  spec::Step step;
  step.name = "start";
  auto basic_task = exec::resolve_kube_task(step, defaults_with_pvc(), "/data/mflow").value();
  std::ofstream(dir.path() + "/jobs.yaml")
      << "---\n" << exec::to_yaml(exec::build_job({kId, "bigsum", "/data/mflow", &l, &task}))
      << "---\n" << exec::to_yaml(exec::build_job({kId, "bigsum", "/data/mflow", &basic, &basic_task}));

  std::string port_file = dir.path() + "/port";
  pid_t server = fork();
  REQUIRE(server >= 0);
  if (server == 0) {
    std::freopen(port_file.c_str(), "w", stdout);
    execl("/usr/bin/python3", "python3", (dir.path() + "/disc.py").c_str(), nullptr);
    _exit(127);
  }
  std::string port;
  for (int i = 0; i < 100 && port.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream(port_file) >> port;
  }
  REQUIRE(!port.empty());
  std::string out_file = dir.path() + "/kubectl.out";
  std::string cmd = "timeout 60 /usr/bin/kubectl --server=http://127.0.0.1:" + port +
                    " apply --dry-run=client --validate=false -f " + dir.path() + "/jobs.yaml > " +
                    out_file + " 2>&1";
  int rc = std::system(cmd.c_str());
  kill(server, SIGTERM);
  waitpid(server, nullptr, 0);
  std::string output = read_file(out_file);
  INFO(output);
  CHECK(rc == 0);
  CHECK(output.find("created (dry run)") != std::string::npos);
}

TEST_CASE("kube options: --with kubernetes parses with clear errors", "[kube]") {
  exec::KubeDefaults d;
  REQUIRE(exec::apply_with_option("kubernetes", &d).ok());
  REQUIRE(exec::apply_with_option(
              "kubernetes:cpu=4,memory=10000,disk=20000,gpu=1,namespace=foo,image=ubuntu:latest,"
              "service_account=sa,pvc=claim,secret=a,secret=b,node_selector=kubernetes.io/arch=amd64,"
              "pending_grace=90s,image_pull_grace=2m,ttl=1h,timeout=3d,gpu_vendor=amd,"
              "image_pull_policy=IfNotPresent,mount_path=/mnt/ds",
              &d)
              .ok());
  CHECK(*d.resources.cpu == 4);
  CHECK(*d.resources.memory_mb == 10000);
  CHECK(*d.resources.disk_mb == 20000);
  CHECK(*d.resources.gpu == 1);
  CHECK(d.namespace_name == "foo");
  CHECK(d.image == "ubuntu:latest");
  CHECK(d.secrets == std::vector<std::string>{"a", "b"});
  CHECK(d.node_selector.at("kubernetes.io/arch") == "amd64");
  CHECK(d.pending_grace == std::chrono::seconds(90));
  CHECK(d.image_pull_grace == std::chrono::seconds(120));
  CHECK(d.timeout == std::chrono::hours(72));

  auto err = exec::apply_with_option("kubernetes:cpus=4", &d);
  CHECK_FALSE(err.ok());
  CHECK(err.message().find("--with kubernetes:") != std::string::npos);
  CHECK(err.message().find("unknown key 'cpus' (did you mean 'cpu'?)") != std::string::npos);
  err = exec::apply_with_option("kubernetes:memory=10G", &d);
  CHECK(err.message().find("`memory=10G`") != std::string::npos);
  CHECK(err.message().find("megabytes") != std::string::npos);
  CHECK_FALSE(exec::apply_with_option("kubernetes:namespace=Foo_Bar", &d).ok());
  CHECK_FALSE(exec::apply_with_option("kubernetes:cpu", &d).ok());
  CHECK_FALSE(exec::apply_with_option("kubernetes:pending_grace=soon", &d).ok());
  CHECK_FALSE(exec::apply_with_option("kubernetes:cpu=1,,memory=2", &d).ok());
  CHECK_FALSE(exec::apply_with_option("kube:cpu=1", &d).ok());
}

TEST_CASE("MFLOW_KUBERNETES_* variables set the defaults", "[kube]") {
  std::map<std::string, std::string> env = {{"MFLOW_KUBERNETES_NAMESPACE", "team-a"},
                                            {"MFLOW_KUBERNETES_IMAGE", "img:1"},
                                            {"MFLOW_KUBERNETES_PVC", "claim"},
                                            {"MFLOW_KUBERNETES_CPU", "2"},
                                            {"MFLOW_KUBERNETES_SECRETS", "a, b"},
                                            {"MFLOW_KUBERNETES_PENDING_GRACE", "10m"}};
  auto get = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  auto d = exec::kube_defaults_from_env(get);
  REQUIRE(d.ok());
  CHECK(d->namespace_name == "team-a");
  CHECK(d->image == "img:1");
  CHECK(*d->resources.cpu == 2);
  CHECK(d->secrets == std::vector<std::string>{"a", "b"});
  CHECK(d->pending_grace == std::chrono::minutes(10));
  // --with overrides the environment.
  REQUIRE(exec::apply_with_option("kubernetes:namespace=team-b", &d.value()).ok());
  CHECK(d->namespace_name == "team-b");

  env["MFLOW_KUBERNETES_MEMORY"] = "lots";
  auto bad = exec::kube_defaults_from_env(get);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("MFLOW_KUBERNETES_MEMORY=lots") != std::string::npos);
}

TEST_CASE("resource requests: the largest of resources, kubernetes and --with wins", "[kube]") {
  spec::Step step;
  step.name = "s";
  step.resources.cpu = 2;
  step.resources.memory_mb = 1000;
  spec::KubernetesSpec k;
  k.resources.cpu = 1;
  k.resources.memory_mb = 8000;
  step.kubernetes = k;
  exec::KubeDefaults d = defaults_with_pvc();
  d.resources.cpu = 4;
  auto t = exec::resolve_kube_task(step, d, "/ds").value();
  CHECK(t.cpu == 4);
  CHECK(t.memory_mb == 8000);
  CHECK(t.disk_mb == spec::kDefaultDiskMb);
  CHECK(t.gpu == 0);
  CHECK(t.timeout == std::chrono::hours(120));
  CHECK(t.mount_path == "/ds");

  spec::Step plain;
  plain.name = "p";
  auto p = exec::resolve_kube_task(plain, defaults_with_pvc(), "/ds").value();
  CHECK(p.cpu == spec::kDefaultCpu);
  CHECK(p.memory_mb == spec::kDefaultMemoryMb);
  CHECK(p.namespace_name == "default");

  auto missing = exec::resolve_kube_task(plain, exec::KubeDefaults{}, "/ds");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find("MFLOW_KUBERNETES_PVC") != std::string::npos);
}
