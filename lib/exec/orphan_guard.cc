#include "exec/orphan_guard.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
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
// "MFLOW_GUARD_TOKEN=<hex>" once the guard runs; set before any task starts, then read only.
std::string g_token_env;

// Record values on the pipe: a positive pgid is watched, a negative one unwatched, and
// kGoodbye says mflow is ending in order (its tasks are reaped), so no /proc scan is needed.
constexpr int32_t kGoodbye = 0;

void report(int32_t record) {
  int fd = g_guard_fd.load(std::memory_order_relaxed);
  if (fd < 0) return;
  // Non-blocking: a guard that stopped reading must never stall the scheduler. A lost record
  // only weakens the safety net for that one group.
  while (::write(fd, &record, sizeof record) < 0 && errno == EINTR) {
  }
}

void say_goodbye() { report(kGoodbye); }

std::string random_token() {
  unsigned char bytes[16];
  size_t have = 0;
  while (have < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + have, sizeof bytes - have, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    have += static_cast<size_t>(n);
  }
  std::string hex;
  for (unsigned char b : bytes) hex += fmt::format("{:02x}", b);
  // Without getrandom (never on Linux >= 3.17) the pid and clock still make it unique enough
  // to tell this mflow's children from another run's.
  if (have < sizeof bytes) {
    hex = fmt::format("{}-{}", ::getpid(),
                      std::chrono::steady_clock::now().time_since_epoch().count());
  }
  return hex;
}

// The process groups of this session (other than the guard's and mflow's own) that hold a
// process carrying `needle` ("MFLOW_GUARD_TOKEN=<token>") in its environment. A process found
// in the guard's or mflow's group (moved there on purpose) is added to `pids` instead, so the
// kill does not reach the shell's job that ran mflow.
void find_token_holders(const std::string& needle, pid_t session, pid_t mflow_group,
                        std::vector<pid_t>* groups, std::vector<pid_t>* pids) {
  pid_t self = ::getpid();
  pid_t own_group = ::getpgrp();
  std::string env;
  char buf[1 << 14];
  for_each_process([&](const ProcStat& p) {
    if (p.pid == self || p.session != session || p.state == 'Z' || p.state == 'X') return;
    int fd = ::open(fmt::format("/proc/{}/environ", p.pid).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    env.clear();
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      env.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    // Entries are NUL-terminated; match a whole entry.
    size_t at = 0;
    bool found = false;
    while (!found && (at = env.find(needle, at)) != std::string::npos) {
      size_t end = at + needle.size();
      found = (at == 0 || env[at - 1] == '\0') && (end == env.size() || env[end] == '\0');
      at = end;
    }
    if (!found) return;
    auto* list = (p.pgrp == own_group || p.pgrp == mflow_group || p.pgrp <= 1) ? pids : groups;
    pid_t id = list == pids ? p.pid : p.pgrp;
    if (std::find(list->begin(), list->end(), id) == list->end()) list->push_back(id);
  });
}

}  // namespace

const std::string& guard_token_env() { return g_token_env; }

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
  std::string token = random_token();
  const char* argv[] = {"mflow", "guard", "--grace-ms", grace_ms.c_str(), "--token", token.c_str(),
                        nullptr};
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
  g_token_env = fmt::format("{}={}", kGuardTokenVar, token);
  g_guard_fd.store(p[1]);
  std::atexit(say_goodbye);
  return base::Status::ok_status();
}

void watch_group(pid_t pgid) {
  if (pgid > 0) report(static_cast<int32_t>(pgid));
}

void unwatch_group(pid_t pgid) {
  if (pgid > 0) report(-static_cast<int32_t>(pgid));
}

int run_orphan_guard(int fd, std::chrono::milliseconds grace, const std::string& token) {
  pid_t parent = ::getppid();
  pid_t mflow_group = ::getpgid(parent);
  pid_t session = ::getsid(0);
  std::vector<pid_t> groups;
  bool goodbye = false;
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
      if (r == kGoodbye) {
        goodbye = true;
      } else if (r > 0) {
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
  if (goodbye && groups.empty()) return 0;

  // Beyond this point mflow is gone with tasks possibly running: the listed groups, plus any
  // child whose group was never reported (spawned at the instant of the kill, or a report
  // lost to a full pipe), found by the token.
  const std::string needle = token.empty() ? "" : fmt::format("{}={}", kGuardTokenVar, token);
  std::vector<pid_t> strays;  // single processes holding the token inside a protected group
  auto scan = [&] {
    if (needle.empty() || goodbye) return;
    find_token_holders(needle, session, mflow_group, &groups, &strays);
  };
  scan();
  if (groups.empty() && strays.empty()) return 0;
  std::string message = fmt::format(
      "mflow: mflow (pid {}) ended without stopping its tasks; the orphan guard stops {} "
      "process group(s) (SIGTERM, SIGKILL after {} ms)\n",
      parent, groups.size() + strays.size(), grace.count());
  (void)!::write(2, message.data(), message.size());
  auto signal_all = [&](int sig) {
    for (pid_t g : groups) ::kill(-g, sig);
    for (pid_t p : strays) ::kill(p, sig);
  };
  signal_all(SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    size_t known = groups.size() + strays.size();
    scan();  // a task may have started a new group meanwhile: it gets its grace too
    if (groups.size() + strays.size() > known) signal_all(SIGTERM);
    std::sort(groups.begin(), groups.end());
    groups = live_groups(groups);  // zombies left to an init that never reaps do not count
    std::erase_if(strays, [](pid_t p) { return ::kill(p, 0) != 0; });
    if (groups.empty() && strays.empty()) {
      scan();
      if (groups.empty() && strays.empty()) return 0;
    }
  }
  // SIGKILL what is left, then scan again until no holder of the token is found (a process
  // forked while the group was being killed shows up on the next pass); bounded, in case
  // /proc shows an unkillable process (in D state) forever.
  for (int pass = 0; pass < 50 && !(groups.empty() && strays.empty()); ++pass) {
    signal_all(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::sort(groups.begin(), groups.end());
    groups = live_groups(groups);
    std::erase_if(strays, [](pid_t p) { return ::kill(p, 0) != 0; });
    scan();
  }
  return 0;
}

}  // namespace mflow::exec
