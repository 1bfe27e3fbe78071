#include "store/datastore.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "base/file_util.h"
#include "base/hash.h"
#include "store/layout.h"
#include "support/temp_dir.h"

using namespace mflow;
namespace fs = std::filesystem;

namespace {

void write(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary);
  f << content;
  REQUIRE(f.good());
}

std::string slurp(const std::string& path) {
  auto r = base::read_file(path);
  REQUIRE(r.ok());
  return r.value();
}

store::Clock::time_point ms(int64_t v) {
  return store::Clock::time_point(std::chrono::milliseconds(v));
}

struct StoreFixture {
  test::TempDir tmp;
  std::string root = tmp.path() + "/ds";
  store::Datastore ds = store::Datastore::open(root, true).value();

  store::RunInfo new_run(const std::string& flow, store::RunLock* lock) {
    store::RunInfo info;
    info.flow = flow;
    info.flow_file = "/flows/" + flow + ".yaml";
    info.started = ms(1795401819689);
    info.params = {{"size", "10"}};
    info.command = "mflow run " + flow + ".yaml";
    auto r = ds.create_run(info, lock);
    REQUIRE(r.ok());
    return r.value();
  }

  store::TaskRecord task(const std::string& run_id, const std::string& step, const std::string& id,
                         std::vector<int64_t> index_path = {}) {
    store::TaskRecord t;
    t.run_id = run_id;
    t.step = step;
    t.task_id = id;
    t.index_path = std::move(index_path);
    t.status = store::TaskStatus::kSucceeded;
    store::AttemptRecord a;
    a.outcome = "succeeded";
    a.exit_code = 0;
    a.started = ms(1795401819689);
    a.finished = ms(1795401819999);
    t.attempts.push_back(a);
    return t;
  }

  std::string out_dir(const std::string& name = "out") {
    std::string d = tmp.path() + "/" + name;
    REQUIRE(base::make_dirs(d).ok());
    return d;
  }

  size_t object_count() {
    size_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(root + "/objects")) {
      if (e.is_regular_file() && e.path().parent_path().filename() != "tmp") ++n;
    }
    return n;
  }
};

// Runs `body` in a forked child that reports one line through a pipe; returns the pid and
// the line. The child never returns into the test framework.
template <typename F>
std::pair<pid_t, std::string> fork_and_report(F body) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    std::string line = body() + "\n";
    if (::write(fds[1], line.data(), line.size()) < 0) ::_exit(2);
    ::close(fds[1]);
    ::pause();  // until killed, unless body() already left
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string line;
  char c;
  while (::read(fds[0], &c, 1) == 1 && c != '\n') line += c;
  ::close(fds[0]);
  return {pid, line};
}

}  // namespace

TEST_CASE("a new datastore has a FORMAT file; reopening works", "[store]") {
  test::TempDir tmp;
  std::string root = tmp.path() + "/a/b";
  auto ds = store::Datastore::open(root, true);
  REQUIRE(ds.ok());
  CHECK(ds->root() == root);
  CHECK(slurp(root + "/FORMAT") == "mflow-datastore 1\n");
  CHECK(fs::is_directory(root + "/runs"));
  CHECK(store::Datastore::open(root, false).ok());
  CHECK(store::Datastore::open(root + "/", true).ok());

  SECTION("a relative root becomes absolute") {
    auto old = fs::current_path();
    fs::current_path(tmp.path());
    auto rel = store::Datastore::open("./a/b", false);
    fs::current_path(old);
    REQUIRE(rel.ok());
    CHECK(rel->root() == root);
  }
}

TEST_CASE("concurrent initialisation of a new datastore agrees", "[store]") {
  test::TempDir tmp;
  std::string root = tmp.path() + "/fresh";
  std::vector<std::string> errors(8);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < errors.size(); ++t) {
    threads.emplace_back([&, t] {
      auto ds = store::Datastore::open(root, true);
      if (!ds.ok()) errors[t] = ds.status().message();
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors) CHECK(e.empty());
  CHECK(slurp(root + "/FORMAT") == "mflow-datastore 1\n");
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"FORMAT", "ID", "objects", "runs"});  // no temp left
}

TEST_CASE("issue_8 every datastore has its own identity, agreed on by concurrent first users", "[store]") {
  test::TempDir tmp;
  // Created with the datastore, stable, and different for another datastore.
  auto a = store::Datastore::open(tmp.path() + "/a", true).value();
  auto b = store::Datastore::open(tmp.path() + "/b", true).value();
  std::string id = a.identity().value();
  CHECK(store::layout::is_datastore_id(id));
  CHECK(slurp(tmp.path() + "/a/ID") == id + "\n");
  CHECK(store::Datastore::open(tmp.path() + "/a", false).value().identity().value() == id);
  CHECK(b.identity().value() != id);

  // A datastore from before identities (no ID file) gets one on first use; processes that
  // race for it all end up with the one that was published first.
  REQUIRE(::unlink((tmp.path() + "/a/ID").c_str()) == 0);
  CHECK_FALSE(a.existing_identity().ok());
  std::vector<pid_t> children;
  for (int i = 0; i < 6; ++i) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      auto ds = store::Datastore::open(tmp.path() + "/a", false);
      auto got = ds.ok() ? ds->identity() : base::Result<std::string>(ds.status());
      std::ofstream(tmp.path() + "/seen." + std::to_string(i)) << (got.ok() ? got.value() : "error");
      ::_exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) ::waitpid(pid, nullptr, 0);
  std::string winner = slurp(tmp.path() + "/a/ID");
  REQUIRE(winner.size() == 33);
  CHECK(winner.substr(0, 32) != id);
  for (int i = 0; i < 6; ++i) CHECK(slurp(tmp.path() + "/seen." + std::to_string(i)) + "\n" == winner);
  for (const auto& e : fs::directory_iterator(tmp.path() + "/a")) {
    CHECK(e.path().filename().string().rfind(".ID.", 0) != 0);  // no temp left
  }

  // A damaged ID is reported with its path, not silently replaced.
  write(tmp.path() + "/a/ID", "not an id\n");
  auto damaged = a.identity();
  REQUIRE_FALSE(damaged.ok());
  CHECK(damaged.status().message().find(tmp.path() + "/a/ID") != std::string::npos);
}

TEST_CASE("opening refuses missing, foreign, damaged and newer datastores", "[store]") {
  test::TempDir tmp;
  auto missing = store::Datastore::open(tmp.path() + "/nope", false);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == base::StatusCode::kNotFound);
  CHECK_THAT(missing.status().message(), Catch::Contains(tmp.path() + "/nope"));
  CHECK_THAT(missing.status().message(), Catch::Contains("--datastore"));

  std::string foreign = tmp.path() + "/home";
  REQUIRE(base::make_dirs(foreign).ok());
  write(foreign + "/notes.txt", "mine");
  auto refused = store::Datastore::open(foreign, true);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(), Catch::Contains("not an mflow datastore"));
  CHECK_FALSE(fs::exists(foreign + "/FORMAT"));
  CHECK_FALSE(store::Datastore::open(foreign, false).ok());

  std::string newer = tmp.path() + "/newer";
  REQUIRE(store::Datastore::open(newer, true).ok());
  write(newer + "/FORMAT", "mflow-datastore 2\n");
  auto too_new = store::Datastore::open(newer, false);
  REQUIRE_FALSE(too_new.ok());
  CHECK_THAT(too_new.status().message(), Catch::Contains("format version 2"));
  CHECK_THAT(too_new.status().message(), Catch::Contains("reads versions up to 1"));
  CHECK_THAT(too_new.status().message(), Catch::Contains("upgrade mflow"));
  CHECK_FALSE(store::Datastore::open(newer, true).ok());
  CHECK(slurp(newer + "/FORMAT") == "mflow-datastore 2\n");  // never rewritten

  write(newer + "/FORMAT", "sqlite 3\n");
  auto garbage = store::Datastore::open(newer, false);
  REQUIRE_FALSE(garbage.ok());
  CHECK_THAT(garbage.status().message(), Catch::Contains(newer + "/FORMAT"));
  CHECK_THAT(garbage.status().message(), Catch::Contains("mflow-datastore <version>"));

  write(tmp.path() + "/file", "x");
  auto not_dir = store::Datastore::open(tmp.path() + "/file", true);
  REQUIRE_FALSE(not_dir.ok());
  CHECK_THAT(not_dir.status().message(), Catch::Contains("not a directory"));
}

TEST_CASE_METHOD(StoreFixture, "runs round-trip and list in order", "[store]") {
  store::RunLock lock1, lock2, lock3;
  auto r1 = new_run("alpha", &lock1);
  auto r2 = new_run("beta", &lock2);
  auto r3 = new_run("alpha", &lock3);
  CHECK(r1.run_id == "1");
  CHECK(r2.run_id == "2");
  CHECK(r3.run_id == "3");
  CHECK(lock1.held());

  auto back = ds.read_run("1");
  REQUIRE(back.ok());
  CHECK(back->flow == "alpha");
  CHECK(back->flow_file == "/flows/alpha.yaml");
  CHECK(back->status == store::RunStatus::kRunning);
  CHECK(back->started == ms(1795401819689));
  CHECK_FALSE(back->finished.has_value());
  CHECK(back->params == std::map<std::string, std::string>{{"size", "10"}});
  CHECK(back->command == "mflow run alpha.yaml");
  CHECK_THAT(slurp(root + "/runs/1/run.json"), Catch::StartsWith("{\n  \"format\": 1,"));
  CHECK_THAT(slurp(root + "/runs/1/run.json"),
             Catch::Contains("\"started\": \"2026-11-23T02:43:39.689Z\""));

  r1.status = store::RunStatus::kFailed;
  r1.finished = ms(1795401829689);
  r1.exit_code = 1;
  r1.origin_run_id = "7";
  REQUIRE(ds.write_run(r1).ok());
  back = ds.read_run("1");
  REQUIRE(back.ok());
  CHECK(back->status == store::RunStatus::kFailed);
  CHECK(back->finished == r1.finished);
  CHECK(back->exit_code == 1);
  CHECK(back->origin_run_id == "7");

  auto all = ds.list_runs();
  REQUIRE(all.ok());
  REQUIRE(all->size() == 3);
  CHECK(all->at(0).run_id == "1");
  CHECK(all->at(2).run_id == "3");
  auto alpha = ds.list_runs("alpha");
  REQUIRE(alpha.ok());
  REQUIRE(alpha->size() == 2);
  CHECK(alpha->at(1).run_id == "3");
  auto latest = ds.latest_run("alpha");
  REQUIRE(latest.ok());
  CHECK(latest->run_id == "3");
  auto none = ds.latest_run("gamma");
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().code() == base::StatusCode::kNotFound);
  CHECK_THAT(none.status().message(), Catch::Contains("gamma"));

  // Ids keep growing numerically past 9 (sorted as numbers, not strings).
  std::vector<store::RunLock> locks(8);
  for (auto& l : locks) new_run("alpha", &l);
  auto many = ds.list_runs();
  REQUIRE(many.ok());
  REQUIRE(many->size() == 11);
  CHECK(many->at(9).run_id == "10");
  CHECK(many->back().run_id == "11");
  CHECK(ds.latest_run("alpha")->run_id == "11");
}

TEST_CASE_METHOD(StoreFixture, "bad run ids never escape the datastore", "[store]") {
  for (const char* id : {"../1", "", "0", "abc", "1/../../x"}) {
    INFO(id);
    auto r = ds.read_run(id);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == base::StatusCode::kNotFound);
    CHECK_THAT(r.status().message(), Catch::Contains("not a run id"));
  }
  auto empty = ds.latest_run("");
  REQUIRE_FALSE(empty.ok());
  CHECK_THAT(empty.status().message(), Catch::Contains("no runs in datastore " + root));
  auto missing = ds.read_run("42");
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Catch::Contains("no run 42"));
  CHECK_FALSE(ds.task_dir("1", "..", "0").ok());
  CHECK_FALSE(ds.task_dir("1", "s", "a/b").ok());
  CHECK_FALSE(ds.make_output_dir("1", "s", "../../x", 0).ok());
}

TEST_CASE_METHOD(StoreFixture, "a running run whose process died is reported as crashed",
                 "[store]") {
  SECTION("in-process lock") {
    store::RunInfo run;
    {
      store::RunLock lock;
      run = new_run("f", &lock);
      CHECK(ds.read_run(run.run_id)->status == store::RunStatus::kRunning);
      CHECK(ds.list_runs()->at(0).status == store::RunStatus::kRunning);
    }
    CHECK(ds.read_run(run.run_id)->status == store::RunStatus::kCrashed);
    CHECK(ds.list_runs()->at(0).status == store::RunStatus::kCrashed);
    // A finished run is what it says, lock or no lock.
    run.status = store::RunStatus::kSucceeded;
    REQUIRE(ds.write_run(run).ok());
    CHECK(ds.read_run(run.run_id)->status == store::RunStatus::kSucceeded);
  }
  SECTION("another process killed with SIGKILL") {
    std::string r = root;
    auto [pid, run_id] = fork_and_report([r] {
      auto child_ds = store::Datastore::open(r, false);
      if (!child_ds.ok()) return std::string("error");
      static store::RunLock lock;  // held until the process dies
      store::RunInfo info;
      info.flow = "f";
      auto run = child_ds->create_run(info, &lock);
      return run.ok() ? run->run_id : std::string("error");
    });
    REQUIRE(run_id == "1");
    auto alive = ds.read_run(run_id);
    REQUIRE(alive.ok());
    CHECK(alive->status == store::RunStatus::kRunning);
    // A second reader probing at the same time must not disturb the verdict.
    CHECK(ds.read_run(run_id)->status == store::RunStatus::kRunning);
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status));
    auto dead = ds.read_run(run_id);
    REQUIRE(dead.ok());
    CHECK(dead->status == store::RunStatus::kCrashed);
  }
}

TEST_CASE_METHOD(StoreFixture, "run ids are unique under concurrent creation", "[store]") {
  SECTION("threads") {
    constexpr int kThreads = 8, kEach = 25;
    std::vector<std::vector<std::string>> ids(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        auto mine = store::Datastore::open(root, true);  // each thread its own handle
        if (!mine.ok()) return;
        for (int k = 0; k < kEach; ++k) {
          store::RunLock lock;
          store::RunInfo info;
          info.flow = "f";
          auto run = mine->create_run(info, &lock);
          ids[t].push_back(run.ok() ? run->run_id : "error: " + run.status().message());
        }
      });
    }
    for (auto& th : threads) th.join();
    std::set<std::string> unique;
    for (const auto& v : ids) {
      REQUIRE(v.size() == kEach);
      for (const auto& id : v) {
        INFO(id);
        REQUIRE(store::layout::is_run_id(id));
        unique.insert(id);
      }
    }
    CHECK(unique.size() == kThreads * kEach);
    CHECK(ds.list_runs()->size() == kThreads * kEach);
  }
  SECTION("processes") {
    // All children wait on one pipe and start creating runs together when it closes.
    constexpr int kProcs = 6, kEach = 25;
    int go[2];
    REQUIRE(::pipe(go) == 0);
    std::vector<pid_t> pids;
    std::vector<int> results;
    for (int p = 0; p < kProcs; ++p) {
      int out[2];
      REQUIRE(::pipe(out) == 0);
      pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        ::close(go[1]);
        ::close(out[0]);
        char c;
        while (::read(go[0], &c, 1) > 0) {
        }
        auto mine = store::Datastore::open(root, true);
        std::string ids;
        for (int k = 0; k < kEach && mine.ok(); ++k) {
          store::RunLock lock;
          store::RunInfo info;
          info.flow = "f";
          auto run = mine->create_run(info, &lock);
          ids += (run.ok() ? run->run_id : std::string("error")) + "\n";
        }
        bool ok = ::write(out[1], ids.data(), ids.size()) == static_cast<ssize_t>(ids.size());
        ::_exit(ok ? 0 : 1);
      }
      ::close(out[1]);
      pids.push_back(pid);
      results.push_back(out[0]);
    }
    ::close(go[0]);
    ::close(go[1]);  // start
    std::multiset<std::string> all;
    for (int fd : results) {
      std::string text;
      char buf[4096];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
      ::close(fd);
      std::istringstream lines(text);
      for (std::string line; std::getline(lines, line);) all.insert(line);
    }
    for (pid_t pid : pids) {
      int status = 0;
      REQUIRE(::waitpid(pid, &status, 0) == pid);
      CHECK(WIFEXITED(status));
      CHECK(WEXITSTATUS(status) == 0);
    }
    CHECK(all.count("error") == 0);
    REQUIRE(all.size() == kProcs * kEach);
    CHECK(std::set<std::string>(all.begin(), all.end()).size() == kProcs * kEach);
    // Allocation is dense: ids 1..N, none skipped or reused.
    CHECK(all.count("1") == 1);
    CHECK(all.count(std::to_string(kProcs * kEach)) == 1);
    auto listed = ds.list_runs();
    REQUIRE(listed.ok());
    CHECK(listed->size() == kProcs * kEach);
    for (const auto& r : listed.value()) CHECK(r.status == store::RunStatus::kCrashed);
  }
}

TEST_CASE_METHOD(StoreFixture, "task records round-trip and list in order", "[store]") {
  store::RunLock lock;
  auto run = new_run("f", &lock);
  auto t = task(run.run_id, "start", "0");
  t.spec_hash = "h1";
  t.outputs = {{"x", {std::string(64, 'a'), 3}}};
  t.view = t.outputs;
  t.num_splits = 12;
  t.resources = {{"cpu", "2"}};
  REQUIRE(ds.task_dir(run.run_id, "start", "0").ok());
  REQUIRE(ds.write_task(t).ok());
  auto back = ds.read_task(run.run_id, "start", "0");
  REQUIRE(back.ok());
  CHECK(back->spec_hash == "h1");
  CHECK(back->outputs == t.outputs);
  CHECK(back->num_splits == std::optional<int64_t>(12));
  CHECK(back->resources == t.resources);
  REQUIRE(back->attempts.size() == 1);
  CHECK(back->attempts[0].finished == ms(1795401819999));

  // write_task creates the directory when task_dir was not called first.
  for (int i = 11; i >= 0; --i) {
    REQUIRE(ds.write_task(task(run.run_id, "body", std::to_string(i), {i})).ok());
  }
  REQUIRE(ds.write_task(task(run.run_id, "inner", "1.10", {1, 10})).ok());
  REQUIRE(ds.write_task(task(run.run_id, "inner", "1.9", {1, 9})).ok());
  REQUIRE(ds.write_task(task(run.run_id, "inner", "0.3", {0, 3})).ok());
  REQUIRE(ds.write_task(task(run.run_id, "end", "0")).ok());

  auto all = ds.list_tasks(run.run_id);
  REQUIRE(all.ok());
  std::vector<std::string> order;
  for (const auto& r : all.value()) order.push_back(r.step + "/" + r.task_id);
  CHECK(order == std::vector<std::string>{"body/0", "body/1", "body/2", "body/3", "body/4",
                                          "body/5", "body/6", "body/7", "body/8", "body/9",
                                          "body/10", "body/11", "end/0", "inner/0.3", "inner/1.9",
                                          "inner/1.10", "start/0"});
  auto body = ds.list_tasks(run.run_id, "body");
  REQUIRE(body.ok());
  CHECK(body->size() == 12);
  auto none = ds.list_tasks(run.run_id, "nosuchstep");
  REQUIRE(none.ok());
  CHECK(none->empty());
  auto no_run = ds.list_tasks("99");
  REQUIRE_FALSE(no_run.ok());
  CHECK(no_run.status().code() == base::StatusCode::kNotFound);

  auto missing = ds.read_task(run.run_id, "start", "5");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == base::StatusCode::kNotFound);
  CHECK_THAT(missing.status().message(), Catch::Contains("start/5"));
}

TEST_CASE_METHOD(StoreFixture, "temp files and damaged records do not break readers", "[store]") {
  store::RunLock l1, l2, l3;
  auto r1 = new_run("f", &l1);
  auto r2 = new_run("f", &l2);
  auto r3 = new_run("f", &l3);
  for (const char* id : {"0", "1", "2"}) REQUIRE(ds.write_task(task(r1.run_id, "s", id)).ok());

  // What a writer killed mid-write leaves behind: its temp files, next to the records.
  std::string t0 = root + "/runs/1/tasks/s/0";
  write(t0 + "/task.json.tmp.12345.7", R"({"format":1,"run_id":"1","st)");
  write(root + "/runs/1/run.json.tmp.12345.8", "{");
  write(root + "/objects/tmp/12345.9.tmp", "partial object");
  // A task directory created but not recorded yet (killed between the two steps).
  REQUIRE(ds.task_dir(r1.run_id, "s", "3").ok());
  // A damaged record (for instance edited by hand, or a disk error): truncated JSON.
  std::string full = slurp(root + "/runs/1/tasks/s/1/task.json");
  write(root + "/runs/1/tasks/s/1/task.json", full.substr(0, full.size() / 2));
  // Junk in the runs directory, and a run directory whose creation was interrupted.
  REQUIRE(base::make_dirs(root + "/runs/junk").ok());
  // (A creator holds the run's lock before it writes run.json, so a killed one leaves that.)
  REQUIRE(base::make_dirs(root + "/runs/17").ok());
  write(root + "/runs/17/lock", "");
  // A damaged run record.
  write(root + "/runs/2/run.json", "");

  std::vector<base::Status> problems;
  auto tasks = ds.list_tasks(r1.run_id, "", &problems);
  REQUIRE(tasks.ok());
  REQUIRE(tasks->size() == 2);
  CHECK(tasks->at(0).task_id == "0");
  CHECK(tasks->at(1).task_id == "2");
  REQUIRE(problems.size() == 1);
  CHECK_THAT(problems[0].message(), Catch::Contains(root + "/runs/1/tasks/s/1/task.json"));
  CHECK_THAT(problems[0].message(), Catch::Contains("not valid JSON"));
  CHECK(ds.list_tasks(r1.run_id)->size() == 2);  // no problems vector: still fine

  auto damaged = ds.read_task(r1.run_id, "s", "1");
  REQUIRE_FALSE(damaged.ok());
  CHECK_THAT(damaged.status().message(), Catch::Contains(root + "/runs/1/tasks/s/1/task.json"));
  CHECK(ds.read_task(r1.run_id, "s", "0").ok());

  problems.clear();
  auto runs = ds.list_runs("", &problems);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 2);
  CHECK(runs->at(0).run_id == r1.run_id);
  CHECK(runs->at(1).run_id == r3.run_id);
  REQUIRE(problems.size() == 1);
  CHECK_THAT(problems[0].message(), Catch::Contains(root + "/runs/2/run.json"));
  CHECK(ds.read_run(r1.run_id).ok());
  auto bad_run = ds.read_run(r2.run_id);
  REQUIRE_FALSE(bad_run.ok());
  CHECK_THAT(bad_run.status().message(), Catch::Contains("empty file"));
  auto unborn = ds.read_run("17");
  REQUIRE_FALSE(unborn.ok());
  CHECK_THAT(unborn.status().message(), Catch::Contains("can be deleted"));
  CHECK(ds.latest_run("f")->run_id == r3.run_id);

  // The interrupted run directory still counts for allocation: ids are never reused.
  store::RunLock l4;
  CHECK(new_run("f", &l4).run_id == "18");
}

TEST_CASE_METHOD(StoreFixture, "ingest deduplicates and stores read-only objects", "[store]") {
  std::string out = out_dir();
  write(out + "/a", "same bytes");
  write(out + "/b", "same bytes");
  write(out + "/c", "other");
  write(out + "/empty", "");
  auto refs = ds.ingest_dir(out);
  REQUIRE(refs.ok());
  REQUIRE(refs->size() == 4);
  CHECK(refs->at("a") == refs->at("b"));
  CHECK(refs->at("a").sha256 == base::sha256_hex("same bytes"));
  CHECK(refs->at("a").size == 10);
  CHECK(refs->at("empty").size == 0);
  CHECK(object_count() == 3);
  CHECK(fs::is_empty(out));  // moved or deleted, never left behind
  struct stat st;
  REQUIRE(::stat(ds.object_path(refs->at("c").sha256).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0444);

  // The same bytes again, from another task and through put_bytes: still one object each.
  write(out + "/again", "other");
  auto again = ds.ingest_dir(out);
  REQUIRE(again.ok());
  CHECK(again->at("again") == refs->at("c"));
  auto put = ds.put_bytes("same bytes");
  REQUIRE(put.ok());
  CHECK(put.value() == refs->at("a"));
  CHECK(object_count() == 3);
  auto fresh = ds.put_bytes("[1,2,3]");
  REQUIRE(fresh.ok());
  CHECK(object_count() == 4);
  CHECK(ds.read_object(fresh.value()).value() == "[1,2,3]");
  CHECK(fs::is_empty(root + "/objects/tmp"));
}

TEST_CASE_METHOD(StoreFixture, "ingest refuses bad names and directories, naming the file",
                 "[store]") {
  std::string out = out_dir();
  write(out + "/good", "1");
  write(out + "/bad name", "2");
  auto r = ds.ingest_dir(out);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == base::StatusCode::kInvalid);
  CHECK_THAT(r.status().message(), Catch::Contains(out + "/bad name"));
  CHECK_THAT(r.status().message(), Catch::Contains("[A-Za-z_][A-Za-z0-9_.-]*"));
  CHECK(fs::exists(out + "/good"));  // nothing was ingested
  CHECK(object_count() == 0);

  fs::remove(out + "/bad name");
  REQUIRE(base::make_dirs(out + "/model").ok());
  r = ds.ingest_dir(out);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains(out + "/model"));
  CHECK_THAT(r.status().message(), Catch::Contains("is a directory"));

  fs::remove(out + "/model");
  write(out + "/.hidden", "x");
  r = ds.ingest_dir(out);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains(".hidden"));

  fs::remove(out + "/.hidden");
  REQUIRE(::mkfifo((out + "/pipe").c_str(), 0644) == 0);
  r = ds.ingest_dir(out);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("not a regular file"));
  fs::remove(out + "/pipe");
  CHECK(ds.ingest_dir(out).ok());
}

TEST_CASE_METHOD(StoreFixture, "linked files are copied in, never taken over", "[store]") {
  std::string out = out_dir();
  std::string outside = tmp.path() + "/user-data";
  write(outside, "precious");
  write(tmp.path() + "/other", "via symlink");
  REQUIRE(::link(outside.c_str(), (out + "/hard").c_str()) == 0);
  fs::create_symlink(tmp.path() + "/other", out + "/soft");
  auto refs = ds.ingest_dir(out);
  REQUIRE(refs.ok());
  CHECK(refs->at("hard").sha256 == base::sha256_hex("precious"));
  CHECK(refs->at("soft").sha256 == base::sha256_hex("via symlink"));
  CHECK(refs->at("soft").size == 11);
  // The user's file keeps its mode and is not an object link.
  struct stat st;
  REQUIRE(::stat(outside.c_str(), &st) == 0);
  CHECK((st.st_mode & 0200) != 0);
  struct stat obj;
  REQUIRE(::stat(ds.object_path(refs->at("hard").sha256).c_str(), &obj) == 0);
  CHECK(obj.st_ino != st.st_ino);
  CHECK(slurp(tmp.path() + "/other") == "via symlink");
}

TEST_CASE_METHOD(StoreFixture, "materialize links objects into a directory", "[store]") {
  std::string out = out_dir();
  write(out + "/model", "weights");
  write(out + "/items", "[1,2]");
  auto refs = ds.ingest_dir(out);
  REQUIRE(refs.ok());
  std::string in = tmp.path() + "/in/0";  // created on demand
  write(tmp.path() + "/stale", "");
  REQUIRE(base::make_dirs(in).ok());
  write(in + "/model", "an older value");  // replaced, not an error
  REQUIRE(ds.materialize(refs.value(), in).ok());
  CHECK(slurp(in + "/model") == "weights");
  CHECK(slurp(in + "/items") == "[1,2]");
  struct stat a, b;
  REQUIRE(::stat((in + "/model").c_str(), &a) == 0);
  REQUIRE(::stat(ds.object_path(refs->at("model").sha256).c_str(), &b) == 0);
  CHECK(a.st_ino == b.st_ino);  // a hard link, not a copy
  auto bytes = ds.read_object(refs->at("items"));
  REQUIRE(bytes.ok());
  CHECK(bytes.value() == "[1,2]");

  store::ArtifactMap missing = {{"gone", {std::string(64, '0'), 1}}};
  auto s = ds.materialize(missing, in);
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains("artifact 'gone'"));
  CHECK_THAT(s.message(), Catch::Contains("missing"));
  auto r = ds.read_object(missing.at("gone"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == base::StatusCode::kNotFound);
  store::ArtifactMap escaping = {{"../x", refs->at("model")}};
  CHECK_FALSE(ds.materialize(escaping, in).ok());
  // A damaged object is detected, not returned.
  store::ArtifactRef wrong = refs->at("items");
  wrong.size = 99;
  CHECK_THAT(ds.read_object(wrong).status().message(), Catch::Contains("damaged"));
}

TEST_CASE_METHOD(StoreFixture, "a 100 MB artifact is streamed, not loaded", "[store]") {
  std::string out = out_dir();
  constexpr int64_t kSize = 100 << 20;
  base::Sha256 expected;
  {
    base::UniqueFd fd(::open((out + "/big").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    REQUIRE(fd);
    std::string chunk(1 << 20, '\0');
    for (int64_t i = 0; i < kSize / static_cast<int64_t>(chunk.size()); ++i) {
      for (size_t k = 0; k < chunk.size(); k += 4096) chunk[k] = static_cast<char>(i + k);
      expected.update(chunk);
      REQUIRE(base::write_all(fd.get(), chunk.data(), chunk.size(), "big").ok());
    }
  }
  rusage before;
  ::getrusage(RUSAGE_SELF, &before);
  auto refs = ds.ingest_dir(out);
  REQUIRE(refs.ok());
  rusage after;
  ::getrusage(RUSAGE_SELF, &after);
  CHECK(refs->at("big").size == kSize);
  CHECK(refs->at("big").sha256 == expected.hex_digest());
  // ru_maxrss is in KiB: ingesting must not have grown the peak by anything like 100 MB.
  CHECK(after.ru_maxrss - before.ru_maxrss < 20 * 1024);
  std::string in = tmp.path() + "/in";
  REQUIRE(ds.materialize(refs.value(), in).ok());
  CHECK(static_cast<int64_t>(fs::file_size(in + "/big")) == kSize);
}

TEST_CASE_METHOD(StoreFixture, "link_logs makes a reused task's logs readable", "[store]") {
  store::RunLock l1, l2;
  auto origin = new_run("f", &l1);
  auto t = task(origin.run_id, "train", "0");
  t.attempts.push_back(t.attempts[0]);
  t.attempts[1].attempt = 1;
  REQUIRE(ds.task_dir(origin.run_id, "train", "0").ok());
  write(ds.log_path(origin.run_id, "train", "0", 0, false), "first try\n");
  write(ds.log_path(origin.run_id, "train", "0", 0, true), "boom\n");
  write(ds.log_path(origin.run_id, "train", "0", 1, false), "second try\n");
  // attempt 1 wrote nothing to stderr: no file, and that is fine
  REQUIRE(ds.write_task(t).ok());

  auto resumed = new_run("f", &l2);
  REQUIRE(ds.link_logs(t, resumed.run_id).ok());
  CHECK(slurp(ds.log_path(resumed.run_id, "train", "0", 0, false)) == "first try\n");
  CHECK(slurp(ds.log_path(resumed.run_id, "train", "0", 0, true)) == "boom\n");
  CHECK(slurp(ds.log_path(resumed.run_id, "train", "0", 1, false)) == "second try\n");
  CHECK_FALSE(fs::exists(ds.log_path(resumed.run_id, "train", "0", 1, true)));
  struct stat a, b;
  REQUIRE(::stat(ds.log_path(origin.run_id, "train", "0", 0, false).c_str(), &a) == 0);
  REQUIRE(::stat(ds.log_path(resumed.run_id, "train", "0", 0, false).c_str(), &b) == 0);
  CHECK(a.st_ino == b.st_ino);
  // Linking again (a retried resume) replaces rather than fails.
  REQUIRE(ds.link_logs(t, resumed.run_id).ok());
}

TEST_CASE_METHOD(StoreFixture, "task input, output and artifacts directories", "[store]") {
  store::RunLock lock;
  auto run = new_run("f", &lock);
  auto out = ds.make_output_dir(run.run_id, "body", "3", 0);
  REQUIRE(out.ok());
  CHECK(out.value() == root + "/runs/1/tasks/body/3/0.out");
  write(out.value() + "/leftover", "x");
  // Recreated empty: leftovers of a replaced pod never become outputs.
  auto again = ds.make_output_dir(run.run_id, "body", "3", 0);
  REQUIRE(again.ok());
  CHECK(fs::is_empty(again.value()));

  write(out.value() + "/x", "ten");
  auto outputs = ds.ingest_dir(out.value());
  REQUIRE(outputs.ok());
  auto dir = ds.write_artifacts_dir(run.run_id, "body", "3", outputs.value());
  REQUIRE(dir.ok());
  CHECK(dir.value() == ds.artifacts_dir(run.run_id, "body", "3"));
  CHECK(base::read_file(dir.value() + "/x").value() == "ten");

  // A join's input: agreed artifacts at the top level, each input as a relative symlink.
  auto other = ds.write_artifacts_dir(run.run_id, "body", "4", {});
  REQUIRE(other.ok());
  auto input = ds.make_input_dir(run.run_id, "join", "0", outputs.value(),
                                 {dir.value(), other.value()});
  REQUIRE(input.ok());
  CHECK(base::read_file(input.value() + "/x").value() == "ten");
  CHECK(base::read_file(input.value() + "/0/x").value() == "ten");
  CHECK(fs::is_directory(input.value() + "/1"));
  CHECK(fs::read_symlink(input.value() + "/0") == "../../../body/3/artifacts");
}

// A run of 10,000 tasks round-trips in order. On tmpfs when the machine has one, to keep the
// test short. Speed is measured by bench/foreach_vs_xargs.sh, not here: timed unit tests
// are noise on shared machines (and meaningless under sanitizers).
TEST_CASE("10,000 tasks in one run are written and listed in order", "[store]") {
  std::string base_dir = fs::is_directory("/dev/shm") && ::access("/dev/shm", W_OK) == 0
                             ? "/dev/shm"
                             : fs::temp_directory_path().string();
  std::string tmpl = base_dir + "/mflow-store-test-XXXXXX";
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } cleanup{tmpl};
  auto ds = store::Datastore::open(tmpl + "/ds", true);
  REQUIRE(ds.ok());
  store::RunLock lock;
  store::RunInfo info;
  info.flow = "f";
  auto run = ds->create_run(info, &lock);
  REQUIRE(run.ok());
  const std::string& id = run->run_id;

  for (int i = 0; i < 10000; ++i) {
    store::TaskRecord t;
    t.run_id = id;
    t.step = "body";
    t.task_id = std::to_string(i);
    t.index_path = {i};
    t.attempts.resize(1);
    t.view = {{"items", {std::string(64, 'a'), 100}}, {"x", {std::string(64, 'b'), 4}}};
    REQUIRE(ds->task_dir(id, "body", t.task_id).ok());
    REQUIRE(ds->write_task(t).ok());
    t.status = store::TaskStatus::kSucceeded;
    REQUIRE(ds->write_task(t).ok());  // the running record, then the final one
  }
  auto tasks = ds->list_tasks(id);
  REQUIRE(tasks.ok());
  REQUIRE(tasks->size() == 10000);
  CHECK(tasks->at(9999).task_id == "9999");
  CHECK(tasks->at(5000).view.size() == 2);
  store::RunInfo final_info = run.value();
  final_info.status = store::RunStatus::kSucceeded;
  REQUIRE(ds->write_run(final_info).ok());
}

TEST_CASE_METHOD(StoreFixture, "a running task (logs, no record) is listed only when asked", "[store]") {
  store::RunLock lock;
  auto run = new_run("f", &lock);
  REQUIRE(ds.write_task(task(run.run_id, "body", "0", {0})).ok());
  REQUIRE(ds.write_task(task(run.run_id, "body", "10", {10})).ok());
  // Task 2 runs its second attempt: attempt 0 left stderr only, attempt 1 stdout so far.
  REQUIRE(ds.task_dir(run.run_id, "body", "2").ok());
  REQUIRE(base::write_file_atomic(ds.log_path(run.run_id, "body", "2", 0, true), "e").ok());
  REQUIRE(base::write_file_atomic(ds.log_path(run.run_id, "body", "2", 1, false), "o").ok());
  // Task 3 was set up but has printed nothing: nothing to show.
  REQUIRE(ds.task_dir(run.run_id, "body", "3").ok());

  auto finished = ds.list_tasks(run.run_id, "body");
  REQUIRE(finished.ok());
  CHECK(finished->size() == 2);

  auto all = ds.list_tasks(run.run_id, "body", nullptr, /*include_running=*/true);
  REQUIRE(all.ok());
  std::vector<std::string> order;
  for (const auto& r : all.value()) order.push_back(r.task_id);
  CHECK(order == std::vector<std::string>{"0", "2", "10"});
  const auto& running = all.value()[1];
  CHECK(running.status == store::TaskStatus::kRunning);
  REQUIRE(running.attempts.size() == 2);
  CHECK(running.attempts[0].attempt == 0);
  CHECK(running.attempts[1].attempt == 1);
  CHECK(running.attempts[1].outcome == "running");

  auto none = ds.running_task(run.run_id, "body", "3");
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().code() == base::StatusCode::kNotFound);
  CHECK_FALSE(ds.running_task(run.run_id, "body", "../x").ok());
}
