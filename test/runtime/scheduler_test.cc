#include "runtime/scheduler.h"

#include <fstream>

#include <catch2/catch.hpp>

#include "support/flow_builders.h"

#include "support/fake_executor.h"
#include "support/recording_reporter.h"
#include "support/temp_dir.h"

using namespace mflow;
using test::make_step;

namespace {

graph::Graph foreach_graph(int retries = 0) {
  spec::Flow flow;
  flow.file = "t.yaml";
  flow.name = "t";
  flow.steps = {make_step("start", {"body"}, "items"), make_step("body", {"join"}),
                make_step("join", {"end"}, "", true), make_step("end", {})};
  flow.steps[1].retries = retries;
  spec::Diagnostics diags;
  auto g = graph::Graph::build(flow, &diags);
  REQUIRE(g);
  return std::move(*g);
}

void write_artifact(const exec::TaskLaunch& l, const std::string& name, const std::string& v) {
  std::ofstream(l.env.at("MFLOW_OUTPUT_DIR") + "/" + name) << v;
}

struct Fixture {
  test::TempDir dir;
  store::Datastore store = store::Datastore::open(dir.path() + "/ds", true).value();
  store::RunLock lock;
  store::RunInfo run;
  test::RecordingReporter reporter;

  Fixture() {
    store::RunInfo info;
    info.flow = "t";
    info.flow_file = "t.yaml";
    run = store.create_run(info, &lock).value();
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "max_workers bounds attempts in flight", "[runtime]") {
  auto g = foreach_graph();
  test::FakeExecutor ex([](const exec::TaskLaunch& l) {
    if (l.step == "start") write_artifact(l, "items", "[1,2,3,4,5,6,7,8,9,10]");
    return exec::Outcome::kSucceeded;
  });
  runtime::SchedulerOptions options;
  options.max_workers = 3;
  runtime::Scheduler s(g, store, run, ex, nullptr, reporter, options);
  auto summary = s.run();
  CHECK(summary.succeeded);
  CHECK(summary.tasks_succeeded == 13);
  CHECK(ex.peak_running == 3);
  auto tasks = store.list_tasks(run.run_id, "body").value();
  CHECK(tasks.size() == 10);
}

TEST_CASE_METHOD(Fixture, "the foreach element and split index reach each body task", "[runtime]") {
  auto g = foreach_graph();
  std::vector<std::string> seen;
  test::FakeExecutor ex([&](const exec::TaskLaunch& l) {
    if (l.step == "start") write_artifact(l, "items", R"(["a", {"k": 1}])");
    if (l.step == "body") {
      seen.push_back(l.env.at("MFLOW_SPLIT_INDEX") + "=" + l.env.at("MFLOW_INPUT") + "/" +
                     l.env.at("MFLOW_NUM_SPLITS"));
    }
    if (l.step == "join") CHECK(l.env.at("MFLOW_NUM_INPUTS") == "2");
    return exec::Outcome::kSucceeded;
  });
  runtime::Scheduler s(g, store, run, ex, nullptr, reporter, {});
  CHECK(s.run().succeeded);
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<std::string>{"0=a/2", "1={\"k\":1}/2"});
}

TEST_CASE_METHOD(Fixture, "a failure retries, then stops the run and names the task", "[runtime]") {
  auto g = foreach_graph(/*retries=*/1);
  int body1_attempts = 0;
  test::FakeExecutor ex([&](const exec::TaskLaunch& l) {
    if (l.step == "start") write_artifact(l, "items", "[0,1,2]");
    if (l.step == "body" && l.task_id == "1") {
      ++body1_attempts;
      CHECK(l.env.at("MFLOW_ATTEMPT") == std::to_string(l.attempt));
      return exec::Outcome::kFailed;
    }
    return exec::Outcome::kSucceeded;
  });
  runtime::SchedulerOptions options;
  options.max_workers = 1;
  runtime::Scheduler s(g, store, run, ex, nullptr, reporter, options);
  auto summary = s.run();
  CHECK_FALSE(summary.succeeded);
  CHECK(body1_attempts == 2);
  REQUIRE(summary.failures.size() == 1);
  CHECK(summary.failures[0].step == "body");
  CHECK(summary.failures[0].task_id == "1");
  CHECK(summary.failures[0].attempts == 2);
  // With one worker, split 2 was never started after split 1 failed.
  for (const auto& l : ex.started) CHECK_FALSE((l.step == "body" && l.task_id == "2"));
  auto record = store.read_task(run.run_id, "body", "1").value();
  CHECK(record.status == store::TaskStatus::kFailed);
  CHECK(record.attempts.size() == 2);
}

TEST_CASE_METHOD(Fixture, "an eviction does not use up a retry", "[runtime]") {
  auto g = foreach_graph(/*retries=*/0);
  int attempts = 0;
  test::FakeExecutor ex([&](const exec::TaskLaunch& l) {
    if (l.step == "start") write_artifact(l, "items", "[0]");
    if (l.step == "body" && ++attempts == 1) return exec::Outcome::kEvicted;
    return exec::Outcome::kSucceeded;
  });
  runtime::Scheduler s(g, store, run, ex, nullptr, reporter, {});
  CHECK(s.run().succeeded);
  CHECK(attempts == 2);
}

TEST_CASE_METHOD(Fixture, "too wide a foreach fails before any split starts", "[runtime]") {
  auto g = foreach_graph();
  test::FakeExecutor ex([](const exec::TaskLaunch& l) {
    if (l.step == "start") write_artifact(l, "items", "[1,2,3]");
    return exec::Outcome::kSucceeded;
  });
  runtime::SchedulerOptions options;
  options.max_num_splits = 2;
  runtime::Scheduler s(g, store, run, ex, nullptr, reporter, options);
  auto summary = s.run();
  CHECK_FALSE(summary.succeeded);
  REQUIRE(summary.failures.size() == 1);
  CHECK_THAT(summary.failures[0].reason, Catch::Contains("3 splits, more than the limit of 2"));
  CHECK(ex.started.size() == 1);
}

TEST_CASE_METHOD(Fixture, "local admission respects declared cpu", "[runtime]") {
  auto g = foreach_graph();
  const_cast<spec::Step*>(g.node(*g.find("body")).step)->resources.cpu = 2;
  test::FakeExecutor ex([](const exec::TaskLaunch& l) {
    if (l.step == "start") write_artifact(l, "items", "[1,2,3,4,5,6]");
    return exec::Outcome::kSucceeded;
  });
  runtime::SchedulerOptions options;
  options.capacity.cpus = 5;
  runtime::Scheduler s(g, store, run, ex, nullptr, reporter, options);
  CHECK(s.run().succeeded);
  CHECK(ex.peak_running == 2);  // 2 + 2 <= 5 < 2 + 2 + 2
}

TEST_CASE_METHOD(Fixture, "GPU slots are never shared between running tasks", "[runtime]") {
  auto g = foreach_graph();
  const_cast<spec::Step*>(g.node(*g.find("body")).step)->resources.gpu = 1;
  std::vector<std::string> devices;
  test::FakeExecutor ex([&](const exec::TaskLaunch& l) {
    if (l.step == "start") write_artifact(l, "items", "[1,2,3,4]");
    if (l.step == "body") devices.push_back(l.env.at("CUDA_VISIBLE_DEVICES"));
    return exec::Outcome::kSucceeded;
  });
  runtime::SchedulerOptions options;
  options.capacity.gpus = 2;
  runtime::Scheduler s(g, store, run, ex, nullptr, reporter, options);
  CHECK(s.run().succeeded);
  CHECK(ex.peak_running == 2);
  REQUIRE(devices.size() == 4);
  CHECK(devices[0] != devices[1]);
}
