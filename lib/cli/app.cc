#include <exception>
#include <iostream>

#include <fmt/core.h>

#include "cli/command.h"

namespace mflow::cli {

void build_app(CLI::App& app, GlobalOptions& global, Commands& commands) {
  app.description(
      "mflow runs data and ML workflows described in a YAML or TOML flow file,\n"
      "on this machine or on Kubernetes.");
  app.set_version_flag("--version", std::string("mflow ") + MFLOW_VERSION);
  app.add_flag("-v,--verbose", global.verbosity, "More detail (repeatable)");
  app.require_subcommand(1);
  app.fallthrough();
  app.footer(
      "Run `mflow COMMAND --help` for a command's options.\n"
      "Exit codes: 0 ok, 1 task failed, 2 usage, 3 invalid flow, 4 datastore/environment,\n"
      "5 Kubernetes API, 130 interrupted.");
  add_run_command(app, global, commands);
  add_resume_command(app, global, commands);
  add_check_command(app, global, commands);
  add_show_command(app, global, commands);
  add_logs_command(app, global, commands);
  add_runs_command(app, global, commands);
  add_map_command(app, global, commands);
  add_schema_command(app, global, commands);
  add_task_command(app, global, commands);
}

base::ExitCode run_main(int argc, char** argv) {
  CLI::App app;
  GlobalOptions global;
  Commands commands;
  build_app(app, global, commands);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    // CLI11 reports --help/--version as "errors" with code 0; everything else is usage.
    return code == 0 ? base::ExitCode::kOk : base::ExitCode::kUsage;
  }
  for (const auto& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  std::cerr << app.help();
  return base::ExitCode::kUsage;
}

}  // namespace mflow::cli
