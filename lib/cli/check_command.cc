// `mflow check FLOW...`: loads, validates and lints each flow file and reports every problem
// as `file:line:col: error: message` (plus a hint) on stderr, or as one JSON document on stdout
// with `--format json` (for CI and editors). Exit 0 when every file is valid, 3 (invalid flow)
// when any is not, 2 (usage) when a file does not exist.
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "graph/graph.h"
#include "spec/diagnostic.h"
#include "spec/loader.h"

namespace mflow::cli {
namespace {

struct CheckOptions {
  std::vector<std::string> flows;
  std::string format = "text";
};

struct FileReport {
  std::string file;
  bool found = true;
  std::string problem;  // why it could not be read, when !found
  bool ok = false;
  size_t steps = 0;
  spec::Diagnostics diags;
};

FileReport check_one(const std::string& path) {
  FileReport report;
  report.file = path;
  if (auto path_ok = spec::check_flow_path(path); !path_ok.ok()) {
    report.found = false;
    report.problem = path_ok.message();
    return report;
  }
  // Load (parse, schema, model), then lint the graph only when the model was built.
  std::optional<spec::Flow> flow = spec::load_flow_file(path, &report.diags);
  if (flow) {
    size_t steps = flow->steps.size();
    std::optional<graph::Graph> graph = graph::Graph::build(std::move(*flow), &report.diags);
    if (graph && !report.diags.has_errors()) {
      report.ok = true;
      report.steps = steps;
    }
  }
  report.diags.sort_and_dedupe();
  return report;
}

nlohmann::json to_json(const FileReport& r) {
  nlohmann::json diags = nlohmann::json::array();
  if (!r.found) {
    diags.push_back({{"severity", "error"}, {"file", r.file}, {"line", 0}, {"column", 0},
                     {"pointer", ""}, {"message", r.problem}, {"hint", ""}});
  }
  for (const auto& d : r.diags.items()) {
    diags.push_back({{"severity", d.severity == spec::Severity::kError ? "error" : "warning"},
                     {"file", d.file},
                     {"line", d.pos.line},
                     {"column", d.pos.column},
                     {"pointer", d.json_pointer},
                     {"message", d.message},
                     {"hint", d.hint}});
  }
  nlohmann::json out = {{"file", r.file}, {"ok", r.ok}, {"diagnostics", diags}};
  if (r.ok) out["steps"] = r.steps;
  return out;
}

base::ExitCode run_check(const CheckOptions& options) {
  std::vector<FileReport> reports;
  for (const auto& path : options.flows) reports.push_back(check_one(path));

  bool missing = false;
  bool invalid = false;
  for (const auto& r : reports) {
    missing |= !r.found;
    invalid |= r.found && !r.ok;
  }
  if (options.format == "json") {
    nlohmann::json files = nlohmann::json::array();
    for (const auto& r : reports) files.push_back(to_json(r));
    std::cout << nlohmann::json{{"ok", !missing && !invalid}, {"files", files}}.dump(2) << "\n";
  } else {
    for (const auto& r : reports) {
      if (!r.found) {
        std::cerr << fmt::format(
            "mflow check: {}\n  hint: give the path of a .yaml, .yml or .toml flow file\n",
            r.problem);
        continue;
      }
      std::cerr << r.diags.format_all();
      if (r.ok) std::cout << fmt::format("{}: ok ({} step{})\n", r.file, r.steps, r.steps == 1 ? "" : "s");
    }
  }
  if (missing) return base::ExitCode::kUsage;
  return invalid ? base::ExitCode::kInvalidFlow : base::ExitCode::kOk;
}

}  // namespace

void add_check_command(CLI::App& root, const GlobalOptions&, Commands& out) {
  auto options = std::make_shared<CheckOptions>();
  auto* app = root.add_subcommand(
      "check", "Validate flow files: syntax, schema, and graph rules (every problem, one pass)");
  app->add_option("flows", options->flows, "Flow files (.yaml, .yml or .toml)")->required();
  app->add_option("--format", options->format,
                  "Output: text (file:line:col: error: ... on stderr) or json (on stdout)")
      ->check(CLI::IsMember({"text", "json"}));
  app->footer("Exit codes: 0 all valid, 2 a file does not exist, 3 a flow is invalid.");
  out.push_back({app, [options] { return run_check(*options); }});
}

}  // namespace mflow::cli
