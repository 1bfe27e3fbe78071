#include "exec/local_executor.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "base/file_util.h"
#include "exec/process_probe.h"
#include "support/temp_dir.h"

using namespace mflow;
using exec::Clock;
using exec::Completion;
using exec::Outcome;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

struct RecordingSink : exec::OutputSink {
  std::map<std::string, std::vector<std::string>> lines;  // key -> "out:..." / "err:..."
  std::map<std::string, int64_t> pids;
  void on_output(const exec::TaskLaunch& task, int64_t pid, exec::Stream stream,
                 std::string_view line) override {
    lines[task.key].push_back((stream == exec::Stream::kStdout ? "out:" : "err:") +
                              std::string(line));
    pids[task.key] = pid;
  }
};

struct Fixture {
  test::TempDir dir;
  RecordingSink sink;

  exec::TaskLaunch launch(const std::string& key, const std::string& script) {
    exec::TaskLaunch l;
    l.key = key;
    l.step = "s";
    l.task_id = key;
    l.command.shell = true;
    l.command.script = script;
    l.stdout_path = dir.path() + "/" + key + ".out";
    l.stderr_path = dir.path() + "/" + key + ".err";
    return l;
  }

  std::map<std::string, Completion> run(exec::LocalExecutor& ex, size_t expected,
                                        seconds limit = seconds(20)) {
    std::map<std::string, Completion> done;
    auto end = Clock::now() + limit;
    while (done.size() < expected && Clock::now() < end) {
      std::vector<Completion> out;
      ex.wait(end, &out);
      for (auto& c : out) done[c.key] = c;
    }
    REQUIRE(done.size() == expected);
    CHECK(ex.running() == 0);
    return done;
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "local executor: outcomes, reasons, files and output lines", "[exec]") {
  exec::LocalExecutor ex(sink);
  REQUIRE(ex.start(launch("ok", "echo hello; echo warn >&2")).ok());
  REQUIRE(ex.start(launch("three", "exit 3")).ok());
  REQUIRE(ex.start(launch("killed", "kill -9 $$")).ok());
  CHECK(ex.running() == 3);
  auto done = run(ex, 3);
  CHECK(done["ok"].outcome == Outcome::kSucceeded);
  CHECK(done["ok"].exit_code == 0);
  CHECK(done["ok"].pid > 0);
  CHECK(done["ok"].pid == sink.pids["ok"]);
  CHECK_FALSE(done["ok"].host.empty());
  CHECK(done["ok"].finished >= done["ok"].started);
  CHECK(done["three"].outcome == Outcome::kFailed);
  CHECK(done["three"].exit_code == 3);
  CHECK(done["three"].reason == "exit code 3");
  CHECK(done["killed"].outcome == Outcome::kFailed);
  CHECK(done["killed"].signal == SIGKILL);
  CHECK(done["killed"].reason == "killed by signal 9 (SIGKILL)");
  CHECK(base::read_file(dir.path() + "/ok.out").value() == "hello\n");
  CHECK(base::read_file(dir.path() + "/ok.err").value() == "warn\n");
  CHECK(sink.lines["ok"] == std::vector<std::string>{"out:hello", "err:warn"});
}

TEST_CASE_METHOD(Fixture, "local executor: output files are appended to, env is added",
                 "[exec]") {
  base::write_file_atomic(dir.path() + "/e.out", "attempt 0\n");
  exec::LocalExecutor ex(sink);
  auto l = launch("e", "echo \"$MFLOW_STEP/$PATH_IS_SET\"");
  l.env = {{"MFLOW_STEP", "train"}, {"PATH_IS_SET", "${PATH:+yes}"}};
  l.command.script = "echo \"$MFLOW_STEP ${PATH:+path-kept}\"";
  REQUIRE(ex.start(l).ok());
  run(ex, 1);
  CHECK(base::read_file(dir.path() + "/e.out").value() == "attempt 0\ntrain path-kept\n");
}

TEST_CASE_METHOD(Fixture, "local executor: a timeout kills the whole process group",
                 "[exec]") {
  exec::LocalExecutorOptions options;
  options.kill_grace = milliseconds(500);
  exec::LocalExecutor ex(sink, options);
  auto l = launch("slow", "sleep 100 & echo $!; wait");
  l.timeout = seconds(1);
  auto started = Clock::now();
  REQUIRE(ex.start(l).ok());
  auto done = run(ex, 1);
  CHECK(Clock::now() - started < seconds(5));
  CHECK(done["slow"].outcome == Outcome::kTimedOut);
  CHECK_THAT(done["slow"].reason, Catch::StartsWith("timed out after 1s"));
  pid_t background = std::stoi(sink.lines["slow"].at(0).substr(4));
  CHECK(test::eventually([&] { return !test::process_alive(background); }));
  CHECK(test::eventually([&] { return !test::group_alive(static_cast<pid_t>(done["slow"].pid)); }));
}

TEST_CASE_METHOD(Fixture, "local executor: SIGKILL follows SIGTERM after the grace",
                 "[exec]") {
  exec::LocalExecutorOptions options;
  options.kill_grace = milliseconds(300);
  exec::LocalExecutor ex(sink, options);
  auto l = launch("stubborn", "trap '' TERM; sleep 100 & wait");
  l.timeout = seconds(1);
  auto started = Clock::now();
  REQUIRE(ex.start(l).ok());
  auto done = run(ex, 1);
  CHECK(Clock::now() - started < seconds(5));
  CHECK(done["stubborn"].outcome == Outcome::kTimedOut);
  CHECK(done["stubborn"].signal == SIGKILL);
}

TEST_CASE_METHOD(Fixture, "local executor: cancel_all stops everything as kCancelled",
                 "[exec]") {
  exec::LocalExecutor ex(sink);
  for (int i = 0; i < 5; ++i) REQUIRE(ex.start(launch("c" + std::to_string(i), "sleep 100")).ok());
  std::vector<Completion> none;
  ex.poll(&none);
  CHECK(none.empty());
  ex.cancel_all();
  auto done = run(ex, 5);
  for (auto& [key, c] : done) {
    CHECK(c.outcome == Outcome::kCancelled);
    CHECK(c.signal == SIGTERM);
  }
}

TEST_CASE_METHOD(Fixture, "local executor: a missing executable is kLaunchFailed", "[exec]") {
  exec::LocalExecutor ex(sink);
  auto l = launch("missing", "");
  l.command.shell = false;
  l.command.argv = {"/nonexistent/mflow-prog", "x"};
  REQUIRE(ex.start(l).ok());
  CHECK(ex.running() == 1);
  auto done = run(ex, 1);
  CHECK(done["missing"].outcome == Outcome::kLaunchFailed);
  CHECK_THAT(done["missing"].reason, Catch::Contains("No such file or directory"));
  CHECK_THAT(base::read_file(dir.path() + "/missing.err").value(),
             Catch::Contains("/nonexistent/mflow-prog"));
}

TEST_CASE_METHOD(Fixture, "local executor: wait returns on a wake fd and at the deadline",
                 "[exec]") {
  int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  exec::LocalExecutorOptions options;
  options.wake_fds = {efd};
  exec::LocalExecutor ex(sink, options);
  REQUIRE(ex.start(launch("w", "sleep 100")).ok());
  std::vector<Completion> out;
  auto t0 = Clock::now();
  ex.wait(t0 + milliseconds(100), &out);
  CHECK(out.empty());
  CHECK(Clock::now() - t0 >= milliseconds(100));
  uint64_t one = 1;
  REQUIRE(::write(efd, &one, sizeof one) == sizeof one);
  ex.wait(std::nullopt, &out);
  CHECK(out.empty());
  ex.cancel_all();
  ::close(efd);
}

TEST_CASE_METHOD(Fixture, "local executor: 1,000 tasks, 16 at a time", "[exec]") {
  exec::LocalExecutor ex(sink);
  size_t started = 0, finished = 0;
  auto t0 = Clock::now();
  while (finished < 1000) {
    while (started < 1000 && ex.running() < 16) {
      REQUIRE(ex.start(launch("t" + std::to_string(started++), "echo x")).ok());
    }
    std::vector<Completion> out;
    ex.wait(Clock::now() + seconds(30), &out);
    for (const auto& c : out) CHECK(c.outcome == Outcome::kSucceeded);
    finished += out.size();
  }
  CHECK(sink.lines.size() == 1000);
  CHECK(Clock::now() - t0 < seconds(60));
}
