// `mflow guard` (hidden): the orphan guard process that `run`, `resume` and `map` spawn so
// their tasks do not outlive a SIGKILLed mflow (see exec/orphan_guard.h). Reads from stdin.
#include <chrono>
#include <csignal>

#include "cli/command.h"
#include "cli/number_flags.h"
#include "exec/orphan_guard.h"

namespace mflow::cli {

void add_guard_command(CLI::App& root, const GlobalOptions&, Commands& out) {
  auto grace_ms = std::make_shared<int64_t>(10000);
  auto token = std::make_shared<std::string>();
  auto* app = root.add_subcommand("guard", "Stop mflow's tasks if mflow dies (internal)");
  app->group("");  // hidden from --help: users never call it
  app->add_option("--grace-ms", *grace_ms, "Milliseconds between SIGTERM and SIGKILL")
      ->check(whole_number(0));
  app->add_option("--token", *token, "The token in the environment of mflow's children");
  out.push_back({app, [grace_ms, token] {
                   // Terminal-generated signals are for mflow; the guard ends with its pipe.
                   for (int sig : {SIGINT, SIGHUP, SIGQUIT, SIGTSTP}) ::signal(sig, SIG_IGN);
                   int status = exec::run_orphan_guard(0, std::chrono::milliseconds(*grace_ms), *token);
                   return status == 0 ? base::ExitCode::kOk : base::ExitCode::kInternal;
                 }});
}

}  // namespace mflow::cli
