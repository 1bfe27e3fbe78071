// The subcommands of `mflow`, one file each (cli/<name>_command.cc). Each add_*_command
// registers its CLI11 subcommand and options on `root`, and appends a Command whose `run`
// is called by main() when that subcommand was selected. Commands return an ExitCode and
// never call exit(). CLI11 appears only in cli/ and cmd/.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/exit_code.h"

namespace mflow::cli {

/// Options shared by every subcommand (set on the root app).
struct GlobalOptions {
  int verbosity = 0;  // -v, -vv
};

struct Command {
  CLI::App* app = nullptr;
  std::function<base::ExitCode()> run;
  // Set by `run` and `resume`: where run_main() puts the long options the command does not
  // define (the flow's `--NAME VALUE` parameter flags) before CLI11 parses the rest.
  std::vector<std::string>* param_flags = nullptr;
};

using Commands = std::vector<Command>;

void add_check_command(CLI::App& root, const GlobalOptions& global, Commands& out);
void add_show_command(CLI::App& root, const GlobalOptions& global, Commands& out);
void add_schema_command(CLI::App& root, const GlobalOptions& global, Commands& out);
void add_run_command(CLI::App& root, const GlobalOptions& global, Commands& out);
void add_resume_command(CLI::App& root, const GlobalOptions& global, Commands& out);
void add_logs_command(CLI::App& root, const GlobalOptions& global, Commands& out);
void add_runs_command(CLI::App& root, const GlobalOptions& global, Commands& out);
void add_map_command(CLI::App& root, const GlobalOptions& global, Commands& out);
/// Hidden: `mflow task ...`, the entry point a Kubernetes pod runs (same task contract).
void add_task_command(CLI::App& root, const GlobalOptions& global, Commands& out);
/// Hidden: `mflow guard`, the orphan guard process (exec/orphan_guard.h).
void add_guard_command(CLI::App& root, const GlobalOptions& global, Commands& out);

/// Builds the whole `mflow` command line; used by main() and by the CLI tests.
void build_app(CLI::App& app, GlobalOptions& global, Commands& commands);

/// Parses argv and runs the selected command; the whole of main() apart from signal setup.
base::ExitCode run_main(int argc, char** argv);

}  // namespace mflow::cli
