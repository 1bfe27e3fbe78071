#include "exec/kube_executor.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "base/check.h"
#include "exec/job_manifest.h"

namespace mflow::exec {

using nlohmann::json;
using kube::Resource;
using kube::WatchEventType;

namespace {

const std::string& str(const json& obj, const char* key) {
  static const std::string kEmpty;
  if (!obj.is_object()) return kEmpty;
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get_ref<const std::string&>() : kEmpty;
}

const json& at(const json& obj, const char* key) {
  static const json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it != obj.end() ? *it : kNull;
}

std::string seconds_text(Clock::duration d) {
  return spec::format_duration(std::chrono::duration_cast<std::chrono::seconds>(d));
}

// The Job a pod belongs to: the job-name labels the Job controller sets, else its owner.
std::string owning_job(const json& pod) {
  const json& labels = at(at(pod, "metadata"), "labels");
  if (!str(labels, "batch.kubernetes.io/job-name").empty()) return str(labels, "batch.kubernetes.io/job-name");
  if (!str(labels, "job-name").empty()) return str(labels, "job-name");
  const json& owners = at(at(pod, "metadata"), "ownerReferences");
  if (owners.is_array()) {
    for (const auto& o : owners) {
      if (str(o, "kind") == "Job") return str(o, "name");
    }
  }
  return "";
}

// The first terminal-or-decided Job condition with status True: since Kubernetes 1.31 the
// controller sets FailureTarget / SuccessCriteriaMet first and Failed / Complete only once
// every pod is gone; either means the outcome is known.
const json* decided_condition(const json& job) {
  const json& conds = at(at(job, "status"), "conditions");
  if (!conds.is_array()) return nullptr;
  for (const char* type : {"Complete", "SuccessCriteriaMet", "Failed", "FailureTarget"}) {
    for (const auto& c : conds) {
      if (str(c, "type") == type && str(c, "status") == "True") return &c;
    }
  }
  return nullptr;
}

}  // namespace

PodDiagnosis diagnose_pod(const json& pod) {
  PodDiagnosis d;
  const json& status = at(pod, "status");
  d.node = str(at(pod, "spec"), "nodeName");
  const std::string& phase = str(status, "phase");
  const json& conds = at(status, "conditions");
  if (conds.is_array()) {
    for (const auto& c : conds) {
      if (str(c, "type") == "PodScheduled" && str(c, "status") == "False" &&
          str(c, "reason") == "Unschedulable") {
        d.unschedulable = true;
        d.reason = "Unschedulable";
        d.message = str(c, "message");
      }
      if (str(c, "type") == "DisruptionTarget" && str(c, "status") == "True") {
        d.evicted = true;
        d.disruption = true;
        d.reason = str(c, "reason");
        d.message = str(c, "message");
      }
    }
  }
  if (str(status, "reason") == "Evicted") {
    d.evicted = true;
    d.reason = "Evicted";
    d.message = str(status, "message");
  } else if (str(status, "reason") == "DeadlineExceeded") {
    d.deadline = true;
    d.reason = "DeadlineExceeded";
    d.message = str(status, "message");
  }
  const json& containers = at(status, "containerStatuses");
  const json* mine = nullptr;
  if (containers.is_array()) {
    for (const auto& c : containers) {
      if (str(c, "name") == kContainerName || mine == nullptr) mine = &c;
    }
  }
  if (mine != nullptr) {
    const json& state = at(*mine, "state");
    if (const json& w = at(state, "waiting"); w.is_object()) {
      const std::string& r = str(w, "reason");
      if (r == "ErrImagePull" || r == "ImagePullBackOff") d.image_pull_failing = true;
      if (r == "InvalidImageName" || r == "ErrImageNeverPull") d.image_invalid = true;
      if (r == "CreateContainerConfigError" || r == "CreateContainerError") d.config_error = true;
      if (d.image_pull_failing || d.image_invalid || d.config_error) {
        d.reason = r;
        d.message = str(w, "message");
      }
    }
    if (at(state, "running").is_object()) d.running = true;
    if (const json& t = at(state, "terminated"); t.is_object()) {
      d.terminated = true;
      d.running = false;
      d.exit_code = at(t, "exitCode").is_number_integer() ? at(t, "exitCode").get<int>() : -1;
      if (str(t, "reason") == "OOMKilled") d.oom_killed = true;
      if (!d.evicted && !d.deadline) {
        d.reason = str(t, "reason");
        d.message = str(t, "message");
      }
    }
  }
  if (phase == "Running") d.running = true;
  if (phase == "Succeeded" || phase == "Failed") {
    d.terminated = true;
    d.running = false;
    if (d.exit_code < 0 && phase == "Succeeded") d.exit_code = 0;
  }
  return d;
}

struct KubeExecutor::Attempt {
  TaskLaunch launch;
  KubeTaskSpec task;
  std::string ns, name;
  Clock::time_point created;       // options_.now() when created (graces); mu_ once queued
  Clock::time_point started_wall;  // wall clock at start (the Completion)

  // Beyond this point every field is guarded by KubeExecutor::mu_.
  json manifest;  // the Job to create (cleared once created)
  CreateState create_state = CreateState::kQueued;
  bool create_cancelled = false;  // cancel_all while sending: the creator deletes the Job
  json job;
  bool job_seen = false;
  bool job_deleted = false;
  struct Pod {
    json obj;
    bool deleted = false;
    int64_t settled_seq = 0;  // order in which pods were seen to end (0: still live)
  };
  std::map<std::string, Pod> pods;
  int64_t settle_counter = 0;
  std::optional<Clock::time_point> outcome_known_since;
  std::optional<Clock::time_point> unschedulable_since, pull_since, config_since;
  std::string last_node;
  std::set<std::string> followed;
  int followers_running = 0;
  bool decided = false;
  bool post_now = false;  // cancel_all: do not wait for the log followers
  bool posted = false;
  bool adopted = false;     // an origin run's Job (KubeExecutor::try_adopt)
  std::string output_dir;   // adopted: the origin attempt's output directory, locally
  Completion completion;

  std::atomic<bool> stop_logs{false};
  std::mutex log_mu;  // serializes writes of several followers (evicted pod + replacement)
};

struct KubeExecutor::Follower {
  std::thread thread;
  std::atomic<bool> done{false};
};

KubeExecutor::KubeExecutor(kube::ApiClient& api, OutputSink& sink, KubeExecutorOptions options)
    : api_(api), sink_(sink), options_(std::move(options)) {
  wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  MFLOW_CHECK(wake_fd_.valid(), "eventfd: {}", std::strerror(errno));
  supervisor_ = std::thread([this] { supervise(); });
}

KubeExecutor::~KubeExecutor() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    for (auto& [name, a] : attempts_) a->stop_logs = true;
  }
  cv_.notify_all();
  create_cv_.notify_all();
  supervisor_.join();
  std::vector<std::thread> creators;
  {
    std::lock_guard lock(mu_);
    creators.swap(creators_);
  }
  // A create in flight is let finish (and its Job deleted if the run was cancelled).
  for (auto& t : creators) t.join();
  std::vector<std::thread> watchers;
  std::vector<std::shared_ptr<Follower>> followers;
  {
    std::lock_guard lock(mu_);
    watchers.swap(watchers_);
    followers.swap(followers_);
  }
  for (auto& t : watchers) t.join();
  for (auto& f : followers) f->thread.join();
}

base::Result<json> KubeExecutor::manifest_for(const TaskLaunch& launch) const {
  spec::Step fallback;
  const spec::Step* step = launch.step_spec;
  if (step == nullptr) {
    fallback.name = launch.step;
    fallback.resources = launch.resources;
    fallback.timeout = launch.timeout;
    step = &fallback;
  }
  auto task = resolve_kube_task(*step, options_.defaults, options_.datastore_root);
  if (!task.ok()) return task.status();
  if (launch.timeout) task->timeout = *launch.timeout;
  return build_job(
      {options_.datastore_id, options_.flow, options_.datastore_root, &launch, &task.value()});
}

base::Status KubeExecutor::start(const TaskLaunch& launch) {
  spec::Step fallback;
  const spec::Step* step = launch.step_spec;
  if (step == nullptr) {
    fallback.name = launch.step;
    fallback.resources = launch.resources;
    step = &fallback;
  }
  auto task = resolve_kube_task(*step, options_.defaults, options_.datastore_root);
  if (!task.ok()) return task.status();
  if (launch.timeout) task->timeout = *launch.timeout;
  json job = build_job(
      {options_.datastore_id, options_.flow, options_.datastore_root, &launch, &task.value()});

  auto a = std::make_shared<Attempt>();
  a->launch = launch;
  a->task = std::move(task.value());
  a->ns = a->task.namespace_name;
  a->name = job["metadata"]["name"].get<std::string>();
  a->created = options_.now();
  a->started_wall = Clock::now();
  if (selector_.empty()) {
    selector_ = run_label_selector(options_.datastore_id, launch.run_id);
    if (!options_.origin_run_id.empty() && options_.origin_run_id != launch.run_id) {
      // Adopted Jobs keep their origin run's labels: one watch follows both runs.
      selector_ = fmt::format("{}={},{} in ({},{})", kLabelDatastore,
                              label_value(options_.datastore_id), kLabelRun,
                              label_value(launch.run_id), label_value(options_.origin_run_id));
    }
  }
  if (!launch.adopt_from_run.empty() && launch.adopt_from_run == options_.origin_run_id &&
      try_adopt(launch, a->task)) {
    return base::Status::ok_status();
  }

  // Register before creating, so the watch never sees the Job before its attempt.
  {
    std::lock_guard lock(mu_);
    auto it = attempts_.find(a->name);
    if (it != attempts_.end() && !it->second->posted) {
      return base::Status::internal(fmt::format("attempt {} of {} started twice", launch.attempt, launch.key));
    }
    attempts_[a->name] = a;
  }
  ensure_watch(a->ns);
  for (const std::string* path : {&launch.stdout_path, &launch.stderr_path}) {
    if (path->empty()) continue;
    if (FILE* f = std::fopen(path->c_str(), "ab")) std::fclose(f);
  }
  // The create itself runs on a creator thread: with API latency, one create at a time would
  // start a wide foreach slowly and hold up an interrupt until every create was sent.
  {
    std::lock_guard lock(mu_);
    a->manifest = std::move(job);
    create_queue_.push_back(a);
    size_t limit = static_cast<size_t>(std::max(1, options_.defaults.parallel_creates));
    if (creators_idle_ < create_queue_.size() && creators_.size() < limit) {
      creators_.emplace_back([this] { create_loop(); });
    }
  }
  create_cv_.notify_one();
  ++outstanding_;
  return base::Status::ok_status();
}

bool KubeExecutor::try_adopt(const TaskLaunch& launch, const KubeTaskSpec& task) {
  const std::string& ns = task.namespace_name;
  if (!origin_jobs_.count(ns)) {
    auto& jobs = origin_jobs_[ns];
    auto listed = api_.list(Resource::kJobs, ns,
                            run_label_selector(options_.datastore_id, options_.origin_run_id));
    // Unlisted, nothing can be adopted: the tasks run anew (as before adoption existed).
    if (!listed.ok()) return false;
    auto attempt_of = [](const json& job) {
      const std::string& text = str(at(at(job, "metadata"), "labels"), kLabelAttempt);
      return text.empty() ? -1 : std::atoi(text.c_str());
    };
    for (auto& job : listed.value->items) {
      const json& ann = at(at(job, "metadata"), "annotations");
      if (str(ann, kAnnotationDatastore) != options_.datastore_id ||
          str(ann, kAnnotationRun) != options_.origin_run_id) {
        continue;  // a label collision (labels may be shortened); annotations are exact
      }
      auto& slot = jobs[str(ann, kAnnotationKey)];
      if (slot.is_null() || attempt_of(job) > attempt_of(slot)) slot = std::move(job);
    }
  }
  auto& jobs = origin_jobs_[ns];
  auto found = jobs.find(launch.key);
  if (found == jobs.end()) return false;
  json job = std::move(found->second);
  jobs.erase(found);  // one adoption per Job
  const std::string name = str(at(job, "metadata"), "name");
  const json& ann = at(at(job, "metadata"), "annotations");
  if (str(ann, kAnnotationTaskHash) != task_hash(launch, task)) {
    // Its spec, inputs or Kubernetes settings changed: its result is not this task's.
    if (decided_condition(job) == nullptr) delete_jobs({{ns, name}});
    return false;
  }
  // Its outputs are where the origin attempt's $MFLOW_OUTPUT_DIR points (inside the mount).
  std::string output_dir;
  const json& containers = at(at(at(at(job, "spec"), "template"), "spec"), "containers");
  if (containers.is_array()) {
    for (const auto& c : containers) {
      if (str(c, "name") != kContainerName || !at(c, "env").is_array()) continue;
      for (const auto& e : at(c, "env")) {
        if (str(e, "name") == "MFLOW_OUTPUT_DIR") output_dir = str(e, "value");
      }
    }
  }
  const std::string& mount = task.mount_path;
  if (output_dir.compare(0, mount.size(), mount) != 0 ||
      (output_dir.size() > mount.size() && output_dir[mount.size()] != '/')) {
    return false;  // not a Job mflow made this way: do not guess where its outputs are
  }
  auto a = std::make_shared<Attempt>();
  a->launch = launch;
  a->task = task;
  a->ns = ns;
  a->name = name;
  a->created = options_.now();
  a->started_wall = Clock::now();
  a->create_state = CreateState::kDone;
  a->adopted = true;
  a->output_dir = options_.datastore_root + output_dir.substr(mount.size());
  {
    std::lock_guard lock(mu_);
    attempts_[name] = a;
  }
  for (const std::string* path : {&launch.stdout_path, &launch.stderr_path}) {
    if (path->empty()) continue;
    if (FILE* f = std::fopen(path->c_str(), "ab")) std::fclose(f);
  }
  ensure_watch(ns);
  ++outstanding_;
  // Registered first, then read: what changes from here on arrives through the watch, and
  // what the reads return fills in only what the watch has not told yet (a watch event is
  // never older than these reads).
  auto got = api_.get_job(ns, name);
  const json& labels = at(at(job, "metadata"), "labels");
  auto pods = api_.list(Resource::kPods, ns,
                        fmt::format("{},{}={},{}={}",
                                    run_label_selector(options_.datastore_id, options_.origin_run_id),
                                    kLabelStep, str(labels, kLabelStep), kLabelTask,
                                    str(labels, kLabelTask)));
  std::vector<std::pair<std::string, std::string>> to_delete;
  {
    std::lock_guard lock(mu_);
    if (!a->job_seen) {
      a->job = got.ok() ? *got.value : job;
      a->job_seen = true;
      if (!got.ok() && got.error.http_status == 404) a->job_deleted = true;
    }
    if (pods.ok()) {
      for (const auto& pod : pods.value->items) {
        if (owning_job(pod) != name) continue;
        auto& slot = a->pods[str(at(pod, "metadata"), "name")];
        if (slot.obj.is_null()) slot.obj = pod;
      }
    }
    evaluate(a, options_.now(), &to_delete);
  }
  cv_.notify_all();
  delete_jobs(to_delete);
  return true;
}

void KubeExecutor::create_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    ++creators_idle_;
    create_cv_.wait(lock, [&] { return stop_ || creates_stopped_ || !create_queue_.empty(); });
    --creators_idle_;
    if (stop_ || creates_stopped_) return;
    std::shared_ptr<Attempt> a = create_queue_.front();
    create_queue_.pop_front();
    a->create_state = CreateState::kSending;
    lock.unlock();
    create(a);
    lock.lock();
  }
}

void KubeExecutor::create(const std::shared_ptr<Attempt>& a) {
  const TaskLaunch& launch = a->launch;
  // A Job with this name belongs to this very attempt when its annotations say so: the
  // create reached the server but its response was lost (or mflow retried the create).
  auto adoptable = [&] {
    auto got = api_.get_job(a->ns, a->name);
    if (!got.ok()) return false;
    const json& ann = at(at(*got.value, "metadata"), "annotations");
    return str(ann, kAnnotationDatastore) == options_.datastore_id &&
           str(ann, kAnnotationRun) == launch.run_id && str(ann, kAnnotationKey) == launch.key;
  };
  auto created = api_.create_job(a->ns, a->manifest, creates_stopped_);
  bool exists = created.ok();
  std::string failure;
  if (!exists) {
    const kube::ApiError& e = created.error;
    bool maybe_stored = e.reason == "AlreadyExists" || e.http_status == 0 || e.http_status >= 500;
    exists = maybe_stored && adoptable();
    if (e.reason == "AlreadyExists") {
      failure = fmt::format(
          "cannot create Job {}/{} for {} attempt {}: a Job of that name already exists and "
          "belongs to another datastore, run or task; remove it with `kubectl delete job -n {} "
          "{}`",
          a->ns, a->name, launch.key, launch.attempt, a->ns, a->name);
    } else {
      failure = fmt::format("cannot create Job {}/{} for {}: {}", a->ns, a->name, launch.key,
                            e.message);
    }
  }
  bool orphaned = false;
  std::vector<std::pair<std::string, std::string>> to_delete;
  {
    std::lock_guard lock(mu_);
    a->create_state = CreateState::kDone;
    a->manifest = json();
    a->created = options_.now();  // the graces count from here, not from the queue
    if (exists && a->create_cancelled) {
      orphaned = true;  // cancel_all ran while the create was in flight
    } else if (!exists) {
      if (!a->decided) decide(*a, Outcome::kLaunchFailed, -1, std::move(failure));
    } else {
      evaluate(a, options_.now(), &to_delete);  // events that arrived during the create
    }
  }
  cv_.notify_all();
  if (orphaned) to_delete.emplace_back(a->ns, a->name);
  delete_jobs(to_delete);
}

void KubeExecutor::ensure_watch(const std::string& ns) {
  std::lock_guard lock(mu_);
  if (!watched_ns_.insert(ns).second) return;
  watchers_.emplace_back([this, ns] { watch_loop(Resource::kJobs, ns); });
  watchers_.emplace_back([this, ns] { watch_loop(Resource::kPods, ns); });
}

void KubeExecutor::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [&] { return stop_.load(); });
}

void KubeExecutor::note_watch_error(const std::string& ns, const std::string& what,
                                    const kube::ApiError& e) {
  std::lock_guard lock(mu_);
  watch_failing_since_.emplace(ns, options_.now());
  watch_error_ = fmt::format("{} in namespace {} keeps failing: {}", what, ns,
                             e.message.empty() ? e.reason : e.message);
}

void KubeExecutor::clear_watch_error(const std::string& ns) {
  std::lock_guard lock(mu_);
  watch_failing_since_.erase(ns);
}

void KubeExecutor::watch_loop(Resource resource, std::string ns) {
  const char* what = resource == Resource::kJobs ? "watching Jobs" : "watching pods";
  std::string rv;
  bool relist = true;
  int errors = 0;
  while (!stop_) {
    if (relist) {
      auto listed = api_.list(resource, ns, selector_);
      if (!listed.ok()) {
        note_watch_error(ns, what, listed.error);
        sleep_for(options_.retry_delay);
        continue;
      }
      clear_watch_error(ns);
      handle_relist(resource, ns, listed.value->items);
      rv = listed.value->resource_version;
      relist = false;
    }
    bool expired = false;
    std::optional<kube::ApiError> stream_error;
    auto watched = api_.watch(
        resource, ns, selector_, rv,
        [&](kube::WatchEvent& e) {
          if (e.type == WatchEventType::kError) {
            int code = at(e.object, "code").is_number_integer() ? at(e.object, "code").get<int>() : 0;
            const std::string& reason = str(e.object, "reason");
            if (code == 410 || reason == "Expired" || reason == "Gone") {
              expired = true;
            } else {
              stream_error = kube::ApiError{code, reason, str(e.object, "message"), 0};
            }
            return false;
          }
          const std::string& object_rv = str(at(e.object, "metadata"), "resourceVersion");
          if (!object_rv.empty()) rv = object_rv;
          if (e.type != WatchEventType::kBookmark) {
            handle_object(resource, e.type == WatchEventType::kDeleted, std::move(e.object));
          }
          return !stop_.load();
        },
        stop_);
    if (stop_) break;
    // The history behind our resourceVersion is gone (HTTP 200 + ERROR 410, or a plain
    // 410): only a fresh list can tell what happened meanwhile.
    if (expired || (!watched.ok() && watched.error.http_status == 410)) {
      relist = true;
      continue;
    }
    if (!watched.ok() || stream_error) {
      note_watch_error(ns, what, stream_error ? *stream_error : watched.error);
      sleep_for(options_.retry_delay);
      if (++errors >= 3) {
        relist = true;
        errors = 0;
      }
      continue;
    }
    // A clean end (server timeout, dropped connection): resume from the last RV.
    errors = 0;
    clear_watch_error(ns);
  }
}

void KubeExecutor::handle_object(Resource resource, bool deleted, json obj) {
  std::vector<std::pair<std::string, std::string>> to_delete;
  {
    std::lock_guard lock(mu_);
    // A copy: obj is moved into the attempt below.
    const std::string name = str(at(obj, "metadata"), "name");
    std::string job = resource == Resource::kJobs ? name : owning_job(obj);
    auto it = attempts_.find(job);
    if (it == attempts_.end()) return;
    Attempt& a = *it->second;
    if (resource == Resource::kJobs) {
      a.job = std::move(obj);
      a.job_seen = true;
      if (deleted) a.job_deleted = true;
    } else {
      auto& pod = a.pods[name];
      pod.obj = std::move(obj);
      if (deleted) pod.deleted = true;
    }
    evaluate(it->second, options_.now(), &to_delete);
  }
  cv_.notify_all();
  delete_jobs(to_delete);
}

void KubeExecutor::handle_relist(Resource resource, const std::string& ns, const json& items) {
  std::vector<std::pair<std::string, std::string>> to_delete;
  {
    std::lock_guard lock(mu_);
    std::set<std::string> present;
    for (const auto& obj : items) {
      const std::string& name = str(at(obj, "metadata"), "name");
      std::string job = resource == Resource::kJobs ? name : owning_job(obj);
      present.insert(name);
      auto it = attempts_.find(job);
      if (it == attempts_.end()) continue;
      if (resource == Resource::kJobs) {
        it->second->job = obj;
        it->second->job_seen = true;
      } else {
        it->second->pods[name].obj = obj;
      }
    }
    // Whatever we knew that the list no longer has was deleted while we were not watching.
    for (auto& [name, a] : attempts_) {
      if (a->ns != ns || a->decided) continue;
      if (resource == Resource::kJobs) {
        if (a->job_seen && !present.count(name)) a->job_deleted = true;
      } else {
        for (auto& [pod_name, pod] : a->pods) {
          if (!present.count(pod_name)) pod.deleted = true;
        }
      }
      evaluate(a, options_.now(), &to_delete);
    }
  }
  cv_.notify_all();
  delete_jobs(to_delete);
}

void KubeExecutor::supervise() {
  std::unique_lock lock(mu_);
  auto next_tick = std::chrono::steady_clock::now();
  while (!stop_) {
    // Every tick, not on every notification of cv_: each watch event notifies it, and
    // re-evaluating every attempt per event cost more CPU than the events themselves.
    next_tick += options_.tick;
    cv_.wait_until(lock, next_tick, [&] { return stop_.load(); });
    if (stop_) break;
    std::vector<std::pair<std::string, std::string>> to_delete;
    auto now = options_.now();
    for (auto& [name, a] : attempts_) evaluate(a, now, &to_delete);
    std::vector<std::string> notes;
    if (options_.on_waiting) notes = waiting_notes(now);
    if (to_delete.empty() && notes.empty()) continue;
    lock.unlock();
    for (const auto& note : notes) options_.on_waiting(note);
    delete_jobs(to_delete);
    lock.lock();
  }
}

std::vector<std::string> KubeExecutor::waiting_notes(Clock::time_point now) {
  // One round every waiting_every at most, whatever the number of tasks: a wide foreach
  // waiting for nodes must not print a line per task every few seconds.
  if (last_waiting_note_ && now - *last_waiting_note_ < options_.waiting_every) return {};
  struct Waiting {
    const Attempt* a;
    Clock::duration pending;
    const char* kind;
    std::string what;
    std::optional<Clock::duration> left;  // until the grace fails the task
  };
  const KubeDefaults& d = options_.defaults;
  std::vector<Waiting> waiting;
  for (const auto& [name, ap] : attempts_) {
    const Attempt& a = *ap;
    // A pod that ran once has its log followed; a replacement pod is not "waiting to start".
    if (a.decided || a.create_state != CreateState::kDone || !a.followed.empty()) continue;
    Clock::duration pending = now - a.created;
    if (pending < options_.waiting_first) continue;
    std::optional<PodDiagnosis> live;
    std::string live_name;
    bool settled = !a.pods.empty();
    for (const auto& [pod_name, pod] : a.pods) {
      PodDiagnosis pd = diagnose_pod(pod.obj);
      if (pod.deleted || pd.terminated) continue;
      settled = false;
      if (!pd.running) {
        live = pd;
        live_name = pod_name;
      }
    }
    if (settled) continue;  // the outcome is being decided
    Waiting w{&a, pending, "", "", std::nullopt};
    if (a.pods.empty()) {
      w.kind = "without a pod";
      w.what = fmt::format("Kubernetes has created no pod for Job {}/{} yet", a.ns, a.name);
      w.left = d.pending_grace - pending;
    } else if (!live) {
      continue;  // running
    } else if (live->unschedulable && a.unschedulable_since) {
      w.kind = "unschedulable";
      w.what = live->message.empty() ? live->reason : live->message;
      w.left = d.pending_grace - (now - *a.unschedulable_since);
    } else if (live->image_pull_failing && a.pull_since) {
      w.kind = "failing to pull their image";
      w.what = fmt::format("{} {}: {}", live->reason, a.task.image, live->message);
      w.left = d.image_pull_grace - (now - *a.pull_since);
    } else if (live->config_error && a.config_since) {
      w.kind = "failing to create their container";
      w.what = fmt::format("{}: {}", live->reason, live->message);
      w.left = d.pending_grace - (now - *a.config_since);
    } else if (live->node.empty()) {
      w.kind = "waiting for the scheduler";
      w.what = fmt::format("pod {} is not scheduled yet", live_name);
    } else {
      w.kind = "starting";
      w.what = fmt::format("pod {} is starting on node {} (pulling the image?)", live_name, live->node);
    }
    waiting.push_back(std::move(w));
  }
  if (waiting.empty()) return {};
  last_waiting_note_ = now;
  std::sort(waiting.begin(), waiting.end(),
            [](const Waiting& x, const Waiting& y) { return x.pending > y.pending; });
  auto describe = [](const Waiting& w) {
    std::string text =
        fmt::format("{} pending {}: {}", w.a->launch.key, seconds_text(w.pending), w.what);
    if (w.left) {
      text += fmt::format(" (fails in {})",
                          seconds_text(std::max<Clock::duration>(*w.left, std::chrono::seconds(0))));
    }
    return text;
  };
  std::vector<std::string> notes;
  constexpr size_t kOneLineEach = 3;
  if (waiting.size() <= kOneLineEach) {
    for (const auto& w : waiting) notes.push_back(describe(w));
    return notes;
  }
  std::map<std::string, int> kinds;
  for (const auto& w : waiting) kinds[w.kind]++;
  std::string counts;
  for (const auto& [kind, n] : kinds) {
    counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", n, kind);
  }
  notes.push_back(fmt::format("{} Kubernetes tasks not started ({}); the longest: {}",
                              waiting.size(), counts, describe(waiting.front())));
  return notes;
}

void KubeExecutor::evaluate(const std::shared_ptr<Attempt>& ap, Clock::time_point now,
                            std::vector<std::pair<std::string, std::string>>* to_delete) {
  Attempt& a = *ap;
  if (a.decided || a.create_state != CreateState::kDone) return;
  auto fail_and_delete = [&](Outcome outcome, std::string reason) {
    decide(a, outcome, -1, std::move(reason));
    to_delete->emplace_back(a.ns, a.name);
  };

  // Pods: follow the logs of every pod that runs or ran; diagnose the live one.
  const Attempt::Pod* last_ended = nullptr;
  const PodDiagnosis* live = nullptr;
  PodDiagnosis live_diag;
  std::string live_name;
  bool all_settled = true;
  for (auto& [pod_name, pod] : a.pods) {
    PodDiagnosis d = diagnose_pod(pod.obj);
    if (!d.node.empty()) a.last_node = d.node;
    if (!pod.deleted && (d.running || d.terminated) && !a.followed.count(pod_name)) {
      start_follower(ap, pod_name);
    }
    if (pod.deleted || d.terminated) {
      if (pod.settled_seq == 0) pod.settled_seq = ++a.settle_counter;
      if (last_ended == nullptr || pod.settled_seq > last_ended->settled_seq) last_ended = &pod;
    } else {
      all_settled = false;
      live_diag = d;
      live_name = pod_name;
      live = &live_diag;
    }
  }
  if (live != nullptr) {
    if (live->unschedulable) {
      if (!a.unschedulable_since) a.unschedulable_since = now;
    } else {
      a.unschedulable_since.reset();
    }
    if (live->image_pull_failing) {
      if (!a.pull_since) a.pull_since = now;
    } else {
      a.pull_since.reset();
    }
    if (live->config_error) {
      if (!a.config_since) a.config_since = now;
    } else {
      a.config_since.reset();
    }
    if (live->image_invalid) {
      return fail_and_delete(Outcome::kImagePull,
                             fmt::format("image '{}' cannot be used: {}: {}", a.task.image,
                                         live->reason, live->message));
    }
  } else {
    a.unschedulable_since.reset();
    a.pull_since.reset();
    a.config_since.reset();
  }

  // The Job's verdict, with the details of the pod that ended last.
  if (const json* cond = a.job_seen ? decided_condition(a.job) : nullptr) {
    if (!a.outcome_known_since) a.outcome_known_since = now;
    const std::string& type = str(*cond, "type");
    bool success = type == "Complete" || type == "SuccessCriteriaMet";
    // The pod watch is a separate stream and may lag behind the Job's: wait (at most
    // `settle`) until every pod has ended and the pod that explains the verdict is known,
    // so its exit code is reported and its log (started on Running) is complete.
    bool explained = false;
    for (const auto& [pod_name, pod] : a.pods) {
      PodDiagnosis d = diagnose_pod(pod.obj);
      if (success ? d.terminated && d.exit_code == 0
                  : pod.deleted || (d.terminated && !d.disruption)) {
        explained = true;
      }
    }
    bool settled = all_settled && (explained || str(*cond, "reason") == "DeadlineExceeded");
    if (!settled && now - *a.outcome_known_since < options_.settle) return;
    const std::string& reason = str(*cond, "reason");
    const std::string& message = str(*cond, "message");
    if (success) {
      return decide(a, Outcome::kSucceeded, 0, "exit code 0");
    }
    if (reason == "DeadlineExceeded") {
      return decide(a, Outcome::kTimedOut, -1,
                    fmt::format("timed out after {} (the Job's activeDeadlineSeconds): {}",
                                spec::format_duration(a.task.timeout), message));
    }
    if (last_ended != nullptr) {
      PodDiagnosis d = diagnose_pod(last_ended->obj);
      std::string pod_name = str(at(last_ended->obj, "metadata"), "name");
      if (d.oom_killed) {
        return decide(a, Outcome::kOomKilled, d.exit_code,
                      fmt::format("OOMKilled: the container used more than its memory limit of "
                                  "{}Mi; raise `memory` in the step's resources or --with "
                                  "kubernetes:memory=", a.task.memory_mb));
      }
      if (d.evicted) {
        return decide(a, Outcome::kEvicted, d.exit_code,
                      fmt::format("pod {} was evicted ({}): {}", pod_name, d.reason, d.message));
      }
      if (d.deadline) {
        return decide(a, Outcome::kTimedOut, d.exit_code, fmt::format("{}: {}", d.reason, d.message));
      }
      if (d.exit_code >= 0) {
        std::string why = fmt::format("exit code {}", d.exit_code);
        if (!d.message.empty()) why += ": " + d.message;
        return decide(a, Outcome::kFailed, d.exit_code, why);
      }
    }
    return decide(a, Outcome::kFailed, -1,
                  fmt::format("Job {}/{} failed ({}): {}", a.ns, a.name, reason, message));
  }
  if (a.job_deleted) {
    return decide(a, Outcome::kFailed, -1,
                  fmt::format("Job {}/{} was deleted outside mflow before it finished", a.ns, a.name));
  }

  // Graces: a task that cannot start fails instead of hanging for days.
  const KubeDefaults& d = options_.defaults;
  if (a.unschedulable_since && now - *a.unschedulable_since >= d.pending_grace) {
    return fail_and_delete(Outcome::kUnschedulable,
                           fmt::format("pod {} could not be scheduled for {}: \"{}\" (requests: "
                                       "cpu {}, memory {}Mi, disk {}Mi, gpu {})",
                                       live_name, seconds_text(now - *a.unschedulable_since),
                                       live->message, a.task.cpu, a.task.memory_mb,
                                       a.task.disk_mb, a.task.gpu));
  }
  if (a.pull_since && now - *a.pull_since >= d.image_pull_grace) {
    return fail_and_delete(Outcome::kImagePull,
                           fmt::format("image '{}' could not be pulled for {} ({}): {}",
                                       a.task.image, seconds_text(now - *a.pull_since),
                                       live->reason, live->message));
  }
  if (a.config_since && now - *a.config_since >= d.pending_grace) {
    return fail_and_delete(Outcome::kLaunchFailed,
                           fmt::format("container of pod {} could not be created for {} ({}): {}",
                                       live_name, seconds_text(now - *a.config_since),
                                       live->reason, live->message));
  }
  if (a.pods.empty() && now - a.created >= d.pending_grace) {
    auto failing = watch_failing_since_.find(a.ns);
    std::string why =
        failing != watch_failing_since_.end()
            ? watch_error_
            : fmt::format("Kubernetes created no pod for Job {}/{} within {}; `kubectl describe "
                          "job -n {} {}` shows why (resource quota, admission webhook)",
                          a.ns, a.name, seconds_text(now - a.created), a.ns, a.name);
    return fail_and_delete(Outcome::kLaunchFailed, why);
  }
}

void KubeExecutor::decide(Attempt& a, Outcome outcome, int exit_code, std::string reason) {
  a.decided = true;
  Completion& c = a.completion;
  c.key = a.launch.key;
  c.attempt = a.launch.attempt;
  c.outcome = outcome;
  c.exit_code = exit_code;
  c.signal = exit_code > 128 && exit_code < 160 && outcome != Outcome::kSucceeded ? exit_code - 128 : 0;
  c.reason = std::move(reason);
  c.started = a.started_wall;
  c.finished = Clock::now();
  c.host = a.last_node;
  maybe_post(a);
}

void KubeExecutor::maybe_post(Attempt& a) {
  if (!a.decided || a.posted) return;
  // The last lines of a pod (an OOM kill's most of all) arrive after the container ended:
  // a Completion waits for its log followers to fetch them.
  if (a.followers_running > 0 && !a.post_now) return;
  a.posted = true;
  if (a.adopted) {
    a.completion.adopted_job = a.name;
    a.completion.output_dir = a.output_dir;
    adopted_done_.emplace_back(a.ns, a.name);
  }
  ready_.push_back(a.completion);
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd_.get(), &one, sizeof one);
  (void)n;  // EAGAIN means the counter is already non-zero: the reader wakes anyway
}

void KubeExecutor::start_follower(const std::shared_ptr<Attempt>& a, const std::string& pod) {
  a->followed.insert(pod);
  ++a->followers_running;
  auto f = std::make_shared<Follower>();
  f->thread = std::thread([this, a, pod, f] { follow_log(a, pod, f); });
  followers_.push_back(f);
}

void KubeExecutor::follow_log(std::shared_ptr<Attempt> a, std::string pod,
                              std::shared_ptr<Follower> f) {
  FILE* out = a->launch.stdout_path.empty() ? nullptr : std::fopen(a->launch.stdout_path.c_str(), "ab");
  size_t offset = 0;  // bytes of this pod's log already written
  std::string partial;
  auto emit = [&](std::string_view data) {
    std::lock_guard lock(a->log_mu);
    if (out != nullptr) {
      std::fwrite(data.data(), 1, data.size(), out);
      std::fflush(out);
    }
    partial.append(data);
    size_t start = 0;
    for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1) {
      sink_.on_output(a->launch, 0, Stream::kStdout, std::string_view(partial).substr(start, nl - start));
    }
    partial.erase(0, start);
  };
  bool replacement;
  {
    std::lock_guard lock(mu_);
    replacement = a->followed.size() > 1;
  }
  if (replacement) {
    emit(fmt::format("[mflow] output of pod {}, which replaces an evicted pod of this attempt\n", pod));
  }
  // Each read starts at the beginning of the log (a follow after a dropped stream, the final
  // plain read): skip what was already written.
  auto reader = [&](size_t& pos) {
    return [&](std::string_view chunk) {
      size_t end = pos + chunk.size();
      if (end > offset) {
        std::string_view fresh = chunk.substr(offset > pos ? offset - pos : 0);
        offset = end;
        emit(fresh);
      }
      pos = end;
    };
  };
  // Under mu_: whether the pod's log can no longer grow (it ended, was deleted, or the
  // attempt was decided), so one plain read returns all of it.
  // evaluate() marks a pod that ended (settled_seq) whenever its state changes, so this
  // check is cheap: it runs on every notification of cv_.
  auto settled = [&] {
    auto it = a->pods.find(pod);
    return a->decided || it == a->pods.end() || it->second.deleted || it->second.settled_seq != 0;
  };
  // Most pods of a wide foreach end within a moment of starting: waiting that moment before
  // following lets one plain read fetch the whole log, instead of a follow plus the final
  // read (each request costs the orchestrator CPU; issue 8 §4). Output of a longer task
  // reaches the console and the log file that much later.
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, options_.log_follow_delay, [&] { return a->stop_logs.load() || settled(); });
  }
  int final_failures = 0;
  while (!a->stop_logs) {
    bool done;
    {
      std::lock_guard lock(mu_);
      done = settled();
    }
    size_t pos = 0;
    if (done) {
      auto got = api_.read_pod_log(a->ns, pod, false, reader(pos), a->stop_logs);
      // A failed final read is repeated a few times: it is the only complete copy.
      if (got.ok() || got.error.http_status == 404 || ++final_failures >= 5) break;
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, options_.retry_delay, [&] { return a->stop_logs.load(); });
      continue;
    }
    auto followed = api_.read_pod_log(a->ns, pod, true, reader(pos), a->stop_logs);
    if (!followed.ok() && followed.error.http_status == 404) break;
    // A follow that ends cleanly ends with the container, usually just before the pod watch
    // says so: wait for the watch rather than following again at once (which would fetch the
    // whole log once more). The final plain read stays: a follow can also end early (an API
    // server or kubelet restart), and only a read after the end is known to be complete.
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, followed.ok() ? options_.log_settle_wait : options_.retry_delay,
                 [&] { return a->stop_logs.load() || settled(); });
  }
  if (!partial.empty()) {
    std::lock_guard lock(a->log_mu);
    sink_.on_output(a->launch, 0, Stream::kStdout, partial);
  }
  if (out != nullptr) std::fclose(out);
  {
    std::lock_guard lock(mu_);
    --a->followers_running;
    maybe_post(*a);
  }
  f->done = true;
}

void KubeExecutor::delete_jobs(const std::vector<std::pair<std::string, std::string>>& jobs) {
  // As many deletes in flight as creates: stopping a wide foreach must not take one API
  // round trip per Job in turn.
  size_t threads = std::min(jobs.size(), static_cast<size_t>(std::max(1, options_.defaults.parallel_creates)));
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next++) < jobs.size();) (void)api_.delete_job(jobs[i].first, jobs[i].second);
  };
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < threads; ++t) helpers.emplace_back(work);
  work();
  for (auto& t : helpers) t.join();
}

void KubeExecutor::reap_followers() {
  std::vector<std::shared_ptr<Follower>> done;
  {
    std::lock_guard lock(mu_);
    for (auto it = followers_.begin(); it != followers_.end();) {
      if ((*it)->done) {
        done.push_back(*it);
        it = followers_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& f : done) f->thread.join();
}

void KubeExecutor::poll(std::vector<Completion>* out) {
  uint64_t count = 0;
  ssize_t n = ::read(wake_fd_.get(), &count, sizeof count);
  (void)n;  // EAGAIN: nothing signalled; the queue is checked regardless
  std::vector<std::pair<std::string, std::string>> adopted_done;
  {
    std::lock_guard lock(mu_);
    adopted_done.swap(adopted_done_);
    for (auto& c : ready_) out->push_back(std::move(c));
    MFLOW_CHECK(ready_.size() <= outstanding_, "more completions than attempts");
    outstanding_ -= ready_.size();
    ready_.clear();
    for (auto it = attempts_.begin(); it != attempts_.end();) {
      it = it->second->posted ? attempts_.erase(it) : std::next(it);
    }
  }
  // Its outcome is taken: a later resume must not adopt the same Job again.
  delete_jobs(adopted_done);
  reap_followers();
}

void KubeExecutor::wait(std::optional<Clock::time_point> deadline, std::vector<Completion>* out) {
  size_t before = out->size();
  while (true) {
    poll(out);
    if (out->size() > before) return;
    int timeout_ms = -1;
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
      if (left.count() <= 0) return;
      timeout_ms = static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30));
    }
    pollfd p{wake_fd_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r == 0) {
      poll(out);
      return;
    }
  }
}

void KubeExecutor::cancel_all() {
  std::vector<std::pair<std::string, std::string>> to_delete;
  std::set<std::string> namespaces;
  {
    std::lock_guard lock(mu_);
    // No create is sent after this point; queued ones never will be.
    creates_stopped_ = true;
    create_queue_.clear();
    namespaces = watched_ns_;
    for (auto& [name, a] : attempts_) {
      if (a->posted) continue;
      a->stop_logs = true;
      a->post_now = true;
      if (a->decided) {
        maybe_post(*a);
      } else if (a->create_state == CreateState::kQueued) {
        decide(*a, Outcome::kCancelled, -1, "cancelled before its Job was created");
      } else {
        if (a->create_state == CreateState::kSending) {
          a->create_cancelled = true;
        } else {
          to_delete.emplace_back(a->ns, a->name);
        }
        decide(*a, Outcome::kCancelled, -1, "cancelled: its Job was deleted");
      }
    }
  }
  create_cv_.notify_all();
  cv_.notify_all();
  delete_jobs(to_delete);
  // Also the Jobs mflow did not track any more (finished ones) or whose create response was
  // lost: Ctrl-C leaves nothing of the run behind.
  std::vector<std::pair<std::string, std::string>> untracked;
  for (const auto& ns : namespaces) {
    auto listed = api_.list(Resource::kJobs, ns, selector_);
    if (!listed.ok()) continue;
    for (const auto& job : listed.value->items) {
      std::pair<std::string, std::string> key{ns, str(at(job, "metadata"), "name")};
      if (std::find(to_delete.begin(), to_delete.end(), key) == to_delete.end()) {
        untracked.push_back(std::move(key));
      }
    }
  }
  delete_jobs(untracked);
}

}  // namespace mflow::exec
