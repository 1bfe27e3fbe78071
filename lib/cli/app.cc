#include <exception>
#include <optional>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "cli/command.h"
#include "base/strings.h"
#include "cli/run_support.h"

namespace mflow::cli {

void build_app(CLI::App& app, GlobalOptions& global, Commands& commands) {
  app.description(
      "mflow runs data and ML workflows described in a YAML or TOML flow file,\n"
      "on this machine or on Kubernetes.");
  app.set_version_flag("--version", std::string("mflow ") + MFLOW_VERSION);
  app.add_flag("-v,--verbose", global.verbosity, "More detail (repeatable)");
  app.require_subcommand(1);
  app.fallthrough();
  app.name("mflow");  // usage lines say `mflow run`, not the path the binary was started by
  app.footer(
      "Run `mflow help COMMAND` (or `mflow COMMAND --help`) for a command's options.\n"
      "Exit codes: 0 ok, 1 task failed, 2 usage, 3 invalid flow, 4 datastore/environment,\n"
      "5 Kubernetes API, 130 interrupted, 141 (map) stdout closed.");
  add_run_command(app, global, commands);
  add_resume_command(app, global, commands);
  add_check_command(app, global, commands);
  add_show_command(app, global, commands);
  add_logs_command(app, global, commands);
  add_runs_command(app, global, commands);
  add_map_command(app, global, commands);
  add_schema_command(app, global, commands);
  add_task_command(app, global, commands);
  add_guard_command(app, global, commands);
}

namespace {

// `mflow help [COMMAND]` prints the usage on stdout and exits 0, as `git help` and
// `kubectl help` do. `mflow` with no command (bare, or with only -v) prints it on stderr and
// exits 2: it is a usage error like any other, and a script running `mflow "$CMD"` with an
// empty CMD must not pass (git exits 1 there, but 1 is mflow's "a task failed").
std::optional<base::ExitCode> print_usage_if_asked(const CLI::App& app, const Commands& commands,
                                                   const std::vector<std::string>& args) {
  size_t word = 1;
  while (word < args.size() && !args[word].empty() && args[word][0] == '-') {
    // --help and --version are CLI11's to answer.
    if (args[word] == "-h" || args[word] == "--help" || args[word] == "--version") {
      return std::nullopt;
    }
    ++word;
  }
  if (word == args.size()) {
    std::cerr << app.help();
    return base::ExitCode::kUsage;
  }
  if (args[word] != "help") return std::nullopt;
  if (word + 1 == args.size()) {
    std::cout << app.help();
    return base::ExitCode::kOk;
  }
  const std::string& topic = args[word + 1];
  std::vector<std::string> names;
  for (const auto& command : commands) {
    if (command.app->check_name(topic)) {
      std::cout << command.app->help(app.get_name());
      return base::ExitCode::kOk;
    }
    if (!command.app->get_group().empty()) names.push_back(command.app->get_name());
  }
  std::string hint = base::closest_match(topic, names);
  std::cerr << fmt::format("mflow: error: help: unknown command '{}'{}\n", topic,
                           hint.empty() ? " (commands: " + base::join(names, ", ") + ")"
                                        : "; did you mean '" + hint + "'?");
  return base::ExitCode::kUsage;
}

}  // namespace

base::ExitCode run_main(int argc, char** argv) {
  CLI::App app;
  GlobalOptions global;
  Commands commands;
  build_app(app, global, commands);
  // The flow's parameter flags (`mflow run flow.yaml --size 5`) cannot be declared to CLI11
  // before the flow is read, so the selected command's unknown long options are set aside
  // here and interpreted once the flow is loaded. Global options take no values, so the
  // first word that is not an option names the command.
  std::vector<std::string> args(argv, argv + argc);
  if (auto code = print_usage_if_asked(app, commands, args)) return *code;
  const std::vector<std::string>* set_aside = nullptr;
  std::string command_name;  // for "Run `mflow run --help`"
  std::string unknown_command;
  for (size_t i = 1; i < args.size(); ++i) {
    if (!args[i].empty() && args[i][0] == '-') continue;
    unknown_command = args[i];
    for (const auto& command : commands) {
      if (!command.app->check_name(args[i])) continue;
      command_name = " " + command.app->get_name();
      if (command.param_flags) {
        *command.param_flags = take_param_flags(*command.app, args, i + 1);
        set_aside = command.param_flags;
      }
    }
    break;
  }
  std::vector<char*> kept_argv;
  for (auto& a : args) kept_argv.push_back(a.data());
  try {
    app.parse(static_cast<int>(kept_argv.size()), kept_argv.data());
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --version: CLI11 prints them
      app.exit(e);
      return base::ExitCode::kOk;
    }
    // CLI11's errors in the shape of mflow's own: `mflow: error: ...` and where to look.
    std::string what = e.what();
    if (command_name.empty() && !unknown_command.empty()) {
      std::vector<std::string> names;
      for (const auto& command : commands) {
        if (!command.app->get_group().empty()) names.push_back(command.app->get_name());
      }
      std::string hint = base::closest_match(unknown_command, names);
      what = fmt::format("unknown command '{}'{}", unknown_command,
                         hint.empty() ? " (commands: " + base::join(names, ", ") + ")"
                                      : "; did you mean '" + hint + "'?");
    }
    std::cerr << fmt::format("mflow: error: {}\nRun `mflow{} --help` for the options.\n", what,
                             command_name);
    // The likely cause of a missing FLOW: a parameter flag before it took it as its value.
    if (set_aside && !set_aside->empty() && dynamic_cast<const CLI::RequiredError*>(&e)) {
      std::cerr << fmt::format(
          "note: `{}` was taken as flow parameter flags, which go after the flow file: "
          "mflow run FLOW --NAME VALUE\n",
          base::join(*set_aside, " "));
    }
    return base::ExitCode::kUsage;
  }
  for (const auto& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  std::cerr << app.help();
  return base::ExitCode::kUsage;
}

}  // namespace mflow::cli
