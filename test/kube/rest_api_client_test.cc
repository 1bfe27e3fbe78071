#include "kube/rest_api_client.h"

#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <future>
#include <optional>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "kube/loopback_server.h"
#include "support/temp_dir.h"

namespace mflow::kube {
namespace {

using Catch::Matchers::Contains;
using json = nlohmann::json;
using test::HttpRequest;
using test::HttpWriter;
using test::LoopbackServer;
using namespace std::chrono_literals;

RestOptions fast_options() {
  RestOptions o;
  o.initial_backoff = 10ms;
  o.max_backoff = 50ms;
  o.max_retries = 3;
  o.request_timeout = 10s;
  o.watch_timeout_seconds = 20;
  return o;
}

std::unique_ptr<RestApiClient> make_client(const std::string& server, const std::string& token = "",
                                           RestOptions options = fast_options()) {
  Config c;
  c.server = server;
  c.source = "test config";
  if (!token.empty()) {
    c.auth = AuthMethod::kToken;
    c.token = token;
  }
  auto r = RestApiClient::create(c, options);
  REQUIRE(r.ok());
  return std::move(r).value();
}

std::string status_json(int code, const std::string& reason, const std::string& message) {
  return json{{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", json::object()}, {"status", "Failure"},
              {"message", message}, {"reason", reason}, {"code", code}}
      .dump();
}

const std::atomic<bool> kNoStop{false};

TEST_CASE("RestApiClient: create, get, delete send the right requests", "[kube]") {
  LoopbackServer server([](const HttpRequest& req, HttpWriter& w) {
    if (req.method == "POST") {
      json job = json::parse(req.body);
      job["metadata"]["uid"] = "u-1";
      w.respond(201, job.dump());
    } else if (req.method == "GET") {
      w.respond(200, json{{"kind", "Job"}, {"metadata", {{"name", "j1"}}}}.dump());
    } else if (req.method == "DELETE") {
      w.respond(200, json{{"kind", "Status"}, {"status", "Success"}}.dump());
    }
  });
  auto client = make_client(server.url(), "secret-token");
  json job = {{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"metadata", {{"name", "j1"}}}};
  auto created = client->create_job("team-a", job, kNoStop);
  REQUIRE(created.ok());
  CHECK((*created.value)["metadata"]["uid"] == "u-1");
  auto got = client->get_job("team-a", "j1");
  REQUIRE(got.ok());
  CHECK((*got.value)["metadata"]["name"] == "j1");
  auto deleted = client->delete_job("team-a", "j1");
  REQUIRE(deleted.ok());

  auto reqs = server.requests();
  REQUIRE(reqs.size() == 3);
  CHECK(reqs[0].path == "/apis/batch/v1/namespaces/team-a/jobs");
  CHECK(reqs[0].query.at("fieldManager") == "mflow");
  CHECK(reqs[0].headers.at("content-type") == "application/json");
  CHECK(json::parse(reqs[0].body) == job);
  CHECK(reqs[1].path == "/apis/batch/v1/namespaces/team-a/jobs/j1");
  CHECK(reqs[2].method == "DELETE");
  CHECK(json::parse(reqs[2].body)["propagationPolicy"] == "Background");
  for (const auto& r : reqs) {
    CHECK(r.headers.at("authorization") == "Bearer secret-token");
    CHECK(r.headers.at("accept") == "application/json");
  }
  CHECK(client->stats().creates == 1);
  CHECK(client->stats().gets == 1);
  CHECK(client->stats().deletes == 1);
  CHECK(client->stats().retries == 0);
}

TEST_CASE("RestApiClient: list follows continue tokens", "[kube]") {
  LoopbackServer server([](const HttpRequest& req, HttpWriter& w) {
    std::string cont = req.query.count("continue") ? req.query.at("continue") : "";
    json page = {{"kind", "PodList"}, {"metadata", {{"resourceVersion", cont.empty() ? "100" : "999"}}}};
    if (cont.empty()) {
      page["items"] = {{{"metadata", {{"name", "p1"}}}}, {{"metadata", {{"name", "p2"}}}}};
      page["metadata"]["continue"] = "tok/1";
    } else if (cont == "tok/1") {
      page["items"] = {{{"metadata", {{"name", "p3"}}}}};
      page["metadata"]["continue"] = "tok/2";
    } else {
      page["items"] = {{{"metadata", {{"name", "p4"}}}}};
    }
    w.respond(200, page.dump());
  });
  auto client = make_client(server.url());
  auto list = client->list(Resource::kPods, "ns1", "app=x,job-name in (a,b)");
  REQUIRE(list.ok());
  REQUIRE(list.value->items.size() == 4);
  CHECK(list.value->items[3]["metadata"]["name"] == "p4");
  CHECK(list.value->resource_version == "100");
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 3);
  CHECK(reqs[0].path == "/api/v1/namespaces/ns1/pods");
  CHECK(reqs[0].query.at("limit") == "500");
  CHECK(reqs[0].query.at("labelSelector") == "app=x,job-name in (a,b)");
  CHECK(reqs[1].query.at("continue") == "tok/1");
  CHECK(reqs[2].query.at("continue") == "tok/2");
  CHECK(client->stats().lists == 3);
}

TEST_CASE("RestApiClient: Status errors become messages naming verb, resource, namespace", "[kube]") {
  LoopbackServer server([](const HttpRequest& req, HttpWriter& w) {
    if (req.method == "POST" && req.path.find("/namespaces/foo/") != std::string::npos) {
      w.respond(403, status_json(403, "Forbidden",
                                 "jobs.batch is forbidden: User \"dev\" cannot create resource \"jobs\" in "
                                 "API group \"batch\" in the namespace \"foo\""));
    } else if (req.method == "POST") {
      w.respond(409, status_json(409, "AlreadyExists", "jobs.batch \"j1\" already exists"));
    } else {
      w.respond(404, status_json(404, "NotFound", "jobs.batch \"nope\" not found"));
    }
  });
  auto client = make_client(server.url());
  auto forbidden = client->create_job("foo", {{"metadata", {{"generateName", "x-"}}}}, kNoStop);
  REQUIRE(!forbidden.ok());
  CHECK(forbidden.error.http_status == 403);
  CHECK(forbidden.error.reason == "Forbidden");
  CHECK_THAT(forbidden.error.message,
             Contains("forbidden: cannot create jobs in namespace \"foo\" (HTTP 403): jobs.batch is forbidden: "
                      "User \"dev\" cannot create"));
  auto exists = client->create_job("bar", {{"metadata", {{"name", "j1"}}}}, kNoStop);
  REQUIRE(!exists.ok());
  CHECK(exists.error.reason == "AlreadyExists");
  CHECK_THAT(exists.error.message,
             Contains("already exists: cannot create jobs \"j1\" in namespace \"bar\" (HTTP 409)"));
  auto missing = client->get_job("bar", "nope");
  REQUIRE(!missing.ok());
  CHECK(missing.error.http_status == 404);
  CHECK(missing.error.reason == "NotFound");
  CHECK(missing.error.message ==
        "not found: cannot get jobs \"nope\" in namespace \"bar\" (HTTP 404): jobs.batch \"nope\" not found");
  CHECK(server.request_count() == 3);  // none of these is retried
}

TEST_CASE("RestApiClient: 429 with Retry-After is retried, even for a create", "[kube]") {
  std::atomic<int> seen{0};
  LoopbackServer server([&](const HttpRequest&, HttpWriter& w) {
    if (seen++ < 2) {
      // What API Priority and Fairness really sends: text/plain, not a Status.
      w.respond(429, "Too many requests, please try again later.\n", "text/plain; charset=utf-8",
                {{"Retry-After", seen == 1 ? "1" : "0"}});
    } else {
      w.respond(201, R"({"kind":"Job","metadata":{"name":"j"}})");
    }
  });
  auto client = make_client(server.url());
  auto start = std::chrono::steady_clock::now();
  auto r = client->create_job("ns", {{"metadata", {{"name", "j"}}}}, kNoStop);
  auto elapsed = std::chrono::steady_clock::now() - start;
  REQUIRE(r.ok());
  CHECK(server.request_count() == 3);
  CHECK(elapsed >= 1s);  // Retry-After: 1 was honoured
  CHECK(client->stats().creates == 3);
  CHECK(client->stats().retries == 2);
}

TEST_CASE("RestApiClient: 5xx retried for reads, surfaced for writes", "[kube]") {
  std::atomic<int> failures_left{2};
  LoopbackServer server([&](const HttpRequest& req, HttpWriter& w) {
    if (req.method == "GET" && failures_left-- > 0) {
      w.respond(500, status_json(500, "InternalError", "etcdserver: leader changed"));
    } else if (req.method == "POST") {
      w.respond(503, "<html>upstream unavailable</html>", "text/html");
    } else {
      w.respond(200, R"({"kind":"Job"})");
    }
  });
  auto client = make_client(server.url());
  auto got = client->get_job("ns", "j");
  REQUIRE(got.ok());
  CHECK(server.request_count() == 3);
  CHECK(client->stats().retries == 2);

  auto created = client->create_job("ns", {{"metadata", {{"name", "j"}}}}, kNoStop);
  REQUIRE(!created.ok());
  // Exactly one POST: the GET that follows shows the Job exists, so the server created it
  // and the caller adopts it.
  CHECK(server.request_count() == 5);
  CHECK(created.error.http_status == 503);
  CHECK(created.error.reason == "ServiceUnavailable");
  CHECK_THAT(created.error.message,
             Contains("service unavailable: cannot create jobs \"j\" in namespace \"ns\" (HTTP 503): "
                      "<html>upstream unavailable</html>"));

  SECTION("a read that keeps failing gives up with the count") {
    failures_left = 100;
    auto r = client->get_job("ns", "j");
    REQUIRE(!r.ok());
    CHECK_THAT(r.error.message, Contains("etcdserver: leader changed") && Contains("gave up after 4 attempts"));
  }
}

TEST_CASE("RestApiClient: issue_8 a create answered 5xx is repeated while a GET shows no Job", "[kube]") {
  std::atomic<int> posts{0}, gets{0};
  std::atomic<int> failing_posts{2};
  LoopbackServer server([&](const HttpRequest& req, HttpWriter& w) {
    if (req.method == "POST") {
      ++posts;
      if (failing_posts-- > 0) {
        w.respond(503, status_json(503, "ServiceUnavailable", "the server is currently unable to handle the request"),
                  "application/json", {{"Retry-After", posts == 1 ? "1" : "0"}});
      } else {
        w.respond(201, R"({"kind":"Job","metadata":{"name":"j"}})");
      }
    } else {
      ++gets;
      w.respond(404, status_json(404, "NotFound", "jobs.batch \"j\" not found"));
    }
  });
  auto client = make_client(server.url());
  auto start = std::chrono::steady_clock::now();
  auto created = client->create_job("ns", {{"metadata", {{"name", "j"}}}}, kNoStop);
  auto elapsed = std::chrono::steady_clock::now() - start;
  REQUIRE(created.ok());
  CHECK(posts == 3);
  CHECK(gets == 2);      // each 5xx is checked before the create is repeated
  CHECK(elapsed >= 1s);  // Retry-After: 1 was honoured
  CHECK(client->stats().retries == 2);

  SECTION("bounded: a create that keeps failing gives up with the count") {
    failing_posts = 100;
    posts = 0;
    auto r = client->create_job("ns", {{"metadata", {{"name", "j"}}}}, kNoStop);
    REQUIRE(!r.ok());
    CHECK(r.error.http_status == 503);
    CHECK(posts == 4);  // max_retries 3
    CHECK_THAT(r.error.message, Contains("gave up after 4 attempts"));
  }
}

TEST_CASE("RestApiClient: an unreachable server is named; refused connections are retried", "[kube]") {
  int port;
  {
    LoopbackServer closed([](const HttpRequest&, HttpWriter&) {});
    port = closed.port();
  }
  auto client = make_client(fmt::format("http://127.0.0.1:{}", port));
  auto r = client->create_job("ns", {{"metadata", {{"name", "j"}}}}, kNoStop);
  REQUIRE(!r.ok());
  CHECK(r.error.http_status == 0);
  CHECK_THAT(r.error.message, Contains("cannot create jobs \"j\" in namespace \"ns\": cannot reach the "
                                       "Kubernetes API at http://127.0.0.1:" + std::to_string(port)));
  CHECK(client->stats().creates == 4);  // never sent, so retried like a read
}

TEST_CASE("RestApiClient: issue_8 each retry after a connection failure is reported", "[kube]") {
  int port;
  {
    LoopbackServer closed([](const HttpRequest&, HttpWriter&) {});
    port = closed.port();
  }
  std::vector<std::string> seen;
  RestOptions options = fast_options();
  options.on_connecting = [&](const std::string& text) { seen.push_back(text); };
  std::string server = fmt::format("http://127.0.0.1:{}", port);
  auto client = make_client(server, "", options);
  REQUIRE(!client->get_job("ns", "j").ok());
  REQUIRE(seen.size() == 3);  // attempts 2..4 (max_retries 3)
  for (int i = 0; i < 3; ++i) {
    CHECK_THAT(seen[i], Contains(fmt::format("connecting to {} (attempt {}; ", server, i + 2)));
  }
  // A second request in the same outage repeats no attempt number already reported.
  REQUIRE(!client->get_job("ns", "j").ok());
  CHECK(seen.size() == 3);
}

TEST_CASE("RestApiClient: watch delivers events as they arrive", "[kube]") {
  std::mutex mu;
  std::condition_variable cv;
  bool first_seen = false;
  std::atomic<bool> stream_still_open{false};
  LoopbackServer server([&](const HttpRequest&, HttpWriter& w) {
    w.start_chunked();
    // Set before the first event goes out: the client may handle it before this thread runs on.
    stream_still_open = true;
    w.chunk(R"({"type":"ADDED","object":{"kind":"Job","metadata":{"name":"a","resourceVersion":"11"}}})" "\n");
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_for(lock, 10s, [&] { return first_seen; });
    }
    stream_still_open = false;
    // One event split over two chunks, then two events in one chunk.
    w.chunk(R"({"type":"MODIFIED","object":{"kind":"Job","metad)");
    w.chunk(R"(ata":{"name":"a","resourceVersion":"12"}}})" "\n"
            R"({"type":"BOOKMARK","object":{"kind":"Job","metadata":{"resourceVersion":"15"}}})" "\n"
            R"({"type":"DELETED","object":{"kind":"Job","metadata":{"name":"a","resourceVersion":"16"}}})" "\n");
    w.end_chunks();
  });
  auto client = make_client(server.url());
  std::vector<WatchEvent> events;
  bool open_at_first_event = false;
  auto r = client->watch(Resource::kJobs, "ns", "app=x", "10", [&](const WatchEvent& ev) {
    if (events.empty()) {
      open_at_first_event = stream_still_open.load();
      std::lock_guard<std::mutex> lock(mu);
      first_seen = true;
      cv.notify_all();
    }
    events.push_back(ev);
    return true;
  }, kNoStop);
  REQUIRE(r.ok());
  CHECK(*r.value == false);  // the server ended the stream
  CHECK(open_at_first_event);
  REQUIRE(events.size() == 4);
  CHECK(events[0].type == WatchEventType::kAdded);
  CHECK(events[1].type == WatchEventType::kModified);
  CHECK(events[1].object["metadata"]["resourceVersion"] == "12");
  CHECK(events[2].type == WatchEventType::kBookmark);
  CHECK(events[2].object["metadata"]["resourceVersion"] == "15");
  CHECK(events[3].type == WatchEventType::kDeleted);
  auto req = server.requests().at(0);
  CHECK(req.path == "/apis/batch/v1/namespaces/ns/jobs");
  CHECK(req.query.at("watch") == "true");
  CHECK(req.query.at("allowWatchBookmarks") == "true");
  CHECK(req.query.at("resourceVersion") == "10");
  CHECK(req.query.at("timeoutSeconds") == "20");
  CHECK(req.query.at("labelSelector") == "app=x");
  CHECK(client->stats().watches == 1);
}

TEST_CASE("RestApiClient: issue_8 a burst of watch events already buffered is read whole, in order", "[kube]") {
  // The events arrive faster than they are handled, so the client finds them buffered and
  // reads them without waiting (stream_body's drain); none is lost, split wrongly or reordered,
  // and the handler may move each object out.
  const int kEvents = 2000;
  LoopbackServer server([&](const HttpRequest&, HttpWriter& w) {
    w.start_chunked();
    std::string burst;
    for (int i = 0; i < kEvents; ++i) {
      burst += json{{"type", "MODIFIED"},
                    {"object", {{"kind", "Pod"},
                                {"metadata", {{"name", fmt::format("p{}", i)},
                                              {"resourceVersion", std::to_string(100 + i)}}}}}}
                   .dump();
      burst += "\n";
      if (burst.size() > 3000) {
        w.chunk(burst);
        burst.clear();
      }
    }
    if (!burst.empty()) w.chunk(burst);
    w.end_chunks();
  });
  auto client = make_client(server.url());
  std::vector<json> objects;
  auto r = client->watch(Resource::kPods, "ns", "", "1", [&](WatchEvent& ev) {
    if (objects.empty()) std::this_thread::sleep_for(100ms);  // let the rest pile up
    objects.push_back(std::move(ev.object));
    return true;
  }, kNoStop);
  REQUIRE(r.ok());
  REQUIRE(objects.size() == static_cast<size_t>(kEvents));
  for (int i = 0; i < kEvents; ++i) {
    CHECK(objects[i]["metadata"]["resourceVersion"] == std::to_string(100 + i));
  }
}

TEST_CASE("RestApiClient: 410 Expired becomes a kError event (in-stream and HTTP)", "[kube]") {
  LoopbackServer server([&](const HttpRequest& req, HttpWriter& w) {
    if (req.query.at("resourceVersion") == "1") {
      w.start_chunked();
      w.chunk(json{{"type", "ERROR"},
                   {"object", json::parse(status_json(410, "Expired", "too old resource version: 1 (50)"))}}
                  .dump() + "\n");
      w.end_chunks();
    } else {
      w.respond(410, status_json(410, "Gone", "too old"));
    }
  });
  auto client = make_client(server.url());
  for (std::string rv : {"1", "2"}) {
    std::vector<WatchEvent> events;
    auto r = client->watch(Resource::kPods, "ns", "", rv, [&](const WatchEvent& ev) {
      events.push_back(ev);
      return true;
    }, kNoStop);
    REQUIRE(r.ok());
    REQUIRE(events.size() == 1);
    CHECK(events[0].type == WatchEventType::kError);
    CHECK(events[0].object["code"] == 410);
  }
}

TEST_CASE("RestApiClient: stop ends a quiet watch promptly", "[kube]") {
  LoopbackServer* srv = nullptr;
  LoopbackServer server([&](const HttpRequest&, HttpWriter& w) {
    w.start_chunked();
    w.chunk(R"({"type":"ADDED","object":{"metadata":{"resourceVersion":"1"}}})" "\n");
    while (!srv->stopping()) std::this_thread::sleep_for(20ms);  // say nothing more
  });
  srv = &server;
  auto client = make_client(server.url());
  std::atomic<bool> stop{false};
  std::thread stopper;
  auto start = std::chrono::steady_clock::now();
  auto r = client->watch(Resource::kJobs, "ns", "", "", [&](const WatchEvent&) {
    if (stopper.joinable()) return true;
    stopper = std::thread([&] {
      std::this_thread::sleep_for(200ms);
      stop = true;
    });
    return true;
  }, stop);
  if (stopper.joinable()) stopper.join();
  REQUIRE(r.ok());
  CHECK(*r.value == true);
  CHECK(std::chrono::steady_clock::now() - start < 3s);
  CHECK(server.requests().at(0).query.count("resourceVersion") == 0);
}

TEST_CASE("RestApiClient: read_pod_log streams a followed log", "[kube]") {
  std::mutex mu;
  std::condition_variable cv;
  bool got_first = false;
  LoopbackServer server([&](const HttpRequest& req, HttpWriter& w) {
    if (req.query.count("follow") == 0) {
      w.respond(200, "all of it\n", "text/plain");
      return;
    }
    w.start_chunked(200, "text/plain");
    w.chunk("line 1\n");
    std::unique_lock<std::mutex> lock(mu);
    bool delivered = cv.wait_for(lock, 10s, [&] { return got_first; });
    w.chunk(delivered ? "line 2\n" : "too late\n");
    w.end_chunks();
  });
  auto client = make_client(server.url());
  std::string log;
  auto r = client->read_pod_log("ns", "p-1", true, [&](std::string_view chunk) {
    log += chunk;
    std::lock_guard<std::mutex> lock(mu);
    got_first = true;
    cv.notify_all();
  }, kNoStop);
  REQUIRE(r.ok());
  CHECK(log == "line 1\nline 2\n");
  CHECK(server.requests().at(0).path == "/api/v1/namespaces/ns/pods/p-1/log");
  std::string whole;
  REQUIRE(client->read_pod_log("ns", "p-1", false, [&](std::string_view c) { whole += c; }, kNoStop).ok());
  CHECK(whole == "all of it\n");
  CHECK(client->stats().log_reads == 2);
}

TEST_CASE("RestApiClient: a 401 re-runs the exec plugin once", "[kube]") {
  test::TempDir dir;
  const std::string plugin = dir.path() + "/plugin.sh";
  std::ofstream(plugin) << "#!/bin/sh\necho run >> " << dir.path() << "/runs\nn=$(wc -l < " << dir.path()
                        << "/runs)\nprintf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":"
                           "\"ExecCredential\",\"status\":{\"token\":\"t%s\"}}' $n\n";
  ::chmod(plugin.c_str(), 0755);
  std::atomic<bool> accept_t2{true};
  LoopbackServer server([&](const HttpRequest& req, HttpWriter& w) {
    if (accept_t2 && req.headers.at("authorization") == "Bearer t2") {
      w.respond(200, R"({"kind":"Job"})");
    } else {
      w.respond(401, status_json(401, "Unauthorized", "Unauthorized"));
    }
  });
  Config c;
  c.server = server.url();
  c.source = "context \"exec\" in test";
  c.auth = AuthMethod::kExec;
  c.exec.api_version = "client.authentication.k8s.io/v1";
  c.exec.command = plugin;
  c.exec.where = "test: users[u].user.exec";
  auto client = std::move(RestApiClient::create(c, fast_options())).value();
  auto r = client->get_job("ns", "j");
  REQUIRE(r.ok());
  CHECK(client->exec_plugin_runs() == 2);
  CHECK(server.request_count() == 2);

  accept_t2 = false;  // now every token is rejected: one refresh, then the error
  auto bad = client->get_job("ns", "j");
  REQUIRE(!bad.ok());
  CHECK(bad.error.http_status == 401);
  CHECK(client->exec_plugin_runs() == 3);
  CHECK(server.request_count() == 4);
  CHECK_THAT(bad.error.message, Contains("unauthorized: cannot get jobs \"j\" in namespace \"ns\" (HTTP 401)") &&
                                    Contains("credentials of context \"exec\" in test were rejected"));
}

// TLS material minted with the fake API server's script (a CA, a server cert for 127.0.0.1 and
// localhost, a client cert and an unrelated CA).
struct Certs {
  test::TempDir dir;
  std::string path(const std::string& name) const { return dir.path() + "/" + name; }
  std::string pem(const std::string& name) const { return base::read_file(path(name)).value(); }
  Certs() {
    std::string cmd = std::string("bash ") + MFLOW_SOURCE_DIR + "/test/support/fake_kube/mkcerts.sh " + dir.path();
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
};

TEST_CASE("RestApiClient: issue_8 connections are reused and share one parsed CA store", "[kube]") {
  Certs certs;
  LoopbackServer server(
      [](const HttpRequest& req, HttpWriter& w) {
        if (req.query.count("follow") != 0) {
          w.start_chunked(200, "text/plain");
          w.chunk("followed\n");
          w.end_chunks();
        } else if (req.path.size() > 4 && req.path.substr(req.path.size() - 4) == "/log") {
          w.respond(200, "whole\n", "text/plain");
        } else {
          w.respond(200, R"({"kind":"Job"})");
        }
      },
      certs.path("server.crt"), certs.path("server.key"));
  Config c;
  c.server = server.url();
  c.source = "test";
  c.ca_pem = certs.pem("ca.crt");
  auto client = std::move(RestApiClient::create(c, fast_options())).value();
  for (int i = 0; i < 5; ++i) {
    std::string log;
    REQUIRE(client->get_job("ns", "j").ok());
    REQUIRE(client->read_pod_log("ns", "p", true, [&](std::string_view d) { log += d; }, kNoStop).ok());
    REQUIRE(client->read_pod_log("ns", "p", false, [&](std::string_view d) { log += d; }, kNoStop).ok());
    CHECK(log == "followed\nwhole\n");
    // cpprest returns a connection to its pool on its own thread, just after the response.
    std::this_thread::sleep_for(50ms);
  }
  // Keep-alive connections, one pool for the ordinary requests and one for followed logs
  // (another inactivity timeout): 2 connections, a few more if a request overtook the return
  // of a connection to the pool; a connection per log stream would be 11.
  CHECK(client->stats().tls_connections >= 2);
  CHECK(client->stats().tls_connections <= 6);
  CHECK(server.connection_count() == static_cast<size_t>(client->stats().tls_connections.load()));

  // The system trust store (which does not know the test CA: verification fails) is loaded
  // once per process, however many connections are opened with it.
  c.ca_pem.clear();
  auto system = std::move(RestApiClient::create(c, fast_options())).value();
  for (int i = 0; i < 3; ++i) CHECK(system->get_job("ns", "j").error.reason == "TLSError");
  CHECK(system->stats().tls_connections == 3);
  CHECK(system_trust_store_loads() == 1);
}

TEST_CASE("RestApiClient: issue_8 a 429 holds back every request of the client", "[kube]") {
  using Clock = std::chrono::steady_clock;
  std::mutex mu;
  std::optional<Clock::time_point> refused_at, other_at;
  LoopbackServer server([&](const HttpRequest& req, HttpWriter& w) {
    std::lock_guard<std::mutex> lock(mu);
    if (req.path.find("/first") != std::string::npos && !refused_at) {
      refused_at = Clock::now();
      w.respond(429, "Too many requests, please try again later.\n", "text/plain",
                {{"Retry-After", "1"}, {"Warning", R"(299 - "throttled")"}});
      return;
    }
    if (req.path.find("/other") != std::string::npos) other_at = Clock::now();
    w.respond(200, R"({"kind":"Job"})");
  });
  // The Warning of the 429 is reported after the client took note of the back-off, so the
  // second request below is sent while it is in force.
  std::promise<void> throttled;
  RestOptions options = fast_options();
  options.on_warning = [&](const std::string&) { throttled.set_value(); };
  auto client = make_client(server.url(), "", options);
  std::thread first([&] { CHECK(client->get_job("ns", "first").ok()); });
  REQUIRE(throttled.get_future().wait_for(10s) == std::future_status::ready);
  REQUIRE(client->get_job("ns", "other").ok());
  first.join();
  std::lock_guard<std::mutex> lock(mu);
  REQUIRE(refused_at);
  REQUIRE(other_at);
  CHECK(*other_at - *refused_at >= 1s);
}

TEST_CASE("RestApiClient: issue_8 stop ends a create's 429 wait without sending it again", "[kube]") {
  LoopbackServer server([](const HttpRequest&, HttpWriter& w) {
    w.respond(429, "Too many requests, please try again later.\n", "text/plain",
              {{"Retry-After", "30"}, {"Warning", R"(299 - "throttled")"}});
  });
  std::promise<void> throttled;
  RestOptions options = fast_options();
  options.on_warning = [&](const std::string&) { throttled.set_value(); };
  auto client = make_client(server.url(), "", options);
  std::atomic<bool> stop{false};
  auto pending = std::async(std::launch::async, [&] {
    return client->create_job("ns", {{"metadata", {{"name", "j"}}}}, stop);
  });
  REQUIRE(throttled.get_future().wait_for(10s) == std::future_status::ready);
  stop = true;
  REQUIRE(pending.wait_for(5s) == std::future_status::ready);  // not the 30 s of Retry-After
  auto r = pending.get();
  CHECK(!r.ok());
  CHECK(r.error.http_status == 429);
  CHECK(server.request_count() == 1);
}

TEST_CASE("RestApiClient: TLS verified against the kubeconfig CA", "[kube]") {
  Certs certs;
  LoopbackServer server([](const HttpRequest&, HttpWriter& w) { w.respond(200, R"({"kind":"Job"})"); },
                        certs.path("server.crt"), certs.path("server.key"));
  auto client_with = [&](auto adjust) {
    Config c;
    c.server = server.url();
    c.source = "context \"tls\" in kubeconfig";
    c.ca_pem = certs.pem("ca.crt");
    c.ca_where = "kubeconfig: clusters[k].cluster.certificate-authority-data";
    adjust(c);
    RestOptions o = fast_options();
    return std::move(RestApiClient::create(c, o)).value();
  };

  SECTION("the right CA works, also for a tls-server-name the certificate carries") {
    CHECK(client_with([](Config&) {})->get_job("ns", "j").ok());
    CHECK(client_with([](Config& c) { c.tls_server_name = "localhost"; })->get_job("ns", "j").ok());
  }
  SECTION("a wrong CA fails with a clear certificate verification message, without retries") {
    auto client = client_with([&](Config& c) { c.ca_pem = certs.pem("other-ca.crt"); });
    auto r = client->get_job("ns", "j");
    REQUIRE(!r.ok());
    CHECK(r.error.reason == "TLSError");
    CHECK_THAT(r.error.message, Contains("cannot get jobs \"j\" in namespace \"ns\": TLS certificate verification of " +
                                         server.url() + " failed: certificate verify failed") &&
                                    Contains("clusters[k].cluster.certificate-authority-data"));
    CHECK(client->stats().gets == 1);
  }
  SECTION("the system trust store does not know the test CA") {
    auto r = client_with([](Config& c) { c.ca_pem.clear(); c.ca_where.clear(); })->get_job("ns", "j");
    REQUIRE(!r.ok());
    CHECK_THAT(r.error.message, Contains("certificate verify failed") && Contains("the system trust store"));
  }
  SECTION("a certificate for another name fails") {
    auto r = client_with([](Config& c) { c.tls_server_name = "api.example.com"; })->get_job("ns", "j");
    REQUIRE(!r.ok());
    CHECK_THAT(r.error.message, Contains("not valid for \"api.example.com\""));
  }
  SECTION("insecure-skip-tls-verify skips verification only when configured") {
    auto r = client_with([](Config& c) {
      c.ca_pem.clear();
      c.insecure_skip_tls_verify = true;
    })->get_job("ns", "j");
    CHECK(r.ok());
  }
  SECTION("bad PEM material is refused up front, naming where it came from") {
    Config c;
    c.server = server.url();
    c.ca_pem = "not a certificate";
    c.ca_where = "cfg: clusters[k].cluster.certificate-authority";
    auto r = RestApiClient::create(c);
    REQUIRE(!r.ok());
    CHECK_THAT(r.status().message(), Contains("cfg: clusters[k].cluster.certificate-authority: no PEM certificate"));
  }
}

}  // namespace
}  // namespace mflow::kube

namespace mflow::kube {
namespace {

TEST_CASE("parse_warning_header reads each warn-text, escapes and warn-dates included", "[kube]") {
  CHECK(parse_warning_header(R"(299 - "unknown field \"spec.x\"")") ==
        std::vector<std::string>{R"(unknown field "spec.x")"});
  CHECK(parse_warning_header(R"(299 - "a, b", 299 - "c" "Tue, 15 Nov 1994 08:12:31 GMT", 299 - "d")") ==
        std::vector<std::string>{"a, b", "c", "d"});
  CHECK(parse_warning_header("").empty());
  CHECK(parse_warning_header(R"(299 - "unterminated)") == std::vector<std::string>{"unterminated"});
}

TEST_CASE("RestApiClient: each distinct Warning header reaches on_warning once", "[kube]") {
  LoopbackServer server([](const HttpRequest& req, HttpWriter& w) {
    json job = json::parse(req.body);
    w.respond(201, job.dump(), "application/json", {{"Warning", R"(299 - "deprecated \"x\"")"}});
  });
  std::vector<std::string> seen;
  RestOptions options = fast_options();
  options.on_warning = [&](const std::string& text) { seen.push_back(text); };
  auto client = make_client(server.url(), "", options);
  for (const char* name : {"a", "b"}) {
    REQUIRE(client->create_job("ns", {{"metadata", {{"name", name}}}}, kNoStop).ok());
  }
  CHECK(seen == std::vector<std::string>{R"(deprecated "x")"});
}

}  // namespace
}  // namespace mflow::kube
