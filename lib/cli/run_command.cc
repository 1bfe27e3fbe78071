// `mflow run FLOW`: a new run of a flow.
#include "cli/command.h"
#include "cli/run_support.h"

namespace mflow::cli {

void add_run_command(CLI::App& root, const GlobalOptions& global, Commands& out) {
  struct State {
    std::string flow;
    RunFlags flags;
  };
  auto state = std::make_shared<State>();
  auto* app = root.add_subcommand("run", "Run a flow: every step as a local process or a Kubernetes Job");
  app->add_option("FLOW", state->flow, "Flow file (.yaml, .yml or .toml)")->required();
  add_run_flags(*app, state->flags);
  app->footer(
      "Declared parameters also take flags after FLOW: --NAME VALUE, --NAME=VALUE, or a bare\n"
      "--NAME for a boolean (true); --learning-rate sets learning_rate.");
  out.push_back({app,
                 [state, app, &global] {
                   state->flags.own_flags = long_option_names(*app);
                   return execute_flow(state->flow, state->flags, std::nullopt, global.verbosity);
                 },
                 &state->flags.param_flags});
}

}  // namespace mflow::cli
