#include "exec/job_manifest.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <fmt/format.h>

#include "base/hash.h"
#include "base/strings.h"

namespace mflow::exec {

namespace {

using nlohmann::json;

constexpr size_t kMaxName = 63;

bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// Lower-cases and maps everything outside [a-z0-9] to '-', collapsing runs of '-'.
std::string dns_chars(std::string_view text) {
  std::string out;
  for (char c : text) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool ok = (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9');
    if (ok) {
      out += l;
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  return out;
}

std::string trim_dashes(std::string s) {
  while (!s.empty() && s.back() == '-') s.pop_back();
  size_t start = 0;
  while (start < s.size() && s[start] == '-') ++start;
  return s.substr(start);
}

std::string short_hash(std::string_view text, size_t n) {
  return base::sha256_hex(text).substr(0, n);
}

bool valid_label_value(std::string_view v) {
  if (v.size() > kMaxName) return false;
  if (v.empty()) return true;
  if (!alnum(v.front()) || !alnum(v.back())) return false;
  return std::all_of(v.begin(), v.end(),
                     [](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

std::string format_cpu(double cpu) {
  // Quantities allow three decimals; express fractions in millicores, rounding up so a
  // request is never smaller than asked.
  auto milli = static_cast<int64_t>(std::ceil(cpu * 1000 - 1e-9));
  if (milli % 1000 == 0) return std::to_string(milli / 1000);
  return fmt::format("{}m", milli);
}

std::string rewrite_path(const std::string& value, const std::string& root,
                         const std::string& mount) {
  if (root.empty() || root == mount) return value;
  if (value == root) return mount;
  if (base::starts_with(value, root + "/")) return mount + value.substr(root.size());
  return value;
}

json labels_for(const JobRequest& r, const std::map<std::string, std::string>& user) {
  const TaskLaunch& l = *r.launch;
  const std::string& flow = r.flow;
  json labels = json::object();
  for (const auto& [k, v] : user) labels[k] = v;
  labels[kLabelManagedBy] = "mflow";
  labels[kLabelDatastore] = label_value(r.datastore_id);
  labels[kLabelFlow] = label_value(flow);
  labels[kLabelRun] = label_value(l.run_id);
  labels[kLabelStep] = label_value(l.step);
  labels[kLabelTask] = label_value(l.task_id);
  labels[kLabelAttempt] = std::to_string(l.attempt);
  return labels;
}

json annotations_for(const JobRequest& r, const std::map<std::string, std::string>& user) {
  const TaskLaunch& l = *r.launch;
  const std::string& flow = r.flow;
  json a = json::object();
  for (const auto& [k, v] : user) a[k] = v;
  a[kAnnotationDatastore] = r.datastore_id;
  a[kAnnotationFlow] = flow;
  a[kAnnotationRun] = l.run_id;
  a[kAnnotationStep] = l.step;
  a[kAnnotationTask] = l.task_id;
  a[kAnnotationKey] = l.key;
  a[kAnnotationTaskHash] = task_hash(l, *r.task);
  return a;
}

json env_for(const JobRequest& r, const std::string& name) {
  const TaskLaunch& l = *r.launch;
  const KubeTaskSpec& t = *r.task;
  std::map<std::string, std::string> vars;
  for (const auto& [k, v] : l.env) vars[k] = rewrite_path(v, r.datastore_root, t.mount_path);
  // Local GPU slots mean nothing in a pod; the device plugin sets CUDA_VISIBLE_DEVICES.
  vars.erase("CUDA_VISIBLE_DEVICES");
  vars["MFLOW_CPUS"] = fmt::format("{}", t.cpu);
  vars["MFLOW_KUBERNETES_JOB"] = name;
  for (const auto& [k, v] : t.env) vars[k] = v;
  json env = json::array();
  for (const auto& [k, v] : vars) env.push_back({{"name", k}, {"value", v}});
  env.push_back({{"name", "MFLOW_KUBERNETES_POD"},
                 {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}});
  env.push_back({{"name", "MFLOW_KUBERNETES_NODE"},
                 {"valueFrom", {{"fieldRef", {{"fieldPath", "spec.nodeName"}}}}}});
  return env;
}

// YAML printing. Plain scalars only where no YAML 1.1 or 1.2 reader can take them for
// anything but a string; everything else is a JSON string, which is valid double-quoted YAML.
bool plain_safe(const std::string& s) {
  if (s.empty()) return false;
  if (!std::isalpha(static_cast<unsigned char>(s.front())) && s.front() != '/' && s.front() != '_') {
    return false;
  }
  if (!std::all_of(s.begin(), s.end(), [](char c) {
        return alnum(c) || c == '.' || c == '_' || c == '/' || c == '-';
      })) {
    return false;
  }
  std::string lower;
  for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const char* const kReserved[] = {"y", "n", "yes", "no", "true", "false", "on", "off", "null"};
  return std::none_of(std::begin(kReserved), std::end(kReserved),
                      [&](const char* w) { return lower == w; });
}

std::string scalar(const json& v) {
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    return plain_safe(s) ? s : json(s).dump();
  }
  if (v.is_object()) return "{}";
  if (v.is_array()) return "[]";
  return v.dump();
}

bool inline_value(const json& v) { return !v.is_structured() || v.empty(); }

void emit_seq(const json& seq, size_t indent, std::string& out);

void emit_map(const json& map, size_t indent, std::string& out, bool first_inline) {
  bool first = true;
  for (const auto& [key, v] : map.items()) {
    if (!(first && first_inline)) out.append(indent, ' ');
    first = false;
    out += scalar(json(key)) + ":";
    if (inline_value(v)) {
      out += " " + scalar(v) + "\n";
    } else if (v.is_object()) {
      out += "\n";
      emit_map(v, indent + 2, out, false);
    } else {
      out += "\n";
      emit_seq(v, indent, out);
    }
  }
}

void emit_seq(const json& seq, size_t indent, std::string& out) {
  for (const auto& item : seq) {
    out.append(indent, ' ');
    out += "-";
    if (inline_value(item)) {
      out += " " + scalar(item) + "\n";
    } else if (item.is_object()) {
      out += " ";
      emit_map(item, indent + 2, out, true);
    } else {
      out += "\n";
      emit_seq(item, indent + 2, out);
    }
  }
}

}  // namespace

std::string job_name(const std::string& datastore_id, const std::string& flow,
                     const std::string& run_id, const std::string& step,
                     const std::string& task_id, int attempt) {
  std::string hash = short_hash(fmt::format("{}\n{}\n{}\n{}\n{}\n{}", datastore_id, flow, run_id,
                                            step, task_id, attempt),
                                8);
  std::string tail = trim_dashes(dns_chars(fmt::format("{}-{}-{}", run_id, task_id, attempt)));
  std::string f = trim_dashes(dns_chars(flow));
  std::string s = trim_dashes(dns_chars(step));
  // "mflow-" + f + "-" + s + "-" + tail + "-" + hash; shorten f and s (the step keeps at
  // least half of the room) and, only if that is not enough, the tail.
  size_t fixed = 6 + 1 + 1 + tail.size() + 1 + hash.size();
  size_t room = fixed < kMaxName ? kMaxName - fixed : 0;
  if (f.size() + s.size() > room) {
    size_t s_room = std::max(room / 2, room > f.size() ? room - f.size() : 0);
    s = trim_dashes(s.substr(0, std::min(s.size(), s_room)));
    f = trim_dashes(f.substr(0, room > s.size() ? room - s.size() : 0));
  }
  std::string name = "mflow";
  for (const std::string* part : {&f, &s, &tail}) {
    if (!part->empty()) name += "-" + *part;
  }
  if (name.size() + 1 + hash.size() > kMaxName) {
    name = trim_dashes(name.substr(0, kMaxName - 1 - hash.size()));
  }
  return name + "-" + hash;
}

std::string label_value(std::string_view text) {
  if (valid_label_value(text)) return std::string(text);
  std::string clean;
  for (char c : text) clean += (alnum(c) || c == '-' || c == '_' || c == '.') ? c : '-';
  while (!clean.empty() && !alnum(clean.back())) clean.pop_back();
  size_t start = 0;
  while (start < clean.size() && !alnum(clean[start])) ++start;
  clean = clean.substr(start);
  std::string hash = short_hash(text, 8);
  size_t room = kMaxName - 1 - hash.size();
  if (clean.size() > room) clean = clean.substr(0, room);
  while (!clean.empty() && !alnum(clean.back())) clean.pop_back();
  return clean.empty() ? hash : clean + "-" + hash;
}

std::string run_label_selector(const std::string& datastore_id, const std::string& run_id) {
  return fmt::format("{}={},{}={}", kLabelDatastore, label_value(datastore_id), kLabelRun,
                     label_value(run_id));
}

std::string task_hash(const TaskLaunch& launch, const KubeTaskSpec& t) {
  json tolerations = json::array();
  for (const auto& x : t.tolerations) {
    tolerations.push_back({x.key, x.op, x.value, x.effect,
                           x.toleration_seconds ? json(*x.toleration_seconds) : json()});
  }
  json k = {{"task", launch.task_hash},
            {"cpu", t.cpu},
            {"memory_mb", t.memory_mb},
            {"disk_mb", t.disk_mb},
            {"gpu", t.gpu},
            {"gpu_vendor", t.gpu_vendor},
            {"namespace", t.namespace_name},
            {"image", t.image},
            {"service_account", t.service_account},
            {"image_pull_policy", t.image_pull_policy},
            {"pvc", t.pvc},
            {"mount_path", t.mount_path},
            {"secrets", t.secrets},
            {"node_selector", t.node_selector},
            {"tolerations", tolerations},
            {"env", t.env},
            {"labels", t.labels},
            {"annotations", t.annotations},
            {"timeout_s", t.timeout.count()}};
  return base::sha256_hex(k.dump());
}

std::vector<std::string> task_argv(const TaskLaunch& launch, const std::string& mount_path) {
  std::vector<std::string> argv = {"mflow",     "task",      "--datastore", mount_path,
                                   "--run-id",  launch.run_id, "--step",    launch.step,
                                   "--task-id", launch.task_id, "--attempt",
                                   std::to_string(launch.attempt), "--"};
  if (launch.command.shell) {
    argv.insert(argv.end(), {"/bin/sh", "-c", launch.command.script});
  } else {
    argv.insert(argv.end(), launch.command.argv.begin(), launch.command.argv.end());
  }
  return argv;
}

json build_job(const JobRequest& r) {
  MFLOW_CHECK(r.launch != nullptr && r.task != nullptr, "build_job without launch or task");
  const TaskLaunch& l = *r.launch;
  const KubeTaskSpec& t = *r.task;
  std::string name = job_name(r.datastore_id, r.flow, l.run_id, l.step, l.task_id, l.attempt);
  json labels = labels_for(r, t.labels);
  json annotations = annotations_for(r, t.annotations);

  json requests = {{"cpu", format_cpu(t.cpu)},
                   {"memory", fmt::format("{}Mi", t.memory_mb)},
                   {"ephemeral-storage", fmt::format("{}Mi", t.disk_mb)}};
  // Memory limit = request: a task that outgrows its request is OOM-killed (and reported as
  // such) instead of taking memory from its neighbours. No cpu limit: throttling only slows.
  json limits = {{"memory", fmt::format("{}Mi", t.memory_mb)}};
  if (t.gpu > 0) limits[t.gpu_vendor + ".com/gpu"] = std::to_string(t.gpu);

  json container = {
      {"name", kContainerName},
      {"image", t.image},
      {"command", task_argv(l, t.mount_path)},
      {"env", env_for(r, name)},
      {"resources", {{"requests", requests}, {"limits", limits}}},
      {"volumeMounts", json::array({{{"name", kDatastoreVolume}, {"mountPath", t.mount_path}}})},
  };
  if (!t.image_pull_policy.empty()) container["imagePullPolicy"] = t.image_pull_policy;
  if (!t.secrets.empty()) {
    json from = json::array();
    for (const auto& s : t.secrets) from.push_back({{"secretRef", {{"name", s}}}});
    container["envFrom"] = from;
  }

  json pod_spec = {
      {"restartPolicy", "Never"},
      {"containers", json::array({container})},
      {"volumes", json::array({{{"name", kDatastoreVolume},
                                {"persistentVolumeClaim", {{"claimName", t.pvc}}}}})},
  };
  if (!t.service_account.empty()) pod_spec["serviceAccountName"] = t.service_account;
  if (!t.node_selector.empty()) pod_spec["nodeSelector"] = t.node_selector;
  if (!t.tolerations.empty()) {
    json tol = json::array();
    for (const auto& x : t.tolerations) {
      json j = json::object();
      if (!x.key.empty()) j["key"] = x.key;
      if (!x.op.empty()) j["operator"] = x.op;
      if (!x.value.empty()) j["value"] = x.value;
      if (!x.effect.empty()) j["effect"] = x.effect;
      if (x.toleration_seconds) j["tolerationSeconds"] = *x.toleration_seconds;
      tol.push_back(j);
    }
    pod_spec["tolerations"] = tol;
  }

  json spec = {
      // Every attempt is its own Job: mflow retries with the step's delays and records each
      // attempt, so Kubernetes must not retry on its own.
      {"backoffLimit", 0},
      {"completions", 1},
      {"parallelism", 1},
      // An eviction or preemption (pod condition DisruptionTarget) is not the task's fault:
      // the Job controller replaces the pod without counting a failure. Clusters that do not
      // set the condition fail the Job, and KubeExecutor reports Outcome::kEvicted, which the
      // scheduler retries without using up one of the step's retries.
      {"podFailurePolicy",
       {{"rules", json::array({{{"action", "Ignore"},
                                {"onPodConditions",
                                 json::array({{{"type", "DisruptionTarget"}, {"status", "True"}}})}}})}}},
      {"activeDeadlineSeconds", t.timeout.count()},
      {"ttlSecondsAfterFinished", t.ttl_after_finished.count()},
      {"template", {{"metadata", {{"labels", labels}, {"annotations", annotations}}},
                    {"spec", pod_spec}}},
  };

  return {{"apiVersion", "batch/v1"},
          {"kind", "Job"},
          {"metadata", {{"name", name},
                        {"namespace", t.namespace_name},
                        {"labels", labels},
                        {"annotations", annotations}}},
          {"spec", spec}};
}

std::string to_yaml(const json& value) {
  std::string out;
  if (value.is_object() && !value.empty()) {
    emit_map(value, 0, out, false);
  } else if (value.is_array() && !value.empty()) {
    emit_seq(value, 0, out);
  } else {
    out = scalar(value) + "\n";
  }
  return out;
}

}  // namespace mflow::exec
