// ConsoleReporter: the terminal face of a run. Task output goes to stdout, one line per
// line, prefixed `YYYY-MM-DD HH:MM:SS.mmm [run/step/task (pid N)]` like Metaflow; mflow's own
// progress and the final summary go to stderr. Colour and the live status line only when
// stderr is a TTY, without NO_COLOR and TERM=dumb: then, as ninja does, one line at the
// bottom (done/running/queued/failed, elapsed, the oldest running task) is redrawn in place
// and replaces the per-task "starting"/"succeeded" lines; everything else is printed above
// it. Otherwise plain lines only, so CI logs stay clean. Thread-safe (one mutex around every
// write; a ticker thread redraws the status line once a second).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <string_view>

#include "runtime/reporter.h"

namespace mflow::runtime {

class ConsoleReporter : public Reporter {
 public:
  /// `quiet` drops per-task progress lines (task output and the summary still print).
  ConsoleReporter(std::FILE* out, std::FILE* err, bool quiet);
  ~ConsoleReporter() override;

  void on_output(const exec::TaskLaunch& task, int64_t pid, exec::Stream stream,
                 std::string_view line) override;
  void run_started(const std::string& run_id, const std::string& flow,
                   const std::string& datastore) override;
  void task_started(const exec::TaskLaunch& task, const char* where) override;
  void task_finished(const exec::TaskLaunch& task, const exec::Completion& c,
                     int retry_in_seconds) override;
  void task_reused(const std::string& run_id, const std::string& step,
                   const std::string& task_id, const std::string& from) override;
  void tasks_queued(size_t count) override;
  void note(const std::string& text) override;
  void run_finished(const RunSummary& summary) override;

  /// Options appended to the `mflow logs` / `mflow resume` commands the summary prints (e.g.
  /// ` --datastore /srv/ds`), so that pasting them reads the same datastore.
  void set_command_options(std::string options) { command_options_ = std::move(options); }
  /// The run a resume continues ("" for a new run), named in the start line.
  void set_resuming(std::string origin_run_id) { resuming_ = std::move(origin_run_id); }

 private:
  std::string prefix(const exec::TaskLaunch& task, int64_t pid) const;
  const char* color(const char* code) const { return color_ ? code : ""; }
  /// Writes `text` to `to` (out_ or err_) and flushes; after a failed write, that stream is
  /// left alone for the rest of the run. Call with mu_ held.
  void put(std::FILE* to, std::string_view text);

  /// The live status line's text, cut to the terminal's width. Call with mu_ held.
  std::string status_line() const;
  /// Erases the status line (before other output) / draws it again. Call with mu_ held.
  void clear_status();
  void draw_status();
  void stop_ticker();

  std::mutex mu_;
  std::condition_variable tick_;
  std::thread ticker_;
  bool live_ = false;             // the status line is on
  bool status_shown_ = false;     // guarded by mu_
  bool ticking_ = false;          // guarded by mu_
  std::chrono::steady_clock::time_point run_start_;          // guarded by mu_
  std::map<std::string, std::chrono::steady_clock::time_point> running_;  // key -> start, guarded by mu_
  size_t done_ = 0, failed_ = 0, queued_ = 0;                // guarded by mu_
  std::FILE* out_;  // guarded by mu_
  std::FILE* err_;  // guarded by mu_
  bool out_closed_ = false;  // guarded by mu_
  bool err_closed_ = false;  // guarded by mu_
  bool quiet_;
  bool color_;
  std::string command_options_;
  std::string resuming_;
};

/// "2026-11-24 02:43:39.689" in local time.
std::string timestamp_now();

}  // namespace mflow::runtime
