#include "store/record_json.h"

#include <catch2/catch.hpp>

#include "store/layout.h"

using namespace mflow;
using store::Clock;

namespace {

Clock::time_point from_ms(int64_t ms) { return Clock::time_point(std::chrono::milliseconds(ms)); }

}  // namespace

TEST_CASE("times are RFC 3339 UTC with milliseconds", "[store]") {
  CHECK(store::format_time(from_ms(0)) == "1970-01-01T00:00:00.000Z");
  CHECK(store::format_time(from_ms(951782400123)) == "2000-02-29T00:00:00.123Z");
  CHECK(store::format_time(from_ms(-1)) == "1969-12-31T23:59:59.999Z");
  CHECK(store::format_time(from_ms(4102444799999)) == "2099-12-31T23:59:59.999Z");
  // Sub-millisecond precision is truncated, not rounded.
  CHECK(store::format_time(from_ms(1500) + std::chrono::microseconds(999)) ==
        "1970-01-01T00:00:01.500Z");

  for (int64_t ms : {int64_t{0}, int64_t{-1}, int64_t{951782400123}, int64_t{1795401819689}}) {
    auto parsed = store::parse_time(store::format_time(from_ms(ms)));
    REQUIRE(parsed.ok());
    CHECK(parsed.value() == from_ms(ms));
  }
  auto no_fraction = store::parse_time("2026-11-24T02:43:39Z");
  REQUIRE(no_fraction.ok());
  CHECK(store::format_time(no_fraction.value()) == "2026-11-24T02:43:39.000Z");

  for (const char* bad : {"", "yesterday", "2026-11-24 02:43:39.689Z", "2026-11-24T02:43:39.689",
                          "2026-13-24T02:43:39.689Z", "2026-11-24T02:43:39.Z",
                          "2026-11-24T02:43:39.689+01:00", "2026-11-24T24:00:00Z"}) {
    INFO(bad);
    auto r = store::parse_time(bad);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("RFC 3339"));
  }
}

TEST_CASE("task records round-trip through JSON", "[store]") {
  store::TaskRecord t;
  t.run_id = "12";
  t.step = "body";
  t.task_id = "3.1";
  t.index_path = {3, 1};
  t.status = store::TaskStatus::kFailed;
  store::AttemptRecord a;
  a.attempt = 0;
  a.outcome = "failed";
  a.exit_code = 3;
  a.signal = 0;
  a.reason = "exit code 3";
  a.started = from_ms(1795401819689);
  a.finished = from_ms(1795401820001);
  a.host = "box";
  a.pid = 4242;
  a.executor = "local";
  t.attempts = {a, a};
  t.attempts[1].attempt = 1;
  t.attempts[1].finished.reset();
  t.attempts[1].outcome = "running";
  t.spec_hash = "abc";
  t.input_hash = "def";
  t.resources = {{"cpu", "1"}, {"memory", "4096"}};
  t.outputs = {{"x", {std::string(64, 'a'), 5}}};
  t.view = {{"x", {std::string(64, 'a'), 5}}, {"y", {std::string(64, 'b'), 0}}};
  t.num_splits = 7;
  t.reused_from = "3/body/3.1";

  auto back = store::task_from_json(store::task_to_json(t), "task.json");
  REQUIRE(back.ok());
  const store::TaskRecord& r = back.value();
  CHECK(r.run_id == t.run_id);
  CHECK(r.step == t.step);
  CHECK(r.task_id == t.task_id);
  CHECK(r.index_path == t.index_path);
  CHECK(r.status == t.status);
  REQUIRE(r.attempts.size() == 2);
  CHECK(r.attempts[0].attempt == 0);
  CHECK(r.attempts[0].outcome == "failed");
  CHECK(r.attempts[0].exit_code == 3);
  CHECK(r.attempts[0].reason == "exit code 3");
  CHECK(r.attempts[0].started == a.started);
  CHECK(r.attempts[0].finished == a.finished);
  CHECK(r.attempts[0].host == "box");
  CHECK(r.attempts[0].pid == 4242);
  CHECK(r.attempts[0].executor == "local");
  CHECK(r.attempts[1].attempt == 1);
  CHECK_FALSE(r.attempts[1].finished.has_value());
  CHECK(r.spec_hash == "abc");
  CHECK(r.input_hash == "def");
  CHECK(r.resources == t.resources);
  CHECK(r.outputs == t.outputs);
  CHECK(r.view == t.view);
  CHECK(r.num_splits == std::optional<int64_t>(7));
  CHECK(r.reused_from == t.reused_from);

  t.num_splits.reset();
  auto no_splits = store::task_from_json(store::task_to_json(t), "task.json");
  REQUIRE(no_splits.ok());
  CHECK_FALSE(no_splits->num_splits.has_value());
}

TEST_CASE("damaged or newer records are refused with the file named", "[store]") {
  struct Case {
    std::string text;
    std::string expect;
  };
  const std::string started = R"("started":"2026-01-01T00:00:00Z")";
  const std::vector<Case> cases = {
      {"", "empty file"},
      {R"({"format":1,"run_id":"1","fl)", "not valid JSON"},
      {"[1,2]", "not a JSON object"},
      {R"({"run_id":"1","flow":"f","status":"running",)" + started + "}", "format"},
      {R"({"format":2,"run_id":"1","flow":"f","status":"running",)" + started + "}",
       "newer than this mflow"},
      {R"({"format":1,"run_id":"1","flow":"f","status":"sleeping",)" + started + "}",
       "unknown status 'sleeping'"},
      {R"({"format":1,"run_id":1,"flow":"f","status":"running",)" + started + "}",
       "'run_id' must be a string"},
      {R"({"format":1,"run_id":"1","flow":"f","status":"running","started":"noon"})",
       "field 'started'"},
      {R"({"format":1,"run_id":"1","status":"running",)" + started + "}", "missing field 'flow'"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    auto r = store::run_from_json(c.text, "/ds/runs/1/run.json");
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::StartsWith("/ds/runs/1/run.json: "));
    CHECK_THAT(r.status().message(), Catch::Contains(c.expect));
  }
  auto bad_artifact = store::task_from_json(
      R"({"format":1,"run_id":"1","step":"s","task_id":"0","status":"succeeded",)"
      R"("outputs":{"x":{"sha256":"aa","size":-3}}})",
      "t.json");
  REQUIRE_FALSE(bad_artifact.ok());
  CHECK_THAT(bad_artifact.status().message(), Catch::Contains("outputs.x.size"));
}

TEST_CASE("layout names and validity rules", "[store]") {
  namespace layout = store::layout;
  CHECK(layout::object_path("/ds", std::string(64, 'e')) ==
        "/ds/objects/ee/" + std::string(64, 'e'));
  CHECK(layout::log_file("/ds", "4", "body", "3.1", 2, true) ==
        "/ds/runs/4/tasks/body/3.1/2.stderr");
  CHECK(layout::output_dir("/ds", "4", "body", "3", 0) == "/ds/runs/4/tasks/body/3/0.out");
  CHECK(layout::artifacts_dir("/ds", "4", "body", "3") == "/ds/runs/4/tasks/body/3/artifacts");
  CHECK(layout::input_dir("/ds", "4", "join", "0") == "/ds/runs/4/tasks/join/0/input");
  CHECK(layout::is_run_id("1"));
  CHECK(layout::is_run_id("1234567890"));
  CHECK_FALSE(layout::is_run_id("0"));
  CHECK_FALSE(layout::is_run_id("012"));
  CHECK_FALSE(layout::is_run_id("../1"));
  CHECK_FALSE(layout::is_run_id(""));
  CHECK(layout::valid_component("start"));
  CHECK(layout::valid_component("3.1"));
  CHECK_FALSE(layout::valid_component(".."));
  CHECK_FALSE(layout::valid_component(".hidden"));
  CHECK_FALSE(layout::valid_component("a/b"));
  CHECK(layout::is_sha256(std::string(64, 'f')));
  CHECK_FALSE(layout::is_sha256(std::string(64, 'F')));
  CHECK(store::valid_artifact_name("model.pkl"));
  CHECK(store::valid_artifact_name("_x-1"));
  CHECK_FALSE(store::valid_artifact_name("1x"));
  CHECK_FALSE(store::valid_artifact_name("a b"));
  CHECK_FALSE(store::valid_artifact_name(std::string(129, 'a')));
}
