// Job manifests: pure functions that turn one task attempt into a batch/v1 Job (nlohmann
// JSON), name it, label it, and print it as YAML for `mflow run --dry-run`. KubeExecutor
// creates exactly what build_job() returns; golden files in test/exec/golden pin the shape.
// Pure; thread-safe.
//
// The pod contract (docs/kubernetes.md, "The task entry point"). The container runs
//
//   mflow task --datastore MOUNT --run-id RUN --step STEP --task-id TASK --attempt N -- CMD...
//
// where CMD is `/bin/sh -c SCRIPT` for a shell step and the step's argv otherwise, and the
// environment is the local task contract (MFLOW_RUN_ID, MFLOW_INPUT_DIR, MFLOW_OUTPUT_DIR,
// MFLOW_PARAM_*, MFLOW_INPUT, ...) with every path under the orchestrator's datastore root
// rewritten to MOUNT, plus the step's `kubernetes.env`, MFLOW_KUBERNETES_JOB (the Job name),
// MFLOW_KUBERNETES_POD and MFLOW_KUBERNETES_NODE (downward API). `mflow task` must:
//   1. fail with exit 2 and a message naming MOUNT when MOUNT is not an mflow datastore;
//   2. empty $MFLOW_OUTPUT_DIR first: after an eviction Kubernetes starts a replacement pod
//      for the same attempt (podFailurePolicy Ignore on DisruptionTarget);
//   3. run CMD with stdin from /dev/null, stdout and stderr inherited (they become the pod
//      log, which the orchestrator streams into the attempt's stdout file);
//   4. exit with CMD's exit code (128+N when killed by signal N).
// The orchestrator materialises inputs before creating the Job and ingests outputs after it
// succeeds, exactly as for local tasks.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "exec/executor.h"
#include "exec/kube_options.h"

namespace mflow::exec {

inline constexpr const char* kLabelManagedBy = "app.kubernetes.io/managed-by";
/// The datastore identity (store::Datastore::identity): run ids restart at 1 in every
/// datastore, so the run label alone does not tell two datastores' runs apart.
inline constexpr const char* kLabelDatastore = "mflow.dev/datastore";
inline constexpr const char* kLabelFlow = "mflow.dev/flow";
inline constexpr const char* kLabelRun = "mflow.dev/run";
inline constexpr const char* kLabelStep = "mflow.dev/step";
inline constexpr const char* kLabelTask = "mflow.dev/task";
inline constexpr const char* kLabelAttempt = "mflow.dev/attempt";
/// Annotations with the untruncated names (labels may be shortened to 63 characters).
inline constexpr const char* kAnnotationDatastore = "mflow.dev/datastore-id";
inline constexpr const char* kAnnotationFlow = "mflow.dev/flow-name";
inline constexpr const char* kAnnotationRun = "mflow.dev/run-id";
inline constexpr const char* kAnnotationStep = "mflow.dev/step-name";
inline constexpr const char* kAnnotationTask = "mflow.dev/task-id";
inline constexpr const char* kAnnotationKey = "mflow.dev/task-key";
/// What the attempt computes (task_hash below): a resume adopts a live Job of the origin
/// run only when this still matches.
inline constexpr const char* kAnnotationTaskHash = "mflow.dev/task-hash";
inline constexpr const char* kContainerName = "mflow";
inline constexpr const char* kDatastoreVolume = "mflow-datastore";

/// The Job name of one attempt: `mflow-<flow>-<step>-<run>-<task>-<attempt>-<hash8>`, lower-
/// cased, every character outside [a-z0-9-] replaced by '-', flow and step shortened as
/// needed so the whole is a DNS-1123 label of at most 63 characters. The 8 hex digits hash
/// the datastore identity and the unmodified names, so two attempts never share a name
/// however their names sanitize, and the same run id in another datastore gives another
/// name; the same attempt always gets the same name (which makes create idempotent).
std::string job_name(const std::string& datastore_id, const std::string& flow,
                     const std::string& run_id, const std::string& step,
                     const std::string& task_id, int attempt);

/// `text` as a valid label value: unchanged when already valid, else sanitized to
/// [A-Za-z0-9._-], trimmed to alphanumeric ends and suffixed with a short hash of the
/// original (so distinct inputs stay distinct), at most 63 characters.
std::string label_value(std::string_view text);

/// The label selector matching every Job and pod of one run of one datastore:
/// `mflow.dev/datastore=<id>,mflow.dev/run=<run>`.
std::string run_label_selector(const std::string& datastore_id, const std::string& run_id);

/// The container's argv (see the pod contract above).
std::vector<std::string> task_argv(const TaskLaunch& launch, const std::string& mount_path);

struct JobRequest {
  std::string datastore_id;    // store::Datastore::identity (labels, annotations, Job name)
  std::string flow;            // flow name (labels, Job name)
  std::string datastore_root;  // the orchestrator's datastore root (rewritten to mount_path)
  const TaskLaunch* launch = nullptr;
  const KubeTaskSpec* task = nullptr;
};

/// Hashes what the Job computes, independent of run and attempt: the launch's task_hash
/// (step spec + inputs) and every resolved Kubernetes setting (image, resources, namespace,
/// PVC, mount, env, selectors, tolerations, secrets, timeout, ...).
std::string task_hash(const TaskLaunch& launch, const KubeTaskSpec& task);

/// The complete Job for one attempt. Deterministic: the same request gives the same JSON.
nlohmann::json build_job(const JobRequest& request);

/// Prints JSON as block-style YAML (a document per call, without the leading `---`); strings
/// that YAML could misread are double-quoted. Accepted by `kubectl apply -f -`.
std::string to_yaml(const nlohmann::json& value);

}  // namespace mflow::exec
