// EventStream: the `--events` output, a Reporter that writes one JSON object per line for
// every run and task transition as it happens (run_started, task_started, task_retrying,
// task_finished, task_reused, note, run_finished), each flushed at once so a consumer
// tailing the file sees it live. The format is schemas/events.schema.json; every line
// carries `schema` and `version`. Task output is not an event (it is in the datastore,
// `mflow logs`). Thread-safe.
#pragma once

#include <cstdio>
#include <map>
#include <mutex>
#include <string>

#include "runtime/reporter.h"

namespace mflow::runtime {

inline constexpr const char* kEventsSchema = "mflow.events";
inline constexpr int kEventsVersion = 1;

class EventStream : public Reporter {
 public:
  /// Writes to `out` (not owned); `name` is how errors name it ("-" for stdout).
  EventStream(std::FILE* out, std::string name) : out_(out), name_(std::move(name)) {}

  void set_resuming(std::string origin_run_id) { origin_run_id_ = std::move(origin_run_id); }

  void on_output(const exec::TaskLaunch&, int64_t, exec::Stream, std::string_view) override {}
  void run_started(const std::string& run_id, const std::string& flow,
                   const std::string& datastore) override;
  void task_started(const exec::TaskLaunch& task, const char* where) override;
  void task_finished(const exec::TaskLaunch& task, const exec::Completion& c,
                     int retry_in_seconds) override;
  void task_reused(const std::string& run_id, const std::string& step,
                   const std::string& task_id, const std::string& from) override;
  void note(const std::string& text) override;
  void run_finished(const RunSummary& summary) override;

  /// Empty while every line was written; else why the first failed write failed (later
  /// events are dropped: the run goes on, and the caller exits 4 at the end).
  std::string error() const;

 private:
  void write(const std::string& line);

  mutable std::mutex mu_;
  std::FILE* out_;
  std::string name_;
  std::string origin_run_id_;
  std::string run_id_;                                // guarded by mu_
  std::string error_;                                 // guarded by mu_
  std::map<std::string, std::string> executor_of_;  // "<step>/<task>" -> executor, guarded by mu_
};

}  // namespace mflow::runtime
