#include "graph/render.h"

#include <algorithm>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base/strings.h"

namespace mflow::graph {

namespace {

// Keys in the order written, so the JSON reads top-down like the text (name first).
using json = nlohmann::ordered_json;

const char* fan_out_name(FanOut f) {
  switch (f) {
    case FanOut::kLinear: return "linear";
    case FanOut::kStaticSplit: return "branch";
    case FanOut::kForeach: return "foreach";
    case FanOut::kEnd: return "end";
  }
  return "linear";
}

const char* fan_in_name(FanIn f) {
  switch (f) {
    case FanIn::kNone: return "none";
    case FanIn::kStatic: return "static";
    case FanIn::kForeach: return "foreach";
  }
  return "none";
}

// What the step does to the graph's shape, e.g. "branch, join of 'start'".
std::string kind_of(const Graph& g, const Node& node) {
  std::vector<std::string> kinds;
  if (node.fan_in == FanIn::kStatic) {
    kinds.push_back(fmt::format("join of '{}'", g.node(*node.split_of_join).name()));
  } else if (node.fan_in == FanIn::kForeach) {
    kinds.push_back(fmt::format("foreach join of '{}'", g.node(*node.split_of_join).name()));
  }
  switch (node.fan_out) {
    case FanOut::kStaticSplit: kinds.push_back("branch"); break;
    case FanOut::kForeach: kinds.push_back(fmt::format("foreach over '{}'", node.step->foreach)); break;
    case FanOut::kEnd:
    case FanOut::kLinear: break;
  }
  return base::join(kinds, ", ");
}

// One line describing the command: the first line of a script, or the quoted argv.
std::string command_summary(const spec::Command& run, size_t width = 72) {
  std::string text;
  if (run.shell) {
    std::vector<std::string> lines;
    for (const auto& line : base::split(run.script, '\n')) {
      if (!base::trim(line).empty()) lines.emplace_back(base::trim(line));
    }
    if (lines.empty()) return "(empty script)";
    text = lines[0];
    if (lines.size() > 1) text += fmt::format("  (+{} more lines)", lines.size() - 1);
  } else {
    std::vector<std::string> quoted;
    for (const auto& arg : run.argv) quoted.push_back(base::shell_quote(arg));
    text = base::join(quoted, " ");
    if (text.empty()) return "(empty argv)";
    // An argument may be a whole script (python3 -c '...'): keep to its first line.
    if (size_t nl = text.find('\n'); nl != std::string::npos) text = text.substr(0, nl) + " ...";
  }
  if (text.size() > width) text = text.substr(0, width - 3) + "...";
  return text;
}

std::string resources_summary(const spec::Resources& r) {
  std::vector<std::string> parts;
  if (r.cpu) parts.push_back(fmt::format("cpu {}", *r.cpu));
  if (r.memory_mb) parts.push_back(fmt::format("memory {} MB", *r.memory_mb));
  if (r.disk_mb) parts.push_back(fmt::format("disk {} MB", *r.disk_mb));
  if (r.gpu) parts.push_back(fmt::format("gpu {}", *r.gpu));
  return base::join(parts, ", ");
}

std::string map_summary(const std::map<std::string, std::string>& m) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : m) parts.push_back(k + "=" + v);
  return base::join(parts, ", ");
}

std::vector<std::string> names_of(const Graph& g, const std::vector<size_t>& indices) {
  std::vector<std::string> out;
  for (size_t i : indices) out.push_back(g.node(i).name());
  return out;
}

// --- text -----------------------------------------------------------------------------------

void field(std::string& out, std::string_view label, const std::string& value) {
  if (value.empty()) return;
  out += fmt::format("    {:<11} {}\n", std::string(label) + ":", value);
}

void kubernetes_text(std::string& out, const spec::KubernetesSpec& k) {
  std::vector<std::string> parts;
  if (!k.image.empty()) parts.push_back("image " + k.image);
  if (!k.namespace_name.empty()) parts.push_back("namespace " + k.namespace_name);
  if (!k.service_account.empty()) parts.push_back("service account " + k.service_account);
  if (!k.image_pull_policy.empty()) parts.push_back("pull " + k.image_pull_policy);
  if (std::string r = resources_summary(k.resources); !r.empty()) parts.push_back(r);
  if (!k.gpu_vendor.empty() && k.resources.gpu) parts.push_back("gpu vendor " + k.gpu_vendor);
  field(out, "kubernetes", parts.empty() ? std::string("yes (cluster defaults)")
                                         : base::join(parts, ", "));
  if (!k.node_selector.empty()) field(out, "  nodes", map_summary(k.node_selector));
  if (!k.tolerations.empty()) {
    std::vector<std::string> t;
    for (const auto& tol : k.tolerations) {
      std::string s = tol.key + (tol.op == "Exists" ? " exists" : "=" + tol.value);
      if (!tol.effect.empty()) s += ":" + tol.effect;
      t.push_back(s);
    }
    field(out, "  tolerate", base::join(t, ", "));
  }
  if (!k.secrets.empty()) field(out, "  secrets", base::join(k.secrets, ", "));
  if (!k.env.empty()) field(out, "  env", map_summary(k.env));
  if (!k.labels.empty()) field(out, "  labels", map_summary(k.labels));
  if (!k.annotations.empty()) field(out, "  annotate", map_summary(k.annotations));
}

// --- dot / mermaid ----------------------------------------------------------------------------

std::string dot_quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string mermaid_quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "#quot;"; break;
      case '<': out += "#lt;"; break;
      case '>': out += "#gt;"; break;
      case '\n': out += "<br/>"; break;
      default: out += c;
    }
  }
  return out + "\"";
}

// --- json -----------------------------------------------------------------------------------

json parameter_default(const spec::Parameter& p) {
  if (!p.default_value) return nullptr;
  if (p.type == spec::ParamType::kString) return *p.default_value;
  // Integer, number, boolean and json defaults are JSON text already; keep the raw text if not.
  json parsed = json::parse(*p.default_value, nullptr, /*allow_exceptions=*/false);
  return parsed.is_discarded() ? json(*p.default_value) : parsed;
}

json optional_number(const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); }

json resources_json(const spec::Resources& r) {
  return {{"cpu", r.cpu ? json(*r.cpu) : json(nullptr)},
          {"memory_mb", optional_number(r.memory_mb)},
          {"disk_mb", optional_number(r.disk_mb)},
          {"gpu", optional_number(r.gpu)}};
}

json kubernetes_json(const spec::KubernetesSpec& k) {
  json tolerations = json::array();
  for (const auto& t : k.tolerations) {
    tolerations.push_back({{"key", t.key},
                           {"operator", t.op},
                           {"value", t.value},
                           {"effect", t.effect},
                           {"toleration_seconds", optional_number(t.toleration_seconds)}});
  }
  return {{"image", k.image},
          {"namespace", k.namespace_name},
          {"service_account", k.service_account},
          {"image_pull_policy", k.image_pull_policy},
          {"gpu_vendor", k.gpu_vendor},
          {"resources", resources_json(k.resources)},
          {"node_selector", k.node_selector},
          {"tolerations", tolerations},
          {"secrets", k.secrets},
          {"env", k.env},
          {"labels", k.labels},
          {"annotations", k.annotations}};
}

json step_json(const Graph& g, const Node& node) {
  const spec::Step& s = *node.step;
  json run = s.run.shell ? json{{"shell", s.run.script}} : json{{"argv", s.run.argv}};
  // The resources a task is admitted with: the step's (after `defaults`), else the documented
  // defaults.
  json resolved = {{"cpu", s.resources.cpu.value_or(spec::kDefaultCpu)},
                   {"memory_mb", s.resources.memory_mb.value_or(spec::kDefaultMemoryMb)},
                   {"disk_mb", s.resources.disk_mb.value_or(spec::kDefaultDiskMb)},
                   {"gpu", s.resources.gpu.value_or(0)}};
  auto name_or_null = [&](const std::optional<size_t>& i) {
    return i ? json(g.node(*i).name()) : json(nullptr);
  };
  return {{"name", s.name},
          {"line", s.pos.line},
          {"fan_out", fan_out_name(node.fan_out)},
          {"fan_in", fan_in_name(node.fan_in)},
          {"next", names_of(g, node.children)},
          {"parents", names_of(g, node.parents)},
          {"foreach", s.foreach.empty() ? json(nullptr) : json(s.foreach)},
          {"join", s.join},
          {"split_of_join", name_or_null(node.split_of_join)},
          {"join_of_split", name_or_null(node.join_of_split)},
          {"foreach_depth", node.foreach_depth},
          {"critical_path", node.critical_path},
          {"run", run},
          {"env", s.env},
          {"resources", resolved},
          {"resources_given", resources_json(s.resources)},
          {"kubernetes", s.kubernetes ? kubernetes_json(*s.kubernetes) : json(nullptr)},
          {"timeout_seconds", s.timeout ? json(s.timeout->count()) : json(nullptr)},
          {"timeout", s.timeout ? json(spec::format_duration(*s.timeout)) : json(nullptr)},
          {"retries", s.retries},
          {"retry_delay_seconds", s.retry_delay.count()},
          {"spec_hash", spec::step_spec_hash(s)}};
}

}  // namespace

std::optional<RenderFormat> parse_render_format(std::string_view name) {
  if (name == "text") return RenderFormat::kText;
  if (name == "dot") return RenderFormat::kDot;
  if (name == "mermaid") return RenderFormat::kMermaid;
  if (name == "json") return RenderFormat::kJson;
  return std::nullopt;
}

std::string render(const Graph& graph, RenderFormat format) {
  switch (format) {
    case RenderFormat::kText: return render_text(graph);
    case RenderFormat::kDot: return render_dot(graph);
    case RenderFormat::kMermaid: return render_mermaid(graph);
    case RenderFormat::kJson: return render_json(graph);
  }
  return render_text(graph);
}

std::string render_text(const Graph& g) {
  const spec::Flow& flow = g.flow();
  std::string out = fmt::format("flow {} ({})\n", flow.name, flow.file);
  if (!flow.description.empty()) {
    for (const auto& line : base::split(flow.description, '\n')) {
      if (!base::trim(line).empty()) out += fmt::format("  {}\n", base::trim(line));
    }
  }
  if (!flow.parameters.empty()) {
    out += "\nparameters:\n";
    for (const auto& p : flow.parameters) {
      std::string what = spec::to_string(p.type);
      if (p.required) what += ", required";
      if (p.default_value) what += ", default " + *p.default_value;
      out += fmt::format("  {:<16} {}\n", p.name, what);
      if (!p.help.empty()) out += fmt::format("  {:<16} {}\n", "", p.help);
    }
  }
  out += fmt::format("\nsteps ({}, in topological order):\n", g.nodes().size());
  for (size_t i : g.topo_order()) {
    const Node& node = g.node(i);
    const spec::Step& s = *node.step;
    std::string kind = kind_of(g, node);
    out += "\n  " + s.name + (kind.empty() ? "" : "  [" + kind + "]") + "\n";
    field(out, "run", command_summary(s.run));
    if (node.fan_out == FanOut::kForeach) {
      field(out, "next", fmt::format("{} (one task per element of '{}')",
                                     g.node(node.children[0]).name(), s.foreach));
    } else if (node.fan_out != FanOut::kEnd) {
      field(out, "next", base::join(names_of(g, node.children), ", "));
    }
    if (node.fan_in != FanIn::kNone) {
      field(out, "joins", node.fan_in == FanIn::kStatic
                              ? base::join(names_of(g, node.parents), ", ")
                              : fmt::format("every task of {} (one input per element)",
                                            names_of(g, node.parents).at(0)));
    }
    if (node.foreach_depth > 0) {
      field(out, "tasks", node.foreach_depth == 1
                              ? std::string("inside 1 foreach: one task per element")
                              : fmt::format("inside {} foreaches: one task per combination of "
                                            "elements",
                                            node.foreach_depth));
    }
    if (std::string r = resources_summary(s.resources); !r.empty()) field(out, "resources", r);
    if (s.timeout) field(out, "timeout", spec::format_duration(*s.timeout));
    if (s.retries > 0) {
      field(out, "retries",
            s.retry_delay.count() > 0
                ? fmt::format("{} (delay {})", s.retries, spec::format_duration(s.retry_delay))
                : std::to_string(s.retries));
    }
    if (!s.env.empty()) field(out, "env", map_summary(s.env));
    if (s.kubernetes) kubernetes_text(out, *s.kubernetes);
  }
  return out;
}

std::string render_dot(const Graph& g) {
  std::string out = fmt::format("digraph {} {{\n", dot_quote(g.flow().name));
  out += "  rankdir=TB;\n";
  out += "  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n";
  out += "  edge [fontname=\"Helvetica\", fontsize=10];\n";
  for (size_t i : g.topo_order()) {
    const Node& node = g.node(i);
    std::string kind = kind_of(g, node);
    std::string attrs = "label=" + dot_quote(kind.empty() ? node.name() : node.name() + "\n" + kind);
    if (i == g.start() || i == g.end()) attrs += ", shape=oval";
    else if (node.fan_out == FanOut::kForeach) attrs += ", style=\"rounded,bold\"";
    else if (node.fan_in != FanIn::kNone) attrs += ", shape=invhouse, style=solid";
    else if (node.fan_out == FanOut::kStaticSplit) attrs += ", shape=house, style=solid";
    out += fmt::format("  {} [{}];\n", dot_quote(node.name()), attrs);
  }
  for (size_t i : g.topo_order()) {
    const Node& node = g.node(i);
    for (size_t c : node.children) {
      std::string attrs;
      if (node.fan_out == FanOut::kForeach) {
        attrs = fmt::format(" [style=bold, label={}]", dot_quote("foreach " + node.step->foreach));
      }
      out += fmt::format("  {} -> {}{};\n", dot_quote(node.name()), dot_quote(g.node(c).name()),
                         attrs);
    }
  }
  out += "}\n";
  return out;
}

std::string render_mermaid(const Graph& g) {
  // Step names may contain '.', '_' and '-', which Mermaid ids do not all accept: use n<i>.
  std::string out = "flowchart TD\n";
  for (size_t i : g.topo_order()) {
    const Node& node = g.node(i);
    std::string kind = kind_of(g, node);
    std::string label = mermaid_quote(kind.empty() ? node.name() : node.name() + "\n" + kind);
    if (i == g.start() || i == g.end()) {
      out += fmt::format("  n{}([{}])\n", i, label);
    } else if (node.fan_out == FanOut::kForeach) {
      out += fmt::format("  n{}[[{}]]\n", i, label);
    } else if (node.fan_in != FanIn::kNone) {
      out += fmt::format("  n{}[/{}\\]\n", i, label);
    } else if (node.fan_out == FanOut::kStaticSplit) {
      out += fmt::format("  n{}{{{{{}}}}}\n", i, label);
    } else {
      out += fmt::format("  n{}[{}]\n", i, label);
    }
  }
  for (size_t i : g.topo_order()) {
    const Node& node = g.node(i);
    for (size_t c : node.children) {
      if (node.fan_out == FanOut::kForeach) {
        out += fmt::format("  n{} ==>|{}| n{}\n", i, mermaid_quote("foreach " + node.step->foreach),
                           c);
      } else {
        out += fmt::format("  n{} --> n{}\n", i, c);
      }
    }
  }
  return out;
}

std::string render_json(const Graph& g) {
  const spec::Flow& flow = g.flow();
  json params = json::array();
  for (const auto& p : flow.parameters) {
    params.push_back({{"name", p.name},
                      {"type", spec::to_string(p.type)},
                      {"default", parameter_default(p)},
                      {"required", p.required},
                      {"help", p.help}});
  }
  json steps = json::array();
  json edges = json::array();
  for (size_t i : g.topo_order()) {
    const Node& node = g.node(i);
    steps.push_back(step_json(g, node));
    for (size_t c : node.children) {
      edges.push_back({{"from", node.name()},
                       {"to", g.node(c).name()},
                       {"kind", fan_out_name(node.fan_out)}});
    }
  }
  json doc = {{"name", flow.name},
              {"description", flow.description},
              {"file", flow.file},
              {"parameters", params},
              {"start", g.node(g.start()).name()},
              {"end", g.node(g.end()).name()},
              {"steps", steps},
              {"edges", edges}};
  // Invalid UTF-8 in a script must not throw out of the renderer: replace it.
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace mflow::graph
