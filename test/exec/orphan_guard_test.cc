#include "exec/orphan_guard.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <thread>

#include <catch2/catch.hpp>

#include "exec/process_probe.h"

extern char** environ;

using namespace mflow;

namespace {

// A `sleep` leading its own process group, with a grandchild in the same group; with `env`
// (e.g. "MFLOW_GUARD_TOKEN=...") as its whole environment when given; in a session of its own
// with `new_session`.
pid_t spawn_group(const char* env = nullptr, bool new_session = false) {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, new_session ? POSIX_SPAWN_SETSID : POSIX_SPAWN_SETPGROUP);
  const char* argv[] = {"/bin/sh", "-c", "sleep 60 & sleep 60", nullptr};
  const char* envp[] = {"PATH=/usr/bin:/bin", env, nullptr};
  pid_t pid = -1;
  REQUIRE(::posix_spawn(&pid, "/bin/sh", nullptr, &attr, const_cast<char**>(argv),
                        env ? const_cast<char**>(envp) : environ) == 0);
  posix_spawnattr_destroy(&attr);
  return pid;
}

void send(int fd, int32_t record) { REQUIRE(::write(fd, &record, sizeof record) == 4); }

}  // namespace

TEST_CASE("the orphan guard stops the groups still listed when its pipe closes", "[exec]") {
  pid_t listed = spawn_group();
  pid_t unlisted = spawn_group();
  int p[2];
  REQUIRE(::pipe(p) == 0);
  send(p[1], listed);
  send(p[1], unlisted);
  send(p[1], -unlisted);  // reaped by mflow: no longer the guard's business
  ::close(p[1]);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(exec::run_orphan_guard(p[0], std::chrono::milliseconds(300), "") == 0);
  ::close(p[0]);
  // Both the leader and its grandchild are gone; SIGTERM suffices for `sleep`.
  CHECK_FALSE(test::group_alive(listed));
  CHECK(test::group_alive(unlisted));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  ::kill(-unlisted, SIGKILL);
  ::waitpid(listed, nullptr, 0);
  ::waitpid(unlisted, nullptr, 0);
}

TEST_CASE("the orphan guard leaves alone every group reported as reaped", "[exec]") {
  pid_t group = spawn_group();
  int p[2];
  REQUIRE(::pipe(p) == 0);
  send(p[1], group);
  send(p[1], -group);
  ::close(p[1]);
  CHECK(exec::run_orphan_guard(p[0], std::chrono::milliseconds(300), "") == 0);
  ::close(p[0]);
  CHECK(test::group_alive(group));
  ::kill(-group, SIGKILL);
  ::waitpid(group, nullptr, 0);
}

TEST_CASE("issue_9 the orphan guard stops unreported groups whose processes carry its token",
          "[exec]") {
  // A task spawned at the instant mflow is SIGKILLed is never reported: the token finds it.
  pid_t unreported = spawn_group("MFLOW_GUARD_TOKEN=t0k3n");
  pid_t other_token = spawn_group("MFLOW_GUARD_TOKEN=t0k3n-other");
  pid_t escaped = spawn_group("MFLOW_GUARD_TOKEN=t0k3n", /*new_session=*/true);
  // Give the shells time to start their sleeps (the grandchild must carry the token too).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  int p[2];
  REQUIRE(::pipe(p) == 0);
  ::close(p[1]);  // mflow died without a word
  CHECK(exec::run_orphan_guard(p[0], std::chrono::milliseconds(300), "t0k3n") == 0);
  ::close(p[0]);
  CHECK_FALSE(test::group_alive(unreported));
  CHECK(test::group_alive(other_token));  // another mflow's task
  CHECK(test::group_alive(escaped));      // left the session on purpose (setsid)
  for (pid_t g : {unreported, other_token, escaped}) {
    ::kill(-g, SIGKILL);
    ::waitpid(g, nullptr, 0);
  }
}

TEST_CASE("issue_9 after an orderly goodbye the orphan guard scans for no token", "[exec]") {
  pid_t group = spawn_group("MFLOW_GUARD_TOKEN=t0k3n");
  int p[2];
  REQUIRE(::pipe(p) == 0);
  send(p[1], 0);  // goodbye
  ::close(p[1]);
  CHECK(exec::run_orphan_guard(p[0], std::chrono::milliseconds(300), "t0k3n") == 0);
  ::close(p[0]);
  CHECK(test::group_alive(group));
  ::kill(-group, SIGKILL);
  ::waitpid(group, nullptr, 0);
}
