#include "exec/kube_options.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "base/strings.h"

namespace mflow::exec {

namespace {

using base::Status;

// Where a value came from, for error messages: "--with kubernetes:cpu=x" or
// "MFLOW_KUBERNETES_CPU=x".
struct Origin {
  std::string where;  // "--with kubernetes:" or "environment variable MFLOW_KUBERNETES_CPU"
  std::string item;   // the whole "key=value" as the user wrote it
};

Status bad(const Origin& o, const std::string& why) {
  return Status::invalid(fmt::format("{} `{}`: {}", o.where, o.item, why));
}

bool parse_number(const std::string& text, double* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool parse_int(const std::string& text, int64_t* out) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    return false;
  }
  if (text.size() > 15) return false;
  *out = std::stoll(text);
  return true;
}

bool is_dns_label(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  auto ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; };
  return std::all_of(s.begin(), s.end(), ok) && s.front() != '-' && s.back() != '-';
}

Status set_key(const std::string& key, const std::string& value, const Origin& o,
               KubeDefaults* d) {
  if (key == "cpu") {
    double v = 0;
    if (!parse_number(value, &v) || v <= 0) {
      return bad(o, "cpu must be a positive number of cores, e.g. cpu=4 or cpu=0.5");
    }
    d->resources.cpu = v;
  } else if (key == "memory" || key == "disk" || key == "gpu") {
    int64_t v = 0;
    if (!parse_int(value, &v) || (key != "gpu" && v == 0)) {
      return bad(o, key == "gpu" ? "gpu must be a whole number of devices, e.g. gpu=1"
                                 : fmt::format("{} must be a positive whole number of megabytes, "
                                               "e.g. {}=10000", key, key));
    }
    (key == "memory" ? d->resources.memory_mb : key == "disk" ? d->resources.disk_mb
                                                                : d->resources.gpu) = v;
  } else if (key == "namespace") {
    if (!is_dns_label(value)) {
      return bad(o, "a namespace is a DNS label: lower-case letters, digits and '-', at most "
                    "63 characters");
    }
    d->namespace_name = value;
    d->namespace_given = true;
  } else if (key == "image") {
    if (value.empty()) return bad(o, "image must not be empty");
    d->image = value;
  } else if (key == "service_account") {
    d->service_account = value;
  } else if (key == "image_pull_policy") {
    if (value != "Always" && value != "IfNotPresent" && value != "Never") {
      return bad(o, "image_pull_policy must be Always, IfNotPresent or Never");
    }
    d->image_pull_policy = value;
  } else if (key == "gpu_vendor") {
    if (value != "nvidia" && value != "amd") return bad(o, "gpu_vendor must be nvidia or amd");
    d->gpu_vendor = value;
  } else if (key == "pvc") {
    if (value.empty()) return bad(o, "pvc must name a PersistentVolumeClaim");
    d->pvc = value;
  } else if (key == "mount_path") {
    if (value.empty() || value.front() != '/') return bad(o, "mount_path must be an absolute path");
    d->mount_path = value;
  } else if (key == "parallel_creates") {
    int64_t v = 0;
    if (!parse_int(value, &v) || v < 1 || v > kMaxParallelCreates) {
      return bad(o, fmt::format("parallel_creates must be a whole number from 1 to {} (Job "
                                "creates in flight at once; 1 creates one at a time)",
                                kMaxParallelCreates));
    }
    d->parallel_creates = static_cast<int>(v);
  } else if (key == "secret") {
    if (value.empty()) return bad(o, "secret must name a Secret");
    d->secrets.push_back(value);
  } else if (key == "node_selector") {
    auto eq = value.find('=');
    if (eq == std::string::npos || eq == 0) {
      return bad(o, "node_selector takes a node label as key=value, e.g. "
                    "node_selector=kubernetes.io/arch=amd64");
    }
    d->node_selector[value.substr(0, eq)] = value.substr(eq + 1);
  } else {
    std::chrono::seconds* target = key == "pending_grace"      ? &d->pending_grace
                                   : key == "image_pull_grace" ? &d->image_pull_grace
                                   : key == "ttl"              ? &d->ttl_after_finished
                                   : key == "timeout"          ? &d->timeout
                                                               : nullptr;
    MFLOW_CHECK(target != nullptr, "unhandled kubernetes option key {}", key);
    auto v = spec::parse_duration(value);
    if (!v || (key == "timeout" && v->count() == 0)) {
      return bad(o, fmt::format("{} must be a duration such as 90s, 10m, 2h or 5d", key));
    }
    *target = *v;
  }
  return Status::ok_status();
}

Status unknown_key(const std::string& key, const Origin& o) {
  std::string hint = base::closest_match(key, kube_option_keys());
  return bad(o, fmt::format("unknown key '{}'{}; known keys: {}", key,
                            hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint),
                            base::join(kube_option_keys(), ", ")));
}

bool known(const std::string& key) {
  const auto& keys = kube_option_keys();
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

std::string env_name(const std::string& key) {
  std::string out = "MFLOW_KUBERNETES_";
  for (char c : key) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string default_kube_image() { return std::string("mflow:") + MFLOW_VERSION; }

const std::vector<std::string>& kube_option_keys() {
  static const std::vector<std::string> keys = {
      "cpu", "memory", "disk", "gpu", "gpu_vendor", "namespace", "image", "image_pull_policy",
      "service_account", "pvc", "mount_path", "secret", "node_selector", "pending_grace",
      "image_pull_grace", "ttl", "timeout", "parallel_creates"};
  return keys;
}

base::Result<KubeDefaults> kube_defaults_from_env(
    const std::function<const char*(const char*)>& getenv) {
  auto get = getenv ? getenv : [](const char* name) { return static_cast<const char*>(std::getenv(name)); };
  KubeDefaults d;
  for (const auto& key : kube_option_keys()) {
    std::string name = env_name(key == "secret" ? "secrets" : key == "node_selector" ? "node_selectors" : key);
    const char* raw = get(name.c_str());
    if (raw == nullptr || *raw == '\0') continue;
    // The list-valued keys take comma-separated items in their (plural) variable.
    std::vector<std::string> values;
    if (key == "secret" || key == "node_selector") {
      for (const auto& part : base::split(raw, ',')) {
        if (!base::trim(part).empty()) values.emplace_back(base::trim(part));
      }
    } else {
      values.emplace_back(raw);
    }
    for (const auto& v : values) {
      Origin o{"environment variable " + name, name + "=" + raw};
      MFLOW_RETURN_IF_ERROR(set_key(key, v, o, &d));
    }
  }
  return d;
}

Status apply_with_option(const std::string& with_value, KubeDefaults* defaults) {
  if (with_value == "kubernetes") return Status::ok_status();
  if (!base::starts_with(with_value, "kubernetes:")) {
    return Status::invalid(fmt::format(
        "--with {}: expected `kubernetes` or `kubernetes:key=value,...`", with_value));
  }
  std::string body = with_value.substr(std::string("kubernetes:").size());
  for (const auto& raw_item : base::split(body, ',')) {
    std::string item(base::trim(raw_item));
    Origin o{"--with kubernetes:", item};
    if (item.empty()) {
      return Status::invalid(fmt::format("--with {}: empty item between commas", with_value));
    }
    auto eq = item.find('=');
    if (eq == std::string::npos) {
      if (known(item)) return bad(o, fmt::format("missing value: write {}=VALUE", item));
      return unknown_key(item, o);
    }
    std::string key(base::trim(item.substr(0, eq)));
    std::string value(base::trim(item.substr(eq + 1)));
    if (!known(key)) return unknown_key(key, o);
    MFLOW_RETURN_IF_ERROR(set_key(key, value, o, defaults));
  }
  return Status::ok_status();
}

base::Result<KubeTaskSpec> resolve_kube_task(const spec::Step& step, const KubeDefaults& defaults,
                                             const std::string& datastore_root) {
  static const spec::KubernetesSpec kNone;
  const spec::KubernetesSpec& k = step.kubernetes ? *step.kubernetes : kNone;
  KubeTaskSpec t;

  // Metaflow's rule: where several places ask for a resource, the largest request wins.
  auto largest = [](auto field, auto fallback, const auto&... sources) {
    std::optional<decltype(fallback)> best;
    for (const spec::Resources* r : {&sources...}) {
      if (auto v = r->*field; v && (!best || *v > *best)) best = *v;
    }
    return best.value_or(fallback);
  };
  t.cpu = largest(&spec::Resources::cpu, spec::kDefaultCpu, step.resources, k.resources,
                  defaults.resources);
  t.memory_mb = largest(&spec::Resources::memory_mb, spec::kDefaultMemoryMb, step.resources,
                        k.resources, defaults.resources);
  t.disk_mb = largest(&spec::Resources::disk_mb, spec::kDefaultDiskMb, step.resources,
                      k.resources, defaults.resources);
  t.gpu = largest(&spec::Resources::gpu, int64_t{0}, step.resources, k.resources,
                  defaults.resources);

  auto pick = [](const std::string& step_value, const std::string& run_value) {
    return step_value.empty() ? run_value : step_value;
  };
  t.namespace_name = pick(k.namespace_name, defaults.namespace_name);
  t.image = pick(k.image, pick(defaults.image, default_kube_image()));
  t.service_account = pick(k.service_account, defaults.service_account);
  t.image_pull_policy = pick(k.image_pull_policy, defaults.image_pull_policy);
  t.gpu_vendor = pick(k.gpu_vendor, defaults.gpu_vendor);
  t.pvc = defaults.pvc;
  t.mount_path = pick(defaults.mount_path, datastore_root);
  t.secrets = defaults.secrets;
  for (const auto& s : k.secrets) {
    if (std::find(t.secrets.begin(), t.secrets.end(), s) == t.secrets.end()) t.secrets.push_back(s);
  }
  t.node_selector = defaults.node_selector;
  for (const auto& [key, value] : k.node_selector) t.node_selector[key] = value;
  t.tolerations = k.tolerations;
  t.env = k.env;
  t.labels = k.labels;
  t.annotations = k.annotations;
  t.timeout = step.timeout.value_or(defaults.timeout);
  t.ttl_after_finished = defaults.ttl_after_finished;

  if (t.pvc.empty()) {
    return Status::invalid(fmt::format(
        "step '{}' runs on Kubernetes, but no datastore volume is configured: pods reach the "
        "datastore through a PersistentVolumeClaim (ReadWriteMany, e.g. NFS or CephFS); set "
        "--with kubernetes:pvc=CLAIM or MFLOW_KUBERNETES_PVC=CLAIM (see docs/kubernetes.md)",
        step.name));
  }
  if (t.mount_path.empty() || t.mount_path.front() != '/') {
    return Status::invalid(fmt::format(
        "step '{}': the datastore mount path '{}' must be absolute; set --with "
        "kubernetes:mount_path=/PATH or use an absolute --datastore", step.name, t.mount_path));
  }
  if (!is_dns_label(t.namespace_name)) {
    return Status::invalid(fmt::format("step '{}': namespace '{}' is not a valid DNS label",
                                       step.name, t.namespace_name));
  }
  if (t.gpu_vendor != "nvidia" && t.gpu_vendor != "amd") {
    return Status::invalid(fmt::format("step '{}': gpu_vendor '{}' must be nvidia or amd",
                                       step.name, t.gpu_vendor));
  }
  if (t.cpu <= 0 || t.memory_mb <= 0 || t.disk_mb <= 0 || t.gpu < 0) {
    return Status::invalid(fmt::format("step '{}': resource requests must be positive", step.name));
  }
  return t;
}

}  // namespace mflow::exec
