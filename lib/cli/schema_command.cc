// `mflow schema`: prints the JSON Schema (draft 7) that flow files are validated against,
// exactly as compiled into the binary, for editors (yaml-language-server, Taplo) and CI.
#include <iostream>

#include "cli/command.h"
#include "spec/loader.h"

namespace mflow::cli {

void add_schema_command(CLI::App& root, const GlobalOptions&, Commands& out) {
  auto* app = root.add_subcommand(
      "schema", "Print the flow file JSON Schema (draft 7), e.g. `mflow schema > flow.schema.json`");
  out.push_back({app, [] {
                   std::string_view text = spec::flow_schema_text();
                   std::cout << text;
                   if (!text.empty() && text.back() != '\n') std::cout << '\n';
                   return base::ExitCode::kOk;
                 }});
}

}  // namespace mflow::cli
