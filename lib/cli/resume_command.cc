// `mflow resume [FLOW] [STEP] [--origin-run-id ID]`: a new run that reuses every task of the
// origin run that succeeded (with unchanged spec and inputs) and runs the rest.
#include <filesystem>
#include <iostream>

#include <fmt/core.h>

#include "base/strings.h"
#include "cli/command.h"
#include "cli/run_support.h"
#include "store/datastore.h"

namespace mflow::cli {

void add_resume_command(CLI::App& root, const GlobalOptions& global, Commands& out) {
  struct State {
    std::string flow_or_step;  // [FLOW] [STEP]: the first is a step when no such file exists
    std::string step;
    std::string origin;
    RunFlags flags;
  };
  auto state = std::make_shared<State>();
  auto* app = root.add_subcommand(
      "resume",
      "Re-run a failed run: reuse every task that succeeded, run the rest.\n"
      "FLOW defaults to the flow file of the origin run; STEP forces that step and\n"
      "everything after it to run again.");
  // Two single positionals rather than one of 0-2 values, whose usage CLI11 prints as
  // `[FLOW_OR_STEP(0x)]`.
  app->add_option("FLOW", state->flow_or_step,
                  "Flow file (default: the origin run's); a step name when no such file exists");
  app->add_option("STEP", state->step, "Run this step and everything after it again");
  app->add_option("--origin-run-id", state->origin,
                  "Run to resume, or `latest` (default: the newest unsuccessful run of the flow)");
  add_run_flags(*app, state->flags);
  app->footer("Parameter flags (--NAME VALUE) work as in `mflow run`; they go after FLOW and STEP.");
  out.push_back({app, [state, app, &global] {
    state->flags.own_flags = long_option_names(*app);
    ResumeRequest request;
    request.origin_run_id = state->origin;
    std::string flow_path;
    std::vector<std::string> pos;
    for (const std::string* p : {&state->flow_or_step, &state->step}) {
      if (!p->empty()) pos.push_back(*p);
    }
    // The first positional is the flow file when it names an existing file; else a step.
    auto looks_like_file = [](const std::string& p) {
      return base::ends_with(p, ".yaml") || base::ends_with(p, ".yml") ||
             base::ends_with(p, ".toml") || p.find('/') != std::string::npos;
    };
    if (!pos.empty() && std::filesystem::is_regular_file(pos[0])) {
      flow_path = pos[0];
      if (pos.size() > 1) request.step = pos[1];
    } else {
      if (pos.size() > 1 || (!pos.empty() && looks_like_file(pos[0]))) {
        bool swapped = pos.size() > 1 && std::filesystem::is_regular_file(pos[1]);
        std::cerr << fmt::format("mflow: error: resume: flow file '{}' not found{}\n", pos[0],
                                 swapped ? fmt::format("; the flow file comes first: mflow resume "
                                                       "{} {}", pos[1], pos[0])
                                         : "");
        return base::ExitCode::kUsage;
      }
      if (!pos.empty()) request.step = pos[0];
    }
    if (flow_path.empty()) {
      // No flow file given: take it from the origin run (or the newest unsuccessful run of
      // the datastore's only flow).
      auto store = store::Datastore::open(resolve_datastore(state->flags.datastore), false);
      if (!store.ok()) {
        std::cerr << "mflow: error: " << store.status().message() << "\n";
        return base::ExitCode::kEnvironment;
      }
      base::Result<store::RunInfo> origin = base::Status::not_found("no runs");
      if (!request.origin_run_id.empty()) {
        origin = read_run_ref(store.value(), request.origin_run_id);
      } else {
        origin = default_resume_origin(store.value(), "");
      }
      if (!origin.ok()) {
        std::cerr << fmt::format("mflow: error: resume: {}{}\n", origin.status().message(),
                                 request.origin_run_id.empty()
                                     ? ""
                                     : "; give the flow file and --origin-run-id (see `mflow runs`)");
        return base::ExitCode::kUsage;
      }
      flow_path = origin->flow_file;
      request.origin_run_id = origin->run_id;
    }
    return execute_flow(flow_path, state->flags, request, global.verbosity);
  }, &state->flags.param_flags});
}

}  // namespace mflow::cli
