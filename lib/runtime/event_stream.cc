#include "runtime/event_stream.h"

#include <cerrno>
#include <cstring>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "store/record_json.h"

namespace mflow::runtime {

namespace {

nlohmann::json event(const char* kind, const std::string& run_id) {
  return {{"schema", kEventsSchema},
          {"version", kEventsVersion},
          {"event", kind},
          {"time", store::format_time(exec::Clock::now())},
          {"run_id", run_id}};
}

void add_task(nlohmann::json& j, const std::string& run_id, const std::string& step,
              const std::string& task_id) {
  j["step"] = step;
  j["task_id"] = task_id;
  // The path `mflow logs` takes, so a consumer can hand it over as is.
  j["task"] = fmt::format("{}/{}/{}", run_id, step, task_id);
}

std::string outcome_name(const FailedTask& f) {
  return f.fan_out_refused ? "fan-out refused" : exec::to_string(f.outcome);
}

}  // namespace

void EventStream::run_started(const std::string& run_id, const std::string& flow,
                              const std::string& datastore) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    run_id_ = run_id;
  }
  auto j = event("run_started", run_id);
  j["flow"] = flow;
  j["datastore"] = datastore;
  j["origin_run_id"] = origin_run_id_.empty() ? nlohmann::json(nullptr) : nlohmann::json(origin_run_id_);
  write(j.dump());
}

void EventStream::task_started(const exec::TaskLaunch& task, const char* where) {
  auto j = event("task_started", task.run_id);
  add_task(j, task.run_id, task.step, task.task_id);
  j["attempt"] = task.attempt;
  j["executor"] = where;
  {
    std::lock_guard<std::mutex> lock(mu_);
    executor_of_[task.key] = where;
  }
  write(j.dump());
}

void EventStream::task_finished(const exec::TaskLaunch& task, const exec::Completion& c,
                                int retry_in_seconds) {
  auto j = event(retry_in_seconds >= 0 ? "task_retrying" : "task_finished", task.run_id);
  add_task(j, task.run_id, task.step, task.task_id);
  j["attempt"] = c.attempt;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = executor_of_.find(task.key);
    j["executor"] = it == executor_of_.end() ? "local" : it->second;
  }
  j["outcome"] = exec::to_string(c.outcome);
  j["exit_code"] = c.exit_code >= 0 ? nlohmann::json(c.exit_code) : nlohmann::json(nullptr);
  j["signal"] = c.signal > 0 ? nlohmann::json(c.signal) : nlohmann::json(nullptr);
  j["reason"] = c.reason;
  j["started"] = store::format_time(c.started);
  j["finished"] = store::format_time(c.finished);
  j["duration_ms"] =
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(c.finished - c.started).count());
  j["host"] = c.host;
  if (retry_in_seconds >= 0) j["retry_in_seconds"] = retry_in_seconds;
  write(j.dump());
}

void EventStream::task_reused(const std::string& run_id, const std::string& step,
                              const std::string& task_id, const std::string& from) {
  auto j = event("task_reused", run_id);
  add_task(j, run_id, step, task_id);
  j["reused_from"] = from;
  write(j.dump());
}

void EventStream::note(const std::string& text) {
  // A note can come before run_started (resume's placement); it then carries no run id.
  std::string run_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    run_id = run_id_;
  }
  auto j = event("note", run_id);
  if (run_id.empty()) j["run_id"] = nullptr;
  j["text"] = text;
  write(j.dump());
}

void EventStream::run_finished(const RunSummary& s) {
  auto j = event("run_finished", s.run_id);
  j["flow"] = s.flow;
  j["status"] = s.succeeded ? "succeeded" : s.interrupted ? "interrupted" : "failed";
  j["elapsed_ms"] = s.elapsed.count();
  j["tasks"] = {{"succeeded", s.tasks_succeeded},
                {"succeeded_after_retries", s.tasks_succeeded_after_retries},
                {"reused", s.tasks_reused},
                {"failed", s.tasks_failed},
                {"stopped", s.tasks_stopped}};
  j["failures"] = nlohmann::json::array();
  for (const auto& f : s.failures) {
    nlohmann::json fj;
    add_task(fj, s.run_id, f.step, f.task_id);
    fj["attempt"] = f.attempt;
    fj["outcome"] = outcome_name(f);
    fj["exit_code"] = f.exit_code >= 0 ? nlohmann::json(f.exit_code) : nlohmann::json(nullptr);
    fj["reason"] = f.reason;
    j["failures"].push_back(std::move(fj));
  }
  write(j.dump());
}

std::string EventStream::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void EventStream::write(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!error_.empty()) return;
  // One fwrite per line under the lock: lines of concurrent reports never interleave.
  std::string text = line + "\n";
  if (std::fwrite(text.data(), 1, text.size(), out_) != text.size() || std::fflush(out_) != 0) {
    error_ = fmt::format("{}: cannot write ({})", name_, std::strerror(errno));
    std::clearerr(out_);
  }
}

}  // namespace mflow::runtime
