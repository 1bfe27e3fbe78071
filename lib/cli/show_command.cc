// `mflow show FLOW [--format text|dot|mermaid|json]`: loads and lints one flow file and prints
// what it means: the steps in topological order with their commands, edges, fan-out/join kind
// and settings (text), or the graph for Graphviz, Mermaid, or tools (JSON). An invalid flow
// prints its diagnostics on stderr and exits 3; a missing file exits 2.
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include <fmt/core.h>

#include "cli/command.h"
#include "graph/graph.h"
#include "graph/render.h"
#include "spec/diagnostic.h"
#include "spec/loader.h"

namespace mflow::cli {
namespace {

struct ShowOptions {
  std::string flow;
  std::string format = "text";
};

base::ExitCode run_show(const ShowOptions& options) {
  // Phase 1: the file must exist (a usage error, not an invalid flow).
  if (auto path_ok = spec::check_flow_path(options.flow); !path_ok.ok()) {
    std::cerr << fmt::format(
        "mflow show: {}\n  hint: give the path of a .yaml, .yml or .toml flow file\n",
        path_ok.message());
    return base::ExitCode::kUsage;
  }
  // Phase 2: load (parse, schema, model) and lint the graph.
  spec::Diagnostics diags;
  std::optional<graph::Graph> graph;
  if (auto flow = spec::load_flow_file(options.flow, &diags)) {
    graph = graph::Graph::build(std::move(*flow), &diags);
  }
  diags.sort_and_dedupe();
  std::cerr << diags.format_all();
  if (!graph || diags.has_errors()) return base::ExitCode::kInvalidFlow;

  // Phase 3: render.
  auto format = graph::parse_render_format(options.format);
  std::cout << graph::render(*graph, format.value_or(graph::RenderFormat::kText));
  return base::ExitCode::kOk;
}

}  // namespace

void add_show_command(CLI::App& root, const GlobalOptions&, Commands& out) {
  auto options = std::make_shared<ShowOptions>();
  auto* app = root.add_subcommand(
      "show", "Show what a flow does: steps in order, edges, joins, resources and settings");
  app->add_option("flow", options->flow, "Flow file (.yaml, .yml or .toml)")->required();
  app->add_option("--format", options->format,
                  "text (readable, default), dot (Graphviz: `| dot -Tsvg`), mermaid (flowchart) "
                  "or json (every resolved setting)")
      ->check(CLI::IsMember({"text", "dot", "mermaid", "json"}));
  app->footer("Exit codes: 0 ok, 2 the file does not exist or a bad option, 3 the flow is "
              "invalid (diagnostics on stderr).");
  out.push_back({app, [options] { return run_show(*options); }});
}

}  // namespace mflow::cli
