#include "runtime/run_ledger.h"

#include <fmt/core.h>

namespace mflow::runtime {

const exec::Completion* TaskEntry::last() const {
  if (attempts.empty() || !attempts.back().completion) return nullptr;
  return &*attempts.back().completion;
}

bool TaskEntry::succeeded() const {
  if (reused()) return true;
  const exec::Completion* c = last();
  return c && c->outcome == exec::Outcome::kSucceeded && attempts.back().retry_in_seconds < 0;
}

void RunLedger::run_started(const std::string& run_id, const std::string&, const std::string&) {
  std::lock_guard<std::mutex> lock(mu_);
  run_id_ = run_id;
}

TaskEntry& RunLedger::entry(const std::string& step, const std::string& task_id) {
  auto [it, added] = index_.emplace(step + "/" + task_id, tasks_.size());
  if (added) {
    tasks_.emplace_back();
    tasks_.back().step = step;
    tasks_.back().task_id = task_id;
  }
  return tasks_[it->second];
}

void RunLedger::task_started(const exec::TaskLaunch& task, const char* where) {
  std::lock_guard<std::mutex> lock(mu_);
  TaskEntry& e = entry(task.step, task.task_id);
  e.executor = where;
  e.stdout_path = task.stdout_path;
  e.stderr_path = task.stderr_path;
  AttemptEntry a;
  a.attempt = task.attempt;
  a.started = exec::Clock::now();
  e.attempts.push_back(a);
}

void RunLedger::task_finished(const exec::TaskLaunch& task, const exec::Completion& c,
                              int retry_in_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  TaskEntry& e = entry(task.step, task.task_id);
  // A completion without a start report (a launch refused before it was announced) still
  // gets its attempt.
  if (e.attempts.empty() || e.attempts.back().attempt != c.attempt) {
    AttemptEntry a;
    a.attempt = c.attempt;
    a.started = c.started;
    e.attempts.push_back(a);
  }
  e.attempts.back().completion = c;
  e.attempts.back().retry_in_seconds = retry_in_seconds;
}

void RunLedger::task_reused(const std::string&, const std::string& step,
                            const std::string& task_id, const std::string& from) {
  std::lock_guard<std::mutex> lock(mu_);
  entry(step, task_id).reused_from = from;
}

std::vector<TaskEntry> RunLedger::tasks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tasks_;
}

std::string RunLedger::run_id() const {
  std::lock_guard<std::mutex> lock(mu_);
  return run_id_;
}

std::string task_counts(const RunSummary& s) {
  std::string counts = fmt::format("{} succeeded", s.tasks_succeeded);
  if (s.tasks_succeeded_after_retries > 0) {
    counts += fmt::format(" ({} after retries)", s.tasks_succeeded_after_retries);
  }
  counts += fmt::format(", {} reused, {} failed", s.tasks_reused, s.tasks_failed);
  if (s.tasks_stopped > 0) counts += fmt::format(", {} stopped", s.tasks_stopped);
  return counts;
}

}  // namespace mflow::runtime
