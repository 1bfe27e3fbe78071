#include "exec/local_executor.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include <fmt/core.h>

#include "base/file_util.h"

namespace mflow::exec {

struct LocalExecutor::Attempt {
  TaskLaunch launch;
  Subprocess* proc = nullptr;
  std::optional<Clock::time_point> timeout_at;
  std::optional<Outcome> forced;  // kTimedOut or kCancelled once mflow stops it
  std::string forced_reason;
  std::unique_ptr<MemoryCgroup> cgroup;
  int64_t memory_mb = 0;
};

LocalExecutor::LocalExecutor(OutputSink& sink, LocalExecutorOptions options)
    : sink_(sink), options_(std::move(options)), set_(options_.wake_fds) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) hostname_ = host;
}

LocalExecutor::~LocalExecutor() = default;  // SubprocessSet kills and reaps what is left

std::string LocalExecutor::describe_exit(int exit_code, int signal) {
  if (signal > 0) {
    const char* abbrev = ::sigabbrev_np(signal);
    return abbrev ? fmt::format("killed by signal {} (SIG{})", signal, abbrev)
                  : fmt::format("killed by signal {}", signal);
  }
  return fmt::format("exit code {}", exit_code);
}

Completion LocalExecutor::launch_failure(const TaskLaunch& launch, const std::string& why) {
  Completion c;
  c.key = launch.key;
  c.attempt = launch.attempt;
  c.outcome = Outcome::kLaunchFailed;
  c.reason = why;
  c.started = c.finished = Clock::now();
  c.host = hostname_;
  // Best effort: `mflow logs` then shows why the task never ran.
  if (!launch.stderr_path.empty()) {
    int fd = ::open(launch.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      std::string line = "mflow: " + why + "\n";
      (void)base::write_all(fd, line.data(), line.size(), launch.stderr_path);
      ::close(fd);
    }
  }
  return c;
}

base::Status LocalExecutor::start(const TaskLaunch& launch) {
  auto attempt = std::make_unique<Attempt>();
  attempt->launch = launch;
  Attempt* a = attempt.get();

  if (options_.memory_cgroups && launch.resources.memory_mb) {
    a->memory_mb = *launch.resources.memory_mb;
    std::string name = fmt::format("{}-{}-{}", launch.step, launch.task_id, launch.attempt);
    for (char& ch : name) {
      if (ch == '/') ch = '_';
    }
    auto cg = options_.memory_cgroups->create(name, a->memory_mb);
    if (!cg.ok()) {
      ready_.push_back(launch_failure(
          launch, "cannot enforce the memory request: " + cg.status().message()));
      return base::Status::ok_status();
    }
    a->cgroup = std::move(cg.value());
  }

  SpawnRequest request;
  request.command = launch.command;
  if (a->cgroup) {
    // Race-free enforcement: a tiny shell joins the group itself, then execs the task, so
    // not even a process forked in the task's first microseconds escapes the limit.
    spec::Command wrapped;
    wrapped.shell = false;
    wrapped.argv = {"/bin/sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"",
                    a->cgroup->path()};
    if (launch.command.shell) {
      wrapped.argv.insert(wrapped.argv.end(), {"/bin/sh", "-c", launch.command.script});
    } else {
      wrapped.argv.insert(wrapped.argv.end(), launch.command.argv.begin(), launch.command.argv.end());
    }
    request.command = std::move(wrapped);
  }
  request.env = launch.env;
  request.out.path = launch.stdout_path;
  request.err.path = launch.stderr_path;
  auto proc = set_.add(request, [this, a](Stream stream, std::string_view line) {
    sink_.on_output(a->launch, a->proc ? a->proc->pid() : 0, stream, line);
  });
  if (!proc.ok()) {
    ready_.push_back(launch_failure(launch, proc.status().message()));
    return base::Status::ok_status();
  }
  a->proc = proc.value();
  a->proc->tag = next_tag_++;
  if (launch.timeout) a->timeout_at = a->proc->started() + *launch.timeout;
  attempts_.emplace(a->proc->tag, std::move(attempt));
  return base::Status::ok_status();
}

void LocalExecutor::enforce_deadlines(Clock::time_point now) {
  for (auto& [tag, a] : attempts_) {
    if (a->timeout_at && !a->forced && now >= *a->timeout_at) {
      a->forced = Outcome::kTimedOut;
      a->forced_reason = fmt::format("timed out after {}s", a->launch.timeout->count());
      a->proc->stop(now + options_.kill_grace);  // the set sends the SIGKILL
    }
  }
}

std::optional<Clock::time_point> LocalExecutor::next_internal_deadline() const {
  std::optional<Clock::time_point> next;
  auto consider = [&next](const std::optional<Clock::time_point>& t) {
    if (t && (!next || *t < *next)) next = t;
  };
  for (const auto& [tag, a] : attempts_) {
    if (!a->forced) consider(a->timeout_at);
  }
  return next;
}

void LocalExecutor::collect(std::vector<std::unique_ptr<Subprocess>>& finished,
                            std::vector<Completion>* out) {
  for (auto& proc : finished) {
    auto it = attempts_.find(proc->tag);
    MFLOW_CHECK(it != attempts_.end(), "finished subprocess {} has no attempt", proc->pid());
    Attempt& a = *it->second;
    Completion c;
    c.key = a.launch.key;
    c.attempt = a.launch.attempt;
    c.exit_code = proc->exit_code();
    c.signal = proc->term_signal();
    c.started = proc->started();
    c.finished = proc->finished_at();
    c.host = hostname_;
    c.pid = proc->pid();
    std::string status = describe_exit(c.exit_code, c.signal);
    if (a.forced) {
      c.outcome = *a.forced;
      c.reason = a.forced_reason;
      if (c.outcome != Outcome::kLaunchFailed) c.reason += " (" + status + ")";
    } else if (a.cgroup && a.cgroup->oom_killed()) {
      c.outcome = Outcome::kOomKilled;
      c.reason = fmt::format("OOMKilled: the memory request of {} MB was exceeded ({})",
                             a.memory_mb, status);
    } else if (c.exit_code == 0 && c.signal == 0) {
      c.outcome = Outcome::kSucceeded;
    } else {
      c.outcome = Outcome::kFailed;
      c.reason = status;
    }
    if (!proc->output_error().empty() && c.outcome == Outcome::kSucceeded) {
      c.outcome = Outcome::kFailed;
      c.reason = "the task's output could not be stored: " + proc->output_error();
    }
    out->push_back(std::move(c));
    proc.reset();  // before the cgroup goes, so the group is empty when it is removed
    attempts_.erase(it);
  }
  finished.clear();
}

void LocalExecutor::wait(std::optional<Clock::time_point> deadline, std::vector<Completion>* out) {
  if (!ready_.empty()) {
    poll(out);
    return;
  }
  std::vector<std::unique_ptr<Subprocess>> finished;
  for (;;) {
    enforce_deadlines(Clock::now());
    std::optional<Clock::time_point> next = deadline;
    if (auto internal = next_internal_deadline(); internal && (!next || *internal < *next)) {
      next = internal;
    }
    auto result = set_.wait(next, &finished);
    if (!finished.empty()) {
      collect(finished, out);
      return;
    }
    if (result == SubprocessSet::WaitResult::kWoken) return;
    if (!next) return;  // nothing running and nothing to wait for
    if (deadline && Clock::now() >= *deadline) return;
    // Otherwise a timeout passed: enforce it and keep waiting.
  }
}

void LocalExecutor::poll(std::vector<Completion>* out) {
  for (auto& c : ready_) out->push_back(std::move(c));
  ready_.clear();
  enforce_deadlines(Clock::now());
  std::vector<std::unique_ptr<Subprocess>> finished;
  set_.wait(Clock::now(), &finished);
  collect(finished, out);
}

void LocalExecutor::cancel_all() { stop_all_by(Clock::now() + options_.kill_grace); }

void LocalExecutor::kill_all() { stop_all_by(Clock::now()); }

void LocalExecutor::stop_all_by(Clock::time_point kill_at) {
  for (auto& [tag, a] : attempts_) {
    if (!a->forced) {
      a->forced = Outcome::kCancelled;
      a->forced_reason = "cancelled by mflow";
    }
    // SIGTERM now for a group not yet stopping; for one already stopping, only an earlier
    // SIGKILL (a second Ctrl-C) changes anything.
    a->proc->stop(kill_at);
  }
}

}  // namespace mflow::exec
