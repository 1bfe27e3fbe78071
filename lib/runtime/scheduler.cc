#include "runtime/scheduler.h"

#include <algorithm>
#include <cctype>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base/check.h"
#include "base/hash.h"
#include "base/json_text.h"
#include "base/strings.h"

namespace mflow::runtime {

using SysClock = std::chrono::system_clock;

struct Scheduler::Active {
  TaskIndex task = 0;
  int attempt = 0;
  int evictions = 0;  // attempts lost to evictions, which do not use up a retry
  std::optional<SysClock::time_point> retry_at;
  bool in_flight = false;
  exec::TaskLaunch launch;
  store::TaskRecord record;
  store::ArtifactMap input_view;               // what $MFLOW_INPUT_DIR shows at top level
  std::vector<store::ArtifactMap> join_views;  // a join's inputs, one per branch/split
  std::string input_dir;                       // $MFLOW_INPUT_DIR, set on the first attempt
  std::string input_hash;
  // Local resources held while the attempt runs.
  double cpu = 0;
  int64_t memory_mb = 0;
  std::vector<size_t> gpus;
};

namespace {

nlohmann::json artifacts_json(const store::ArtifactMap& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, ref] : m) j[name] = ref.sha256;
  return j;
}

exec::Completion synthetic_failure(const exec::TaskLaunch& launch, exec::Outcome outcome,
                                   std::string reason) {
  exec::Completion c;
  c.key = launch.key;
  c.attempt = launch.attempt;
  c.outcome = outcome;
  c.reason = std::move(reason);
  c.started = c.finished = SysClock::now();
  return c;
}

store::AttemptRecord attempt_record(const exec::Completion& c, const char* executor) {
  store::AttemptRecord a;
  a.attempt = c.attempt;
  a.outcome = exec::to_string(c.outcome);
  a.exit_code = c.exit_code;
  a.signal = c.signal;
  a.reason = c.reason;
  a.started = c.started;
  a.finished = c.finished;
  a.host = c.host;
  a.pid = c.pid;
  a.executor = executor;
  return a;
}

}  // namespace

Scheduler::Scheduler(const graph::Graph& graph, store::Datastore& store,
                     const store::RunInfo& run, exec::Executor& local,
                     exec::Executor* kubernetes, Reporter& reporter, SchedulerOptions options)
    : graph_(graph),
      store_(store),
      run_(run),
      local_(local),
      kubernetes_(kubernetes),
      reporter_(reporter),
      options_(std::move(options)),
      plan_(graph) {
  for (const auto& node : graph_.nodes()) spec_hashes_.push_back(spec::step_spec_hash(*node.step));
  if (options_.on_kubernetes.empty()) options_.on_kubernetes.assign(graph_.nodes().size(), false);
  gpu_in_use_.assign(static_cast<size_t>(std::max<int64_t>(0, options_.capacity.gpus)), false);
  summary_.run_id = run.run_id;
  summary_.flow = run.flow;
  summary_.flow_file = run.flow_file;
}

std::string param_env_name(const std::string& name) {
  std::string out = "MFLOW_PARAM_";
  for (char c : name) {
    out += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::toupper(c)) : '_';
  }
  return out;
}

Scheduler::~Scheduler() = default;

std::string Scheduler::key_of(TaskIndex i) const {
  const auto& t = plan_.task(i);
  return graph_.node(t.step).name() + "/" + t.id;
}

exec::Executor& Scheduler::executor_for(size_t step) {
  if (options_.on_kubernetes.at(step)) {
    MFLOW_CHECK(kubernetes_ != nullptr, "step on Kubernetes without a Kubernetes executor");
    return *kubernetes_;
  }
  return local_;
}

RunSummary Scheduler::run() {
  auto started = SysClock::now();
  reporter_.run_started(run_.run_id, run_.flow, store_.root());
  while (plan_.more_to_do()) {
    if (!stopping_ && options_.interrupted()) {
      options_.acknowledge_interrupt();
      summary_.interrupted = true;
      if (attempts_in_flight_ > 0) {
        // Stopping can take up to --kill-grace: say what is happening meanwhile.
        reporter_.note(fmt::format("interrupted: stopping {} running task(s) (SIGTERM now, "
                                   "SIGKILL after --kill-grace)", attempts_in_flight_));
      }
      interrupts_when_stopping_ = options_.interrupt_count();
      stop_everything();
    } else if (interrupts_when_stopping_ >= 0 &&
               options_.interrupt_count() > interrupts_when_stopping_) {
      // A second Ctrl-C: the user does not want to wait out --kill-grace.
      options_.acknowledge_interrupt();
      interrupts_when_stopping_ = options_.interrupt_count();
      reporter_.note("interrupted again: killing the remaining tasks now (SIGKILL)");
      local_.kill_all();
      if (kubernetes_) kubernetes_->kill_all();
    }
    finish_retry_delays(SysClock::now());
    if (!stopping_) start_ready_tasks();
    if (!plan_.more_to_do()) break;
    {
      size_t retrying = 0;
      for (const auto& [key, a] : active_) retrying += a->retry_at.has_value();
      reporter_.tasks_queued(stopping_ ? 0 : plan_.ready_count() + waiting_for_resources_.size() + retrying);
    }

    std::optional<SysClock::time_point> deadline;
    for (const auto& [key, a] : active_) {
      if (a->retry_at && (!deadline || *a->retry_at < *deadline)) deadline = a->retry_at;
    }
    std::vector<exec::Completion> done;
    // The local executor's wait also wakes on the interrupt fd and on the Kubernetes
    // executor's eventfd, so one blocking call serves both.
    local_.wait(deadline, &done);
    if (kubernetes_) kubernetes_->poll(&done);
    for (const auto& c : done) handle(c);
  }
  summary_.succeeded = plan_.completed() && !plan_.any_failed() && !summary_.interrupted;
  summary_.elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(SysClock::now() - started);
  reporter_.run_finished(summary_);
  return summary_;
}

void Scheduler::abandon_waiting() {
  for (TaskIndex i : waiting_for_resources_) plan_.abandon(i);
  waiting_for_resources_.clear();
}

void Scheduler::stop_everything() {
  stopping_ = true;
  plan_.stop();
  abandon_waiting();
  local_.cancel_all();
  if (kubernetes_) kubernetes_->cancel_all();
  // Tasks waiting for a retry delay will not get another attempt.
  std::vector<std::string> waiting;
  for (const auto& [key, a] : active_) {
    if (!a->in_flight) waiting.push_back(key);
  }
  for (const auto& key : waiting) {
    auto& a = *active_.at(key);
    fail(a.task, a, synthetic_failure(a.launch, exec::Outcome::kCancelled,
                                      "not retried: the run was interrupted"));
  }
}

bool Scheduler::fits(TaskIndex i) const {
  const auto& node = graph_.node(plan_.task(i).step);
  if (options_.on_kubernetes.at(node.index)) return true;
  const auto& r = node.step->resources;
  // Only explicit requests count: a step that declares nothing is limited by --max-workers.
  if (r.cpu && cpu_in_use_ > 0 && cpu_in_use_ + *r.cpu > options_.capacity.cpus + 1e-9) {
    return false;
  }
  if (r.memory_mb && memory_in_use_ > 0 &&
      memory_in_use_ + *r.memory_mb > options_.capacity.memory_mb) {
    return false;
  }
  if (r.gpu && *r.gpu > 0) {
    auto free = std::count(gpu_in_use_.begin(), gpu_in_use_.end(), false);
    if (free < *r.gpu) return false;
  }
  return true;
}

void Scheduler::acquire(Active& a) {
  const auto& node = graph_.node(plan_.task(a.task).step);
  if (options_.on_kubernetes.at(node.index)) return;
  const auto& r = node.step->resources;
  a.cpu = r.cpu.value_or(0);
  a.memory_mb = r.memory_mb.value_or(0);
  cpu_in_use_ += a.cpu;
  memory_in_use_ += a.memory_mb;
  for (size_t g = 0; g < gpu_in_use_.size() && static_cast<int64_t>(a.gpus.size()) < r.gpu.value_or(0); ++g) {
    if (!gpu_in_use_[g]) {
      gpu_in_use_[g] = true;
      a.gpus.push_back(g);
    }
  }
}

void Scheduler::release(Active& a) {
  cpu_in_use_ -= a.cpu;
  memory_in_use_ -= a.memory_mb;
  for (size_t g : a.gpus) gpu_in_use_[g] = false;
  a.cpu = 0;
  a.memory_mb = 0;
  a.gpus.clear();
}

void Scheduler::start_ready_tasks() {
  while (!stopping_ && !plan_.any_failed() &&
         attempts_in_flight_ < static_cast<size_t>(options_.max_workers)) {
    std::optional<TaskIndex> next;
    if (!waiting_for_resources_.empty() && fits(waiting_for_resources_.front())) {
      next = waiting_for_resources_.front();
      waiting_for_resources_.pop_front();
    } else if (waiting_for_resources_.empty() || plan_.has_ready()) {
      next = plan_.find_work();
      if (next && !fits(*next)) {
        waiting_for_resources_.push_back(*next);
        continue;
      }
    }
    if (!next) return;
    auto active = std::make_unique<Active>();
    active->task = *next;
    launch(*next, std::move(active));
  }
}

void Scheduler::launch(TaskIndex i, std::unique_ptr<Active> owned) {
  Active& a = *owned;
  const PlannedTask& t = plan_.task(i);
  const graph::Node& node = graph_.node(t.step);
  const spec::Step& step = *node.step;
  std::string key = key_of(i);
  bool first_attempt = a.record.attempts.empty();

  if (first_attempt) {
    // The inputs: one parent's view, or for a join each branch separately plus, at the top
    // level, every artifact all branches agree on (an artifact no branch touched is one of
    // them). A value some branch changed is not shown at the top level: the stale value
    // from before the split would mislead. An empty foreach has no inputs: its join sees
    // what the foreach step saw.
    if (node.fan_in == graph::FanIn::kNone) {
      if (!t.inputs.empty()) a.input_view = views_.at(t.inputs[0]);
    } else {
      for (TaskIndex in : t.inputs) a.join_views.push_back(views_.at(in));
      if (a.join_views.empty()) {
        a.input_view = views_.at(*t.split_task);
      } else {
        for (const auto& [name, ref] : a.join_views[0]) {
          bool agreed = std::all_of(a.join_views.begin() + 1, a.join_views.end(),
                                    [&, &n = name, &r = ref](const store::ArtifactMap& v) {
                                      auto it = v.find(n);
                                      return it != v.end() && it->second == r;
                                    });
          if (agreed) a.input_view[name] = ref;
        }
      }
    }
    nlohmann::json h;
    h["view"] = artifacts_json(a.input_view);
    h["inputs"] = nlohmann::json::array();
    for (const auto& v : a.join_views) h["inputs"].push_back(artifacts_json(v));
    h["params"] = options_.params;
    if (t.foreach_task) h["item"] = foreach_items_.at(*t.foreach_task).at(static_cast<size_t>(t.split_index));
    a.input_hash = base::sha256_hex(h.dump());

    a.record.run_id = run_.run_id;
    a.record.step = step.name;
    a.record.task_id = t.id;
    a.record.index_path = t.path;
    a.record.spec_hash = spec_hashes_[t.step];
    a.record.input_hash = a.input_hash;
    if (try_reuse(i, a.input_hash)) return;
  }

  // Beyond this point the attempt really runs: scratch dirs, inputs, environment.
  auto& launch = a.launch;
  launch = exec::TaskLaunch{};
  launch.key = key;
  launch.run_id = run_.run_id;
  launch.step = step.name;
  launch.task_id = t.id;
  launch.attempt = a.attempt;
  launch.command = step.run;
  launch.timeout = step.timeout;
  launch.step_spec = &step;
  launch.resources = step.resources;
  bool on_kube = options_.on_kubernetes.at(t.step);

  store::AttemptRecord running;
  running.attempt = a.attempt;
  running.outcome = "running";
  running.started = SysClock::now();
  running.executor = on_kube ? "kubernetes" : "local";
  a.record.attempts.push_back(running);
  a.record.status = store::TaskStatus::kRunning;
  for (const auto& [k, v] : std::map<std::string, std::string>{
           {"cpu", fmt::format("{}", step.resources.cpu.value_or(spec::kDefaultCpu))},
           {"memory", fmt::format("{}", step.resources.memory_mb.value_or(spec::kDefaultMemoryMb))},
           {"disk", fmt::format("{}", step.resources.disk_mb.value_or(spec::kDefaultDiskMb))},
           {"gpu", fmt::format("{}", step.resources.gpu.value_or(0))}}) {
    a.record.resources[k] = v;
  }
  auto fail_now = [&](const std::string& why) {
    active_[key] = std::move(owned);
    a.in_flight = true;
    ++attempts_in_flight_;
    handle(synthetic_failure(launch, exec::Outcome::kLaunchFailed, why));
  };

  if (a.input_dir.empty()) {
    // A task with one parent reads the parent's artifacts directory as it is: no copy, no
    // per-task directory to create and remove (directory removal is the slowest metadata
    // operation on many file systems). Start and joins get their own input directory.
    if (node.fan_in == graph::FanIn::kNone && !t.inputs.empty()) {
      a.input_dir = artifact_dirs_.at(t.inputs[0]);
    } else {
      std::vector<std::string> input_dirs;
      for (TaskIndex in : t.inputs) input_dirs.push_back(artifact_dirs_.at(in));
      auto input = store_.make_input_dir(run_.run_id, step.name, t.id, a.input_view, input_dirs);
      if (!input.ok()) return fail_now(input.status().message());
      a.input_dir = input.value();
    }
  }
  auto out = store_.make_output_dir(run_.run_id, step.name, t.id, a.attempt);
  if (!out.ok()) return fail_now(out.status().message());
  launch.stdout_path = store_.log_path(run_.run_id, step.name, t.id, a.attempt, false);
  launch.stderr_path = store_.log_path(run_.run_id, step.name, t.id, a.attempt, true);

  auto& env = launch.env;
  env["MFLOW_FLOW"] = run_.flow;
  env["MFLOW_RUN_ID"] = run_.run_id;
  env["MFLOW_STEP"] = step.name;
  env["MFLOW_TASK_ID"] = t.id;
  env["MFLOW_ATTEMPT"] = std::to_string(a.attempt);
  env["MFLOW_DATASTORE"] = store_.root();
  env["MFLOW_INPUT_DIR"] = a.input_dir;
  env["MFLOW_OUTPUT_DIR"] = out.value();
  for (const auto& [name, value] : options_.params) env[param_env_name(name)] = value;
  if (t.foreach_task) {
    env["MFLOW_INPUT"] = foreach_items_.at(*t.foreach_task).at(static_cast<size_t>(t.split_index));
    env["MFLOW_SPLIT_INDEX"] = std::to_string(t.split_index);
    env["MFLOW_NUM_SPLITS"] = std::to_string(*plan_.num_splits(*t.foreach_task));
  }
  if (node.fan_in != graph::FanIn::kNone) env["MFLOW_NUM_INPUTS"] = std::to_string(t.inputs.size());
  env["MFLOW_CPUS"] = fmt::format("{}", step.resources.cpu.value_or(
      on_kube ? spec::kDefaultCpu : options_.capacity.cpus));
  acquire(a);
  if (!a.gpus.empty()) {
    std::vector<std::string> ids;
    for (size_t g : a.gpus) ids.push_back(options_.capacity.gpu_id(g));
    env["CUDA_VISIBLE_DEVICES"] = base::join(ids, ",");
  } else if (!on_kube && options_.capacity.gpus > 0) {
    // mflow hands out this machine's GPUs: a task that asked for none sees none, so it cannot
    // use a GPU another task holds (as on Kubernetes, where no request means no device).
    env["CUDA_VISIBLE_DEVICES"] = "";
  }
  if (on_kube) {
    env["MFLOW_BIN"] = "mflow";
  } else {
    for (const auto& [k, v] : options_.local_env) env[k] = v;
  }
  for (const auto& [k, v] : step.env) env[k] = v;

  launch.task_hash = base::sha256_hex(a.record.spec_hash + "\n" + a.input_hash);
  if (on_kube && a.attempt == 0 && !options_.origin_run_id.empty() &&
      !options_.force_rerun.count(t.step)) {
    // Only an attempt whose outcome the origin never recorded can still be running there.
    auto origin = options_.origin_tasks.find(key);
    if (origin == options_.origin_tasks.end() ||
        origin->second.status == store::TaskStatus::kRunning) {
      launch.adopt_from_run = options_.origin_run_id;
    }
  }
  reporter_.task_started(launch, on_kube ? "kubernetes" : "local");
  a.in_flight = true;
  a.retry_at.reset();
  ++attempts_in_flight_;
  active_[key] = std::move(owned);
  if (auto s = executor_for(t.step).start(launch); !s.ok()) {
    handle(synthetic_failure(launch, exec::Outcome::kLaunchFailed, s.message()));
  }
}

bool Scheduler::try_reuse(TaskIndex i, const std::string& input_hash) {
  const PlannedTask& t = plan_.task(i);
  if (options_.origin_run_id.empty() || options_.force_rerun.count(t.step)) return false;
  auto it = options_.origin_tasks.find(key_of(i));
  if (it == options_.origin_tasks.end()) return false;
  const store::TaskRecord& origin = it->second;
  if (origin.status != store::TaskStatus::kSucceeded && origin.status != store::TaskStatus::kReused) {
    return false;
  }
  const auto& name = graph_.node(t.step).name();
  if (origin.spec_hash != spec_hashes_[t.step]) {
    if (told_changed_.insert(t.step).second) {
      reporter_.note(fmt::format("step '{}' changed since run {}: running it again", name,
                                 options_.origin_run_id));
    }
    return false;
  }
  if (origin.input_hash != input_hash) return false;

  store::TaskRecord record = origin;
  record.run_id = run_.run_id;
  record.status = store::TaskStatus::kReused;
  record.reused_from = origin.reused_from.empty()
                           ? fmt::format("{}/{}/{}", origin.run_id, origin.step, origin.task_id)
                           : origin.reused_from;
  // A stored output that is gone (deleted by hand, quarantined) rules out reuse: say so, as
  // the task then runs again. Checked first, so no record claims a reuse that did not happen.
  auto cannot_reuse = [&](const base::Status& why) {
    reporter_.note(fmt::format("{}/{} of run {} cannot be reused ({}): running it again", name,
                               t.id, origin.run_id, why.message()));
    return false;
  };
  auto dir = store_.write_artifacts_dir(run_.run_id, name, t.id, record.view);
  if (!dir.ok()) return cannot_reuse(dir.status());
  if (auto s = store_.task_dir(run_.run_id, name, t.id); !s.ok()) return false;
  if (!store_.link_logs(origin, run_.run_id).ok()) return false;
  if (!store_.write_task(record).ok()) return false;
  remember(i, record.view, dir.value());
  int64_t splits = 0;
  if (graph_.node(t.step).fan_out == graph::FanOut::kForeach) {
    // Re-read the items so the (possibly re-run) body tasks get their elements.
    const auto& foreach_name = graph_.node(t.step).step->foreach;
    auto ref = record.view.find(foreach_name);
    if (ref == record.view.end()) return false;
    auto bytes = store_.read_object(ref->second);
    if (!bytes.ok()) return cannot_reuse(bytes.status());
    if (!base::check_json_depth(bytes.value(), "").ok()) return false;
    auto items = nlohmann::json::parse(bytes.value(), nullptr, false);
    if (!items.is_array()) return false;
    auto& texts = foreach_items_[i];
    for (const auto& item : items) texts.push_back(item.is_string() ? item.get<std::string>() : item.dump());
    splits = static_cast<int64_t>(texts.size());
  }
  reporter_.task_reused(run_.run_id, name, t.id, record.reused_from);
  ++summary_.tasks_reused;
  if (!refuse_fan_out(i, splits)) plan_.task_succeeded(i, splits);
  return true;
}

void Scheduler::remember(TaskIndex i, store::ArtifactMap view, std::string artifacts_dir) {
  if (views_.size() <= i) {
    views_.resize(i + 1);
    artifact_dirs_.resize(i + 1);
  }
  views_[i] = std::move(view);
  artifact_dirs_[i] = std::move(artifacts_dir);
}

void Scheduler::handle(const exec::Completion& c) {
  auto it = active_.find(c.key);
  if (it == active_.end() || !it->second->in_flight || it->second->attempt != c.attempt) {
    return;  // a duplicate or stale report (e.g. a Job event for an attempt already settled)
  }
  Active& a = *it->second;
  a.in_flight = false;
  --attempts_in_flight_;
  release(a);
  const char* where = options_.on_kubernetes.at(plan_.task(a.task).step) ? "kubernetes" : "local";
  if (auto intact = inputs_unchanged(a); !intact.ok()) {
    // What the task read was changed by the task itself: no retry can repair that, and its
    // siblings may have read the changed bytes, so the run fails here.
    exec::Completion damaged = c;
    damaged.outcome = exec::Outcome::kFailed;
    damaged.reason = intact.message();
    a.record.attempts.back() = attempt_record(damaged, where);
    return fail(a.task, a, damaged);
  }
  a.record.attempts.back() = attempt_record(c, where);
  if (!c.adopted_job.empty()) {
    reporter_.note(fmt::format("{}/{}: adopted Job {} of run {} ({})", a.launch.step,
                               a.launch.task_id, c.adopted_job, a.launch.adopt_from_run,
                               exec::to_string(c.outcome)));
  }
  if (c.outcome == exec::Outcome::kSucceeded) return succeed(a.task, a, c);

  const spec::Step& step = *graph_.node(plan_.task(a.task).step).step;
  bool evicted = c.outcome == exec::Outcome::kEvicted && a.evictions < 5;
  bool retry = !stopping_ && !plan_.any_failed() && c.outcome != exec::Outcome::kCancelled &&
               (evicted || a.attempt - a.evictions < step.retries);
  if (!retry) return fail(a.task, a, c);

  if (evicted) ++a.evictions;
  auto delay = evicted ? std::chrono::seconds(0) : step.retry_delay;
  reporter_.task_finished(a.launch, c, static_cast<int>(delay.count()));
  (void)store_.write_task(a.record);
  ++a.attempt;
  a.retry_at = SysClock::now() + delay;
}

base::Status Scheduler::inputs_unchanged(const Active& a) const {
  if (a.input_dir.empty()) return base::Status();
  MFLOW_RETURN_IF_ERROR(store_.check_unchanged(a.input_dir, a.input_view));
  const PlannedTask& t = plan_.task(a.task);
  if (graph_.node(t.step).fan_in != graph::FanIn::kNone) {
    for (size_t k = 0; k < t.inputs.size() && k < a.join_views.size(); ++k) {
      MFLOW_RETURN_IF_ERROR(store_.check_unchanged(artifact_dirs_.at(t.inputs[k]), a.join_views[k]));
    }
  }
  return base::Status();
}

void Scheduler::finish_retry_delays(SysClock::time_point now) {
  std::vector<std::string> due;
  for (const auto& [key, a] : active_) {
    if (!a->in_flight && a->retry_at && *a->retry_at <= now) due.push_back(key);
  }
  for (const auto& key : due) {
    auto node = active_.extract(key);
    TaskIndex i = node.mapped()->task;
    launch(i, std::move(node.mapped()));
  }
}

void Scheduler::succeed(TaskIndex i, Active& a, const exec::Completion& c) {
  const graph::Node& node = graph_.node(plan_.task(i).step);
  auto fail_with = [&](const std::string& why) {
    exec::Completion failed = c;
    failed.outcome = exec::Outcome::kFailed;
    failed.reason = why;
    a.record.attempts.back() = attempt_record(failed, a.record.attempts.back().executor.c_str());
    fail(i, a, failed);
  };
  // An adopted Job wrote into the origin attempt's output directory.
  const std::string& out_dir = c.output_dir.empty() ? a.launch.env.at("MFLOW_OUTPUT_DIR") : c.output_dir;
  auto outputs = store_.ingest_dir(out_dir);
  if (!outputs.ok()) return fail_with(outputs.status().message());
  store::ArtifactMap view = a.input_view;
  for (const auto& [name, ref] : outputs.value()) view[name] = ref;

  int64_t splits = 0;
  if (node.fan_out == graph::FanOut::kForeach) {
    const std::string& name = node.step->foreach;
    auto ref = view.find(name);
    if (ref == view.end()) {
      return fail_with(fmt::format(
          "step '{}' declares `foreach: {}` but no artifact '{}' exists; write a JSON array to "
          "$MFLOW_OUTPUT_DIR/{}", node.name(), name, name, name));
    }
    auto bytes = store_.read_object(ref->second);
    if (!bytes.ok()) return fail_with(bytes.status().message());
    if (auto deep = base::check_json_depth(
            bytes.value(), fmt::format("artifact '{}' of step '{}'", name, node.name()));
        !deep.ok()) {
      return fail_with(deep.message());
    }
    auto items = nlohmann::json::parse(bytes.value(), nullptr, false);
    if (!items.is_array()) {
      return fail_with(fmt::format(
          "artifact '{}' of step '{}' must hold a JSON array to fan out over (got: {:.60})", name,
          node.name(), bytes.value()));
    }
    splits = static_cast<int64_t>(items.size());
    auto& texts = foreach_items_[i];
    texts.reserve(static_cast<size_t>(splits));
    for (const auto& item : items) texts.push_back(item.is_string() ? item.get<std::string>() : item.dump());
    a.record.num_splits = splits;
  }

  // A task that wrote nothing passes its input on unchanged: its children can read the same
  // directory, which saves creating one per task in wide foreaches of side-effect steps.
  bool passthrough = outputs->empty() && node.fan_in == graph::FanIn::kNone &&
                     !plan_.task(i).inputs.empty();
  auto dir = passthrough ? base::Result<std::string>(a.input_dir)
                         : store_.write_artifacts_dir(run_.run_id, node.name(),
                                                      plan_.task(i).id, view);
  if (!dir.ok()) return fail_with(dir.status().message());
  a.record.status = store::TaskStatus::kSucceeded;
  a.record.outputs = std::move(outputs.value());
  a.record.view = view;
  if (auto s = store_.write_task(a.record); !s.ok()) return fail_with(s.message());
  reporter_.task_finished(a.launch, c, -1);
  remember(i, std::move(view), dir.value());
  ++summary_.tasks_succeeded;
  if (a.attempt > 0) ++summary_.tasks_succeeded_after_retries;
  active_.erase(c.key);  // `a` is gone from here on
  if (!refuse_fan_out(i, splits)) plan_.task_succeeded(i, splits);
}

bool Scheduler::refuse_fan_out(TaskIndex i, int64_t splits) {
  if (splits <= options_.max_num_splits) return false;
  // The task succeeded and stays recorded so: its list was fine, the fan-out was refused. A
  // resume with a higher --max-num-splits reuses it and fans out.
  const PlannedTask& t = plan_.task(i);
  const std::string& name = graph_.node(t.step).name();
  FailedTask f;
  f.step = name;
  f.task_id = t.id;
  f.fan_out_refused = true;
  f.reason = fmt::format(
      "foreach in step '{}' would fan out into {} splits, more than the limit of {}; the step "
      "itself succeeded: resume with --max-num-splits {} if this is intended",
      name, splits, options_.max_num_splits, splits);
  reporter_.note(f.reason);
  // Not counted as a failed task (it is one of the succeeded), but the run fails with it.
  summary_.failures.push_back(std::move(f));
  plan_.task_failed(i);
  abandon_waiting();
  return true;
}

void Scheduler::fail(TaskIndex i, Active& a, const exec::Completion& c) {
  const spec::Step& step = *graph_.node(plan_.task(i).step).step;
  a.record.status = store::TaskStatus::kFailed;
  (void)store_.write_task(a.record);
  reporter_.task_finished(a.launch, c, -1);
  if (c.outcome == exec::Outcome::kCancelled && summary_.interrupted) {
    ++summary_.tasks_stopped;  // stopped by Ctrl-C/SIGTERM: not a failure of the task itself
  } else {
    ++summary_.tasks_failed;
    FailedTask f;
    f.step = step.name;
    f.task_id = plan_.task(i).id;
    f.attempt = a.attempt;
    f.attempts = step.retries + 1 + a.evictions;
    f.outcome = c.outcome;
    f.exit_code = c.exit_code;
    f.reason = c.reason;
    summary_.failures.push_back(std::move(f));
  }
  std::string key = c.key;
  plan_.task_failed(i);
  abandon_waiting();
  active_.erase(key);
}

}  // namespace mflow::runtime
