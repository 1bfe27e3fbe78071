// The datastore logic on the ObjectStore seam, run against both the local directory store
// and the in-memory store with S3's semantics (no rename, append, links or flock; heartbeat
// leases). What passes against both has no hidden dependence on POSIX file semantics. The
// memory store's workspace is a separate directory, as a remote store's cache will be.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <memory>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "base/file_util.h"
#include "base/hash.h"
#include "store/datastore.h"
#include "store/layout.h"
#include "store/local_object_store.h"
#include "support/memory_object_store.h"
#include "support/temp_dir.h"

using namespace mflow;

namespace {

struct LocalSeam {
  test::TempDir tmp;
  std::string root = tmp.path() + "/ds";
  std::shared_ptr<store::ObjectStore> objects;
  LocalSeam() {
    REQUIRE(base::make_dirs(root).ok());
    objects = std::make_shared<store::LocalObjectStore>(root);
  }
  // A second user of the same datastore ("another machine"): locally, the same directory.
  std::string workspace(int /*machine*/) { return root; }
  bool separate_workspaces() const { return false; }
};

struct MemorySeam {
  test::TempDir tmp;
  std::shared_ptr<test::MemoryObjectStore> memory = std::make_shared<test::MemoryObjectStore>();
  std::shared_ptr<store::ObjectStore> objects = memory;
  std::string workspace(int machine) {
    std::string dir = tmp.path() + "/machine" + std::to_string(machine);
    REQUIRE(base::make_dirs(dir).ok());
    return dir;
  }
  bool separate_workspaces() const { return true; }
};

store::Datastore open_on(std::shared_ptr<store::ObjectStore> objects, const std::string& ws) {
  auto ds = store::Datastore::open(std::move(objects), ws, true);
  REQUIRE(ds.ok());
  return std::move(ds.value());
}

store::RunInfo run_info(const std::string& flow) {
  store::RunInfo info;
  info.flow = flow;
  info.flow_file = "/flows/" + flow + ".yaml";
  info.started = store::Clock::time_point(std::chrono::milliseconds(1795401819689));
  info.command = "mflow run " + flow + ".yaml";
  return info;
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
  t.attempts.push_back(a);
  return t;
}

void write(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary);
  f << content;
  REQUIRE(f.good());
}

std::string read_log(const store::Datastore& ds, const std::string& run, const std::string& step,
                     const std::string& id, int attempt, bool err = false) {
  std::string out;
  auto s = ds.read_log(run, step, id, attempt, err, [&](std::string_view piece) {
    out += piece;
    return base::Status();
  });
  REQUIRE(s.ok());
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("seam: FORMAT and ID are created once, whoever races for them", "[store]",
                   LocalSeam, MemorySeam) {
  TestType f;
  std::vector<std::string> ids(6), errors(6);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < ids.size(); ++t) {
    threads.emplace_back([&, t] {
      auto ds = store::Datastore::open(f.objects, f.workspace(static_cast<int>(t % 2)), true);
      if (!ds.ok()) {
        errors[t] = ds.status().message();
        return;
      }
      auto id = ds->identity();
      if (id.ok()) ids[t] = id.value(); else errors[t] = id.status().message();
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors) CHECK(e == "");  // the message, when it fails
  CHECK(f.objects->get("FORMAT").value() == "mflow-datastore 1\n");
  CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == 1);
  CHECK(store::layout::is_datastore_id(ids[0]));
  CHECK(f.objects->get("ID").value() == ids[0] + "\n");
}

TEMPLATE_TEST_CASE("seam: a place holding something else is refused, never taken over", "[store]",
                   LocalSeam, MemorySeam) {
  TestType f;
  REQUIRE(f.objects->put("notes.txt", "mine", store::PutMode::kOverwrite).ok());
  auto refused = store::Datastore::open(f.objects, f.workspace(0), true);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(), Catch::Contains("not an mflow datastore"));
  CHECK(f.objects->get("FORMAT").status().code() == base::StatusCode::kNotFound);
  REQUIRE(f.objects->put("FORMAT", "mflow-datastore 2\n", store::PutMode::kOverwrite).ok());
  auto too_new = store::Datastore::open(f.objects, f.workspace(0), false);
  REQUIRE_FALSE(too_new.ok());
  CHECK_THAT(too_new.status().message(), Catch::Contains("reads versions up to 1"));
}

TEMPLATE_TEST_CASE("seam: run ids are short, unique and never reused under concurrent creation",
                   "[store]", LocalSeam, MemorySeam) {
  TestType f;
  open_on(f.objects, f.workspace(0));
  // Two "machines" with their own Datastore objects start runs at the same instant.
  constexpr int kPerThread = 10;
  std::vector<std::vector<std::string>> got(4);
  std::vector<std::vector<store::RunLock>> locks(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] {
      auto ds = store::Datastore::open(f.objects, f.workspace(static_cast<int>(t % 2)), false);
      if (!ds.ok()) return;
      for (int i = 0; i < kPerThread; ++i) {
        store::RunLock lock;
        auto run = ds->create_run(run_info("f"), &lock);
        if (!run.ok()) continue;
        got[t].push_back(run->run_id);
        locks[t].push_back(std::move(lock));
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (const auto& v : got) {
    CHECK(v.size() == kPerThread);
    all.insert(v.begin(), v.end());
  }
  CHECK(all.size() == 4 * kPerThread);
  for (int i = 1; i <= 4 * kPerThread; ++i) CHECK(all.count(std::to_string(i)) == 1);
  auto ds = open_on(f.objects, f.workspace(1));
  auto runs = ds.list_runs("f");
  REQUIRE(runs.ok());
  CHECK(runs->size() == 4 * kPerThread);
  CHECK(runs->front().run_id == "1");
  CHECK(runs->back().run_id == std::to_string(4 * kPerThread));
  for (const auto& r : runs.value()) CHECK(r.status == store::RunStatus::kRunning);
  CHECK(ds.latest_run("f")->run_id == std::to_string(4 * kPerThread));
}

TEST_CASE("seam: a run whose holder died reads as crashed (heartbeat store)", "[store]") {
  MemorySeam f;
  auto ds = open_on(f.objects, f.workspace(0));
  store::RunLock lock;
  auto run = ds.create_run(run_info("f"), &lock);
  REQUIRE(run.ok());
  auto other = open_on(f.objects, f.workspace(1));
  f.memory->advance(std::chrono::seconds(120));  // the live holder heartbeats
  CHECK(other.read_run(run->run_id)->status == store::RunStatus::kRunning);
  f.memory->kill_holders();  // kill -9: no release, the heartbeat object stays
  CHECK(other.read_run(run->run_id)->status == store::RunStatus::kRunning);  // not stale yet
  f.memory->advance(test::MemoryObjectStore::kStaleAfter);
  CHECK(other.read_run(run->run_id)->status == store::RunStatus::kCrashed);
  // A crashed run's id is never reused.
  store::RunLock lock2;
  CHECK(other.create_run(run_info("f"), &lock2)->run_id == "2");
  // A run recorded as finished stays finished.
  store::RunInfo done = run.value();
  done.status = store::RunStatus::kSucceeded;
  done.finished = done.started;
  REQUIRE(ds.write_run(done).ok());
  CHECK(other.read_run(run->run_id)->status == store::RunStatus::kSucceeded);
}

TEMPLATE_TEST_CASE("seam: task records, running tasks and logs are read from another machine",
                   "[store]", LocalSeam, MemorySeam) {
  TestType f;
  auto a = open_on(f.objects, f.workspace(0));
  store::RunLock lock;
  auto run = a.create_run(run_info("f"), &lock);
  REQUIRE(run.ok());
  const std::string id = run->run_id;
  for (int i : {10, 2, 1}) {
    REQUIRE(a.write_task(task(id, "body", std::to_string(i), {i})).ok());
  }
  REQUIRE(a.write_task(task(id, "start", "0")).ok());
  // A log in parts: the part the local store writes and grows, then shipped parts.
  REQUIRE(f.objects->put(store::layout::key::log_part(id, "body", "7", 0, false, 0), "hello ",
                         store::PutMode::kOverwrite).ok());
  REQUIRE(f.objects->put(store::layout::key::log_part(id, "body", "7", 0, false, 1), "world",
                         store::PutMode::kOverwrite).ok());
  REQUIRE(f.objects->put(store::layout::key::log_part(id, "body", "7", 0, false, 2), "!\n",
                         store::PutMode::kOverwrite).ok());

  auto b = open_on(f.objects, f.workspace(1));
  auto tasks = b.list_tasks(id);
  REQUIRE(tasks.ok());
  std::vector<std::string> order;
  for (const auto& t : tasks.value()) order.push_back(t.step + "/" + t.task_id);
  CHECK(order == std::vector<std::string>{"body/1", "body/2", "body/10", "start/0"});
  auto with_running = b.list_tasks(id, "body", nullptr, /*include_running=*/true);
  REQUIRE(with_running.ok());
  REQUIRE(with_running->size() == 4);
  CHECK(with_running->at(2).task_id == "7");  // ordered by its index path
  CHECK(with_running->at(2).status == store::TaskStatus::kRunning);
  CHECK(b.read_task(id, "body", "10")->index_path == std::vector<int64_t>{10});
  CHECK(b.read_task(id, "body", "7").status().code() == base::StatusCode::kNotFound);

  CHECK(read_log(b, id, "body", "7", 0) == "hello world!\n");
  CHECK(b.log_size(id, "body", "7", 0, false).value() == 13);
  CHECK(read_log(b, id, "body", "7", 0, /*err=*/true).empty());  // never written: empty
  CHECK(b.log_size(id, "body", "7", 0, true).value() == 0);

  // resume's reuse: the new run's task has the same log, every part of it.
  store::RunLock lock2;
  auto run2 = b.create_run(run_info("f"), &lock2);
  REQUIRE(run2.ok());
  REQUIRE(b.link_logs(task(id, "body", "7", {7}), run2->run_id).ok());
  CHECK(read_log(a, run2->run_id, "body", "7", 0) == "hello world!\n");
}

TEMPLATE_TEST_CASE("seam: artifacts are stored once and materialised on another machine",
                   "[store]", LocalSeam, MemorySeam) {
  TestType f;
  auto a = open_on(f.objects, f.workspace(0));
  const std::string out = f.tmp.path() + "/out";
  REQUIRE(base::make_dirs(out).ok());
  write(out + "/x", "value");
  write(out + "/y", "value");  // the same bytes: one object
  write(out + "/z", "other");
  auto refs = a.ingest_dir(out);
  REQUIRE(refs.ok());
  CHECK(refs->at("x") == refs->at("y"));
  CHECK(refs->at("x").sha256 == base::sha256_hex("value"));
  auto objects = f.objects->list("objects/" + refs->at("x").sha256.substr(0, 2) + "/");
  REQUIRE(objects.ok());
  CHECK(objects->objects.size() == 1);
  CHECK(f.objects->get(store::layout::key::object(refs->at("z").sha256)).value() == "other");
  // Already stored: not uploaded again.
  auto again = a.put_bytes("value");
  REQUIRE(again.ok());
  CHECK(again.value() == refs->at("x"));

  auto b = open_on(f.objects, f.workspace(1));
  CHECK(b.read_object(refs->at("z")).value() == "other");
  const std::string in = f.tmp.path() + "/in";
  REQUIRE(b.materialize(refs.value(), in).ok());
  CHECK(base::read_file(in + "/y").value() == "value");
  CHECK(base::read_file(in + "/z").value() == "other");
  struct stat st;
  REQUIRE(::stat((in + "/z").c_str(), &st) == 0);
  CHECK((st.st_mode & 0222) == 0);  // read-only

  // A missing object is named, with the datastore it is missing from.
  store::ArtifactMap missing{{"gone", {base::sha256_hex("never stored"), 12}}};
  auto s = b.materialize(missing, f.tmp.path() + "/in2");
  CHECK(s.code() == base::StatusCode::kNotFound);
  CHECK_THAT(s.message(), Catch::Contains(f.objects->url()));
}
