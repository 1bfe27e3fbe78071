// RecordingReporter: a runtime::Reporter that keeps what it was told, for assertions.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "runtime/reporter.h"

namespace mflow::test {

class RecordingReporter : public runtime::Reporter {
 public:
  void on_output(const exec::TaskLaunch& task, int64_t, exec::Stream,
                 std::string_view line) override {
    std::lock_guard<std::mutex> lock(mu_);
    lines.push_back(task.key + ": " + std::string(line));
  }
  void run_started(const std::string&, const std::string&, const std::string&) override {}
  void task_started(const exec::TaskLaunch& task, const char*) override {
    std::lock_guard<std::mutex> lock(mu_);
    started.push_back(task.key);
  }
  void task_finished(const exec::TaskLaunch& task, const exec::Completion&,
                     int retry_in) override {
    std::lock_guard<std::mutex> lock(mu_);
    finished.push_back(task.key + (retry_in >= 0 ? " retry" : ""));
  }
  void task_reused(const std::string&, const std::string& step, const std::string& task_id,
                   const std::string&) override {
    std::lock_guard<std::mutex> lock(mu_);
    reused.push_back(step + "/" + task_id);
  }
  void note(const std::string& text) override {
    std::lock_guard<std::mutex> lock(mu_);
    notes.push_back(text);
  }
  void run_finished(const runtime::RunSummary& s) override { summary = s; }

  std::vector<std::string> lines, started, finished, reused, notes;
  runtime::RunSummary summary;

 private:
  std::mutex mu_;
};

}  // namespace mflow::test
