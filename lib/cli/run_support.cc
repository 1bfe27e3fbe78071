#include "cli/run_support.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <memory>
#include <set>
#include <streambuf>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "base/json_text.h"
#include "base/signals.h"
#include "base/strings.h"
#include "cli/ci_outputs.h"
#include "cli/number_flags.h"
#include "exec/job_manifest.h"
#include "exec/kube_executor.h"
#include "exec/kube_options.h"
#include "exec/local_executor.h"
#include "exec/memory_cgroup.h"
#include "exec/orphan_guard.h"
#include "kube/config.h"
#include "kube/rest_api_client.h"
#include "graph/graph.h"
#include "runtime/console_reporter.h"
#include "runtime/event_stream.h"
#include "runtime/run_ledger.h"
#include "runtime/machine.h"
#include "runtime/scheduler.h"
#include "spec/flow.h"
#include "spec/loader.h"
#include "store/datastore.h"

namespace mflow::cli {

using base::ExitCode;

void add_run_flags(CLI::App& app, RunFlags& flags) {
  app.add_option("--param,-p", flags.params, "Set a flow parameter, NAME=VALUE (repeatable)");
  app.add_option("--datastore", flags.datastore,
                 "Datastore directory (default $MFLOW_DATASTORE or ./.mflow)")
      ->check([](const std::string& v) {
        return v.empty() ? std::string("an empty path; give a directory") : std::string();
      });
  app.add_option("--max-workers", flags.max_workers, "Most tasks running at once")
      ->check(whole_number(1, 100000, "workers"))
      ->capture_default_str();
  app.add_option("--max-num-splits", flags.max_num_splits,
                 "Fail a foreach that would fan out into more splits than this")
      ->check(whole_number(0, 100'000'000, "splits"))
      ->capture_default_str();
  app.add_option("--with", flags.with,
                 "Run steps elsewhere: kubernetes[:cpu=4,memory=10000,namespace=...,image=...]; "
                 "`local` runs steps without a kubernetes block here (resume: replaces the "
                 "origin run's placement)");
  app.add_option("--local-cpus", flags.local_cpus,
                 "CPUs local tasks may request in total (default: this machine's)")
      ->check(finite_number(0, std::numeric_limits<double>::infinity(), /*min_exclusive=*/true,
                            "CPUs"));
  app.add_option("--local-memory", flags.local_memory_mb,
                 "Memory (MB) local tasks may request in total (default: this machine's)")
      ->check(whole_number(1, kNoUpperLimit, "MB"));
  app.add_option("--local-gpus", flags.local_gpus,
                 "GPUs local tasks may use (default: detected, or $MFLOW_LOCAL_GPUS)")
      ->check(whole_number(0, kNoUpperLimit, "GPUs"));
  app.add_option("--kill-grace", flags.kill_grace_seconds,
                 "Seconds between SIGTERM and SIGKILL when stopping a task (0-3600)")
      ->check(finite_number(0, 3600, /*min_exclusive=*/false, "seconds"))
      ->capture_default_str();
  app.add_flag("--enforce-resources", flags.enforce_resources,
               "Hold local tasks to their memory request with a cgroup (OOMKilled past it)");
  app.add_option("--kubernetes-context", flags.kubernetes_context,
                 "kubeconfig context to use (default: its current-context)");
  app.add_flag("--dry-run", flags.dry_run,
               "Print the Job manifest of every Kubernetes step as YAML and run nothing");
  app.add_flag("-q,--quiet", flags.quiet, "Only task output, failures and the summary");
  app.add_option("--run-id-file", flags.run_id_file, "Write the new run's id to this file");
  app.add_option("--summary-json", flags.summary_json,
                 "Write a machine-readable summary of the run to this file");
  app.add_option("--events", flags.events,
                 "Write run and task events as JSON lines to this file as they happen (- for "
                 "stdout; task output then goes to stderr)");
  app.add_option("--junit", flags.junit,
                 "Write a JUnit XML report (one test case per task) to this file");
}

std::string resolve_datastore(const std::string& flag) {
  // An empty --datastore is refused by the flag's check; empty here means "not given".
  std::string root = flag;
  if (root.empty()) {
    const char* env = std::getenv("MFLOW_DATASTORE");
    root = env && *env ? env : ".mflow";
  }
  std::error_code ec;
  auto abs = std::filesystem::absolute(root, ec);
  return ec ? root : abs.lexically_normal().string();
}

namespace {

// A flag or value as typed, for messages: cut (a json value can be megabytes) at a character
// boundary, with bytes that would garble the terminal escaped.
std::string shorten(std::string_view text) {
  constexpr size_t kMax = 80;
  if (text.size() <= kMax) return base::printable(text);
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return base::printable(text.substr(0, cut)) + "…";
}

// Parameter values are text, not bytes: run.json keeps them as JSON strings (which are
// Unicode) and tasks read them from environment variables (which end at a NUL). A value that
// is not UTF-8, or holds a NUL, is refused before anything is stored; binary data goes in a
// file whose path is the parameter.
base::Status check_text_value(const std::string& name, const std::string& text,
                              const std::string& where) {
  const char* hint = "parameter values are text; pass binary data in a file and give its path";
  if (size_t bad = base::invalid_utf8_offset(text); bad != std::string::npos) {
    return base::Status::invalid(fmt::format(
        "{}: the value of parameter '{}' is not UTF-8 text (byte {} is \\x{:02x}); {}", where,
        name, bad + 1, static_cast<unsigned char>(text[bad]), hint));
  }
  if (size_t nul = text.find('\0'); nul != std::string::npos) {
    return base::Status::invalid(fmt::format(
        "{}: the value of parameter '{}' contains a NUL character (byte {}); {}", where, name,
        nul + 1, hint));
  }
  return base::Status();
}

base::Result<std::string> canonical_value(const spec::Parameter& p, const std::string& text,
                                          const std::string& where) {
  if (auto s = check_text_value(p.name, text, where); !s.ok()) return s;
  auto bad = [&](const char* what) {
    return base::Status::invalid(fmt::format("{}: parameter '{}' expects {}, got '{}'", where,
                                             p.name, what, shorten(text)));
  };
  switch (p.type) {
    case spec::ParamType::kString:
      return text;
    case spec::ParamType::kInteger: {
      errno = 0;
      char* end = nullptr;
      long long v = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno == ERANGE) return bad("an integer");
      return std::to_string(v);
    }
    case spec::ParamType::kNumber: {
      char* end = nullptr;
      double v = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || !std::isfinite(v)) return bad("a number");
      return text;
    }
    case spec::ParamType::kBoolean: {
      std::string l;
      for (char c : text) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (l == "true" || l == "1" || l == "yes") return std::string("true");
      if (l == "false" || l == "0" || l == "no") return std::string("false");
      return bad("a boolean (true/false)");
    }
    case spec::ParamType::kJson: {
      if (auto deep = base::check_json_depth(text, where); !deep.ok()) return deep;
      auto j = nlohmann::json::parse(text, nullptr, false);
      if (j.is_discarded()) return bad("a JSON value");
      return j.dump();
    }
  }
  return bad("a value");
}

}  // namespace

std::vector<std::string> long_option_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* o : app.get_options()) {
    for (const auto& n : o->get_lnames()) names.push_back("--" + n);
  }
  return names;
}

std::vector<std::string> take_param_flags(const CLI::App& app, std::vector<std::string>& args,
                                          size_t from) {
  auto defines = [&](const std::string& name) {
    return app.get_option_no_throw(name) != nullptr ||
           (app.get_parent() && app.get_parent()->get_option_no_throw(name) != nullptr);
  };
  // What ends a bare `--NAME`: another long option, or a short one mflow defines (`-q`).
  // Anything else is its value, `-5` and `-x` included.
  auto is_option = [&](const std::string& t) {
    if (t.size() > 2 && t[0] == '-' && t[1] == '-') return true;
    return t.size() == 2 && t[0] == '-' && defines(t);
  };
  std::vector<std::string> taken;
  std::vector<std::string> kept(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(from));
  for (size_t i = from; i < args.size(); ++i) {
    const std::string& t = args[i];
    if (t == "--") {
      kept.insert(kept.end(), args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      break;
    }
    bool long_option = t.size() > 2 && t[0] == '-' && t[1] == '-' &&
                       std::isalpha(static_cast<unsigned char>(t[2]));
    std::string name = long_option ? t.substr(0, t.find('=')) : "";
    if (!long_option || name == "--help" || defines(name)) {
      kept.push_back(t);
      continue;
    }
    taken.push_back(t);
    if (t.find('=') == std::string::npos && i + 1 < args.size() && !is_option(args[i + 1])) {
      taken.push_back(args[++i]);
    }
  }
  args = std::move(kept);
  return taken;
}

namespace {

const spec::Parameter* find_parameter(const spec::Flow& flow, const std::string& name) {
  for (const auto& p : flow.parameters) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

struct ParamAssignment {
  std::string name;
  std::string value;
  std::string where;  // as the user wrote it, for messages
};

std::string no_such_parameter(const spec::Flow& flow, const std::string& where,
                              const std::string& raw_name, const std::vector<std::string>& names,
                              const std::vector<std::string>& own_flags) {
  std::string name = shorten(raw_name);
  std::string hint = base::closest_match(name, names);
  if (!hint.empty()) return fmt::format("{}: flow '{}' has no parameter '{}'; did you mean '{}'?",
                                        where, flow.name, name, hint);
  std::string flag_hint = base::closest_match("--" + name, own_flags);
  if (!flag_hint.empty()) {
    return fmt::format("{}: not an mflow flag, and flow '{}' has no parameter '{}'; did you mean "
                       "{}?", where, flow.name, name, flag_hint);
  }
  return fmt::format("{}: flow '{}' has no parameter '{}'{}", where, flow.name, name,
                     names.empty() ? std::string(" (it declares none)")
                                   : " (it declares: " + base::join(names, ", ") + ")");
}

// Parameter flags as typed: `--NAME=VALUE`, `--NAME VALUE`, or a bare `--NAME` (a boolean set
// to true). `--learning-rate` names the parameter `learning_rate`.
base::Result<std::vector<ParamAssignment>> parse_param_flags(
    const spec::Flow& flow, const std::vector<std::string>& tokens,
    const std::vector<std::string>& names, const std::vector<std::string>& own_flags) {
  std::vector<ParamAssignment> out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    ParamAssignment a;
    size_t eq = t.find('=');
    a.name = t.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    std::replace(a.name.begin(), a.name.end(), '-', '_');
    const spec::Parameter* decl = find_parameter(flow, a.name);
    bool has_value = eq != std::string::npos;
    if (has_value) a.value = t.substr(eq + 1);
    bool next_is_value = !has_value && i + 1 < tokens.size() && tokens[i + 1].rfind("--", 0) != 0;
    if (next_is_value) a.value = tokens[i + 1];
    a.where = shorten(next_is_value ? t + " " + a.value : t);
    if (!decl) {
      return base::Status::invalid(no_such_parameter(flow, a.where, a.name, names, own_flags));
    }
    if (next_is_value) ++i;
    if (!has_value && !next_is_value) {
      if (decl->type != spec::ParamType::kBoolean) {
        return base::Status::invalid(fmt::format("{}: parameter '{}' needs a value: {} VALUE or "
                                                 "{}=VALUE", t, a.name, t, t));
      }
      a.value = "true";
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace

base::Result<std::map<std::string, std::string>> resolve_params(
    const spec::Flow& flow, const std::vector<std::string>& assignments,
    const std::vector<std::string>& param_flags, const std::vector<std::string>& own_flags,
    const std::map<std::string, std::string>& base) {
  std::vector<std::string> names;
  for (const auto& p : flow.parameters) names.push_back(p.name);
  std::vector<ParamAssignment> all;
  for (const auto& a : assignments) {
    auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      return base::Status::invalid(
          fmt::format("--param '{}': expected NAME=VALUE, e.g. --param size=100", shorten(a)));
    }
    all.push_back({a.substr(0, eq), a.substr(eq + 1), shorten("--param " + a)});
    if (!find_parameter(flow, all.back().name)) {
      return base::Status::invalid(
          no_such_parameter(flow, all.back().where, all.back().name, names, {}));
    }
  }
  auto flagged = parse_param_flags(flow, param_flags, names, own_flags);
  if (!flagged.ok()) return flagged.status();
  all.insert(all.end(), flagged->begin(), flagged->end());

  std::map<std::string, std::string> given;
  std::map<std::string, std::string> given_where;
  for (const auto& a : all) {
    if (auto w = given_where.find(a.name); w != given_where.end()) {
      return base::Status::invalid(fmt::format(
          "parameter '{}' is given twice ({} and {}); give it once", a.name, w->second, a.where));
    }
    const spec::Parameter* decl = find_parameter(flow, a.name);
    auto v = canonical_value(*decl, a.value, a.where);
    if (!v.ok()) return v.status();
    given[a.name] = v.value();
    given_where[a.name] = a.where;
  }
  std::map<std::string, std::string> out;
  for (const auto& p : flow.parameters) {
    if (auto it = given.find(p.name); it != given.end()) {
      out[p.name] = it->second;
    } else if (auto b = base.find(p.name); b != base.end()) {
      // Read back from the origin's run.json, which a person or a tool may have edited.
      if (auto s = check_text_value(p.name, b->second, "the origin run's run.json");
          !s.ok()) {
        return s;
      }
      out[p.name] = b->second;
    } else if (p.default_value) {
      out[p.name] = *p.default_value;
    } else if (p.required) {
      return base::Status::invalid(fmt::format(
          "parameter '{}' is required: pass --{} VALUE (or --param {}=VALUE){}", p.name, p.name,
          p.name,
          p.help.empty() ? "" : " (" + p.help + ")"));
    }
  }
  return out;
}

base::Result<store::RunInfo> read_run_ref(const store::Datastore& store, const std::string& id,
                                          const std::string& flow) {
  // Run ids are numbers, so the word cannot name a real run.
  if (id == "latest") return store.latest_run(flow);
  return store.read_run(id);
}

base::Result<store::RunInfo> default_resume_origin(const store::Datastore& store,
                                                   const std::string& flow) {
  auto runs = store.list_runs(flow);
  if (!runs.ok()) return runs.status();
  std::set<std::string> flows;
  for (const auto& r : runs.value()) flows.insert(r.flow);
  if (flow.empty() && flows.size() > 1) {
    return base::Status::invalid(fmt::format(
        "datastore {} holds runs of {} flows ({}): name the flow file (mflow resume FLOW), or "
        "the run with --origin-run-id (see `mflow runs`)",
        store.root(), flows.size(), base::join({flows.begin(), flows.end()}, ", ")));
  }
  // A failed run that a later resume completed is done with: it is not picked again.
  std::set<std::string> completed;
  for (const auto& r : runs.value()) {
    if (r.status == store::RunStatus::kSucceeded && !r.origin_run_id.empty()) {
      completed.insert(r.origin_run_id);
    }
  }
  const store::RunInfo* newest_succeeded = nullptr;
  for (auto it = runs->rbegin(); it != runs->rend(); ++it) {
    // A running one is returned too: the caller refuses it, saying it is still running.
    if (it->status != store::RunStatus::kSucceeded) {
      if (!completed.count(it->run_id)) return *it;
    } else if (!newest_succeeded) {
      newest_succeeded = &*it;
    }
  }
  // Nothing left unfinished: the newest success, to run a STEP or changed parameters again
  // (every unchanged task is reused).
  if (newest_succeeded) return *newest_succeeded;
  return base::Status::not_found(fmt::format("no run{} to resume in datastore {}",
                                             flow.empty() ? "" : " of flow '" + flow + "'",
                                             store.root()));
}

namespace {

void print_status_error(const base::Status& s) {
  std::cerr << "mflow: error: " << s.message() << "\n";
}

ExitCode write_summary_json(const std::string& path, const runtime::RunSummary& s,
                            const std::vector<runtime::TaskEntry>& tasks,
                            const std::string& status, const std::string& command_options) {
  nlohmann::json j;
  j["run_id"] = s.run_id;
  j["flow"] = s.flow;
  j["status"] = status;
  j["tasks"] = {{"succeeded", s.tasks_succeeded},
                {"succeeded_after_retries", s.tasks_succeeded_after_retries},
                {"reused", s.tasks_reused},
                {"failed", s.tasks_failed},
                {"stopped", s.tasks_stopped}};
  j["task_list"] = tasks_json(tasks);
  j["elapsed_ms"] = s.elapsed.count();
  j["failures"] = nlohmann::json::array();
  for (const auto& f : s.failures) {
    j["failures"].push_back({{"step", f.step},
                             {"task", f.task_id},
                             {"attempt", f.attempt},
                             {"outcome", f.fan_out_refused ? "fan-out refused" : exec::to_string(f.outcome)},
                             {"exit_code", f.exit_code},
                             {"reason", f.reason},
                             {"logs", fmt::format("mflow logs {}/{}/{}{}", s.run_id, f.step, f.task_id,
                                                   command_options)}});
  }
  if (auto st = base::write_output_file(path, j.dump(2) + "\n"); !st.ok()) {
    print_status_error(st.with_context("--summary-json"));
    return ExitCode::kEnvironment;
  }
  return ExitCode::kOk;
}

// What a run leaves for CI besides --summary-json: the --junit file, the end of the --events
// stream (a failed write there is reported now), GitHub annotations and job summary, GitLab
// log sections. Exit 4 when a file the user named could not be written.
ExitCode write_ci_outputs(const RunFlags& flags, const runtime::RunSummary& summary,
                          const runtime::RunLedger& ledger, const runtime::EventStream* events,
                          const std::string& command_options) {
  ExitCode code = ExitCode::kOk;
  if (events && !events->error().empty()) {
    std::cerr << "mflow: error: --events: " << events->error() << "\n";
    code = ExitCode::kEnvironment;
  }
  auto tasks = ledger.tasks();
  if (!flags.junit.empty()) {
    if (auto s = base::write_output_file(flags.junit, junit_xml(summary, tasks)); !s.ok()) {
      print_status_error(s.with_context("--junit"));
      code = ExitCode::kEnvironment;
    }
  }
  if (on_github_actions()) {
    std::cerr << github_failure_annotations(summary, command_options);
    // The job summary is GitHub's page, not a file the user named: a failure to append to it
    // is a warning, and the run's outcome stands.
    if (const char* path = std::getenv("GITHUB_STEP_SUMMARY"); path && *path) {
      std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path, "ae"), &std::fclose);
      std::string text = github_step_summary(summary, tasks, command_options);
      if (!f || std::fwrite(text.data(), 1, text.size(), f.get()) != text.size() ||
          std::fflush(f.get()) != 0) {
        std::cerr << fmt::format("mflow: warning: GITHUB_STEP_SUMMARY={}: cannot append the job "
                                 "summary ({})\n", path, std::strerror(errno));
      }
    }
  }
  if (on_gitlab_ci()) std::cerr << gitlab_failure_sections(summary, tasks);
  return code;
}

// `--dry-run`: the Job of each Kubernetes step's first task, as `kubectl apply -f -` takes
// it. Foreach bodies get one such Job per element at run time.
ExitCode print_manifests(const graph::Graph& graph, const runtime::SchedulerOptions& options,
                         const exec::KubeDefaults& defaults, const std::string& root,
                         const std::string& datastore_id) {
  bool first = true;
  for (const auto& node : graph.nodes()) {
    if (!options.on_kubernetes[node.index]) continue;
    exec::TaskLaunch launch;
    launch.run_id = "dry-run";
    launch.step = node.name();
    launch.task_id = runtime::task_id_for(runtime::IndexPath(static_cast<size_t>(node.foreach_depth), 0));
    launch.key = launch.step + "/" + launch.task_id;
    launch.command = node.step->run;
    launch.timeout = node.step->timeout;
    launch.step_spec = node.step;
    launch.resources = node.step->resources;
    launch.env = node.step->env;
    for (const auto& [name, value] : options.params) launch.env[runtime::param_env_name(name)] = value;
    auto task = exec::resolve_kube_task(*node.step, defaults, root);
    if (!task.ok()) {
      print_status_error(task.status());
      return ExitCode::kUsage;
    }
    exec::JobRequest request;
    request.datastore_id = datastore_id;
    request.flow = graph.flow().name;
    request.datastore_root = root;
    request.launch = &launch;
    request.task = &task.value();
    std::cout << (first ? "" : "---\n") << exec::to_yaml(exec::build_job(request));
    first = false;
  }
  if (first) std::cerr << "mflow: no step runs on Kubernetes; nothing to print\n";
  return ExitCode::kOk;
}

}  // namespace

namespace {

// A CI output file (--run-id-file, --summary-json) must be writable before the run starts,
// not discovered unwritable after the flow ran.
base::Status check_output_target(const std::string& path) {
  if (path.empty()) return base::Status();
  std::filesystem::path p(path);
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec)) {
    return base::Status::invalid(path + " is a directory; give a file path");
  }
  if (std::filesystem::exists(p, ec) && !std::filesystem::is_regular_file(p, ec)) {
    // /dev/stdout, a FIFO, a device: written in place (base::write_output_file).
    if (::access(path.c_str(), W_OK) != 0) {
      return base::Status::invalid(
          fmt::format("{}: cannot write ({}); give another path", path, std::strerror(errno)));
    }
    return base::Status();
  }
  std::filesystem::path dir = p.has_parent_path() ? p.parent_path() : std::filesystem::path(".");
  if (!std::filesystem::is_directory(dir, ec)) {
    return base::Status::invalid(fmt::format("{}: directory {} does not exist; create it or "
                                             "give another path", path, dir.string()));
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return base::Status::invalid(fmt::format("{}: cannot create files in {} ({}); give another "
                                             "path", path, dir.string(), std::strerror(errno)));
  }
  return base::Status();
}

// This process's command line, shell-quoted, for run.json ("how was this run started?").
std::string own_command_line() {
  auto raw = base::read_file("/proc/self/cmdline");
  if (!raw.ok()) return "";
  std::vector<std::string> words;
  for (auto& w : base::split(raw.value(), '\0')) {
    if (w.empty()) continue;
    // run.json is JSON, which holds only text: a word with other bytes is written in bash's
    // $'...' quoting, which still pastes back to the same bytes.
    words.push_back(base::printable(w) == w ? base::shell_quote(w)
                                            : "$'" + base::printable(w, "'\\") + "'");
  }
  if (!words.empty()) words[0] = "mflow";
  return base::join(words, " ");
}

// ` --datastore DIR` when the run's datastore is not the default ./.mflow, for the commands
// mflow prints (`mflow logs ...`, `mflow resume ...`), so that pasting them reads this one.
std::string datastore_option(const std::string& root) {
  std::error_code ec;
  auto fallback = std::filesystem::absolute(".mflow", ec).lexically_normal().string();
  return root == fallback ? std::string() : " --datastore " + base::shell_quote(root);
}

// execute_flow() without the summary for a refused run; sets *summary_written when it wrote
// the --summary-json file itself.
base::ExitCode execute_flow_once(const std::string& flow_path, const RunFlags& flags,
                                 const std::optional<ResumeRequest>& resume, int verbosity,
                                 bool* summary_written);

}  // namespace

namespace {

// Copies what is written to std::cerr while it is installed, passing it on unchanged: a run
// refused before it started explains itself on stderr (diagnostics, `mflow: error: ...`), and
// its --summary-json and GitHub annotation carry the same text. Task output and progress go
// through the console reporter's FILE*, never std::cerr, so they are not captured.
class StderrCopy : public std::streambuf {
 public:
  StderrCopy() : original_(std::cerr.rdbuf(this)) {}
  ~StderrCopy() override { std::cerr.rdbuf(original_); }
  const std::string& text() const { return text_; }

 protected:
  int overflow(int c) override {
    if (c == traits_type::eof()) return traits_type::not_eof(c);
    char ch = static_cast<char>(c);
    append(&ch, 1);
    return original_->sputc(ch);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    append(s, static_cast<size_t>(n));
    return original_->sputn(s, n);
  }
  int sync() override { return original_->pubsync(); }

 private:
  void append(const char* s, size_t n) {
    // Bounded: a refusal is a few lines; a flow with thousands of diagnostics keeps the first.
    constexpr size_t kMax = 64 * 1024;
    text_.append(s, std::min(n, kMax - std::min(kMax, text_.size())));
  }
  std::streambuf* original_;
  std::string text_;
};

// The error lines of a refusal: diagnostics (`file:line:col: error: ...` with their hints)
// and mflow's own `mflow: error: ...` lines, without warnings.
std::vector<std::string> refusal_errors(const std::string& text) {
  std::vector<std::string> errors;
  for (const auto& line : base::split(text, '\n')) {
    if (line.find("error: ") != std::string::npos) {
      errors.push_back(base::starts_with(line, "mflow: error: ") ? line.substr(14) : line);
    } else if (base::starts_with(line, "  hint: ") && !errors.empty()) {
      errors.back() += "\n" + line.substr(2);
    }
  }
  return errors;
}

}  // namespace

base::ExitCode execute_flow(const std::string& flow_path, const RunFlags& flags,
                            const std::optional<ResumeRequest>& resume, int verbosity) {
  bool summary_written = false;
  ExitCode code;
  std::vector<std::string> errors;
  {
    StderrCopy copy;
    code = execute_flow_once(flow_path, flags, resume, verbosity, &summary_written);
    if (!summary_written && code != ExitCode::kOk) errors = refusal_errors(copy.text());
  }
  if (!summary_written && code != ExitCode::kOk && on_github_actions()) {
    // Flow diagnostics were annotated with their position already; the rest get one each.
    for (const auto& e : errors) {
      if (e.find(": error: ") != std::string::npos) continue;
      std::cerr << "::error title=mflow%3A run refused::" << github_escape_data(e) << "\n";
    }
  }
  if (!flags.summary_json.empty() && !summary_written && code != ExitCode::kOk &&
      check_output_target(flags.summary_json).ok()) {
    // Refused before a run existed (usage, invalid flow, preflight, Kubernetes API): CI still
    // finds a summary, with no run id, and the errors mflow printed.
    nlohmann::json j = {{"run_id", nullptr},
                        {"flow_file", flow_path},
                        {"status", "refused"},
                        {"exit_code", base::to_int(code)},
                        {"message", errors.empty() ? std::string("mflow refused to start the run")
                                                   : base::join(errors, "\n")},
                        {"errors", errors}};
    if (auto s = base::write_output_file(flags.summary_json, j.dump(2) + "\n"); !s.ok()) {
      print_status_error(s.with_context("--summary-json"));
    }
  }
  return code;
}

namespace {

base::ExitCode execute_flow_once(const std::string& flow_path, const RunFlags& flags,
                                 const std::optional<ResumeRequest>& resume, int verbosity,
                                 bool* summary_written) {
  // Phase 1: load, validate and lint the flow.
  if (auto path_ok = spec::check_flow_path(flow_path); !path_ok.ok()) {
    std::cerr << fmt::format("mflow: error: {} (give a .yaml, .yml or .toml flow file)\n",
                             path_ok.message());
    return ExitCode::kUsage;
  }
  spec::Diagnostics diags;
  auto flow = spec::load_flow_file(flow_path, &diags);
  std::optional<graph::Graph> graph;
  if (flow) graph = graph::Graph::build(*flow, &diags);
  diags.sort_and_dedupe();
  std::cerr << diags.format_all();
  if (on_github_actions()) std::cerr << github_diagnostic_annotations(diags);
  if (!graph || diags.has_errors()) {
    if (flow || diags.has_errors()) return ExitCode::kInvalidFlow;
    return ExitCode::kUsage;
  }

  // run.json records the flow file's path, as JSON text; resume reads it back to find the file.
  {
    std::error_code ec;
    std::string absolute = std::filesystem::absolute(flow_path, ec).string();
    if (base::invalid_utf8_offset(absolute) != std::string::npos) {
      std::cerr << fmt::format("mflow: error: the flow file's path {} is not UTF-8 text; the run "
                               "records it as text: rename the file (or the directory)\n",
                               base::shell_quote(base::printable(absolute)));
      return ExitCode::kUsage;
    }
  }

  // Phase 2: open the datastore and find the origin run when resuming. A new run creates
  // the datastore only once every check below passed, so bad input leaves no trace.
  std::string root = resolve_datastore(flags.datastore);
  auto store = store::Datastore::open(root, /*create=*/false);
  if (!store.ok() && resume) {
    print_status_error(store.status());
    return ExitCode::kEnvironment;
  }
  runtime::SchedulerOptions options;
  std::map<std::string, std::string> base_params;
  // Placement: a resume keeps the origin run's --with and --kubernetes-context unless they
  // are given anew, so resuming a Kubernetes run does not move its steps to this machine.
  std::vector<std::string> with = flags.with;
  std::string kubernetes_context = flags.kubernetes_context;
  bool placement_kept = false;
  if (resume) {
    auto origin = resume->origin_run_id.empty()
                      ? default_resume_origin(*store, graph->flow().name)
                      : read_run_ref(*store, resume->origin_run_id, graph->flow().name);
    if (!origin.ok()) {
      print_status_error(origin.status().with_context(
          resume->origin_run_id.empty() ? "resume" : "--origin-run-id " + resume->origin_run_id));
      return ExitCode::kUsage;
    }
    if (origin->flow != graph->flow().name) {
      std::cerr << fmt::format(
          "mflow: error: --origin-run-id {}: that run is of flow '{}', not '{}'\n",
          origin->run_id, origin->flow, graph->flow().name);
      return ExitCode::kUsage;
    }
    if (origin->status == store::RunStatus::kRunning) {
      std::cerr << fmt::format(
          "mflow: error: resume: run {} of flow '{}' is still running (its mflow process holds "
          "the run's lock); wait for it to end or stop it, then resume it\n",
          origin->run_id, origin->flow);
      return ExitCode::kUsage;
    }
    std::vector<base::Status> damaged;
    auto tasks = store->list_tasks(origin->run_id, "", &damaged);
    if (!tasks.ok()) {
      print_status_error(tasks.status());
      return ExitCode::kEnvironment;
    }
    // A task whose record cannot be read cannot be reused: say so, instead of re-running it
    // as if it had never run.
    for (const auto& d : damaged) {
      std::cerr << fmt::format("mflow: warning: resume: damaged task record: {}; that task is "
                               "not reused and runs again\n", d.message());
    }
    for (auto& t : tasks.value()) options.origin_tasks[t.step + "/" + t.task_id] = std::move(t);
    options.origin_run_id = origin->run_id;
    base_params = origin->params;
    if (with.empty() && !origin->with.empty()) {
      with = origin->with;
      placement_kept = true;
    }
    if (kubernetes_context.empty()) kubernetes_context = origin->kubernetes_context;
    if (!resume->step.empty()) {
      auto node = graph->find(resume->step);
      if (!node) {
        std::vector<std::string> names;
        for (const auto& n : graph->nodes()) names.push_back(n.name());
        std::string hint = base::closest_match(resume->step, names);
        std::cerr << fmt::format("mflow: error: resume: flow '{}' has no step '{}'{}\n",
                                 graph->flow().name, resume->step,
                                 hint.empty() ? "" : "; did you mean '" + hint + "'?");
        return ExitCode::kUsage;
      }
      for (size_t n : graph->downstream(*node)) options.force_rerun.insert(n);
    }
  }

  // Phase 3: parameters, output files, routing and the local preflight.
  const std::string no_file;
  for (const auto& [flag, path] :
       {std::pair<const char*, const std::string&>{"--run-id-file", flags.run_id_file},
        {"--summary-json", flags.summary_json},
        {"--events", flags.events == "-" ? no_file : flags.events},
        {"--junit", flags.junit}}) {
    if (auto s = check_output_target(path); !path.empty() && !s.ok()) {
      print_status_error(s.with_context(flag));
      return ExitCode::kUsage;
    }
  }
  auto params = resolve_params(graph->flow(), flags.params, flags.param_flags, flags.own_flags,
                               base_params);
  if (!params.ok()) {
    print_status_error(params.status());
    return ExitCode::kUsage;
  }
  options.params = params.value();
  options.max_workers = flags.max_workers;
  options.max_num_splits = flags.max_num_splits;
  auto detected = runtime::detect_machine();
  if (!detected.ok()) {
    print_status_error(detected.status());
    return ExitCode::kUsage;
  }
  runtime::Machine machine = detected.value();
  if (flags.local_cpus > 0) machine.cpus = flags.local_cpus;
  if (flags.local_memory_mb > 0) machine.memory_mb = flags.local_memory_mb;
  if (flags.local_gpus >= 0) machine.gpus = flags.local_gpus;
  options.capacity = machine;
  bool kubernetes_all = false;
  exec::KubeDefaults kube_defaults;
  {
    auto from_env = exec::kube_defaults_from_env();
    if (!from_env.ok()) {
      print_status_error(from_env.status());
      return ExitCode::kUsage;
    }
    kube_defaults = from_env.value();
  }
  for (const auto& w : with) {
    if (w == "local") continue;
    if (w != "kubernetes" && !base::starts_with(w, "kubernetes:")) {
      std::cerr << fmt::format("mflow: error: --with {}: unknown target; the supported ones are "
                               "`kubernetes[:key=value,...]` and `local`\n", w);
      return ExitCode::kUsage;
    }
    if (auto s = exec::apply_with_option(w, &kube_defaults); !s.ok()) {
      print_status_error(s);
      return ExitCode::kUsage;
    }
    kubernetes_all = true;
  }
  for (const auto& node : graph->nodes()) {
    options.on_kubernetes.push_back(kubernetes_all || node.step->kubernetes.has_value());
  }
  auto problems = runtime::preflight(*graph, machine, options.on_kubernetes);
  if (!problems.empty()) {
    for (const auto& p : problems) std::cerr << "mflow: error: " << p << "\n";
    return ExitCode::kEnvironment;
  }
  bool any_kubernetes = std::find(options.on_kubernetes.begin(), options.on_kubernetes.end(),
                                  true) != options.on_kubernetes.end();
  // The Jobs' namespace, unless the environment or --with names one, is the kubeconfig
  // context's, else `default` (kubectl's rule). A dry run without a usable kubeconfig still
  // prints its manifests, for `default`; a real run reports the kubeconfig error below.
  std::optional<base::Result<kube::Config>> kube_config;
  if (any_kubernetes) {
    kube_config = kube::load_config(kube::options_from_environment(kubernetes_context));
    if (kube_config->ok() && !kube_defaults.namespace_given) {
      kube_defaults.namespace_name = kube_config->value().default_namespace;
    }
  }
  // Every Kubernetes step must resolve (a PVC for the datastore, valid values) before
  // anything runs.
  for (const auto& node : graph->nodes()) {
    if (!options.on_kubernetes[node.index]) continue;
    auto task = exec::resolve_kube_task(*node.step, kube_defaults, root);
    if (!task.ok()) {
      print_status_error(task.status().with_context("step '" + node.name() + "'"));
      return ExitCode::kUsage;
    }
  }
  if (flags.dry_run) {
    // A dry run creates nothing, not even the identity of a datastore that has none yet.
    auto id = store.ok() ? store->existing_identity() : base::Result<std::string>("dry-run");
    return print_manifests(*graph, options, kube_defaults, root, id.ok() ? id.value() : "dry-run");
  }

  // The Kubernetes API is checked before the run exists: a bad kubeconfig, CA or token must
  // not leave a run behind that reads as crashed.
  // With `--events -` stdout carries the events alone, so task output moves to stderr.
  bool events_on_stdout = flags.events == "-";
  runtime::ConsoleReporter console(events_on_stdout ? stderr : stdout, stderr, flags.quiet);
  const std::string command_options = datastore_option(root);
  console.set_command_options(command_options);
  console.set_resuming(options.origin_run_id);
  runtime::RunLedger ledger;
  std::vector<runtime::Reporter*> reporters{&console, &ledger};
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> events_file(nullptr, &std::fclose);
  std::optional<runtime::EventStream> events;
  if (!flags.events.empty()) {
    std::FILE* to = stdout;
    if (!events_on_stdout) {
      // "e": O_CLOEXEC, so no task inherits the stream.
      events_file.reset(std::fopen(flags.events.c_str(), "we"));
      if (!events_file) {
        std::cerr << fmt::format("mflow: error: --events: {}: cannot open ({})\n", flags.events,
                                 std::strerror(errno));
        return ExitCode::kUsage;
      }
      to = events_file.get();
    }
    events.emplace(to, flags.events);
    events->set_resuming(options.origin_run_id);
    reporters.push_back(&*events);
  }
  runtime::FanoutReporter reporter(reporters);
  if (placement_kept) {
    std::string kept;
    for (const auto& w : with) kept += " --with " + base::shell_quote(w);
    reporter.note(fmt::format("resume keeps run {}'s placement:{} (give --with to change it)",
                              options.origin_run_id, kept));
  }
  std::unique_ptr<kube::RestApiClient> api;
  // For tests: how long a task waits to start before (and between) "pending" notes, instead
  // of 15 s then every 30 s.
  std::optional<std::chrono::seconds> waiting_interval;
  if (const char* raw = std::getenv("MFLOW_KUBERNETES_WAITING_NOTE_INTERVAL"); raw && *raw) {
    waiting_interval = spec::parse_duration(raw);
    if (!waiting_interval || waiting_interval->count() == 0) {
      std::cerr << "mflow: error: MFLOW_KUBERNETES_WAITING_NOTE_INTERVAL=" << raw
                << ": expected a duration such as 5s or 1m\n";
      return ExitCode::kUsage;
    }
  }
  if (any_kubernetes) {
    auto& config = *kube_config;
    if (!config.ok()) {
      print_status_error(config.status());
      return ExitCode::kKubernetes;
    }
    kube::RestOptions rest_options;
    rest_options.on_warning = [&reporter](const std::string& text) {
      reporter.note("warning: Kubernetes API server: " + text);
    };
    rest_options.on_connecting = [&reporter](const std::string& text) { reporter.note(text); };
    auto client = kube::RestApiClient::create(config.value(), rest_options);
    if (!client.ok()) {
      print_status_error(client.status());
      return ExitCode::kKubernetes;
    }
    api = std::move(client.value());
    // One list per namespace before any task starts: a wrong CA, rejected credentials or an
    // unreachable API server end the run with exit 5 at once instead of failing every task.
    std::set<std::string> namespaces;
    for (const auto& node : graph->nodes()) {
      if (!options.on_kubernetes[node.index]) continue;
      auto task = exec::resolve_kube_task(*node.step, kube_defaults, root);
      if (task.ok()) namespaces.insert(task->namespace_name);
    }
    for (const auto& ns : namespaces) {
      auto listed = api->list(kube::Resource::kJobs, ns,
                              exec::run_label_selector("preflight", "preflight"));
      if (!listed.ok()) {
        std::cerr << "mflow: error: " << listed.error.message << "\n";
        return ExitCode::kKubernetes;
      }
    }
  }

  // Phase 4: create the run and its executors.
  if (!store.ok()) {
    store = store::Datastore::open(root, /*create=*/true);
    if (!store.ok()) {
      print_status_error(store.status());
      return ExitCode::kEnvironment;
    }
  }
  // A datastore from before identities gets its identity now, before any Job names it.
  auto datastore_id = store->identity();
  if (!datastore_id.ok()) {
    print_status_error(datastore_id.status());
    return ExitCode::kEnvironment;
  }
  store::RunInfo info;
  info.flow = graph->flow().name;
  std::error_code ec;
  info.flow_file = std::filesystem::absolute(flow_path, ec).lexically_normal().string();
  info.started = std::chrono::system_clock::now();
  info.params = options.params;
  info.origin_run_id = options.origin_run_id;
  info.command = own_command_line();
  info.with = with;
  info.kubernetes_context = kubernetes_context;
  // Two resumes of one run at once must not both adopt (follow, take the outcome of) the same
  // Kubernetes Job: a resume that may adopt holds the origin's resume lock while it runs.
  store::RunLock resume_lock;
  if (any_kubernetes && !options.origin_run_id.empty()) {
    if (auto s = store->lock_resume(options.origin_run_id, &resume_lock); !s.ok()) {
      print_status_error(s.with_context("resume"));
      return ExitCode::kUsage;
    }
  }
  store::RunLock lock;
  auto run = store->create_run(info, &lock);
  if (!run.ok()) {
    print_status_error(run.status());
    return ExitCode::kEnvironment;
  }
  if (!flags.run_id_file.empty()) {
    if (auto s = base::write_output_file(flags.run_id_file, run->run_id + "\n"); !s.ok()) {
      // Checked writable above; failing now (disk full) still must not pass silently in CI.
      print_status_error(s.with_context("--run-id-file"));
      store::RunInfo refused = run.value();
      refused.finished = std::chrono::system_clock::now();
      refused.status = store::RunStatus::kFailed;
      refused.exit_code = base::to_int(ExitCode::kEnvironment);
      (void)store->write_run(refused);
      return ExitCode::kEnvironment;
    }
  }
  base::install_interrupt_handlers();
  exec::LocalExecutorOptions local_options;
  local_options.kill_grace =
      std::chrono::milliseconds(std::lround(flags.kill_grace_seconds * 1000));
  if (std::find(options.on_kubernetes.begin(), options.on_kubernetes.end(), false) !=
      options.on_kubernetes.end()) {
    if (auto s = exec::start_orphan_guard(local_options.kill_grace); !s.ok()) {
      std::cerr << "mflow: warning: " << s.message()
                << "; local tasks would outlive a SIGKILLed mflow\n";
    }
  }
  local_options.wake_fds.push_back(base::interrupt_fd());
  std::unique_ptr<exec::KubeExecutor> kubernetes;
  if (any_kubernetes) {
    exec::KubeExecutorOptions kube_options;
    kube_options.datastore_id = datastore_id.value();
    kube_options.flow = graph->flow().name;
    kube_options.datastore_root = root;
    kube_options.defaults = kube_defaults;
    kube_options.on_waiting = [&reporter](const std::string& text) { reporter.note(text); };
    if (waiting_interval) kube_options.waiting_first = kube_options.waiting_every = *waiting_interval;
    kube_options.origin_run_id = options.origin_run_id;
    kubernetes = std::make_unique<exec::KubeExecutor>(*api, reporter, kube_options);
    local_options.wake_fds.push_back(kubernetes->wake_fd());
  }
  std::optional<exec::MemoryCgroupRoot> cgroups;
  if (flags.enforce_resources) {
    auto root_group = exec::MemoryCgroupRoot::open();
    if (root_group.ok()) {
      cgroups.emplace(std::move(root_group.value()));
      local_options.memory_cgroups = &*cgroups;
    } else {
      reporter.note(root_group.status().message() +
                    "; --enforce-resources is off for this run (requests still limit admission)");
    }
  }
  exec::LocalExecutor local(reporter, local_options);
  // Tasks call mflow itself (`mflow map`) through $MFLOW_BIN, whatever PATH says.
  std::error_code exe_ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", exe_ec);
  if (!exe_ec) options.local_env["MFLOW_BIN"] = exe.string();
  options.interrupted = [] { return base::interrupted(); };
  options.acknowledge_interrupt = [] { base::acknowledge_interrupt(); };
  options.interrupt_count = [] { return base::interrupt_count(); };

  // Phase 5: run, then record the outcome.
  runtime::Scheduler scheduler(*graph, store.value(), run.value(), local, kubernetes.get(),
                               reporter, std::move(options));
  runtime::RunSummary summary = scheduler.run();
  if (kubernetes && verbosity > 0) {
    const auto& st = kubernetes->stats();
    reporter.note(fmt::format(
        "Kubernetes API requests: {} create, {} get, {} list, {} delete, {} watch, {} log, "
        "{} retried; {} TLS connections, system trust store loaded {} time(s)",
        st.creates.load(), st.gets.load(), st.lists.load(), st.deletes.load(),
        st.watches.load(), st.log_reads.load(), st.retries.load(), st.tls_connections.load(),
        kube::system_trust_store_loads()));
  }
  store::RunInfo final_info = run.value();
  final_info.finished = std::chrono::system_clock::now();
  ExitCode code = summary.succeeded    ? ExitCode::kOk
                  : summary.interrupted ? ExitCode::kInterrupted
                                        : ExitCode::kTaskFailed;
  final_info.status = summary.succeeded    ? store::RunStatus::kSucceeded
                      : summary.interrupted ? store::RunStatus::kInterrupted
                                            : store::RunStatus::kFailed;
  final_info.exit_code = base::to_int(code);
  if (auto s = store->write_run(final_info); !s.ok()) {
    print_status_error(s);
    return ExitCode::kEnvironment;
  }
  if (!flags.summary_json.empty()) {
    *summary_written = true;
    if (write_summary_json(flags.summary_json, summary, ledger.tasks(),
                           store::to_string(final_info.status), command_options) != ExitCode::kOk) {
      return ExitCode::kEnvironment;
    }
  }
  // Written after the summary: a --junit or --events failure (exit 4) must not leave CI
  // without the summary.
  if (write_ci_outputs(flags, summary, ledger, events ? &*events : nullptr, command_options) !=
      ExitCode::kOk) {
    return ExitCode::kEnvironment;
  }
  return code;
}

}  // namespace

}  // namespace mflow::cli
