// FakeExecutor: an exec::Executor for scheduler tests (ninja's FakeCommandRunner). It never
// spawns anything: each started attempt completes on the next wait() with whatever the
// test's `behavior` returns, after `behavior` had the chance to write artifacts into the
// attempt's MFLOW_OUTPUT_DIR. Records every start and the peak number running at once.
#pragma once

#include <algorithm>
#include <functional>
#include <thread>
#include <vector>

#include "exec/executor.h"

namespace mflow::test {

class FakeExecutor : public exec::Executor {
 public:
  using Behavior = std::function<exec::Outcome(const exec::TaskLaunch&)>;
  explicit FakeExecutor(Behavior behavior) : behavior_(std::move(behavior)) {}

  base::Status start(const exec::TaskLaunch& launch) override {
    started.push_back(launch);
    running_.push_back(launch);
    peak_running = std::max(peak_running, running_.size());
    return base::Status();
  }
  size_t running() const override { return running_.size(); }

  void wait(std::optional<exec::Clock::time_point> deadline,
            std::vector<exec::Completion>* out) override {
    if (running_.empty()) {
      if (deadline) std::this_thread::sleep_until(*deadline);
      return;
    }
    // Complete the oldest attempt only, so tests observe several running at once.
    exec::TaskLaunch launch = running_.front();
    running_.erase(running_.begin());
    exec::Completion c;
    c.key = launch.key;
    c.attempt = launch.attempt;
    c.outcome = behavior_(launch);
    c.exit_code = c.outcome == exec::Outcome::kSucceeded ? 0 : 1;
    c.reason = c.outcome == exec::Outcome::kSucceeded ? "" : "scripted failure";
    c.started = c.finished = exec::Clock::now();
    out->push_back(c);
  }
  void poll(std::vector<exec::Completion>*) override {}
  void cancel_all() override { cancelled = true; }

  std::vector<exec::TaskLaunch> started;
  size_t peak_running = 0;
  bool cancelled = false;

 private:
  Behavior behavior_;
  std::vector<exec::TaskLaunch> running_;
};

}  // namespace mflow::test
