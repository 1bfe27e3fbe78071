// KubeDefaults: the Kubernetes settings of one run, read from MFLOW_KUBERNETES_* environment
// variables and then overridden by `--with kubernetes:key=value,...`; and resolve_kube_task(),
// which combines them with a step's `resources` and `kubernetes` block into the request of one
// task (KubeTaskSpec). Used by the CLI (flags, --dry-run) and by KubeExecutor. Pure functions
// over plain structs; thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "spec/flow.h"

namespace mflow::exec {

/// The default container image: packaging/Dockerfile builds it (`docker build -t mflow:<ver>`).
std::string default_kube_image();

/// Run-wide Kubernetes settings. Resource fields are optional: when set they take part in the
/// "largest value wins" rule together with the step's `resources` and `kubernetes` block.
struct KubeDefaults {
  spec::Resources resources;         // cpu, memory (MB), disk (MB), gpu
  std::string namespace_name = "default";
  /// Whether `namespace` came from the environment or --with; if not, the kubeconfig
  /// context's namespace replaces "default" (kubectl's rule).
  bool namespace_given = false;
  std::string image;                 // "" = default_kube_image()
  std::string service_account;       // "" = the namespace's default service account
  std::string image_pull_policy;     // Always | IfNotPresent | Never | "" (cluster default)
  std::string gpu_vendor = "nvidia"; // nvidia | amd -> "<vendor>.com/gpu"
  std::string pvc;                   // PersistentVolumeClaim holding the datastore (required)
  std::string mount_path;            // where the PVC is mounted in the pod; "" = datastore root
  std::vector<std::string> secrets;  // Secrets exposed to every task as environment (envFrom)
  std::map<std::string, std::string> node_selector;
  /// A pod that stays Unschedulable (or cannot create its container) this long fails.
  std::chrono::seconds pending_grace{std::chrono::minutes(5)};
  /// A pod that keeps failing to pull its image this long fails.
  std::chrono::seconds image_pull_grace{std::chrono::minutes(3)};
  /// Finished Jobs (and their pods) are deleted by Kubernetes this long after they end. Logs
  /// are already in the datastore, so a day only serves `kubectl describe` debugging.
  std::chrono::seconds ttl_after_finished{std::chrono::hours(24)};
  /// activeDeadlineSeconds for steps without a `timeout`.
  std::chrono::seconds timeout{std::chrono::hours(24 * 5)};
  /// Job creates in flight at once (client-go's burst plays this role); 1 = one at a time.
  /// More than --max-workers is never used: a create is part of a running task.
  int parallel_creates = 16;
};

/// The largest parallel_creates accepted (beyond it an API server's flow control answers
/// 429 and nothing is gained).
inline constexpr int kMaxParallelCreates = 256;

/// Every key `--with kubernetes:` accepts, in documentation order.
const std::vector<std::string>& kube_option_keys();

/// Reads MFLOW_KUBERNETES_<KEY> (upper-case key, e.g. MFLOW_KUBERNETES_NAMESPACE,
/// MFLOW_KUBERNETES_PENDING_GRACE) for every key of kube_option_keys() through `getenv`
/// (injectable for tests; defaults to ::getenv). The repeatable keys use plural variables
/// with comma-separated items: MFLOW_KUBERNETES_SECRETS=a,b and
/// MFLOW_KUBERNETES_NODE_SELECTORS=k1=v1,k2=v2. Errors name the variable and the bad value.
base::Result<KubeDefaults> kube_defaults_from_env(
    const std::function<const char*(const char*)>& getenv = nullptr);

/// Applies one `--with` value ("kubernetes" or "kubernetes:k=v,k=v") on top of `defaults`.
/// `secret` and `node_selector` (value `key=value`) may repeat; other keys replace earlier
/// values. Errors quote the flag and the bad item and suggest the closest known key.
base::Status apply_with_option(const std::string& with_value, KubeDefaults* defaults);

/// The fully resolved request of one task on Kubernetes.
struct KubeTaskSpec {
  double cpu = spec::kDefaultCpu;
  int64_t memory_mb = spec::kDefaultMemoryMb;
  int64_t disk_mb = spec::kDefaultDiskMb;
  int64_t gpu = 0;
  std::string gpu_vendor = "nvidia";
  std::string namespace_name;
  std::string image;
  std::string service_account;
  std::string image_pull_policy;
  std::string pvc;
  std::string mount_path;
  std::vector<std::string> secrets;
  std::map<std::string, std::string> node_selector;
  std::vector<spec::Toleration> tolerations;
  std::map<std::string, std::string> env;          // the step's kubernetes.env
  std::map<std::string, std::string> labels;       // user labels (kubernetes.labels)
  std::map<std::string, std::string> annotations;  // user annotations
  std::chrono::seconds timeout{0};
  std::chrono::seconds ttl_after_finished{0};
};

/// Combines `step` with the run's `defaults`: cpu/memory/disk/gpu are the largest of the
/// step's `resources`, its `kubernetes` block and the run-wide values (Metaflow's rule), with
/// mflow's defaults where none is given; namespace, image, service account, pull policy and
/// gpu vendor come from the step's block if set, else from the run; node selectors and
/// secrets are merged (step wins). `datastore_root` is the mount path when none is set.
/// Fails when no PVC is configured or a value is out of range.
base::Result<KubeTaskSpec> resolve_kube_task(const spec::Step& step, const KubeDefaults& defaults,
                                             const std::string& datastore_root);

}  // namespace mflow::exec
