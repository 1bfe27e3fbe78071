#include "exec/subprocess.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <fmt/core.h>

#include "base/file_util.h"
#include "exec/orphan_guard.h"

extern char** environ;

namespace mflow::exec {
namespace {

// The SIGCHLD fallback for kernels without pidfd_open (before 5.3): the handler writes to a
// self-pipe that sits in the poll set, and children without a pidfd are checked with
// waitid(WNOWAIT) on every loop iteration.
std::atomic<bool> g_force_sigchld{false};
std::atomic<bool> g_pidfd_unsupported{false};
std::atomic<int> g_sigchld_write_fd{-1};
int g_sigchld_read_fd = -1;

extern "C" void on_sigchld(int) {
  int saved_errno = errno;
  char byte = 0;
  ssize_t n = ::write(g_sigchld_write_fd.load(), &byte, 1);
  (void)n;  // a full pipe already means "something exited"
  errno = saved_errno;
}

void ensure_sigchld_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    int fds[2];
    MFLOW_CHECK(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0, "pipe2 failed: {}", std::strerror(errno));
    g_sigchld_read_fd = fds[0];
    g_sigchld_write_fd.store(fds[1]);
    struct sigaction sa {};
    sa.sa_handler = on_sigchld;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    ::sigaction(SIGCHLD, &sa, nullptr);
  });
}

void drain_sigchld_pipe() {
  char buf[256];
  while (::read(g_sigchld_read_fd, buf, sizeof buf) > 0) {
  }
}

int open_pidfd(pid_t pid) {
  if (g_force_sigchld.load() || g_pidfd_unsupported.load()) return -1;
#ifdef SYS_pidfd_open
  // glibc 2.36's <sys/pidfd.h> is not C++-safe (see STYLE.md §8.4), hence the raw syscall.
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) {
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // pidfds are always close-on-exec; belt and braces
    return fd;
  }
  if (errno == ENOSYS) g_pidfd_unsupported.store(true);
#else
  (void)pid;
  g_pidfd_unsupported.store(true);
#endif
  return -1;
}


// RAII wrappers so every error path below destroys what it initialised.
struct FileActions {
  posix_spawn_file_actions_t fa;
  FileActions() { posix_spawn_file_actions_init(&fa); }
  ~FileActions() { posix_spawn_file_actions_destroy(&fa); }
};
struct SpawnAttr {
  posix_spawnattr_t attr;
  SpawnAttr() { posix_spawnattr_init(&attr); }
  ~SpawnAttr() { posix_spawnattr_destroy(&attr); }
};

// Signals whose disposition mflow changes (handled or ignored) or that a child must not inherit
// as ignored: reset to default in every child.
constexpr int kResetSignals[] = {SIGPIPE, SIGINT,  SIGTERM, SIGHUP,  SIGQUIT, SIGCHLD,
                                 SIGUSR1, SIGUSR2, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU};

}  // namespace

bool for_each_process(const std::function<void(const ProcStat&)>& visit) {
  DIR* proc = ::opendir("/proc");
  if (!proc) return false;
  char stat[512];
  while (dirent* entry = ::readdir(proc)) {
    const char* name = entry->d_name;
    if (name[0] < '1' || name[0] > '9') continue;
    int fd = ::openat(::dirfd(proc), fmt::format("{}/stat", name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;  // exited meanwhile
    ssize_t n = ::read(fd, stat, sizeof stat - 1);
    ::close(fd);
    if (n <= 0) continue;
    stat[n] = '\0';
    // "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses, so
    // parse from the last ')'.
    const char* close = std::strrchr(stat, ')');
    if (!close) continue;
    ProcStat p;
    long ppid = 0;
    long pgrp = 0;
    long session = 0;
    if (std::sscanf(close + 1, " %c %ld %ld %ld", &p.state, &ppid, &pgrp, &session) != 4) continue;
    p.pid = static_cast<pid_t>(std::atol(name));
    p.ppid = static_cast<pid_t>(ppid);
    p.pgrp = static_cast<pid_t>(pgrp);
    p.session = static_cast<pid_t>(session);
    visit(p);
  }
  ::closedir(proc);
  return true;
}

std::vector<pid_t> live_groups(const std::vector<pid_t>& pgids) {
  std::vector<pid_t> live;
  bool readable = for_each_process([&](const ProcStat& p) {
    if (p.state == 'Z' || p.state == 'X' || p.state == 'x') return;
    if (std::binary_search(pgids.begin(), pgids.end(), p.pgrp) &&
        std::find(live.begin(), live.end(), p.pgrp) == live.end()) {
      live.push_back(p.pgrp);
    }
  });
  if (!readable) return pgids;
  std::sort(live.begin(), live.end());
  return live;
}

// ---------------------------------------------------------------------------------------------
// Subprocess

Subprocess::~Subprocess() {
  if (reaped_ || pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  unwatch_group(pid_);
}

void Subprocess::signal_group(int sig) {
  if (!reaped_ && pid_ > 0) ::kill(-pid_, sig);
}

void Subprocess::stop(Clock::time_point kill_at) {
  if (reaped_ || pid_ <= 0) return;
  if (!stopping_) {
    stopping_ = true;
    kill_at_ = kill_at;
    ::kill(-pid_, SIGTERM);
  } else if (kill_at_ && kill_at < *kill_at_) {
    kill_at_ = kill_at;
  }
}

void Subprocess::on_leader_exit() {
  if (reaped_) return;
  // The leader is a zombie until reaped, which keeps its pid and process-group id from being
  // reused: killing the group now can only hit this task's own leftovers.
  ::kill(-pid_, SIGKILL);
  int status = 0;
  pid_t r;
  while ((r = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  unwatch_group(pid_);
  pidfd_.reset();
  if (r == pid_ && WIFEXITED(status)) {
    exit_code_ = WEXITSTATUS(status);
  } else if (r == pid_ && WIFSIGNALED(status)) {
    term_signal_ = WTERMSIG(status);
  } else {
    term_signal_ = SIGKILL;  // reaped elsewhere (should not happen); report as killed
  }
}

void Subprocess::deliver(Channel& ch, std::string_view data) {
  if (!ch.file && !ch.path.empty() && !data.empty()) {
    int fd = ::open(ch.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
      output_error_ = base::Status::from_errno(ch.path, errno).message();
    } else {
      ch.file.reset(fd);
      ch.file_path = ch.path;
    }
    ch.path.clear();  // one attempt only; a failure is reported through output_error_
  }
  if (ch.file) {
    auto s = base::write_all(ch.file.get(), data.data(), data.size(), ch.file_path);
    if (!s.ok()) {
      output_error_ = s.message();
      ch.file.reset();
    }
  }
  if (!on_line_) return;
  while (!data.empty()) {
    size_t nl = data.find('\n');
    std::string_view chunk = data.substr(0, nl == std::string_view::npos ? data.size() : nl);
    // Lines longer than the bound go out in pieces so memory stays bounded per stream.
    while (ch.partial.size() + chunk.size() > kMaxLineBytes) {
      size_t take = kMaxLineBytes - ch.partial.size();
      ch.partial.append(chunk.substr(0, take));
      on_line_(ch.stream, ch.partial);
      ch.partial.clear();
      chunk.remove_prefix(take);
    }
    if (nl == std::string_view::npos) {
      ch.partial.append(chunk);
      break;
    }
    if (ch.partial.empty()) {
      on_line_(ch.stream, chunk);
    } else {
      ch.partial.append(chunk);
      on_line_(ch.stream, ch.partial);
      ch.partial.clear();
    }
    data.remove_prefix(nl + 1);
  }
}

void Subprocess::close_channel(Channel& ch) {
  if (on_line_ && !ch.partial.empty()) on_line_(ch.stream, ch.partial);
  ch.partial.clear();
  ch.partial.shrink_to_fit();
  ch.pipe.reset();
  ch.file.reset();
}

bool Subprocess::read_channel(Channel& ch, char* buf, size_t size) {
  for (;;) {
    ssize_t n = ::read(ch.pipe.get(), buf, size);
    if (n > 0) {
      deliver(ch, std::string_view(buf, static_cast<size_t>(n)));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    close_channel(ch);  // EOF, or an error that will not go away
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// SubprocessSet

SubprocessSet::SubprocessSet(std::vector<int> wake_fds)
    : wake_fds_(std::move(wake_fds)), buffer_(64 * 1024) {}

SubprocessSet::~SubprocessSet() {
  // Kill every group first, then reap, so the children die in parallel.
  signal_all(SIGKILL);
  procs_.clear();
}

bool SubprocessSet::uses_pidfd() { return !g_force_sigchld.load() && !g_pidfd_unsupported.load(); }

void SubprocessSet::force_sigchld_fallback_for_testing(bool force) { g_force_sigchld.store(force); }

void SubprocessSet::signal_all(int sig) {
  for (auto& p : procs_) p->signal_group(sig);
}

void SubprocessSet::stop_all(std::chrono::milliseconds grace) {
  Clock::time_point kill_at = Clock::now() + grace;
  for (auto& p : procs_) p->stop(kill_at);
}

void SubprocessSet::release_leader(Subprocess* p) {
  p->on_leader_exit();
  // Read what is left, and give escaped holders of the pipes (setsid) a grace.
  char* buf = buffer_.data();
  for (auto* ch : {&p->out_, &p->err_}) {
    while (ch->pipe) {
      ssize_t n = ::read(ch->pipe.get(), buf, buffer_.size());
      if (n > 0) {
        p->deliver(*ch, std::string_view(buf, static_cast<size_t>(n)));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && errno == EAGAIN) {
        break;  // still held open by a process outside the group, or one being killed
      } else {
        p->close_channel(*ch);
      }
    }
  }
  if (p->open_pipes() > 0) p->drain_deadline_ = Clock::now() + kDrainGrace;
}

std::optional<Clock::time_point> SubprocessSet::check_stopping(Clock::time_point now) {
  std::optional<Clock::time_point> next;
  std::vector<pid_t> held;
  for (auto& p : procs_) {
    if (p->kill_at_ && now >= *p->kill_at_) {
      p->kill_at_.reset();
      p->signal_group(SIGKILL);
      if (p->holding_leader()) release_leader(p.get());
    }
    if (p->kill_at_ && (!next || *p->kill_at_ < *next)) next = p->kill_at_;
    if (p->holding_leader()) held.push_back(p->pid_);
  }
  if (held.empty()) {
    next_scan_.reset();
    return next;
  }
  if (!next_scan_ || now >= *next_scan_) {
    std::sort(held.begin(), held.end());
    std::vector<pid_t> live = live_groups(held);
    for (auto& p : procs_) {
      if (p->holding_leader() && std::find(live.begin(), live.end(), p->pid_) == live.end()) {
        release_leader(p.get());  // the group is empty: the task is done, grace or not
      }
    }
    next_scan_ = now + kGroupScanInterval;
    if (live.empty()) return next;
  }
  if (!next || *next_scan_ < *next) next = next_scan_;
  return next;
}

base::Result<Subprocess*> SubprocessSet::add(const SpawnRequest& request, LineCallback on_line) {
  const spec::Command& cmd = request.command;
  std::vector<const char*> argv;
  if (cmd.shell) {
    argv = {"/bin/sh", "-c", cmd.script.c_str(), nullptr};
  } else {
    if (cmd.argv.empty() || cmd.argv[0].empty()) {
      return base::Status::invalid("cannot run an empty command");
    }
    for (const auto& a : cmd.argv) argv.push_back(a.c_str());
    argv.push_back(nullptr);
  }
  const char* program = argv[0];

  // The environment: mflow's own, minus the names being overridden, plus the overrides.
  std::vector<std::string> overrides;
  overrides.reserve(request.env.size());
  for (const auto& [name, value] : request.env) overrides.push_back(name + "=" + value);
  std::vector<const char*> envp;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    std::string_view name = kv.substr(0, kv.find('='));
    bool replaced = false;
    for (const auto& [n, v] : request.env) {
      if (n == name) {
        replaced = true;
        break;
      }
    }
    if (!replaced) envp.push_back(*e);
  }
  for (const auto& kv : overrides) envp.push_back(kv.c_str());
  // The orphan guard's token, so it can find this child even if mflow dies before reporting
  // its group (orphan_guard.h). It replaces the token of an outer mflow, whose guard reaches
  // this child through the group of the task that ran this mflow.
  const std::string& token = guard_token_env();
  if (!token.empty()) {
    std::erase_if(envp, [](const char* e) {
      std::string_view kv(e);
      return kv.substr(0, kv.find('=')) == kGuardTokenVar;
    });
    envp.push_back(token.c_str());
  }
  envp.push_back(nullptr);

  auto proc = std::unique_ptr<Subprocess>(new Subprocess());
  proc->on_line_ = std::move(on_line);
  proc->out_.stream = Stream::kStdout;
  proc->err_.stream = Stream::kStderr;

  FileActions actions;
  base::UniqueFd child_ends[2];
  const OutputSpec* specs[2] = {&request.out, &request.err};
  Subprocess::Channel* channels[2] = {&proc->out_, &proc->err_};
  for (int i = 0; i < 2; ++i) {
    const OutputSpec& spec = *specs[i];
    int target = i + 1;
    switch (spec.kind) {
      case OutputSpec::Kind::kPipe: {
        if (!spec.path.empty()) {
          // The file is created on the first byte: most tasks write little or nothing, and
          // creating an inode is one of the dearest things a task costs mflow. Whether it
          // can be created is checked now, so a bad path still fails the spawn.
          std::string dir = spec.path.substr(0, spec.path.find_last_of('/') + 1);
          if (::access(spec.path.c_str(), W_OK) != 0 &&
              ::access(dir.empty() ? "." : dir.c_str(), W_OK | X_OK) != 0) {
            return base::Status::from_errno(spec.path, errno);
          }
          channels[i]->path = spec.path;
        }
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) return base::Status::from_errno("pipe2", errno);
        channels[i]->pipe.reset(p[0]);
        child_ends[i].reset(p[1]);
        ::fcntl(p[0], F_SETFL, O_NONBLOCK);
        posix_spawn_file_actions_adddup2(&actions.fa, p[1], target);
        break;
      }
      case OutputSpec::Kind::kFd:
        MFLOW_CHECK(spec.fd >= 0, "OutputSpec::kFd without an fd");
        posix_spawn_file_actions_adddup2(&actions.fa, spec.fd, target);
        break;
      case OutputSpec::Kind::kNull:
        posix_spawn_file_actions_addopen(&actions.fa, target, "/dev/null", O_WRONLY, 0);
        break;
      case OutputSpec::Kind::kInherit:
        break;
    }
  }
  // stdin last, so a pipe end that happened to land on fd 0 has already been dup'ed away.
  posix_spawn_file_actions_addopen(&actions.fa, 0, "/dev/null", O_RDONLY, 0);

  SpawnAttr attr;
  sigset_t mask;
  sigemptyset(&mask);
  posix_spawnattr_setsigmask(&attr.attr, &mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : kResetSignals) sigaddset(&defaults, sig);
  posix_spawnattr_setsigdefault(&attr.attr, &defaults);
  posix_spawnattr_setpgroup(&attr.attr, 0);
  posix_spawnattr_setflags(&attr.attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  // Without a pidfd the handler must be in place before the child can exit.
  if (!uses_pidfd()) ensure_sigchld_handler();
  pid_t pid = -1;
  proc->started_ = Clock::now();
  int rc = cmd.shell ? ::posix_spawn(&pid, program, &actions.fa, &attr.attr,
                                     const_cast<char* const*>(argv.data()),
                                     const_cast<char* const*>(envp.data()))
                     : ::posix_spawnp(&pid, program, &actions.fa, &attr.attr,
                                      const_cast<char* const*>(argv.data()),
                                      const_cast<char* const*>(envp.data()));
  if (rc != 0) {
    return base::Status::io_error(fmt::format("cannot run '{}': {}", program, std::strerror(rc)));
  }
  proc->pid_ = pid;
  watch_group(pid);
  int pidfd = open_pidfd(pid);
  if (pidfd >= 0) {
    proc->pidfd_.reset(pidfd);
  } else {
    ensure_sigchld_handler();  // EMFILE, or no pidfd support: watch this child by SIGCHLD
  }
  Subprocess* raw = proc.get();
  procs_.push_back(std::move(proc));
  return raw;
}

SubprocessSet::WaitResult SubprocessSet::wait(std::optional<Clock::time_point> deadline,
                                              std::vector<std::unique_ptr<Subprocess>>* finished) {
  struct Slot {
    Subprocess* proc;
    int what;  // 0 stdout, 1 stderr, 2 pidfd, 3 wake fd, 4 sigchld pipe
  };
  std::vector<pollfd> pfds;
  std::vector<Slot> slots;
  char* buf = buffer_.data();
  size_t buf_size = buffer_.size();

  // A normal exit of the leader takes the rest of its group with it (a task cannot leave a
  // daemon behind). A task being stopped is different: its other processes (a Python child
  // of `sh -c` flushing on SIGTERM) keep their grace, so the exited leader is held as a
  // zombie until its group is empty or the stop deadline passes (check_stopping).
  auto after_exit = [&](Subprocess* p) {
    if (p->kill_at_) {
      p->leader_exited_ = true;  // the next scan is due at once unless one ran < 25 ms ago
    } else {
      release_leader(p);
    }
  };

  bool polled = false;
  for (;;) {
    bool any_without_pidfd = false;
    for (auto& p : procs_) any_without_pidfd |= (!p->reaped_ && !p->pidfd_);
    if (any_without_pidfd) {
      ensure_sigchld_handler();
      drain_sigchld_pipe();
      for (auto& p : procs_) {
        if (p->reaped_ || p->pidfd_ || p->leader_exited_) continue;
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(p->pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == p->pid_) {
          after_exit(p.get());
        }
      }
    }

    // Cut off pipes still held after the grace, then hand out the finished children.
    Clock::time_point now = Clock::now();
    std::optional<Clock::time_point> wake_at = deadline;
    if (auto t = check_stopping(now); t && (!wake_at || *t < *wake_at)) wake_at = t;
    size_t done = 0;
    for (auto& p : procs_) {
      if (p->reaped_ && p->open_pipes() > 0 && p->drain_deadline_) {
        if (*p->drain_deadline_ <= now) {
          p->close_channel(p->out_);
          p->close_channel(p->err_);
        } else if (!wake_at || *p->drain_deadline_ < *wake_at) {
          wake_at = p->drain_deadline_;
        }
      }
      if (p->finished()) ++done;
    }
    if (done > 0) {
      auto it = std::stable_partition(procs_.begin(), procs_.end(),
                                      [](const auto& p) { return !p->finished(); });
      for (auto i = it; i != procs_.end(); ++i) {
        (*i)->finished_at_ = now;
        finished->push_back(std::move(*i));
      }
      procs_.erase(it, procs_.end());
      return WaitResult::kFinished;
    }
    // A deadline already past still gets one non-blocking poll, so poll()-style callers
    // (deadline = now) make progress.
    if (deadline && now >= *deadline && polled) return WaitResult::kDeadline;

    pfds.clear();
    slots.clear();
    for (auto& p : procs_) {
      if (p->out_.pipe) {
        pfds.push_back({p->out_.pipe.get(), POLLIN, 0});
        slots.push_back({p.get(), 0});
      }
      if (p->err_.pipe) {
        pfds.push_back({p->err_.pipe.get(), POLLIN, 0});
        slots.push_back({p.get(), 1});
      }
      if (p->pidfd_ && !p->leader_exited_) {  // a held leader's pidfd stays readable
        pfds.push_back({p->pidfd_.get(), POLLIN, 0});
        slots.push_back({p.get(), 2});
      }
    }
    for (int fd : wake_fds_) {
      if (fd < 0) continue;
      pfds.push_back({fd, POLLIN, 0});
      slots.push_back({nullptr, 3});
    }
    if (any_without_pidfd) {
      pfds.push_back({g_sigchld_read_fd, POLLIN, 0});
      slots.push_back({nullptr, 4});
    }
    int timeout_ms = -1;
    if (wake_at) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*wake_at - now).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left, 0, 24 * 3600 * 1000));
    }
    if (pfds.empty() && timeout_ms < 0) return WaitResult::kDeadline;  // nothing could wake us

    int n = ::poll(pfds.data(), pfds.size(), timeout_ms);
    polled = true;
    if (n < 0) {
      MFLOW_CHECK(errno == EINTR, "poll failed: {}", std::strerror(errno));
      continue;
    }
    bool woken = false;
    for (size_t i = 0; i < pfds.size() && n > 0; ++i) {
      if (pfds[i].revents == 0) continue;
      --n;
      const Slot& s = slots[i];
      switch (s.what) {
        case 0:
          if (s.proc->out_.pipe) s.proc->read_channel(s.proc->out_, buf, buf_size);
          break;
        case 1:
          if (s.proc->err_.pipe) s.proc->read_channel(s.proc->err_, buf, buf_size);
          break;
        case 2:
          after_exit(s.proc);
          break;
        case 3:
          woken = true;
          break;
        default:
          break;  // the SIGCHLD pipe: handled at the top of the loop
      }
    }
    if (woken) {
      bool any_finished = std::any_of(procs_.begin(), procs_.end(),
                                      [](const auto& p) { return p->finished(); });
      if (!any_finished) return WaitResult::kWoken;
    }
  }
}

}  // namespace mflow::exec
