// What `mflow run` and `mflow resume` share: their flags, parameter resolution, routing of
// steps to Kubernetes, preflight, the datastore, the executors and the scheduler. Both
// commands are thin wrappers around execute_flow(). CLI11 stays in cli/.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/exit_code.h"
#include "base/status.h"
#include "spec/flow.h"
#include "store/datastore.h"

namespace mflow::cli {

struct RunFlags {
  std::string datastore;  // --datastore, else $MFLOW_DATASTORE, else ./.mflow
  int max_workers = 16;
  int64_t max_num_splits = 100;
  std::vector<std::string> params;  // --param NAME=VALUE
  // `--NAME VALUE` / `--NAME=VALUE` / bare `--NAME` tokens for declared parameters, set aside
  // by take_param_flags() before CLI11 parses the rest (the flow is not known until then).
  std::vector<std::string> param_flags;
  std::vector<std::string> own_flags;  // the command's long options, for did-you-mean
  std::vector<std::string> with;    // --with kubernetes[:k=v,...]
  double local_cpus = 0;            // 0: detect
  int64_t local_memory_mb = 0;      // 0: detect
  int64_t local_gpus = -1;          // -1: detect
  bool quiet = false;
  bool dry_run = false;
  std::string kubernetes_context;
  std::string run_id_file;
  std::string summary_json;
  std::string events;  // --events FILE, "-" for stdout
  std::string junit;   // --junit FILE
  double kill_grace_seconds = 10;
  bool enforce_resources = false;
};

/// Registers the flags above on `app`.
void add_run_flags(CLI::App& app, RunFlags& flags);

/// Every long option `app` defines, as `--name`.
std::vector<std::string> long_option_names(const CLI::App& app);

/// Moves every long option in args[from..] that `app` does not define (`--size 5`,
/// `--size=5`, `--debug`) out of `args` and returns those tokens, in order. A bare option takes
/// the next token as its value unless that token is another option (a negative number is a
/// value); scanning stops at `--`. What the tokens mean is decided once the flow is loaded.
std::vector<std::string> take_param_flags(const CLI::App& app, std::vector<std::string>& args,
                                          size_t from);

/// Resume request: which run to reuse tasks from and which step (if any) to re-run from.
struct ResumeRequest {
  std::string origin_run_id;  // empty: the latest run of the flow
  std::string step;           // empty: re-run from the failure point
};

/// The run `mflow resume` continues without --origin-run-id: the newest run of `flow` (of the
/// datastore's only flow when empty; several flows are an error naming them) that did not
/// succeed and was not resumed by a run that succeeded; when there is none, the newest run
/// (to run a STEP or changed parameters again). not_found when the flow has no run.
base::Result<store::RunInfo> default_resume_origin(const store::Datastore& store,
                                                   const std::string& flow);

/// Loads, lints, checks and runs `flow_path` (a new run; with `resume`, reusing the origin
/// run's successful tasks). Prints diagnostics and the summary; returns the exit code.
base::ExitCode execute_flow(const std::string& flow_path, const RunFlags& flags,
                            const std::optional<ResumeRequest>& resume, int verbosity);

/// The run a user named: a run id, or `latest` for the newest run (of `flow` when not empty;
/// of the whole datastore otherwise). not_found names the datastore.
base::Result<store::RunInfo> read_run_ref(const store::Datastore& store, const std::string& id,
                                          const std::string& flow = "");

/// The datastore root from a flag value, $MFLOW_DATASTORE, or ./.mflow.
std::string resolve_datastore(const std::string& flag);

/// Turns --param values and parameter flags (see take_param_flags) into name -> canonical
/// text for each declared parameter, applying defaults; `base` supplies values to keep
/// (resume keeps the origin's). Errors name the flag as the user wrote it; `own_flags` (the
/// command's long options) feed the did-you-mean for a mistyped mflow flag.
base::Result<std::map<std::string, std::string>> resolve_params(
    const spec::Flow& flow, const std::vector<std::string>& assignments,
    const std::vector<std::string>& param_flags, const std::vector<std::string>& own_flags,
    const std::map<std::string, std::string>& base);

}  // namespace mflow::cli
