#include "support/fake_api_client.h"

#include <fmt/format.h>

#include "base/strings.h"

namespace mflow::test {

using kube::ApiError;
using kube::ApiResult;
using kube::Resource;
using kube::WatchEventType;
using nlohmann::json;

namespace {

template <typename T>
ApiResult<T> error(int http, std::string reason, std::string message) {
  ApiResult<T> r;
  r.error = ApiError{http, std::move(reason), std::move(message), 0};
  return r;
}

template <typename T>
ApiResult<T> value(T v) {
  ApiResult<T> r;
  r.value = std::move(v);
  return r;
}


}  // namespace

json& FakeApiClient::stamp(json& obj, const std::string& ns) {
  auto& md = obj["metadata"];
  md["namespace"] = ns;
  if (!md.contains("uid")) md["uid"] = fmt::format("uid-{}", ++uid_counter_);
  if (!md.contains("creationTimestamp")) md["creationTimestamp"] = "2026-01-01T00:00:00Z";
  md["resourceVersion"] = std::to_string(++rv_);
  return obj;
}

void FakeApiClient::record(Resource r, const std::string& ns, WatchEventType type, json object) {
  int64_t rv = std::stoll(object["metadata"]["resourceVersion"].get<std::string>());
  history_.push_back(Event{rv, r, ns, type, std::move(object)});
  cv_.notify_all();
}

bool FakeApiClient::matches(const json& obj, const std::string& selector) {
  if (selector.empty()) return true;
  const json* labels = nullptr;
  if (obj.contains("metadata") && obj["metadata"].contains("labels")) labels = &obj["metadata"]["labels"];
  for (const auto& req : base::split(selector, ',')) {
    auto eq = req.find('=');
    if (eq == std::string::npos) return false;  // only equality selectors are supported
    std::string k = req.substr(0, eq), v = req.substr(eq + 1);
    if (!v.empty() && v.front() == '=') v = v.substr(1);
    if (labels == nullptr || !labels->contains(k) || (*labels)[k] != v) return false;
  }
  return true;
}

ApiResult<json> FakeApiClient::create_job(const std::string& ns, const json& job,
                                          const std::atomic<bool>&) {
  ++stats_.creates;
  std::lock_guard lock(mu_);
  std::string name = job["metadata"]["name"].get<std::string>();
  bool store = true;
  std::optional<ApiError> fail;
  if (next_create_error_) {
    fail = next_create_error_->first;
    store = next_create_error_->second;
    next_create_error_.reset();
  }
  if (!fail && jobs_.count({ns, name})) {
    return error<json>(409, "AlreadyExists", fmt::format("jobs.batch \"{}\" already exists", name));
  }
  if (store) {
    json stored = job;
    stamp(stored, ns);
    stored["status"] = json::object();
    jobs_[{ns, name}] = stored;
    created_.push_back(stored);
    record(Resource::kJobs, ns, WatchEventType::kAdded, stored);
    if (!fail) return value(stored);
  }
  ApiResult<json> r;
  r.error = *fail;
  return r;
}

ApiResult<json> FakeApiClient::get_job(const std::string& ns, const std::string& name) {
  ++stats_.gets;
  std::lock_guard lock(mu_);
  auto it = jobs_.find({ns, name});
  if (it == jobs_.end()) return error<json>(404, "NotFound", fmt::format("jobs.batch \"{}\" not found", name));
  return value(it->second);
}

ApiResult<json> FakeApiClient::delete_job(const std::string& ns, const std::string& name) {
  ++stats_.deletes;
  std::lock_guard lock(mu_);
  auto it = jobs_.find({ns, name});
  if (it == jobs_.end()) return error<json>(404, "NotFound", fmt::format("jobs.batch \"{}\" not found", name));
  deleted_.push_back(name);
  json gone = it->second;
  jobs_.erase(it);
  gone["metadata"]["resourceVersion"] = std::to_string(++rv_);
  record(Resource::kJobs, ns, WatchEventType::kDeleted, gone);
  // Background propagation: the garbage collector removes the Job's pods afterwards.
  for (auto p = pods_.begin(); p != pods_.end();) {
    if (p->first.first == ns && p->second["metadata"]["labels"].value("job-name", "") == name) {
      json pod = p->second;
      pod["metadata"]["resourceVersion"] = std::to_string(++rv_);
      record(Resource::kPods, ns, WatchEventType::kDeleted, pod);
      auto log = logs_.find(p->first);
      if (log != logs_.end()) log->second.finished = true;
      p = pods_.erase(p);
    } else {
      ++p;
    }
  }
  return value(json{{"kind", "Status"}, {"status", "Success"}});
}

ApiResult<kube::ObjectList> FakeApiClient::list(Resource resource, const std::string& ns,
                                                const std::string& label_selector) {
  ++stats_.lists;
  std::lock_guard lock(mu_);
  ++(resource == Resource::kJobs ? job_lists_ : pod_lists_);
  kube::ObjectList out;
  for (const auto& [key, obj] : resource == Resource::kJobs ? jobs_ : pods_) {
    if (key.first == ns && matches(obj, label_selector)) out.items.push_back(obj);
  }
  out.resource_version = std::to_string(rv_);
  return value(out);
}

ApiResult<bool> FakeApiClient::watch(Resource resource, const std::string& ns,
                                     const std::string& label_selector,
                                     const std::string& resource_version,
                                     const std::function<bool(kube::WatchEvent&)>& on_event,
                                     const std::atomic<bool>& stop) {
  ++stats_.watches;
  std::unique_lock lock(mu_);
  int64_t from = 0;
  try {
    from = std::stoll(resource_version);
  } catch (const std::exception&) {
    return error<bool>(400, "BadRequest", fmt::format("invalid resourceVersion \"{}\"", resource_version));
  }
  if (from < compacted_rv_) {
    kube::WatchEvent e;
    e.type = WatchEventType::kError;
    e.object = {{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
                {"message", fmt::format("too old resource version: {} ({})", from, compacted_rv_)},
                {"reason", "Expired"}, {"code", 410}};
    lock.unlock();
    on_event(e);
    return value(true);
  }
  int64_t drops = drop_generation_;
  int64_t bookmarks = bookmark_generation_;
  ++watchers_;
  cv_.notify_all();
  size_t next = 0;
  ApiResult<bool> result = value(true);
  while (!stop) {
    if (drop_generation_ != drops) break;
    if (paused_) {
      cv_.wait_for(lock, std::chrono::milliseconds(10));
      continue;
    }
    bool delivered = false;
    for (; next < history_.size(); ++next) {
      const Event& e = history_[next];
      if (e.rv <= from || e.resource != resource || e.ns != ns || !matches(e.object, label_selector)) continue;
      kube::WatchEvent we{e.type, e.object};
      from = e.rv;
      ++next;
      lock.unlock();
      bool more = on_event(we);
      lock.lock();
      delivered = true;
      if (!more) {
        --watchers_;
        return result;
      }
      break;
    }
    if (delivered) continue;
    if (bookmark_generation_ != bookmarks) {
      bookmarks = bookmark_generation_;
      kube::WatchEvent we{WatchEventType::kBookmark,
                          {{"kind", resource == Resource::kJobs ? "Job" : "Pod"},
                           {"metadata", {{"resourceVersion", std::to_string(rv_)}}}}};
      from = rv_;
      lock.unlock();
      bool more = on_event(we);
      lock.lock();
      if (!more) break;
      continue;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(10));
  }
  --watchers_;
  return result;
}

ApiResult<bool> FakeApiClient::read_pod_log(const std::string& ns, const std::string& pod,
                                            bool follow,
                                            const std::function<void(std::string_view)>& on_chunk,
                                            const std::atomic<bool>& stop) {
  ++stats_.log_reads;
  std::unique_lock lock(mu_);
  auto it = logs_.find({ns, pod});
  if (it == logs_.end()) {
    if (!pods_.count({ns, pod})) {
      return error<bool>(404, "NotFound", fmt::format("pods \"{}\" not found", pod));
    }
    return error<bool>(400, "BadRequest",
                       fmt::format("container \"mflow\" in pod \"{}\" is waiting to start: "
                                   "ContainerCreating", pod));
  }
  if (!follow) {
    std::string all = it->second.all;
    lock.unlock();
    if (!all.empty()) on_chunk(all);
    return value(true);
  }
  size_t sent = 0;
  while (!stop) {
    Log& log = logs_[{ns, pod}];
    if (log.visible.size() > sent) {
      std::string chunk = log.visible.substr(sent);
      sent = log.visible.size();
      lock.unlock();
      on_chunk(chunk);
      lock.lock();
      continue;
    }
    if (log.finished) break;
    cv_.wait_for(lock, std::chrono::milliseconds(10));
  }
  return value(true);
}

std::vector<json> FakeApiClient::created_jobs() const {
  std::lock_guard lock(mu_);
  return created_;
}

std::vector<std::string> FakeApiClient::deleted_jobs() const {
  std::lock_guard lock(mu_);
  return deleted_;
}

std::optional<json> FakeApiClient::job(const std::string& ns, const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = jobs_.find({ns, name});
  if (it == jobs_.end()) return std::nullopt;
  return it->second;
}

bool FakeApiClient::wait_for_jobs(size_t count, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return created_.size() >= count; });
}

bool FakeApiClient::wait_for_watchers(size_t count, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return watchers_ >= count; });
}

void FakeApiClient::put_job(const std::string& ns, json job) {
  std::lock_guard lock(mu_);
  std::string name = job["metadata"]["name"].get<std::string>();
  stamp(job, ns);
  jobs_[{ns, name}] = job;
  record(Resource::kJobs, ns, WatchEventType::kAdded, job);
}

void FakeApiClient::set_job_condition(const std::string& ns, const std::string& job,
                                      const std::string& type, const std::string& reason,
                                      const std::string& message) {
  std::lock_guard lock(mu_);
  json& j = jobs_.at({ns, job});
  j["status"]["conditions"].push_back(
      {{"type", type}, {"status", "True"}, {"reason", reason}, {"message", message}});
  stamp(j, ns);
  record(Resource::kJobs, ns, WatchEventType::kModified, j);
}

void FakeApiClient::remove_job(const std::string& ns, const std::string& job) {
  std::lock_guard lock(mu_);
  json gone = jobs_.at({ns, job});
  jobs_.erase({ns, job});
  gone["metadata"]["resourceVersion"] = std::to_string(++rv_);
  record(Resource::kJobs, ns, WatchEventType::kDeleted, gone);
}

void FakeApiClient::add_pod(const std::string& ns, const std::string& job, const std::string& pod) {
  std::lock_guard lock(mu_);
  const json& j = jobs_.at({ns, job});
  json labels = j["spec"]["template"]["metadata"].value("labels", json::object());
  labels["job-name"] = job;
  labels["batch.kubernetes.io/job-name"] = job;
  json p = {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", {{"name", pod}, {"labels", labels},
                          {"ownerReferences", json::array({{{"kind", "Job"}, {"name", job},
                                                             {"controller", true}}})}}},
            {"spec", {{"nodeName", "node-1"}}},
            {"status", {{"phase", "Pending"}}}};
  stamp(p, ns);
  pods_[{ns, pod}] = p;
  record(Resource::kPods, ns, WatchEventType::kAdded, p);
}

void FakeApiClient::set_pod_status(const std::string& ns, const std::string& pod, json status) {
  std::lock_guard lock(mu_);
  json& p = pods_.at({ns, pod});
  p["status"] = std::move(status);
  stamp(p, ns);
  record(Resource::kPods, ns, WatchEventType::kModified, p);
}

void FakeApiClient::remove_pod(const std::string& ns, const std::string& pod) {
  std::lock_guard lock(mu_);
  json gone = pods_.at({ns, pod});
  pods_.erase({ns, pod});
  gone["metadata"]["resourceVersion"] = std::to_string(++rv_);
  record(Resource::kPods, ns, WatchEventType::kDeleted, gone);
}

void FakeApiClient::append_log(const std::string& ns, const std::string& pod,
                               const std::string& text, bool follow_visible) {
  std::lock_guard lock(mu_);
  Log& log = logs_[{ns, pod}];
  log.all += text;
  if (follow_visible) log.visible += text;
  cv_.notify_all();
}

void FakeApiClient::finish_log(const std::string& ns, const std::string& pod) {
  std::lock_guard lock(mu_);
  logs_[{ns, pod}].finished = true;
  cv_.notify_all();
}

void FakeApiClient::fail_next_create(ApiError error, bool store_anyway) {
  std::lock_guard lock(mu_);
  next_create_error_ = std::make_pair(std::move(error), store_anyway);
}

void FakeApiClient::drop_watches() {
  std::lock_guard lock(mu_);
  ++drop_generation_;
  cv_.notify_all();
}

void FakeApiClient::compact_history() {
  std::lock_guard lock(mu_);
  compacted_rv_ = rv_;
  ++drop_generation_;
  cv_.notify_all();
}

void FakeApiClient::pause_watches(bool paused) {
  std::lock_guard lock(mu_);
  paused_ = paused;
  cv_.notify_all();
}

void FakeApiClient::send_bookmarks() {
  std::lock_guard lock(mu_);
  ++bookmark_generation_;
  cv_.notify_all();
}

int64_t FakeApiClient::lists(Resource resource) const {
  std::lock_guard lock(mu_);
  return resource == Resource::kJobs ? job_lists_ : pod_lists_;
}

}  // namespace mflow::test
