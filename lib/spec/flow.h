// The flow model: plain structs produced by the loader (spec/loader.h) from a YAML or TOML
// flow file, after schema validation and with `defaults` already applied to every step.
// Everything downstream (graph lint, scheduler, Job manifests, resume hashing) reads only
// these structs, never the documents. Plain data; thread-compatible.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "spec/diagnostic.h"

namespace mflow::spec {

enum class ParamType { kString, kInteger, kNumber, kBoolean, kJson };

const char* to_string(ParamType type);

struct Parameter {
  std::string name;
  ParamType type = ParamType::kString;
  /// The default as the text a task sees in MFLOW_PARAM_<NAME> (JSON for kJson).
  std::optional<std::string> default_value;
  std::string help;
  bool required = false;
  SourcePos pos;
};

/// A resource prescription. Unset fields take the documented defaults (cpu 1, memory 4096 MB,
/// disk 10240 MB, gpu 0) when a step goes to Kubernetes or is admitted locally.
struct Resources {
  std::optional<double> cpu;
  std::optional<int64_t> memory_mb;
  std::optional<int64_t> disk_mb;
  std::optional<int64_t> gpu;
};

inline constexpr double kDefaultCpu = 1;
inline constexpr int64_t kDefaultMemoryMb = 4096;
inline constexpr int64_t kDefaultDiskMb = 10240;

struct Toleration {
  std::string key, op, value, effect;  // op: Equal|Exists
  std::optional<int64_t> toleration_seconds;
};

/// The per-step `kubernetes` block. Its presence (even empty) forces the step onto Kubernetes.
struct KubernetesSpec {
  Resources resources;
  std::string image;
  std::string namespace_name;
  std::string service_account;
  std::string image_pull_policy;  // Always|IfNotPresent|Never, or "" for the cluster default
  std::string gpu_vendor;         // "nvidia" (default) or "amd"
  std::map<std::string, std::string> node_selector;
  std::vector<Toleration> tolerations;
  std::vector<std::string> secrets;  // names of Secrets exposed as environment (envFrom)
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

/// What a task runs: a shell string (`/bin/sh -c`) or an argv list executed directly.
struct Command {
  bool shell = true;
  std::string script;             // when shell
  std::vector<std::string> argv;  // when !shell
};

struct Step {
  std::string name;
  SourcePos pos;  // position of the step's key
  Command run;
  std::vector<std::string> next;  // 0 (end), 1 (linear / foreach), >1 (static branch)
  std::vector<SourcePos> next_pos;
  std::string foreach;     // artifact holding the JSON array to fan out over; "" if none
  SourcePos foreach_pos;
  bool join = false;       // explicit join marker (`join: true`), needed to close a foreach
  SourcePos join_pos;
  Resources resources;
  std::optional<KubernetesSpec> kubernetes;
  std::map<std::string, std::string> env;
  std::optional<std::chrono::seconds> timeout;
  int retries = 0;
  std::chrono::seconds retry_delay{0};
};

struct Flow {
  std::string file;  // path as given by the user; used in diagnostics
  std::string name;
  SourcePos name_pos;
  std::string description;
  std::vector<Parameter> parameters;
  std::vector<Step> steps;  // in file order (TOML: sorted by key; never rely on it)

  const Step* find_step(const std::string& step_name) const;
};

/// Parses durations such as `90s`, `30m`, `1h30m`, `5d`, `2w`, or a bare number of seconds.
std::optional<std::chrono::seconds> parse_duration(const std::string& text);
/// The inverse, for display: 90 -> "1m30s".
std::string format_duration(std::chrono::seconds d);

/// A stable hash of everything about a resolved step that changes what it computes
/// (command, env, foreach, resources, kubernetes, timeout, retries). Used by resume.
std::string step_spec_hash(const Step& step);

}  // namespace mflow::spec
