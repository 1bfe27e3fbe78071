#include "store/s3_object_store.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "base/hash.h"
#include "support/s3_server.h"
#include "support/temp_dir.h"

namespace mflow::store {
namespace {

using Catch::Matchers::Contains;
using test::S3Server;
using test::StaticCredentials;
using namespace std::chrono_literals;

std::shared_ptr<s3::Client> make_client(const S3Server& server) {
  s3::ClientOptions o;
  o.initial_backoff = 5ms;
  o.max_backoff = 40ms;
  auto c = s3::Client::create(server.settings(), std::make_shared<StaticCredentials>(S3Server::credentials()), o);
  REQUIRE(c.ok());
  return std::shared_ptr<s3::Client>(std::move(c).value());
}

std::unique_ptr<S3ObjectStore> open_store(const S3Server& server, S3StoreOptions options = {}) {
  auto s = S3ObjectStore::open("s3://mflow-test/team/ds/", make_client(server), options);
  REQUIRE(s.ok());
  return std::move(s).value();
}

TEST_CASE("s3 object store: URLs, keys under the prefix, and bad URLs", "[store][s3]") {
  S3Server server;
  if (!server.ok()) FAIL(server.why());
  auto store = open_store(server);
  CHECK(store->url() == "s3://mflow-test/team/ds");
  CHECK(store->describe("runs/1/run.json") == "s3://mflow-test/team/ds/runs/1/run.json");
  REQUIRE(store->put("FORMAT", "mflow-datastore 2\n", PutMode::kIfAbsent).ok());
  // The object is at prefix/key, where `aws s3 sync` of a local datastore puts it.
  auto raw = make_client(server)->get_object("mflow-test", "team/ds/FORMAT");
  REQUIRE(raw.ok());
  CHECK(*raw == "mflow-datastore 2\n");
  CHECK(store->put("FORMAT", "other", PutMode::kIfAbsent).code() == base::StatusCode::kConflict);
  CHECK(*store->get("FORMAT") == "mflow-datastore 2\n");
  CHECK(store->get("ID").status().code() == base::StatusCode::kNotFound);

  for (const char* bad : {"/tmp/x", "s3://", "s3:///prefix", "s3://b//p"}) {
    INFO(bad);
    CHECK(S3ObjectStore::open(bad, make_client(server)).status().code() == base::StatusCode::kInvalid);
  }
  CHECK(S3ObjectStore::open("s3://bucket", make_client(server)).value()->describe("ID") == "s3://bucket/ID");
}

TEST_CASE("s3 object store: files, ranges, head, one-level listings, remove", "[store][s3]") {
  S3Server server;
  if (!server.ok()) FAIL(server.why());
  auto store = open_store(server);
  test::TempDir dir;
  const std::string bytes(200000, 'x');
  std::ofstream(dir.path() + "/artifact", std::ios::binary) << bytes;
  const std::string sha = base::sha256_hex(bytes);
  REQUIRE(store->put_file("objects/ab/" + sha, dir.path() + "/artifact", PutMode::kIfAbsent, true).ok());
  struct stat st {};
  CHECK(::stat((dir.path() + "/artifact").c_str(), &st) != 0);  // consumed
  REQUIRE(store->get_file("objects/ab/" + sha, dir.path() + "/back", sha).ok());
  REQUIRE(::stat((dir.path() + "/back").c_str(), &st) == 0);
  CHECK((st.st_mode & 0222) == 0);  // read-only, as the local store's objects
  CHECK(st.st_size == 200000);
  CHECK_FALSE(store->get_file("objects/ab/" + sha, dir.path() + "/bad", base::sha256_hex("no")).ok());
  CHECK(::stat((dir.path() + "/bad").c_str(), &st) != 0);

  REQUIRE(store->put("runs/1/steps/a/0/stdout", "line 1\nline 2\n", PutMode::kOverwrite).ok());
  CHECK(*store->get_range("runs/1/steps/a/0/stdout", 7, 100) == "line 2\n");
  CHECK(*store->get_range("runs/1/steps/a/0/stdout", 14, 100) == "");
  auto info = store->head("runs/1/steps/a/0/stdout");
  REQUIRE(info.ok());
  REQUIRE(info->has_value());
  CHECK((*info)->key == "runs/1/steps/a/0/stdout");
  CHECK((*info)->size == 14);
  CHECK_FALSE(store->head("runs/9/run.json")->has_value());

  REQUIRE(store->put("runs/1/run.json", "{}", PutMode::kIfAbsent).ok());
  REQUIRE(store->put("runs/2/run.json", "{}", PutMode::kIfAbsent).ok());
  REQUIRE(store->put("runs/NEXT", "3", PutMode::kOverwrite).ok());
  auto runs = store->list("runs/");
  REQUIRE(runs.ok());
  CHECK(runs->subdirs == std::vector<std::string>{"1", "2"});
  REQUIRE(runs->objects.size() == 1);
  CHECK(runs->objects[0].key == "runs/NEXT");
  // s3rver leaves out a common prefix whose "directory" holds only deeper ones (here
  // objects/, which holds only objects/ab/); S3 lists it (docs/s3.md, test server).
  REQUIRE(store->put("objects/NOTE", "x", PutMode::kOverwrite).ok());
  auto root = store->list("");
  REQUIRE(root.ok());
  CHECK(root->subdirs == std::vector<std::string>{"objects", "runs"});

  REQUIRE(store->remove("runs/NEXT").ok());
  REQUIRE(store->remove("runs/NEXT").ok());
  CHECK(store->get("runs/NEXT").status().code() == base::StatusCode::kNotFound);
}

TEST_CASE("s3 object store: a held key has a fresh heartbeat; released or stale, it is free",
          "[store][s3][lease]") {
  S3Server server;
  if (!server.ok()) FAIL(server.why());
  S3StoreOptions options;
  options.heartbeat_interval = 300ms;
  options.stale_after = 3s;  // Date and Last-Modified have one-second resolution
  auto store = open_store(server, options);
  CHECK_FALSE(*store->held("runs/1/lock"));
  {
    auto lease = store->hold("runs/1/lock");
    REQUIRE(lease.ok());
    CHECK(*store->held("runs/1/lock"));
    auto second = store->hold("runs/1/lock");
    CHECK(second.status().code() == base::StatusCode::kConflict);
    CHECK_THAT(second.status().message(), Contains("s3://mflow-test/team/ds/runs/1/lock"));
    // Beats keep it fresh well past the staleness limit.
    std::this_thread::sleep_for(4s);
    CHECK(*store->held("runs/1/lock"));
  }
  CHECK_FALSE(*store->held("runs/1/lock"));  // released: the heartbeat object is gone

  // A crashed holder: its heartbeat was written once and never again. It reads as held until
  // the service's clock is stale_after past it, then another process may take it over.
  REQUIRE(store->put("runs/2/lock", "mflow heartbeat\nholder: crashed\n", PutMode::kOverwrite).ok());
  CHECK(*store->held("runs/2/lock"));
  bool went_stale = false;
  for (int i = 0; i < 100 && !went_stale; ++i) {
    std::this_thread::sleep_for(100ms);
    went_stale = !*store->held("runs/2/lock");
  }
  CHECK(went_stale);
  auto takeover = store->hold("runs/2/lock");
  REQUIRE(takeover.ok());
  CHECK(*store->held("runs/2/lock"));
}

}  // namespace
}  // namespace mflow::store
