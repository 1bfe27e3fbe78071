#include "exec/kube_executor.h"

#include <atomic>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "exec/job_manifest.h"
#include "support/fake_api_client.h"
#include "support/temp_dir.h"

using namespace mflow;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string kDatastoreId = "0123456789abcdef0123456789abcdef";

class RecordingSink : public exec::OutputSink {
 public:
  void on_output(const exec::TaskLaunch& task, int64_t, exec::Stream,
                 std::string_view line) override {
    std::lock_guard lock(mu_);
    lines_.push_back(task.key + ": " + std::string(line));
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

json running() {
  return {{"phase", "Running"},
          {"conditions", json::array({{{"type", "PodScheduled"}, {"status", "True"}}})},
          {"containerStatuses",
           json::array({{{"name", "mflow"}, {"ready", true}, {"restartCount", 0},
                         {"image", "img"}, {"imageID", ""},
                         {"state", {{"running", {{"startedAt", "2026-01-01T00:00:01Z"}}}}}}})}};
}

json terminated(int exit_code, const std::string& reason) {
  return {{"phase", exit_code == 0 ? "Succeeded" : "Failed"},
          {"containerStatuses",
           json::array({{{"name", "mflow"}, {"ready", false}, {"restartCount", 0},
                         {"image", "img"}, {"imageID", ""},
                         {"state", {{"terminated", {{"exitCode", exit_code}, {"reason", reason}}}}}}})}};
}

json waiting(const std::string& reason, const std::string& message) {
  return {{"phase", "Pending"},
          {"conditions", json::array({{{"type", "PodScheduled"}, {"status", "True"}}})},
          {"containerStatuses",
           json::array({{{"name", "mflow"}, {"ready", false}, {"restartCount", 0},
                         {"image", "img"}, {"imageID", ""},
                         {"state", {{"waiting", {{"reason", reason}, {"message", message}}}}}}})}};
}

struct Fixture {
  test::TempDir dir;
  test::FakeApiClient api;
  RecordingSink sink;
  std::atomic<int64_t> clock_ms{0};
  exec::Clock::time_point epoch = exec::Clock::now();
  std::unique_ptr<exec::KubeExecutor> executor;
  std::vector<exec::Completion> done;

  Fixture() {
    exec::KubeExecutorOptions o;
    o.datastore_id = kDatastoreId;
    o.flow = "bigsum";
    o.datastore_root = dir.path();
    o.defaults.pvc = "mflow-ds";
    o.defaults.image = "mflow:test";
    o.now = [this] { return epoch + std::chrono::milliseconds(clock_ms.load()); };
    o.tick = 5ms;
    o.retry_delay = 10ms;
    o.settle = 10s;
    executor = std::make_unique<exec::KubeExecutor>(api, sink, std::move(o));
  }

  void advance(std::chrono::milliseconds d) { clock_ms += d.count(); }

  exec::TaskLaunch launch(const std::string& step, const std::string& task = "0", int attempt = 0) {
    exec::TaskLaunch l;
    l.key = step + "/" + task;
    l.run_id = "1001";
    l.step = step;
    l.task_id = task;
    l.attempt = attempt;
    l.command.script = "echo hi";
    l.stdout_path = dir.path() + "/" + step + "." + task + "." + std::to_string(attempt) + ".stdout";
    l.stderr_path = dir.path() + "/" + step + "." + task + "." + std::to_string(attempt) + ".stderr";
    return l;
  }

  std::string name(const exec::TaskLaunch& l) {
    return exec::job_name(kDatastoreId, "bigsum", l.run_id, l.step, l.task_id, l.attempt);
  }

  std::string start(const exec::TaskLaunch& l) {
    auto s = executor->start(l);
    INFO(s.message());
    REQUIRE(s.ok());
    // Script the cluster only once the executor follows it (list done, watches open) and
    // its creator thread created the Job.
    REQUIRE(api.wait_for_watchers(2));
    auto until = exec::Clock::now() + 5s;
    while (!api.job("default", name(l)) && exec::Clock::now() < until) std::this_thread::sleep_for(1ms);
    REQUIRE(api.job("default", name(l)));
    return name(l);
  }

  /// Waits (real time) until `n` completions arrived in total.
  bool await(size_t n, std::chrono::milliseconds timeout = 5s) {
    auto until = exec::Clock::now() + timeout;
    while (done.size() < n && exec::Clock::now() < until) {
      executor->wait(exec::Clock::now() + 50ms, &done);
    }
    return done.size() >= n;
  }

  /// The Jobs deleted so far, once there are at least `n` (or after 5 s of real time): the
  /// executor posts a completion before it sends the DELETE, so the two race.
  std::vector<std::string> deleted_jobs_eventually(size_t n) {
    auto until = exec::Clock::now() + 5s;
    while (api.deleted_jobs().size() < n && exec::Clock::now() < until) {
      std::this_thread::sleep_for(5ms);
    }
    return api.deleted_jobs();
  }

  /// Nothing completes within `d` of real time.
  bool quiet_for(std::chrono::milliseconds d) {
    size_t before = done.size();
    executor->wait(exec::Clock::now() + d, &done);
    return done.size() == before;
  }

  // The usual life of a pod that runs `log` and exits with `exit_code`.
  void run_pod(const std::string& job, const std::string& pod, const std::string& log,
               int exit_code, const std::string& reason) {
    api.add_pod("default", job, pod);
    api.set_pod_status("default", pod, running());
    api.append_log("default", pod, log);
    api.set_pod_status("default", pod, terminated(exit_code, reason));
    api.finish_log("default", pod);
  }
};

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE_METHOD(Fixture, "kube: a succeeding task streams its log and completes", "[kube]") {
  auto l = launch("start");
  std::string job = start(l);
  REQUIRE(api.created_jobs().size() == 1);
  CHECK(api.created_jobs()[0]["metadata"]["labels"]["mflow.dev/run"] == "1001");
  CHECK(executor->running() == 1);
  run_pod(job, job + "-abcde", "hello\nworld\n", 0, "Completed");
  api.set_job_condition("default", job, "SuccessCriteriaMet", "CompletionsReached");
  REQUIRE(await(1));
  CHECK(done[0].key == "start/0");
  CHECK(done[0].outcome == exec::Outcome::kSucceeded);
  CHECK(done[0].exit_code == 0);
  CHECK(done[0].host == "node-1");
  CHECK(executor->running() == 0);
  CHECK(read(l.stdout_path) == "hello\nworld\n");
  CHECK(sink.lines() == std::vector<std::string>{"start/0: hello", "start/0: world"});
  // One list + watch per resource for the namespace, not one per Job.
  CHECK(api.lists(kube::Resource::kJobs) == 1);
  CHECK(api.lists(kube::Resource::kPods) == 1);
}

TEST_CASE_METHOD(Fixture, "kube: a non-zero exit is kFailed with its exit code", "[kube]") {
  auto l = launch("start");
  std::string job = start(l);
  run_pod(job, "p1", "boom\n", 3, "Error");
  api.set_job_condition("default", job, "FailureTarget", "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit");
  REQUIRE(await(1));
  CHECK(done[0].outcome == exec::Outcome::kFailed);
  CHECK(done[0].exit_code == 3);
  CHECK(done[0].reason == "exit code 3");
}

TEST_CASE_METHOD(Fixture, "kube: OOMKilled keeps the last lines the follow stream missed", "[kube]") {
  auto l = launch("big");
  std::string job = start(l);
  api.add_pod("default", job, "p1");
  api.set_pod_status("default", "p1", running());
  api.append_log("default", "p1", "allocating\n");
  // The kubelet flushes these lines only after the follow stream ended.
  api.append_log("default", "p1", "at 9.9 GB\nlast words", false);
  api.set_pod_status("default", "p1", terminated(137, "OOMKilled"));
  api.finish_log("default", "p1");
  api.set_job_condition("default", job, "FailureTarget", "BackoffLimitExceeded");
  REQUIRE(await(1));
  CHECK(done[0].outcome == exec::Outcome::kOomKilled);
  CHECK(done[0].exit_code == 137);
  CHECK(done[0].reason.find("4096Mi") != std::string::npos);
  CHECK(read(l.stdout_path) == "allocating\nat 9.9 GB\nlast words");
  auto lines = sink.lines();
  REQUIRE(lines.size() == 3);
  CHECK(lines.back() == "big/0: last words");
}

TEST_CASE_METHOD(Fixture, "kube: an unschedulable pod fails after the pending grace", "[kube]") {
  auto l = launch("gpu");
  std::string job = start(l);
  api.add_pod("default", job, "p1");
  api.set_pod_status("default", "p1",
                     {{"phase", "Pending"},
                      {"conditions", json::array({{{"type", "PodScheduled"}, {"status", "False"},
                                                   {"reason", "Unschedulable"},
                                                   {"message", "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}}})}});
  CHECK(quiet_for(100ms));
  advance(4min);
  CHECK(quiet_for(100ms));
  advance(61s);
  REQUIRE(await(1));
  CHECK(done[0].outcome == exec::Outcome::kUnschedulable);
  CHECK(done[0].reason.find("\"0/3 nodes are available: 3 Insufficient nvidia.com/gpu.\"") != std::string::npos);
  CHECK(deleted_jobs_eventually(1) == std::vector<std::string>{job});
}

TEST_CASE_METHOD(Fixture, "kube: a pod that becomes schedulable again is not failed", "[kube]") {
  auto l = launch("s");
  std::string job = start(l);
  api.add_pod("default", job, "p1");
  api.set_pod_status("default", "p1",
                     {{"phase", "Pending"},
                      {"conditions", json::array({{{"type", "PodScheduled"}, {"status", "False"},
                                                   {"reason", "Unschedulable"}, {"message", "full"}}})}});
  CHECK(quiet_for(50ms));
  advance(4min);
  api.set_pod_status("default", "p1", running());  // the autoscaler added a node
  CHECK(quiet_for(50ms));
  advance(10min);
  CHECK(quiet_for(100ms));
  CHECK(api.deleted_jobs().empty());
}

TEST_CASE_METHOD(Fixture, "kube: ImagePullBackOff fails after the image-pull grace", "[kube]") {
  auto l = launch("s");
  std::string job = start(l);
  api.add_pod("default", job, "p1");
  api.set_pod_status("default", "p1", waiting("ImagePullBackOff", "Back-off pulling image \"mflow:test\""));
  CHECK(quiet_for(50ms));
  advance(2min);
  CHECK(quiet_for(50ms));
  advance(61s);
  REQUIRE(await(1));
  CHECK(done[0].outcome == exec::Outcome::kImagePull);
  CHECK(done[0].reason.find("mflow:test") != std::string::npos);
  CHECK(done[0].reason.find("ImagePullBackOff") != std::string::npos);
  CHECK(deleted_jobs_eventually(1) == std::vector<std::string>{job});
}

TEST_CASE_METHOD(Fixture, "kube: an invalid image name fails at once", "[kube]") {
  auto l = launch("s");
  std::string job = start(l);
  api.add_pod("default", job, "p1");
  api.set_pod_status("default", "p1", waiting("InvalidImageName", "couldn't parse image name"));
  REQUIRE(await(1));
  CHECK(done[0].outcome == exec::Outcome::kImagePull);
}

TEST_CASE_METHOD(Fixture, "kube: DeadlineExceeded is kTimedOut", "[kube]") {
  auto l = launch("slow");
  l.timeout = 90s;
  std::string job = start(l);
  CHECK(api.created_jobs()[0]["spec"]["activeDeadlineSeconds"] == 90);
  api.add_pod("default", job, "p1");
  api.set_pod_status("default", "p1", running());
  api.remove_pod("default", "p1");  // the Job controller deletes the active pod
  api.set_job_condition("default", job, "FailureTarget", "DeadlineExceeded",
                        "Job was active longer than specified deadline");
  // On a loaded machine the watch may see the pod only after it is gone; the verdict then
  // waits out the settle time (10 s) before it is reported, so allow more than that.
  REQUIRE(await(1, 15s));
  CHECK(done[0].outcome == exec::Outcome::kTimedOut);
  CHECK(done[0].reason.find("1m30s") != std::string::npos);
}

TEST_CASE_METHOD(Fixture, "kube: an eviction the Job ignores continues in a replacement pod", "[kube]") {
  auto l = launch("s");
  std::string job = start(l);
  api.add_pod("default", job, "p1");
  api.set_pod_status("default", "p1", running());
  api.append_log("default", "p1", "first try\n");
  json evicted = terminated(143, "Error");
  evicted["conditions"] = json::array({{{"type", "DisruptionTarget"}, {"status", "True"},
                                        {"reason", "TerminationByKubelet"}, {"message", "node pressure"}}});
  api.set_pod_status("default", "p1", evicted);
  api.finish_log("default", "p1");
  CHECK(quiet_for(100ms));
  run_pod(job, "p2", "second try\n", 0, "Completed");
  api.set_job_condition("default", job, "Complete", "CompletionsReached");
  REQUIRE(await(1));
  CHECK(done[0].outcome == exec::Outcome::kSucceeded);
  std::string log = read(l.stdout_path);
  CHECK(log.find("first try\n") != std::string::npos);
  CHECK(log.find("replaces an evicted pod") != std::string::npos);
  CHECK(log.find("second try\n") != std::string::npos);
}

TEST_CASE_METHOD(Fixture, "kube: an eviction that fails the Job is kEvicted", "[kube]") {
  auto l = launch("s");
  std::string job = start(l);
  api.add_pod("default", job, "p1");
  api.set_pod_status("default", "p1", {{"phase", "Failed"}, {"reason", "Evicted"},
                                       {"message", "The node was low on resource: memory."}});
  api.set_job_condition("default", job, "Failed", "BackoffLimitExceeded");
  REQUIRE(await(1));
  CHECK(done[0].outcome == exec::Outcome::kEvicted);
  CHECK(done[0].reason.find("low on resource") != std::string::npos);
}

TEST_CASE_METHOD(Fixture, "kube: a dropped watch resumes from its resourceVersion", "[kube]") {
  auto l = launch("s");
  std::string job = start(l);
  REQUIRE(api.wait_for_watchers(2));
  api.drop_watches();
  api.send_bookmarks();
  run_pod(job, "p1", "ok\n", 0, "Completed");
  api.set_job_condition("default", job, "SuccessCriteriaMet", "CompletionsReached");
  REQUIRE(await(1));
  CHECK(done[0].outcome == exec::Outcome::kSucceeded);
  CHECK(api.stats().watches >= 4);
  // Resuming needs no relist.
  CHECK(api.lists(kube::Resource::kJobs) == 1);
  CHECK(api.lists(kube::Resource::kPods) == 1);
}

TEST_CASE_METHOD(Fixture, "kube: 410 Expired relists without losing or repeating a task", "[kube]") {
  auto a = launch("a");
  auto b = launch("b");
  auto c = launch("c");
  std::string ja = start(a), jb = start(b), jc = start(c);
  // a finishes before the watch broke; b finishes while nobody watches and the history is
  // compacted, so only a relist can reveal it; c finishes after.
  run_pod(ja, "pa", "a\n", 0, "Completed");
  api.set_job_condition("default", ja, "SuccessCriteriaMet", "CompletionsReached");
  REQUIRE(await(1));
  REQUIRE(api.wait_for_watchers(2));
  api.pause_watches(true);
  run_pod(jb, "pb", "b\n", 4, "Error");
  api.set_job_condition("default", jb, "FailureTarget", "BackoffLimitExceeded");
  api.compact_history();
  api.pause_watches(false);
  REQUIRE(await(2));
  CHECK(done[1].key == "b/0");
  CHECK(done[1].exit_code == 4);
  CHECK(api.lists(kube::Resource::kJobs) == 2);
  run_pod(jc, "pc", "c\n", 0, "Completed");
  api.set_job_condition("default", jc, "SuccessCriteriaMet", "CompletionsReached");
  REQUIRE(await(3));
  CHECK(quiet_for(100ms));
  std::vector<std::string> keys;
  for (const auto& d : done) keys.push_back(d.key);
  CHECK(keys == std::vector<std::string>{"a/0", "b/0", "c/0"});
  CHECK(read(b.stdout_path) == "b\n");
  CHECK(executor->running() == 0);
}

TEST_CASE_METHOD(Fixture, "kube: AlreadyExists adopts the attempt's own Job", "[kube]") {
  auto l = launch("s");
  json existing = executor->manifest_for(l).value();
  api.put_job("default", existing);
  std::string job = start(l);
  CHECK(api.created_jobs().empty());
  CHECK(executor->running() == 1);
  run_pod(job, "p1", "adopted\n", 0, "Completed");
  api.set_job_condition("default", job, "Complete", "CompletionsReached");
  REQUIRE(await(1));
  CHECK(done[0].outcome == exec::Outcome::kSucceeded);
  CHECK(read(l.stdout_path) == "adopted\n");
}

TEST_CASE_METHOD(Fixture, "kube: a lost create response is adopted, a foreign Job is refused", "[kube]") {
  auto l = launch("s");
  api.fail_next_create({0, "", "connection reset by peer", 0}, true);
  start(l);
  CHECK(executor->running() == 1);

  auto other = launch("t");
  json foreign = executor->manifest_for(other).value();
  foreign["metadata"]["annotations"][exec::kAnnotationRun] = "999";
  api.put_job("default", foreign);
  // A refused create is the attempt's kLaunchFailed completion (creates run on the pool).
  REQUIRE(executor->start(other).ok());
  REQUIRE(await(1));
  CHECK(done[0].key == "t/0");
  CHECK(done[0].outcome == exec::Outcome::kLaunchFailed);
  CHECK(done[0].reason.find("already exists") != std::string::npos);
  CHECK(done[0].reason.find("kubectl delete job -n default") != std::string::npos);
  CHECK(executor->running() == 1);

  api.fail_next_create({403, "Forbidden", "jobs.batch is forbidden: User \"x\" cannot create resource \"jobs\"", 0});
  REQUIRE(executor->start(launch("u")).ok());
  REQUIRE(await(2));
  CHECK(done[1].key == "u/0");
  CHECK(done[1].outcome == exec::Outcome::kLaunchFailed);
  CHECK(done[1].reason.find("forbidden") != std::string::npos);
  CHECK(executor->running() == 1);
}

TEST_CASE_METHOD(Fixture, "kube: cancel_all deletes every Job of the run", "[kube]") {
  auto a = launch("a");
  auto b = launch("b");
  std::string ja = start(a), jb = start(b);
  api.add_pod("default", ja, "pa");
  api.set_pod_status("default", "pa", running());
  api.append_log("default", "pa", "working\n");
  // A Job of this run that mflow no longer tracks (e.g. a finished one).
  json stray = executor->manifest_for(launch("old")).value();
  api.put_job("default", stray);
  std::string stray_name = stray["metadata"]["name"];
  executor->cancel_all();
  REQUIRE(await(2));
  for (const auto& d : done) CHECK(d.outcome == exec::Outcome::kCancelled);
  auto deleted = deleted_jobs_eventually(3);
  std::sort(deleted.begin(), deleted.end());
  std::vector<std::string> expected = {ja, jb, stray_name};
  std::sort(expected.begin(), expected.end());
  CHECK(deleted == expected);
  CHECK(api.list(kube::Resource::kPods, "default", "").value->items.empty());
  CHECK(executor->running() == 0);
}

TEST_CASE_METHOD(Fixture, "kube: a Job deleted by someone else fails its task", "[kube]") {
  auto l = launch("s");
  std::string job = start(l);
  REQUIRE(api.wait_for_watchers(2));
  api.remove_job("default", job);
  REQUIRE(await(1));
  CHECK(done[0].outcome == exec::Outcome::kFailed);
  CHECK(done[0].reason.find("deleted outside mflow") != std::string::npos);
}

TEST_CASE_METHOD(Fixture, "kube: a Job without any pod fails after the pending grace", "[kube]") {
  auto l = launch("s");
  std::string job = start(l);
  CHECK(quiet_for(50ms));
  advance(6min);
  REQUIRE(await(1));
  CHECK(done[0].outcome == exec::Outcome::kLaunchFailed);
  CHECK(done[0].reason.find("kubectl describe job") != std::string::npos);
}

TEST_CASE_METHOD(Fixture, "kube: a verdict whose pods were never seen is reported after the settle time", "[kube]") {
  auto l = launch("s");
  std::string job = start(l);
  api.pause_watches(true);  // the pod's events never reach mflow
  api.add_pod("default", job, "p1");
  api.set_pod_status("default", "p1", terminated(0, "Completed"));
  api.remove_pod("default", "p1");  // and it is gone before the relist
  api.compact_history();
  api.pause_watches(false);
  api.set_job_condition("default", job, "Complete", "CompletionsReached");
  CHECK(quiet_for(100ms));
  advance(11s);
  REQUIRE(await(1));
  CHECK(done[0].outcome == exec::Outcome::kSucceeded);
}

TEST_CASE("kube: pod diagnosis reads Kubernetes status shapes", "[kube]") {
  auto d = exec::diagnose_pod({{"status", terminated(137, "OOMKilled")}});
  CHECK(d.terminated);
  CHECK(d.oom_killed);
  CHECK(d.exit_code == 137);
  d = exec::diagnose_pod({{"status", waiting("ErrImagePull", "not found")}});
  CHECK(d.image_pull_failing);
  CHECK_FALSE(d.terminated);
  d = exec::diagnose_pod({{"status", waiting("CreateContainerConfigError", "secret \"x\" not found")}});
  CHECK(d.config_error);
  d = exec::diagnose_pod({{"status", {{"phase", "Failed"}, {"reason", "DeadlineExceeded"}, {"message", "Pod was active on the node longer than the specified deadline"}}}});
  CHECK(d.deadline);
  CHECK(d.terminated);
  CHECK(exec::diagnose_pod({{"status", running()}}).running);
}

TEST_CASE_METHOD(Fixture, "issue_8 kube: a Job of another datastore is neither adopted nor deleted", "[kube]") {
  // Run ids restart at 1 in every datastore: the same run id, step and task in another
  // datastore must be another Job, and the one of that name from elsewhere is refused.
  auto l = launch("s");
  json foreign = executor->manifest_for(l).value();
  foreign["metadata"]["annotations"][exec::kAnnotationDatastore] = "ffffffffffffffffffffffffffffffff";
  foreign["metadata"]["labels"][exec::kLabelDatastore] = "ffffffffffffffffffffffffffffffff";
  api.put_job("default", foreign);
  REQUIRE(executor->start(l).ok());
  REQUIRE(await(1));
  CHECK(done[0].outcome == exec::Outcome::kLaunchFailed);
  CHECK(done[0].reason.find("another datastore") != std::string::npos);

  // Ctrl-C lists the run's Jobs by datastore and run: a Job with the same run label from
  // another datastore stays.
  json other = foreign;
  other["metadata"]["name"] = "mflow-bigsum-other-1001-0-0-12345678";
  api.put_job("default", other);
  std::string mine = start(launch("t"));
  executor->cancel_all();
  REQUIRE(await(2));
  CHECK(deleted_jobs_eventually(1) == std::vector<std::string>{mine});
  CHECK(api.get_job("default", foreign["metadata"]["name"]).ok());
  CHECK(api.get_job("default", "mflow-bigsum-other-1001-0-0-12345678").ok());
}
