// `mflow runs [FLOW]`: the runs in the datastore with status and times. FLOW is a flow's
// name or the path of its file (flow names never contain '.' or '/', so the two cannot be
// confused). Damaged run records are skipped with a warning each; the listing still exits 0.
#include <algorithm>
#include <array>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <limits>
#include <set>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "cli/command.h"
#include "cli/number_flags.h"
#include "cli/run_support.h"
#include "spec/loader.h"
#include "store/datastore.h"
#include "store/record_json.h"

namespace mflow::cli {

namespace {

std::string local_time(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  struct tm tm;
  localtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// The flow name FLOW stands for: itself, or the `name` of the flow file it is a path of.
base::Result<std::string> flow_name(const std::string& flow, base::ExitCode* code) {
  if (flow.find_first_of("./") == std::string::npos) return flow;
  if (std::error_code ec; !std::filesystem::is_regular_file(flow, ec)) {
    *code = base::ExitCode::kUsage;
    return base::Status::not_found(fmt::format(
        "runs: flow file '{}' not found (FLOW is a flow's name or the path of its .yaml, .yml or "
        ".toml file)", flow));
  }
  spec::Diagnostics diags;
  auto loaded = spec::load_flow_file(flow, &diags);
  diags.sort_and_dedupe();
  std::cerr << diags.format_all();
  if (!loaded || diags.has_errors()) {
    *code = base::ExitCode::kInvalidFlow;
    return base::Status::invalid(fmt::format(
        "runs: cannot read the flow name from '{}' (errors above); give the flow's name instead",
        flow));
  }
  return loaded->name;
}

// For a flow without runs: which flows do have some, so a typo or a renamed flow shows.
void note_other_flows(const store::Datastore& store, const std::string& flow) {
  auto all = store.list_runs();
  std::set<std::string> names;
  if (all.ok()) {
    for (const auto& r : all.value()) names.insert(r.flow);
  }
  std::cerr << fmt::format(
      "mflow: note: runs: no runs of flow '{}' in datastore {}; {}\n", flow, store.root(),
      names.empty() ? std::string("it has no runs")
                    : "flows with runs: " +
                          base::join(std::vector<std::string>(names.begin(), names.end()), ", "));
}

nlohmann::json optional_time(const std::optional<store::Clock::time_point>& t) {
  return t ? nlohmann::json(store::format_time(*t)) : nlohmann::json(nullptr);
}

}  // namespace

void add_runs_command(CLI::App& root, const GlobalOptions&, Commands& out) {
  struct State {
    std::string flow;
    std::string datastore;
    std::string format = "text";
    std::string status;  // only runs with this status
    int64_t limit = 0;   // only the newest N (0: all)
  };
  auto state = std::make_shared<State>();
  auto* app = root.add_subcommand("runs", "List runs with their status and times");
  app->add_option("FLOW", state->flow,
                  "Only runs of this flow: its name, or the path of its flow file");
  app->add_option("--datastore", state->datastore,
                  "Datastore directory (default $MFLOW_DATASTORE or ./.mflow)");
  app->add_option("--format", state->format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app->add_option("--status", state->status, "Only runs with this status")
      ->check(CLI::IsMember({"running", "succeeded", "failed", "interrupted", "crashed"}));
  app->add_option("--limit", state->limit, "Only the newest N runs (after --status)")
      ->check(whole_number(1, std::numeric_limits<int64_t>::max(), "runs"));
  app->footer(
      "Runs are listed oldest first, so the newest is at the bottom (with --limit too).\n"
      "The table shows local times; --format json gives RFC 3339 UTC times with milliseconds\n"
      "(as in run.json) and null `finished`/`duration_s` for a run that has not finished.\n"
      "A damaged run.json is skipped with one 'mflow: warning:' line naming it; the exit\n"
      "code stays 0. Exit codes: 0 ok, 2 FLOW is a path that does not exist, 3 the flow file\n"
      "is invalid, 4 the datastore cannot be read.");
  out.push_back({app, [state] {
    auto store = store::Datastore::open(resolve_datastore(state->datastore), false);
    if (!store.ok()) {
      std::cerr << "mflow: error: " << store.status().message() << "\n";
      return base::ExitCode::kEnvironment;
    }
    std::string flow;
    if (!state->flow.empty()) {
      base::ExitCode code = base::ExitCode::kOk;
      auto name = flow_name(state->flow, &code);
      if (!name.ok()) {
        std::cerr << "mflow: error: " << name.status().message() << "\n";
        return code;
      }
      flow = name.value();
    }
    std::vector<base::Status> problems;
    auto runs = store->list_runs(flow, &problems);
    if (!runs.ok()) {
      std::cerr << "mflow: error: " << runs.status().message() << "\n";
      return base::ExitCode::kEnvironment;
    }
    for (const auto& p : problems) {
      std::cerr << "mflow: warning: runs: " << p.message() << "; that run is not listed\n";
    }
    if (!flow.empty() && runs->empty()) note_other_flows(*store, flow);
    if (!state->status.empty()) {
      std::erase_if(runs.value(), [&](const store::RunInfo& r) {
        return store::to_string(r.status) != state->status;
      });
    }
    if (state->limit > 0 && runs->size() > static_cast<size_t>(state->limit)) {
      runs->erase(runs->begin(), runs->end() - state->limit);
    }
    if (state->format == "json") {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& r : runs.value()) {
        nlohmann::json e = {{"run_id", r.run_id}, {"flow", r.flow},
                            {"status", store::to_string(r.status)}, {"flow_file", r.flow_file},
                            {"started", store::format_time(r.started)},
                            {"finished", optional_time(r.finished)},
                            {"duration_s", nullptr}, {"origin_run_id", r.origin_run_id},
                            {"params", r.params}};
        if (r.finished) {
          e["duration_s"] = std::chrono::duration<double>(*r.finished - r.started).count();
        }
        j.push_back(e);
      }
      std::cout << j.dump(2) << "\n";
      return base::ExitCode::kOk;
    }
    // Columns as wide as their widest cell (flow names run to 63 characters), as kubectl and
    // docker size theirs, so that a long name never shifts the columns after it.
    std::vector<std::array<std::string, 6>> rows = {
        {"RUN", "FLOW", "STATUS", "STARTED", "DURATION", "ORIGIN"}};
    for (const auto& r : runs.value()) {
      std::string duration = "-";
      if (r.finished) {
        duration = fmt::format("{:.1f}s",
                               std::chrono::duration<double>(*r.finished - r.started).count());
      }
      rows.push_back({r.run_id, r.flow, store::to_string(r.status), local_time(r.started),
                      duration, r.origin_run_id.empty() ? "-" : r.origin_run_id});
    }
    std::array<size_t, 6> width{};
    for (const auto& row : rows) {
      for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
    }
    for (const auto& row : rows) {
      std::cout << fmt::format("{:<{}}  {:<{}}  {:<{}}  {:<{}}  {:>{}}  {}\n", row[0], width[0],
                               row[1], width[1], row[2], width[2], row[3], width[3], row[4],
                               width[4], row[5]);
    }
    return base::ExitCode::kOk;
  }});
}

}  // namespace mflow::cli
