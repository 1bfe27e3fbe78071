// `mflow runs [FLOW]`: the runs in the datastore with status and times.
#include <ctime>
#include <iostream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/run_support.h"
#include "store/datastore.h"

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

}  // namespace

void add_runs_command(CLI::App& root, const GlobalOptions&, Commands& out) {
  struct State {
    std::string flow;
    std::string datastore;
    std::string format = "text";
  };
  auto state = std::make_shared<State>();
  auto* app = root.add_subcommand("runs", "List runs with their status and times");
  app->add_option("FLOW", state->flow, "Only runs of this flow (its name)");
  app->add_option("--datastore", state->datastore,
                  "Datastore directory (default $MFLOW_DATASTORE or ./.mflow)");
  app->add_option("--format", state->format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  out.push_back({app, [state] {
    auto store = store::Datastore::open(resolve_datastore(state->datastore), false);
    if (!store.ok()) {
      std::cerr << "mflow: error: " << store.status().message() << "\n";
      return base::ExitCode::kEnvironment;
    }
    auto runs = store->list_runs(state->flow);
    if (!runs.ok()) {
      std::cerr << "mflow: error: " << runs.status().message() << "\n";
      return base::ExitCode::kEnvironment;
    }
    if (state->format == "json") {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& r : runs.value()) {
        nlohmann::json e = {{"run_id", r.run_id}, {"flow", r.flow},
                            {"status", store::to_string(r.status)}, {"flow_file", r.flow_file},
                            {"started", local_time(r.started)}, {"origin_run_id", r.origin_run_id},
                            {"params", r.params}};
        if (r.finished) {
          e["finished"] = local_time(*r.finished);
          e["duration_s"] =
              std::chrono::duration<double>(*r.finished - r.started).count();
        }
        j.push_back(e);
      }
      std::cout << j.dump(2) << "\n";
      return base::ExitCode::kOk;
    }
    std::cout << fmt::format("{:<6} {:<24} {:<12} {:<19} {:>10}  {}\n", "RUN", "FLOW", "STATUS",
                             "STARTED", "DURATION", "ORIGIN");
    for (const auto& r : runs.value()) {
      std::string duration = "-";
      if (r.finished) {
        duration = fmt::format("{:.1f}s", std::chrono::duration<double>(*r.finished - r.started).count());
      }
      std::cout << fmt::format("{:<6} {:<24} {:<12} {:<19} {:>10}  {}\n", r.run_id, r.flow,
                               store::to_string(r.status), local_time(r.started), duration,
                               r.origin_run_id.empty() ? "-" : r.origin_run_id);
    }
    return base::ExitCode::kOk;
  }});
}

}  // namespace mflow::cli
