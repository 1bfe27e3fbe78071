// PLACEHOLDER until the owning work lands; replaced wholesale by the real command.
#include "cli/command.h"

namespace mflow::cli {

void add_logs_command(CLI::App& root, const GlobalOptions&, Commands& out) {
  auto* app = root.add_subcommand("logs", "(not built yet)");
  app->allow_extras();
  out.push_back({app, [] { return base::ExitCode::kInternal; }});
}

}  // namespace mflow::cli
