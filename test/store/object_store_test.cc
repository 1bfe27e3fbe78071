// The ObjectStore contract, checked against both the local directory store and the
// in-memory store with S3's semantics (test/support/memory_object_store.h).
#include "store/object_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>

#include <catch2/catch.hpp>

#include "base/file_util.h"
#include "base/hash.h"
#include "store/local_object_store.h"
#include "support/memory_object_store.h"
#include "support/temp_dir.h"

using namespace mflow;

namespace {

struct LocalStoreFixture {
  test::TempDir tmp;
  std::unique_ptr<store::ObjectStore> store;
  LocalStoreFixture() {
    REQUIRE(base::make_dirs(tmp.path() + "/root").ok());
    store = std::make_unique<store::LocalObjectStore>(tmp.path() + "/root");
  }
};

struct MemoryStoreFixture {
  test::TempDir tmp;
  std::unique_ptr<store::ObjectStore> store = std::make_unique<test::MemoryObjectStore>();
};

void write(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary);
  f << content;
  REQUIRE(f.good());
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace


TEMPLATE_TEST_CASE("object store: put, get, head, conditional create, remove", "[store]",
                   LocalStoreFixture, MemoryStoreFixture) {
  TestType f;
  store::ObjectStore& s = *f.store;
  CHECK(s.get("a/b/c.json").status().code() == base::StatusCode::kNotFound);
  CHECK_FALSE(s.head("a/b/c.json").value().has_value());
  REQUIRE(s.put("a/b/c.json", "one", store::PutMode::kOverwrite).ok());
  CHECK(s.get("a/b/c.json").value() == "one");
  REQUIRE(s.put("a/b/c.json", "two!", store::PutMode::kOverwrite, /*durable=*/true).ok());
  CHECK(s.get("a/b/c.json").value() == "two!");
  CHECK(s.head("a/b/c.json").value()->size == 4);

  auto conflict = s.put("a/b/c.json", "three", store::PutMode::kIfAbsent);
  CHECK(conflict.code() == base::StatusCode::kConflict);
  CHECK(s.get("a/b/c.json").value() == "two!");
  REQUIRE(s.put("a/b/d", "new", store::PutMode::kIfAbsent).ok());
  CHECK(s.get("a/b/d").value() == "new");

  CHECK(s.get_range("a/b/c.json", 1, 2).value() == "wo");
  CHECK(s.get_range("a/b/c.json", 2, 100).value() == "o!");
  CHECK(s.get_range("a/b/c.json", 9, 100).value().empty());
  CHECK(s.get_range("a/b/none", 0, 1).status().code() == base::StatusCode::kNotFound);

  REQUIRE(s.remove("a/b/d").ok());
  REQUIRE(s.remove("a/b/d").ok());  // absent: not an error
  CHECK(s.get("a/b/d").status().code() == base::StatusCode::kNotFound);
}

TEMPLATE_TEST_CASE("object store: a listing is one level, without writes in progress", "[store]",
                   LocalStoreFixture, MemoryStoreFixture) {
  TestType f;
  store::ObjectStore& s = *f.store;
  CHECK(s.list("runs/").value().objects.empty());
  REQUIRE(s.put("runs/1/run.json", "{}", store::PutMode::kOverwrite).ok());
  REQUIRE(s.put("runs/12/run.json", "{}", store::PutMode::kOverwrite).ok());
  REQUIRE(s.put("runs/12/tasks/a/0/task.json", "{}", store::PutMode::kOverwrite).ok());
  REQUIRE(s.put("runs/note", "x", store::PutMode::kOverwrite).ok());
  auto l = s.list("runs/").value();
  std::sort(l.subdirs.begin(), l.subdirs.end());
  CHECK(l.subdirs == std::vector<std::string>{"1", "12"});
  REQUIRE(l.objects.size() == 1);
  CHECK(l.objects[0].key == "runs/note");
  CHECK(l.objects[0].size == 1);
  auto top = s.list("").value();
  CHECK(top.subdirs == std::vector<std::string>{"runs"});
  auto run = s.list("runs/12/").value();
  CHECK(run.subdirs == std::vector<std::string>{"tasks"});
  REQUIRE(run.objects.size() == 1);
  CHECK(run.objects[0].key == "runs/12/run.json");
}

TEMPLATE_TEST_CASE("object store: files in and out, consumed or copied, hash checked", "[store]",
                   LocalStoreFixture, MemoryStoreFixture) {
  TestType f;
  store::ObjectStore& s = *f.store;
  const std::string src = f.tmp.path() + "/src";
  write(src, "payload");
  REQUIRE(s.put_file("objects/ab/x", src, store::PutMode::kIfAbsent, /*consume=*/false).ok());
  CHECK(exists(src));  // not consumed: the caller keeps its file
  CHECK(s.get("objects/ab/x").value() == "payload");
  // kIfAbsent on an existing object is kConflict, and a consumed file is gone either way.
  auto again = s.put_file("objects/ab/x", src, store::PutMode::kIfAbsent, /*consume=*/true);
  CHECK(again.code() == base::StatusCode::kConflict);
  CHECK_FALSE(exists(src));
  write(src, "other");
  REQUIRE(s.put_file("objects/ab/y", src, store::PutMode::kOverwrite, /*consume=*/true).ok());
  CHECK_FALSE(exists(src));
  CHECK(s.get("objects/ab/y").value() == "other");

  const std::string dest = f.tmp.path() + "/dest";
  REQUIRE(s.get_file("objects/ab/x", dest, base::sha256_hex("payload")).ok());
  CHECK(base::read_file(dest).value() == "payload");
  // A wrong hash never places the bytes at dest.
  const std::string bad = f.tmp.path() + "/bad";
  CHECK(s.get_file("objects/ab/y", bad, base::sha256_hex("payload")).code() ==
        base::StatusCode::kIoError);
  CHECK_FALSE(exists(bad));
  CHECK(s.get_file("objects/ab/none", bad, std::nullopt).code() == base::StatusCode::kNotFound);
  // dest is replaced when it exists.
  REQUIRE(s.get_file("objects/ab/y", dest, std::nullopt).ok());
  CHECK(base::read_file(dest).value() == "other");
}

TEMPLATE_TEST_CASE("object store: a lease is exclusive while held and free after", "[store]",
                   LocalStoreFixture, MemoryStoreFixture) {
  TestType f;
  store::ObjectStore& s = *f.store;
  CHECK_FALSE(s.held("runs/1/lock").value());
  {
    auto lease = s.hold("runs/1/lock");
    REQUIRE(lease.ok());
    CHECK(s.held("runs/1/lock").value());
    CHECK(s.hold("runs/1/lock").status().code() == base::StatusCode::kConflict);
  }
  CHECK_FALSE(s.held("runs/1/lock").value());
  CHECK(s.hold("runs/1/lock").ok());
}

TEST_CASE("memory object store: a dead holder's heartbeat goes stale", "[store]") {
  test::MemoryObjectStore s;
  auto lease = s.hold("runs/1/lock");
  REQUIRE(lease.ok());
  s.advance(std::chrono::seconds(60));
  CHECK(s.held("runs/1/lock").value());  // the heartbeat kept it fresh
  s.kill_holders();
  s.advance(std::chrono::seconds(10));
  CHECK(s.held("runs/1/lock").value());  // not stale yet
  s.advance(test::MemoryObjectStore::kStaleAfter);
  CHECK_FALSE(s.held("runs/1/lock").value());
  CHECK(s.hold("runs/1/lock").ok());  // a stale lease can be taken over
}

TEST_CASE("local object store: kIfAbsent is link(2), consume is a rename, no copy", "[store]") {
  test::TempDir tmp;
  REQUIRE(base::make_dirs(tmp.path() + "/root").ok());
  store::LocalObjectStore s(tmp.path() + "/root");
  const std::string src = tmp.path() + "/src";
  write(src, "bytes");
  ::chmod(src.c_str(), 0444);
  struct stat before;
  REQUIRE(::lstat(src.c_str(), &before) == 0);
  REQUIRE(s.put_file("objects/aa/z", src, store::PutMode::kIfAbsent, /*consume=*/true).ok());
  struct stat after;
  REQUIRE(::lstat(s.path("objects/aa/z").c_str(), &after) == 0);
  CHECK(after.st_ino == before.st_ino);  // the same file, moved, not copied
  CHECK((after.st_mode & 0777) == 0444);
  // get_file hard-links.
  REQUIRE(s.get_file("objects/aa/z", tmp.path() + "/linked", std::nullopt).ok());
  struct stat linked;
  REQUIRE(::lstat((tmp.path() + "/linked").c_str(), &linked) == 0);
  CHECK(linked.st_ino == before.st_ino);
  // Putting the object's own file is a no-op.
  CHECK(s.put_file("objects/aa/z", s.path("objects/aa/z"), store::PutMode::kIfAbsent, false).ok());
  // No temp file is left beside a record, and none is listed.
  REQUIRE(s.put("r/rec", "x", store::PutMode::kOverwrite).ok());
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path() + "/root/r")) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);
}
