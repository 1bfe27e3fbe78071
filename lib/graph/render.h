// Rendering a linted Graph for people and tools (`mflow show`): a readable text listing of the
// steps in topological order, Graphviz `dot`, a Mermaid flowchart, and JSON with every resolved
// step setting and edge. Pure functions of the graph; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "graph/graph.h"

namespace mflow::graph {

enum class RenderFormat { kText, kDot, kMermaid, kJson };

/// "text", "dot", "mermaid" or "json"; nullopt for anything else.
std::optional<RenderFormat> parse_render_format(std::string_view name);

/// The graph in `format`; always ends with a newline.
std::string render(const Graph& graph, RenderFormat format);

std::string render_text(const Graph& graph);
std::string render_dot(const Graph& graph);
std::string render_mermaid(const Graph& graph);
/// Pretty-printed JSON: {name, description, file, parameters[], start, end, steps[] (in
/// topological order, settings with defaults resolved), edges[] {from, to, kind}}.
std::string render_json(const Graph& graph);

}  // namespace mflow::graph
