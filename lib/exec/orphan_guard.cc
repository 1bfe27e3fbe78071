#include "exec/orphan_guard.h"

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "exec/subprocess.h"

extern char** environ;

namespace mflow::exec {
namespace {

// The write end of the pipe to the guard; -1 without one. Set once, before tasks start.
std::atomic<int> g_guard_fd{-1};

void report(int32_t record) {
  int fd = g_guard_fd.load(std::memory_order_relaxed);
  if (fd < 0) return;
  // Non-blocking: a guard that stopped reading must never stall the scheduler. A lost record
  // only weakens the safety net for that one group.
  while (::write(fd, &record, sizeof record) < 0 && errno == EINTR) {
  }
}

}  // namespace

base::Status start_orphan_guard(std::chrono::milliseconds grace) {
  static bool started = false;
  if (started) return base::Status::ok_status();
  started = true;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return base::Status::from_errno("orphan guard: pipe2", errno);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, p[0], 0);  // dup2 clears O_CLOEXEC on fd 0
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group: Ctrl-C at the terminal reaches mflow, which stops its tasks
  // itself, and must not take the guard with it first.
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t mask;
  sigemptyset(&mask);
  posix_spawnattr_setsigmask(&attr, &mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::string grace_ms = std::to_string(grace.count());
  const char* argv[] = {"mflow", "guard", "--grace-ms", grace_ms.c_str(), nullptr};
  pid_t pid = -1;
  // /proc/self/exe is this very binary even if its file was replaced since mflow started.
  int rc = ::posix_spawn(&pid, "/proc/self/exe", &actions, &attr, const_cast<char**>(argv),
                         environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(p[0]);
  if (rc != 0) {
    ::close(p[1]);
    return base::Status::io_error(fmt::format("orphan guard: cannot spawn: {}", std::strerror(rc)));
  }
  ::fcntl(p[1], F_SETFL, O_NONBLOCK);
  g_guard_fd.store(p[1]);
  return base::Status::ok_status();
}

void watch_group(pid_t pgid) {
  if (pgid > 0) report(static_cast<int32_t>(pgid));
}

void unwatch_group(pid_t pgid) {
  if (pgid > 0) report(-static_cast<int32_t>(pgid));
}

int run_orphan_guard(int fd, std::chrono::milliseconds grace) {
  pid_t parent = ::getppid();
  std::vector<pid_t> groups;
  int32_t records[1024];
  size_t have = 0;  // bytes in `records`
  for (;;) {
    ssize_t n = ::read(fd, reinterpret_cast<char*>(records) + have, sizeof records - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: mflow is gone (or an error that means the same)
    have += static_cast<size_t>(n);
    size_t whole = have / sizeof(int32_t);
    for (size_t i = 0; i < whole; ++i) {
      int32_t r = records[i];
      if (r > 0) {
        groups.push_back(r);
      } else if (auto it = std::find(groups.begin(), groups.end(), -r); it != groups.end()) {
        *it = groups.back();
        groups.pop_back();
      }
    }
    size_t rest = have - whole * sizeof(int32_t);
    std::memmove(records, reinterpret_cast<char*>(records) + whole * sizeof(int32_t), rest);
    have = rest;
  }
  if (groups.empty()) return 0;

  std::string message = fmt::format(
      "mflow: mflow (pid {}) ended without stopping its tasks; the orphan guard stops {} "
      "process group(s) (SIGTERM, SIGKILL after {} ms)\n",
      parent, groups.size(), grace.count());
  (void)!::write(2, message.data(), message.size());
  for (pid_t g : groups) ::kill(-g, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  std::sort(groups.begin(), groups.end());
  while (!groups.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    groups = live_groups(groups);  // zombies left to an init that never reaps do not count
  }
  for (pid_t g : groups) ::kill(-g, SIGKILL);
  return 0;
}

}  // namespace mflow::exec
