#include "s3/client.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "base/hash.h"
#include "support/s3_server.h"
#include "support/temp_dir.h"

namespace mflow::s3 {
namespace {

using Catch::Matchers::Contains;
using test::S3Server;
using test::S3ServerOptions;
using test::StaticCredentials;
using namespace std::chrono_literals;

constexpr const char* kBucket = "mflow-test";

ClientOptions fast_options() {
  ClientOptions o;
  o.initial_backoff = 5ms;
  o.max_backoff = 40ms;
  o.max_attempts = 8;
  o.request_timeout = 30s;
  o.multipart_threshold = 6 << 20;
  o.part_size = 5 << 20;
  o.jitter_seed = 7;
  return o;
}

std::unique_ptr<Client> make_client(const S3Server& server, std::shared_ptr<CredentialProvider> creds = nullptr,
                                    ClientOptions options = fast_options()) {
  if (!creds) creds = std::make_shared<StaticCredentials>(S3Server::credentials());
  auto c = Client::create(server.settings(), std::move(creds), options);
  REQUIRE(c.ok());
  return std::move(c).value();
}

// Requires a Status (or a Result's status) to be ok, showing its message when it is not.
#define REQUIRE_OK(expr)                        \
  do {                                          \
    const auto& mflow_st_ = (expr);            \
    INFO(status_of(mflow_st_).message());       \
    REQUIRE(status_of(mflow_st_).ok());         \
  } while (0)

const base::Status& status_of(const base::Status& s) { return s; }
template <typename T>
const base::Status& status_of(const base::Result<T>& r) {
  static const base::Status kOk;
  return r.ok() ? kOk : r.status();
}

#define REQUIRE_SERVER(server) \
  if (!(server).ok()) FAIL((server).why())

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs the AWS CLI (botocore, an independent client) against the test server.
int aws(const S3Server& server, const std::string& args) {
  std::string cmd = "AWS_ACCESS_KEY_ID=" + std::string(S3Server::kAccessKey) +
                    " AWS_SECRET_ACCESS_KEY='" + S3Server::kSecret +
                    "' AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null"
                    // Recent botocore adds CRC checksum headers by default; S3-compatible
                    // services (and the test proxy) refuse them.
                    " AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required"
                    " aws --only-show-errors --endpoint-url " + server.endpoint() + " " + args;
  return std::system(cmd.c_str());
}

const std::vector<std::string> kOddKeys = {
    "plain.txt", "dir/sub/a b.txt", "unicode/\xc3\xbc\xe6\x97\xa5.bin", "plus+tilde~eq=.x",
    "q?hash#amp&semi;.y", "percent%20literal", "quote'paren(1)*!", "runs/12/steps/a/0/out"};

TEST_CASE("s3 client: put, get, head, list and delete with odd keys", "[s3][client]") {
  S3Server server;
  REQUIRE_SERVER(server);
  auto client = make_client(server);
  for (size_t i = 0; i < kOddKeys.size(); ++i) {
    INFO(kOddKeys[i]);
    REQUIRE_OK(client->put_object(kBucket, kOddKeys[i], "body " + std::to_string(i)));
  }
  for (size_t i = 0; i < kOddKeys.size(); ++i) {
    INFO(kOddKeys[i]);
    auto got = client->get_object(kBucket, kOddKeys[i]);
    REQUIRE(got.ok());
    CHECK(*got == "body " + std::to_string(i));
    auto meta = client->head_object(kBucket, kOddKeys[i]);
    REQUIRE(meta.ok());
    REQUIRE(meta->has_value());
    CHECK((*meta)->size == static_cast<int64_t>(got->size()));
    CHECK((*meta)->server_date.time_since_epoch().count() > 0);
    CHECK((*meta)->last_modified.time_since_epoch().count() > 0);
  }
  auto all = client->list_objects(kBucket, "");
  REQUIRE(all.ok());
  std::vector<std::string> keys;
  for (const auto& o : all->objects) keys.push_back(o.key);
  std::vector<std::string> expected = kOddKeys;
  std::sort(expected.begin(), expected.end());
  CHECK(keys == expected);

  auto missing = client->get_object(kBucket, "no/such/key");
  CHECK(missing.status().code() == base::StatusCode::kNotFound);
  CHECK_THAT(missing.status().message(), Contains("s3://mflow-test/no/such/key") && Contains("NoSuchKey"));
  auto no_meta = client->head_object(kBucket, "no/such/key");
  REQUIRE(no_meta.ok());
  CHECK_FALSE(no_meta->has_value());

  REQUIRE_OK(client->delete_object(kBucket, kOddKeys[1]));
  CHECK(client->get_object(kBucket, kOddKeys[1]).status().code() == base::StatusCode::kNotFound);
  CHECK(client->delete_object(kBucket, kOddKeys[1]).ok());  // absent: not an error
  // The proxy verified every signature with botocore and rejected none.
  auto stats = nlohmann::json::parse(server.stats());
  CHECK(stats["rejected"].empty());
}

TEST_CASE("s3 client: conditional create answers kConflict when the key exists", "[s3][client]") {
  S3Server server;
  REQUIRE_SERVER(server);
  auto client = make_client(server);
  REQUIRE_OK(client->put_object(kBucket, "runs/1/run.json", "first", true));
  auto again = client->put_object(kBucket, "runs/1/run.json", "second", true);
  CHECK(again.code() == base::StatusCode::kConflict);
  CHECK_THAT(again.message(), Contains("s3://mflow-test/runs/1/run.json") && Contains("PreconditionFailed"));
  CHECK(*client->get_object(kBucket, "runs/1/run.json") == "first");
  REQUIRE_OK(client->put_object(kBucket, "runs/1/run.json", "third"));  // overwrite
  CHECK(*client->get_object(kBucket, "runs/1/run.json") == "third");
}

TEST_CASE("s3 client: ranges, including past the end and of an empty object", "[s3][client]") {
  S3Server server;
  REQUIRE_SERVER(server);
  auto client = make_client(server);
  REQUIRE_OK(client->put_object(kBucket, "log", "0123456789"));
  REQUIRE_OK(client->put_object(kBucket, "empty", ""));
  auto range = [&](const char* key, int64_t offset, int64_t length) {
    auto r = client->get_range(kBucket, key, offset, length);
    INFO(r.status().message());
    REQUIRE(r.ok());
    return *r;
  };
  CHECK(range("log", 2, 3) == "234");
  CHECK(range("log", 8, 10) == "89");
  CHECK(range("log", 10, 5) == "");
  CHECK(range("log", 50, 5) == "");
  CHECK(range("empty", 0, 5) == "");
  CHECK(client->get_range(kBucket, "absent", 0, 5).status().code() == base::StatusCode::kNotFound);
}

TEST_CASE("s3 client: listings paginate and roll up common prefixes", "[s3][client]") {
  S3Server server;
  REQUIRE_SERVER(server);
  ClientOptions o = fast_options();
  o.list_page_size = 3;
  auto client = make_client(server, nullptr, o);
  for (int run = 1; run <= 7; ++run) {
    REQUIRE_OK(client->put_object(kBucket, "runs/" + std::to_string(run) + "/run.json", "{}"));
  }
  REQUIRE_OK(client->put_object(kBucket, "runs/README", "x"));
  auto level = client->list_objects(kBucket, "runs/", "/");
  REQUIRE(level.ok());
  CHECK(level->prefixes == std::vector<std::string>{"runs/1/", "runs/2/", "runs/3/", "runs/4/", "runs/5/",
                                                    "runs/6/", "runs/7/"});
  REQUIRE(level->objects.size() == 1);
  CHECK(level->objects[0].key == "runs/README");
  auto flat = client->list_objects(kBucket, "runs/");
  REQUIRE_OK(flat);
  CHECK(flat->objects.size() == 8);
  CHECK(client->stats().lists >= 4);  // 8 keys, 3 a page
}

TEST_CASE("s3 client: files stream both ways, multipart above the threshold; the AWS CLI agrees",
          "[s3][client][multipart]") {
  S3Server server;
  REQUIRE_SERVER(server);
  auto client = make_client(server);
  test::TempDir dir;
  const std::string big = random_bytes((12 << 20) + 12345, 1);  // 3 parts of 5 MiB
  const std::string small = random_bytes(100000, 2);
  write_file(dir.path() + "/big", big);
  write_file(dir.path() + "/small", small);
  REQUIRE_OK(client->put_file(kBucket, "artifacts/big", dir.path() + "/big"));
  CHECK(client->stats().multipart == 1 + 3 + 1);  // create, three parts, complete
  REQUIRE_OK(client->put_file(kBucket, "artifacts/small", dir.path() + "/small"));

  REQUIRE_OK(client->get_file(kBucket, "artifacts/big", dir.path() + "/big.back", base::sha256_hex(big)));
  CHECK(read_file(dir.path() + "/big.back") == big);
  // An independent client reads what mflow wrote, byte for byte...
  REQUIRE(aws(server, "s3 cp s3://mflow-test/artifacts/big " + dir.path() + "/big.aws") == 0);
  CHECK(read_file(dir.path() + "/big.aws") == big);
  REQUIRE(aws(server, "s3 cp s3://mflow-test/artifacts/small " + dir.path() + "/small.aws") == 0);
  CHECK(read_file(dir.path() + "/small.aws") == small);
  // ...and mflow reads what it wrote (the CLI uploads this one in parts too).
  const std::string theirs = random_bytes(9 << 20, 3);
  write_file(dir.path() + "/theirs", theirs);
  REQUIRE(aws(server, "s3 cp " + dir.path() + "/theirs 's3://mflow-test/from cli/th\xc3\xa9irs'") == 0);
  REQUIRE_OK(client->get_file(kBucket, "from cli/th\xc3\xa9irs", dir.path() + "/theirs.back", base::sha256_hex(theirs)));
  CHECK(read_file(dir.path() + "/theirs.back") == theirs);
  auto stats = nlohmann::json::parse(server.stats());
  CHECK(stats["rejected"].empty());
}

TEST_CASE("s3 client: a download whose bytes differ from the expected SHA-256 is never placed",
          "[s3][client]") {
  S3Server server;
  REQUIRE_SERVER(server);
  auto client = make_client(server);
  test::TempDir dir;
  REQUIRE_OK(client->put_object(kBucket, "a", "the real bytes"));
  auto st = client->get_file(kBucket, "a", dir.path() + "/a", base::sha256_hex("other bytes"));
  CHECK_FALSE(st.ok());
  CHECK_THAT(st.message(), Contains("s3://mflow-test/a") && Contains("SHA-256"));
  struct stat sb {};
  CHECK(::stat((dir.path() + "/a").c_str(), &sb) != 0);
  CHECK(::stat((dir.path() + "/a.mflow-part").c_str(), &sb) != 0);
}

TEST_CASE("s3 client: injected 500, 503 SlowDown, resets, truncated and corrupted bodies are survived",
          "[s3][client][faults]") {
  S3ServerOptions so;
  so.fault_rate = 0.3;
  so.seed = 42;
  // A corrupted body is detectable only where a checksum is known: get_file with its
  // expected SHA-256 (the datastore's case). Ranged reads of logs have none, so corruption is
  // injected only into the big object's downloads (every GET of it is a whole-object get_file).
  so.faults = "500,503,reset-before,reset-after,truncate,corrupt-big";
  S3Server server(so);
  REQUIRE_SERVER(server);
  ClientOptions o = fast_options();
  o.max_attempts = 12;  // 0.3^12: a failure here would be a bug, not bad luck
  auto client = make_client(server, nullptr, o);
  test::TempDir dir;
  const std::string big = random_bytes((11 << 20) + 7, 9);
  write_file(dir.path() + "/big", big);
  for (int round = 0; round < 3; ++round) {
    const std::string key = "faulty/" + std::to_string(round);
    if (auto st = client->put_file(kBucket, key + "/big", dir.path() + "/big"); !st.ok()) {
      FAIL(st.message() << "\n" << server.stats());
    }
    REQUIRE_OK(client->get_file(kBucket, key + "/big", dir.path() + "/back", base::sha256_hex(big)));
    CHECK(read_file(dir.path() + "/back") == big);
    for (int i = 0; i < 10; ++i) {
      const std::string k = key + "/small" + std::to_string(i);
      REQUIRE_OK(client->put_object(kBucket, k, "v" + std::to_string(i)));
      auto got = client->get_range(kBucket, k, 0, 100);
      REQUIRE(got.ok());
      CHECK(*got == "v" + std::to_string(i));
    }
    REQUIRE_OK(client->put_object(kBucket, key + "/created", "mine", true));
    CHECK(client->put_object(kBucket, key + "/created", "theirs", true).code() == base::StatusCode::kConflict);
    auto listed = client->list_objects(kBucket, key + "/");
    REQUIRE_OK(listed);
    CHECK(listed->objects.size() == 12);
  }
  auto stats = nlohmann::json::parse(server.stats());
  INFO(stats.dump());
  for (const char* kind : {"500", "503", "reset-before", "reset-after", "truncate"}) {
    CHECK(stats["faults"].value(kind, 0) > 0);
  }
  // Refusals are only the ones the test provokes: the second conditional create of each round,
  // and NoSuchUpload when a completion whose answer was lost is repeated.
  for (const auto& [code, count] : stats["rejected"].items()) {
    CHECK((code == "PreconditionFailed" || code == "NoSuchUpload"));
  }
  CHECK(stats["rejected"].value("PreconditionFailed", 0) == 3);
  CHECK(client->stats().retries > 0);
}

TEST_CASE("s3 client: corrupted downloads are detected by their SHA-256 and fetched again",
          "[s3][client][faults]") {
  S3ServerOptions so;
  so.fault_rate = 0.5;
  so.faults = "corrupt";
  so.seed = 3;
  S3Server server(so);
  REQUIRE_SERVER(server);
  auto client = make_client(server);
  test::TempDir dir;
  const std::string bytes = random_bytes(100000, 4);
  REQUIRE_OK(client->put_object(kBucket, "artifact", bytes));
  for (int i = 0; i < 10; ++i) {
    const std::string dest = dir.path() + "/a" + std::to_string(i);
    REQUIRE_OK(client->get_file(kBucket, "artifact", dest, base::sha256_hex(bytes)));
    CHECK(read_file(dest) == bytes);
  }
  auto stats = nlohmann::json::parse(server.stats());
  INFO(stats.dump());
  CHECK(stats["faults"].value("corrupt", 0) > 0);
  CHECK(client->stats().retries >= stats["faults"].value("corrupt", 0));
}

TEST_CASE("s3 client: a rejected secret invalidates the credentials and is retried once",
          "[s3][client]") {
  S3Server server;
  REQUIRE_SERVER(server);
  Credentials wrong = S3Server::credentials();
  wrong.secret_access_key = "not-the-secret-value";
  auto creds = std::make_shared<StaticCredentials>(wrong);
  auto client = make_client(server, creds);
  auto st = client->put_object(kBucket, "k", "v");
  CHECK_FALSE(st.ok());
  CHECK_THAT(st.message(), Contains("s3://mflow-test/k") && Contains("SignatureDoesNotMatch"));
  CHECK(st.message().find(wrong.secret_access_key) == std::string::npos);
  CHECK(st.message().find(S3Server::kSecret) == std::string::npos);
  CHECK(creds->invalidations == 1);

  // A rotated secret: the first answer rejects the cached one, the fresh one works.
  auto rotating = std::make_shared<StaticCredentials>(wrong);
  rotating->rotate_on_invalidate(S3Server::credentials());
  auto client2 = make_client(server, rotating);
  REQUIRE_OK(client2->put_object(kBucket, "k", "v"));
  CHECK(rotating->invalidations == 1);
  CHECK(client2->stats().reauthentications == 1);
}

TEST_CASE("s3 client: a missing bucket and a bad endpoint are clear errors", "[s3][client]") {
  S3Server server;
  REQUIRE_SERVER(server);
  auto client = make_client(server);
  auto st = client->put_object("no-such-bucket", "k", "v");
  CHECK_FALSE(st.ok());
  CHECK_THAT(st.message(), Contains("s3://no-such-bucket/k") && Contains("NoSuchBucket"));
  auto listed = client->list_objects("no-such-bucket", "");
  CHECK_THAT(listed.status().message(), Contains("NoSuchBucket"));

  ConnectionSettings bad = server.settings();
  bad.endpoint = "ftp://127.0.0.1:1";
  CHECK(Client::create(bad, std::make_shared<StaticCredentials>(S3Server::credentials())).status().code() ==
        base::StatusCode::kInvalid);
  bad.endpoint = "http://127.0.0.1:notaport";
  CHECK_FALSE(Client::create(bad, std::make_shared<StaticCredentials>(S3Server::credentials())).ok());
  bad.ca_bundle = "/nonexistent/ca.pem";
  bad.endpoint = server.endpoint();
  auto no_ca = Client::create(bad, std::make_shared<StaticCredentials>(S3Server::credentials()));
  CHECK_THAT(no_ca.status().message(), Contains("/nonexistent/ca.pem") && Contains("AWS_CA_BUNDLE"));

  ClientOptions o = fast_options();
  o.max_attempts = 2;
  ConnectionSettings closed = server.settings();
  closed.endpoint = "http://127.0.0.1:1";
  auto unreachable = make_client(server, nullptr, o);
  auto c = Client::create(closed, std::make_shared<StaticCredentials>(S3Server::credentials()), o);
  REQUIRE(c.ok());
  auto down = (*c)->get_object(kBucket, "k");
  CHECK(down.status().code() == base::StatusCode::kUnavailable);
  CHECK_THAT(down.status().message(), Contains("s3://mflow-test/k") && Contains("gave up after 2 attempts"));
}

}  // namespace
}  // namespace mflow::s3

namespace mflow::s3 {
namespace {

// The client's side of bench/s3_transfer.sh (hidden: not part of the suite). Uploads
// (MFLOW_S3_BENCH_OP=put) or downloads (get, checking MFLOW_S3_BENCH_SHA256) the file
// MFLOW_S3_BENCH_FILE as s3://bench/MFLOW_S3_BENCH_KEY at MFLOW_S3_BENCH_ENDPOINT.
TEST_CASE("s3 client: one transfer for bench/s3_transfer.sh", "[.s3bench]") {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr) FAIL(name << " is not set (run bench/s3_transfer.sh)");
    return std::string(v);
  };
  ConnectionSettings settings;
  settings.endpoint = env("MFLOW_S3_BENCH_ENDPOINT");
  settings.custom_endpoint = true;
  settings.addressing = Addressing::kPath;
  auto client = Client::create(settings, std::make_shared<StaticCredentials>(S3Server::credentials()));
  REQUIRE_OK(client);
  const std::string op = env("MFLOW_S3_BENCH_OP");
  if (op == "put") {
    REQUIRE_OK((*client)->put_file("bench", env("MFLOW_S3_BENCH_KEY"), env("MFLOW_S3_BENCH_FILE")));
  } else {
    REQUIRE_OK((*client)->get_file("bench", env("MFLOW_S3_BENCH_KEY"), env("MFLOW_S3_BENCH_FILE"),
                                   env("MFLOW_S3_BENCH_SHA256")));
  }
}

}  // namespace
}  // namespace mflow::s3
