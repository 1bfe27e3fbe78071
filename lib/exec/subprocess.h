// Subprocess and SubprocessSet: every child process mflow starts is spawned, watched, killed
// and reaped here (ninja's subprocess.h, modernised). posix_spawn only (never fork: mflow has
// threads); stdin is /dev/null; each child leads its own process group so a timeout or Ctrl-C
// kills the whole tree; exits are seen through a pidfd per child (SIGCHLD fallback on old
// kernels); output is streamed to files as it arrives, never accumulated. Not thread-safe: one
// thread owns a SubprocessSet and every Subprocess in it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "exec/executor.h"
#include "spec/flow.h"

namespace mflow::exec {

/// One process as /proc/PID/stat shows it.
struct ProcStat {
  pid_t pid = 0;
  char state = 0;  // 'R', 'S', ... 'Z' for a zombie
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t session = 0;
};

/// Calls `visit` for every process in /proc (one readdir pass; processes that exit meanwhile
/// are skipped). Returns false when /proc cannot be read.
bool for_each_process(const std::function<void(const ProcStat&)>& visit);

/// Which of `pgids` (sorted) still have a live process, sorted: one pass over /proc. Zombies do not
/// count (a held leader is one). Without a readable /proc every group counts as live, so a
/// stopping task keeps its whole grace rather than losing it.
std::vector<pid_t> live_groups(const std::vector<pid_t>& pgids);

/// Where one output stream (stdout or stderr) of a child goes.
struct OutputSpec {
  enum class Kind {
    kPipe,     // through a pipe to mflow: appended to `path` (when set) as it arrives and
               // handed line by line to the LineCallback
    kFd,       // the child writes straight into `fd` (mflow keeps ownership); no copying at
               // all, the choice for outputs of any size
    kNull,     // /dev/null
    kInherit,  // mflow's own stdout/stderr
  };
  Kind kind = Kind::kPipe;
  std::string path;  // kPipe: created on the first byte and appended to; "" for none
  int fd = -1;       // kFd
};

struct SpawnRequest {
  /// A shell string runs as `/bin/sh -c script`; an argv is spawned directly, argv[0] looked up
  /// in PATH (posix_spawnp). Nothing is ever re-parsed by a shell.
  spec::Command command;
  /// Added to (or replacing) mflow's own environment.
  std::map<std::string, std::string> env;
  OutputSpec out;
  OutputSpec err;
};

/// Receives a kPipe stream line by line, without the trailing '\n'. A line longer than
/// kMaxLineBytes is delivered in pieces of that size; a last line without '\n' is delivered
/// at EOF. The bytes are already in OutputSpec::path when this is called.
using LineCallback = std::function<void(Stream stream, std::string_view line)>;

/// One child process (the leader of its own process group) and its output pipes.
class Subprocess {
 public:
  static constexpr size_t kMaxLineBytes = 64 * 1024;

  /// A child still running is killed (its whole group, SIGKILL) and reaped.
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  /// The leader exited and every pipe reached EOF (or was cut off, see SubprocessSet::wait).
  bool finished() const { return reaped_ && open_pipes() == 0; }
  /// Exit status once finished: exit_code() >= 0 for a normal exit, else term_signal() > 0.
  int exit_code() const { return exit_code_; }
  int term_signal() const { return term_signal_; }
  Clock::time_point started() const { return started_; }
  Clock::time_point finished_at() const { return finished_at_; }
  /// Set when writing a kPipe stream to its file failed (disk full...): names the path.
  const std::string& output_error() const { return output_error_; }

  /// Sends `sig` to the child's whole process group (no-op once the leader was reaped).
  void signal_group(int sig);

  /// Starts stopping the task: SIGTERM to its whole group now, SIGKILL to what is left of the
  /// group at `kill_at` (enforced by SubprocessSet::wait). Until then the leader's exit does
  /// not cut the grace short for the rest of the group: the task finishes as soon as no
  /// process of its group is alive, or at `kill_at`. A later call only moves `kill_at`
  /// earlier; no-op once the leader was reaped.
  void stop(Clock::time_point kill_at);
  /// stop() was called.
  bool stopping() const { return stopping_; }

  /// Free for the owner to identify the child (LocalExecutor and parallel_map use it).
  uint64_t tag = 0;

 private:
  friend class SubprocessSet;
  struct Channel {
    Stream stream = Stream::kStdout;
    base::UniqueFd pipe;  // parent's read end, O_NONBLOCK; invalid once at EOF
    base::UniqueFd file;  // where the bytes go, O_APPEND; may be invalid
    std::string path;     // the file to create on the first byte, until it is opened
    std::string file_path;  // the file's name once opened, for error messages
    std::string partial;  // the current unfinished line, < kMaxLineBytes
  };
  Subprocess() = default;
  size_t open_pipes() const { return (out_.pipe ? 1 : 0) + (err_.pipe ? 1 : 0); }
  /// Reads what is available; returns false at EOF (the pipe is then closed).
  bool read_channel(Channel& ch, char* buf, size_t size);
  void close_channel(Channel& ch);
  void deliver(Channel& ch, std::string_view data);
  /// The leader has exited (a zombie): kill leftovers of its group, then reap it.
  void on_leader_exit();
  /// Holding the exited leader unreaped while the rest of its group has its stop grace.
  bool holding_leader() const { return leader_exited_ && !reaped_; }

  pid_t pid_ = -1;
  base::UniqueFd pidfd_;  // invalid in SIGCHLD-fallback mode
  bool reaped_ = false;
  // A stopping task's leader exited before its group emptied: it stays a zombie, unreaped,
  // so its pid (= the group id) cannot be reused while kill(-pid_) may still be sent.
  bool leader_exited_ = false;
  bool stopping_ = false;
  std::optional<Clock::time_point> kill_at_;  // SIGKILL due; reset once sent
  int exit_code_ = -1;
  int term_signal_ = 0;
  Channel out_;
  Channel err_;
  LineCallback on_line_;
  Clock::time_point started_;
  Clock::time_point finished_at_;
  std::optional<Clock::time_point> drain_deadline_;  // after the leader exited
  std::string output_error_;
};

/// The running children and the one poll loop over their pipes, pidfds and extra wake fds.
class SubprocessSet {
 public:
  /// `wake_fds` (e.g. base::interrupt_fd()) make wait() return when readable; wait() never
  /// reads from them.
  explicit SubprocessSet(std::vector<int> wake_fds = {});
  /// Kills (SIGKILL to each group) and reaps every child still here.
  ~SubprocessSet();
  SubprocessSet(const SubprocessSet&) = delete;
  SubprocessSet& operator=(const SubprocessSet&) = delete;

  /// Starts a child. A child that cannot start (missing executable, unopenable output file)
  /// is an error naming the command or path with the errno text; nothing is left running.
  base::Result<Subprocess*> add(const SpawnRequest& request, LineCallback on_line = {});

  enum class WaitResult { kFinished, kWoken, kDeadline };
  /// Runs the poll loop until at least one child finished (moved to `finished`), a wake fd is
  /// readable, or `deadline` passed. When a child's leader exits, leftover processes of its
  /// group are killed and its pipes are read to EOF; a pipe held open by an escaped process
  /// (setsid) is cut off after kDrainGrace. A child being stopped (Subprocess::stop) is the
  /// exception: its group keeps its grace after the leader exits, and is SIGKILLed when the
  /// stop deadline passes. EINTR is retried.
  WaitResult wait(std::optional<Clock::time_point> deadline,
                  std::vector<std::unique_ptr<Subprocess>>* finished);

  /// Replaces the wake fds (e.g. to stop watching an interrupt fd once it was acted on).
  void set_wake_fds(std::vector<int> wake_fds) { wake_fds_ = std::move(wake_fds); }

  size_t running() const { return procs_.size(); }
  /// Sends `sig` to every running child's process group.
  void signal_all(int sig);
  /// Subprocess::stop(now + grace) for every running child.
  void stop_all(std::chrono::milliseconds grace);
  /// Children still in the set (for callers that walk them to enforce timeouts).
  const std::vector<std::unique_ptr<Subprocess>>& children() const { return procs_; }

  /// True when exits are watched through pidfds, false in the SIGCHLD fallback.
  static bool uses_pidfd();
  /// Forces the SIGCHLD fallback for every later spawn (tests of the fallback path).
  static void force_sigchld_fallback_for_testing(bool force);

  static constexpr std::chrono::milliseconds kDrainGrace{2000};
  /// How often /proc is scanned, while some stopping group's leader has exited, for whether
  /// any process of that group is still alive (a zombie leader defeats kill(-pgid, 0)).
  static constexpr std::chrono::milliseconds kGroupScanInterval{25};

 private:
  /// Enforces stop deadlines and releases held leaders whose group is empty; returns when
  /// the next such check is due.
  std::optional<Clock::time_point> check_stopping(Clock::time_point now);
  /// Reaps an exited leader (killing what is left of its group) and reads its pipes to EOF,
  /// or gives them kDrainGrace when an escaped process still holds them.
  void release_leader(Subprocess* p);

  std::optional<Clock::time_point> next_scan_;
  std::vector<int> wake_fds_;
  std::vector<std::unique_ptr<Subprocess>> procs_;
  std::vector<char> buffer_;
};

}  // namespace mflow::exec
