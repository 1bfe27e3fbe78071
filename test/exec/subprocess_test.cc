#include "exec/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "base/file_util.h"
#include "base/signals.h"
#include "exec/process_probe.h"
#include "support/temp_dir.h"

using namespace mflow;
using exec::Clock;
using exec::Stream;
using exec::Subprocess;
using exec::SubprocessSet;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

spec::Command shell(std::string script) {
  spec::Command c;
  c.shell = true;
  c.script = std::move(script);
  return c;
}

spec::Command argv(std::vector<std::string> args) {
  spec::Command c;
  c.shell = false;
  c.argv = std::move(args);
  return c;
}

// Runs children in a set and records their output lines.
struct Harness {
  SubprocessSet set;
  std::map<pid_t, std::vector<std::string>> out, err;
  std::vector<std::unique_ptr<Subprocess>> finished;

  explicit Harness(std::vector<int> wake = {}) : set(std::move(wake)) {}

  Subprocess* start(spec::Command cmd, std::map<std::string, std::string> env = {},
                    std::string out_path = "") {
    exec::SpawnRequest req;
    req.command = std::move(cmd);
    req.env = std::move(env);
    req.out.path = std::move(out_path);
    auto slot = std::make_shared<pid_t>(0);
    auto p = set.add(req, [this, slot](Stream s, std::string_view line) {
      (s == Stream::kStdout ? out : err)[*slot].emplace_back(line);
    });
    REQUIRE(p.ok());
    *slot = p.value()->pid();
    return p.value();
  }

  /// Waits until every child finished (or 20 s passed).
  void run_all() {
    auto limit = Clock::now() + seconds(20);
    while (set.running() > 0 && Clock::now() < limit) set.wait(limit, &finished);
    REQUIRE(set.running() == 0);
  }

  Subprocess* find(pid_t pid) {
    for (auto& p : finished) {
      if (p->pid() == pid) return p.get();
    }
    FAIL("pid " << pid << " did not finish");
    return nullptr;
  }
};

}  // namespace

TEST_CASE("subprocess reports exit codes", "[exec]") {
  Harness h;
  pid_t ok = h.start(shell("exit 0"))->pid();
  pid_t three = h.start(shell("exit 3"))->pid();
  h.run_all();
  CHECK(h.find(ok)->exit_code() == 0);
  CHECK(h.find(three)->exit_code() == 3);
  CHECK(h.find(three)->term_signal() == 0);
  CHECK(h.find(three)->finished_at() >= h.find(three)->started());
}

TEST_CASE("subprocess reports death by signal", "[exec]") {
  Harness h;
  pid_t pid = h.start(shell("kill -9 $$"))->pid();
  h.run_all();
  CHECK(h.find(pid)->exit_code() == -1);
  CHECK(h.find(pid)->term_signal() == SIGKILL);
}

TEST_CASE("argv commands are spawned directly with PATH lookup, never via a shell", "[exec]") {
  Harness h;
  pid_t pid = h.start(argv({"printf", "%s|\n", "a b", "$HOME; echo no"}))->pid();
  h.run_all();
  CHECK(h.find(pid)->exit_code() == 0);
  CHECK(h.out[pid] == std::vector<std::string>{"a b|", "$HOME; echo no|"});
}

TEST_CASE("a missing executable is an error naming it", "[exec]") {
  SubprocessSet set;
  exec::SpawnRequest req;
  req.command = argv({"mflow-no-such-program-xyz"});
  auto p = set.add(req);
  REQUIRE_FALSE(p.ok());
  CHECK_THAT(p.status().message(), Catch::Contains("mflow-no-such-program-xyz"));
  CHECK_THAT(p.status().message(), Catch::Contains("No such file or directory"));
  CHECK(set.running() == 0);
}

TEST_CASE("an unwritable output file is an error naming the path", "[exec]") {
  SubprocessSet set;
  exec::SpawnRequest req;
  req.command = shell("true");
  req.out.path = "/nonexistent-dir/out.log";
  auto p = set.add(req);
  REQUIRE_FALSE(p.ok());
  CHECK_THAT(p.status().message(), Catch::Contains("/nonexistent-dir/out.log"));
}

TEST_CASE("children read stdin at EOF", "[exec]") {
  Harness h;
  pid_t pid = h.start(shell("cat; echo after-eof"))->pid();
  h.run_all();
  CHECK(h.out[pid] == std::vector<std::string>{"after-eof"});
}

TEST_CASE("children inherit no descriptors but 0, 1 and 2", "[exec]") {
  // Expected: 0, 1, 2 and whatever this test process itself inherited without close-on-exec
  // (a CI harness may pass such fds down; they are not mflow's to close). Listed before
  // any mflow fd exists, so a leaked pipe or pidfd cannot hide in this list.
  std::vector<std::string> expected{"0", "1", "2"};
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    int fd = std::stoi(entry.path().filename().string());
    int flags = ::fcntl(fd, F_GETFD);
    if (fd > 2 && flags >= 0 && !(flags & FD_CLOEXEC)) expected.push_back(std::to_string(fd));
  }
  std::sort(expected.begin(), expected.end());
  Harness h;
  // Another running child means the set holds pipes and a pidfd that must not leak.
  h.start(shell("sleep 5"));
  int extra[2];  // like every fd mflow opens elsewhere (files, sockets): close-on-exec
  REQUIRE(::pipe2(extra, O_CLOEXEC) == 0);
  pid_t pid = h.start(shell("ls /proc/$$/fd"))->pid();
  std::vector<std::unique_ptr<Subprocess>> done;
  auto limit = Clock::now() + seconds(10);
  while (done.empty() && Clock::now() < limit) h.set.wait(limit, &done);
  ::close(extra[0]);
  ::close(extra[1]);
  REQUIRE(done.size() == 1);
  CHECK(done[0]->pid() == pid);
  std::vector<std::string> fds = h.out[pid];
  std::sort(fds.begin(), fds.end());
  CHECK(fds == expected);
}

TEST_CASE("environment overrides are added to the parent's environment", "[exec]") {
  ::setenv("MFLOW_TEST_INHERITED", "from-parent", 1);
  ::setenv("MFLOW_TEST_REPLACED", "old", 1);
  Harness h;
  pid_t pid = h.start(shell("echo \"$MFLOW_TEST_INHERITED $MFLOW_TEST_REPLACED $MFLOW_TEST_NEW\"; "
                            "env | grep -c '^MFLOW_TEST_REPLACED='"),
                      {{"MFLOW_TEST_REPLACED", "new"}, {"MFLOW_TEST_NEW", "x y"}})
                  ->pid();
  h.run_all();
  CHECK(h.out[pid] == std::vector<std::string>{"from-parent new x y", "1"});
}

TEST_CASE("output reaches its file while the child still runs", "[exec]") {
  test::TempDir dir;
  std::string path = dir.path() + "/out.log";
  Harness h;
  Subprocess* p = h.start(shell("echo first; sleep 30"), {}, path);
  bool seen = false;
  auto limit = Clock::now() + seconds(10);
  while (!seen && Clock::now() < limit) {
    h.set.wait(Clock::now() + milliseconds(50), &h.finished);
    auto text = base::read_file(path);
    seen = text.ok() && text.value() == "first\n";
  }
  CHECK(seen);
  CHECK(h.finished.empty());  // still running: the file was written as output arrived
  CHECK(h.out[p->pid()] == std::vector<std::string>{"first"});
  p->signal_group(SIGKILL);
  h.run_all();
}

TEST_CASE("signal_group kills the whole process tree", "[exec]") {
  Harness h;
  Subprocess* p = h.start(shell("sleep 100 & echo $!; wait"));
  pid_t leader = p->pid();
  // Wait for the background pid to be printed.
  auto limit = Clock::now() + seconds(10);
  while (h.out[leader].empty() && Clock::now() < limit) {
    h.set.wait(Clock::now() + milliseconds(50), &h.finished);
  }
  REQUIRE(h.out[leader].size() == 1);
  pid_t background = std::stoi(h.out[leader][0]);
  CHECK(test::process_alive(background));
  p->signal_group(SIGTERM);
  h.run_all();
  CHECK(h.find(leader)->term_signal() == SIGTERM);
  CHECK(test::eventually([&] { return !test::group_alive(leader); }));
  CHECK_FALSE(test::process_alive(background));
}

TEST_CASE("leftovers of a task's group die with its leader", "[exec]") {
  Harness h;
  // The background sleep keeps stdout open; the task still finishes promptly.
  auto start = Clock::now();
  pid_t leader = h.start(shell("sleep 100 & echo $!"))->pid();
  h.run_all();
  CHECK(Clock::now() - start < seconds(5));
  pid_t background = std::stoi(h.out[leader].at(0));
  CHECK(h.find(leader)->exit_code() == 0);
  CHECK(test::eventually([&] { return !test::process_alive(background); }));
}

TEST_CASE("250 concurrent children", "[exec]") {
  Harness h;
  std::vector<pid_t> pids;
  for (int i = 0; i < 250; ++i) {
    pids.push_back(h.start(shell("sleep 0.3; echo " + std::to_string(i)))->pid());
  }
  CHECK(h.set.running() == 250);
  h.run_all();
  REQUIRE(h.finished.size() == 250);
  for (int i = 0; i < 250; ++i) {
    CHECK(h.find(pids[i])->exit_code() == 0);
    CHECK(h.out[pids[i]] == std::vector<std::string>{std::to_string(i)});
  }
}

TEST_CASE("long lines are delivered in bounded pieces, the last one at EOF", "[exec]") {
  Harness h;
  pid_t pid = h.start(shell("head -c 200000 /dev/zero | tr '\\0' x; echo; printf tail"))->pid();
  h.run_all();
  const auto& lines = h.out[pid];
  REQUIRE(lines.size() == 5);
  CHECK(lines[0].size() == Subprocess::kMaxLineBytes);
  CHECK(lines[1].size() == Subprocess::kMaxLineBytes);
  CHECK(lines[2].size() == Subprocess::kMaxLineBytes);
  CHECK(lines[3].size() == 200000 - 3 * Subprocess::kMaxLineBytes);
  CHECK(lines[4] == "tail");
}

TEST_CASE("wait returns at the deadline and when a wake fd is readable", "[exec]") {
  int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  REQUIRE(efd >= 0);
  Harness h({efd});
  Subprocess* p = h.start(shell("sleep 30"));
  auto t0 = Clock::now();
  CHECK(h.set.wait(t0 + milliseconds(100), &h.finished) == SubprocessSet::WaitResult::kDeadline);
  CHECK(Clock::now() - t0 >= milliseconds(100));
  uint64_t one = 1;
  REQUIRE(::write(efd, &one, sizeof one) == sizeof one);
  CHECK(h.set.wait(std::nullopt, &h.finished) == SubprocessSet::WaitResult::kWoken);
  // The wake fd is not consumed: it is still readable for its owner.
  pollfd pfd{efd, POLLIN, 0};
  CHECK(::poll(&pfd, 1, 0) == 1);
  p->signal_group(SIGKILL);
  h.run_all();
  ::close(efd);
}

TEST_CASE("SIGINT wakes a set waiting on the interrupt fd", "[exec]") {
  base::install_interrupt_handlers();
  base::reset_interrupt_for_testing();
  Harness h({base::interrupt_fd()});
  Subprocess* p = h.start(shell("sleep 30"));
  REQUIRE(::raise(SIGINT) == 0);  // the handler only records it; the test binary lives on
  CHECK(base::interrupted());
  CHECK(base::interrupt_signal() == SIGINT);
  CHECK(h.set.wait(Clock::now() + seconds(10), &h.finished) == SubprocessSet::WaitResult::kWoken);
  base::acknowledge_interrupt();
  CHECK(base::interrupted());  // sticky
  CHECK(h.set.wait(Clock::now() + milliseconds(50), &h.finished) ==
        SubprocessSet::WaitResult::kDeadline);
  p->signal_group(SIGKILL);
  h.run_all();
  base::reset_interrupt_for_testing();
  CHECK_FALSE(base::interrupted());
}

TEST_CASE("the SIGCHLD fallback sees exits without pidfds", "[exec]") {
  SubprocessSet::force_sigchld_fallback_for_testing(true);
  {
    Harness h;
    CHECK_FALSE(SubprocessSet::uses_pidfd());
    pid_t a = h.start(shell("exit 4"))->pid();
    pid_t b = h.start(shell("sleep 0.2; echo late"))->pid();
    pid_t c = h.start(shell("sleep 100 & echo $!"))->pid();
    h.run_all();
    CHECK(h.find(a)->exit_code() == 4);
    CHECK(h.out[b] == std::vector<std::string>{"late"});
    CHECK(h.find(c)->exit_code() == 0);
  }
  SubprocessSet::force_sigchld_fallback_for_testing(false);
  CHECK(SubprocessSet::uses_pidfd());
}

TEST_CASE("destroying the set kills and reaps its children", "[exec]") {
  pid_t leader = 0;
  {
    Harness h;
    leader = h.start(shell("sleep 100 & sleep 100"))->pid();
  }
  CHECK_FALSE(test::process_alive(leader));
  CHECK(test::eventually([&] { return !test::group_alive(leader); }));
}

namespace {

// A background child of the leader that traps SIGTERM, then takes 0.3 s to "flush" `file`
// and exits 0 (a Python task behind `sh -c` flushing on SIGTERM). It prints its pid once the
// trap is in place.
std::string flushing_child(const std::string& file) {
  return "sh -c 'trap \"sleep 0.3; echo ok > " + file + "; exit 0\" TERM; echo $$; "
         "while :; do sleep 0.05; done' &";
}

// Runs `h` until `leader` printed a line; returns it as a pid.
pid_t first_line_pid(Harness& h, pid_t leader) {
  auto limit = Clock::now() + seconds(10);
  while (h.out[leader].empty() && Clock::now() < limit) {
    h.set.wait(Clock::now() + milliseconds(50), &h.finished);
  }
  REQUIRE(h.out[leader].size() == 1);
  return std::stoi(h.out[leader][0]);
}

}  // namespace

TEST_CASE("a stopped task's processes keep their grace after the leader dies", "[exec]") {
  struct Fallback {  // restored even when a REQUIRE below fails
    explicit Fallback(bool on) { SubprocessSet::force_sigchld_fallback_for_testing(on); }
    ~Fallback() { SubprocessSet::force_sigchld_fallback_for_testing(false); }
  } fallback(GENERATE(false, true));
  test::TempDir dir;
  std::string flushed = dir.path() + "/flushed";
  {
    Harness h;
    // The leader `sh` dies at once on SIGTERM; its child needs 0.3 s to finish.
    Subprocess* p = h.start(shell(flushing_child(flushed) + " wait"));
    pid_t leader = p->pid();
    pid_t child = first_line_pid(h, leader);
    // A grace far longer than run_all's 20 s limit: the task must finish because its group
    // emptied, not because the grace ran out.
    p->stop(Clock::now() + std::chrono::minutes(10));
    CHECK(p->stopping());
    h.run_all();
    CHECK(h.find(leader)->term_signal() == SIGTERM);
    auto text = base::read_file(flushed);
    REQUIRE(text.ok());
    CHECK(text.value() == "ok\n");
    CHECK_FALSE(test::process_alive(child));
    CHECK_FALSE(test::group_alive(leader));
  }
}

TEST_CASE("a stopped task's leftovers are killed when the grace ends", "[exec]") {
  Harness h;
  // The child ignores SIGTERM altogether; only the SIGKILL at the deadline ends it.
  Subprocess* p = h.start(shell("sh -c 'trap \"\" TERM; echo $$; while :; do sleep 0.05; done' &"
                                " wait"));
  pid_t leader = p->pid();
  pid_t child = first_line_pid(h, leader);
  h.set.stop_all(milliseconds(300));
  h.run_all();
  CHECK(h.find(leader)->term_signal() == SIGTERM);
  CHECK(test::eventually([&] { return !test::process_alive(child); }));
  CHECK(test::eventually([&] { return !test::group_alive(leader); }));
}

TEST_CASE("leftovers of a task that was not stopped get no grace", "[exec]") {
  test::TempDir dir;
  std::string flushed = dir.path() + "/flushed";
  Harness h;
  // The leader exits normally while its TERM-trapping child runs: the child is SIGKILLed at
  // once, so its trap never writes the file.
  pid_t leader = h.start(shell(flushing_child(flushed) + " echo $!"))->pid();
  h.run_all();
  CHECK(h.find(leader)->exit_code() == 0);
  pid_t child = std::stoi(h.out[leader].at(0));
  CHECK(test::eventually([&] { return !test::process_alive(child); }));
  CHECK_FALSE(std::filesystem::exists(flushed));
}
