// `mflow logs RUN/STEP[/TASK]`: the stored output of past tasks, including tasks that are
// still running and tasks a resume reused. The task's stdout goes to our stdout and its
// stderr to our stderr, so pipelines see the same split the task produced. With several
// tasks, a `==> RUN/STEP/TASK (attempt N) <==` header labels each task on every stream that
// shows its output, so either stream read alone (`2>&1 >/dev/null`, `--stderr | wc`) is labelled.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>

#include <fmt/core.h>

#include "base/file_util.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "cli/command.h"
#include "cli/logs_follow.h"
#include "cli/number_flags.h"
#include "cli/run_support.h"
#include "store/datastore.h"
#include "store/layout.h"

namespace mflow::cli {

namespace {

using base::ExitCode;

struct LogsOptions {
  std::string path;
  std::string datastore;
  bool only_stdout = false;
  bool only_stderr = false;
  int attempt = -1;  // -1: each task's last
  bool follow = false;  // -f
};

// Streams a stored log to `out_fd` in pieces: logs may be gigabytes. A log that is not a
// regular file (a FIFO, a link to /dev/zero) is an error naming it, never a hang or an
// endless stream; an attempt that wrote nothing to the stream has an empty log.
base::Status copy_log(const store::Datastore& store, const store::TaskRecord& t, int attempt,
                      bool stderr_stream, int out_fd) {
  return store.read_log(t.run_id, t.step, t.task_id, attempt, stderr_stream,
                        [out_fd](std::string_view piece) {
                          return base::write_all(out_fd, piece.data(), piece.size(), "output");
                        });
}

bool write_text(int fd, const std::string& text) {
  return base::write_all(fd, text.data(), text.size(), "output").ok();
}

bool non_empty_log(const store::Datastore& store, const store::TaskRecord& t, int attempt,
                   bool stderr_stream) {
  auto size = store.log_size(t.run_id, t.step, t.task_id, attempt, stderr_stream);
  return size.ok() && size.value() > 0;
}

// "0, 1, 2" (or the first few and a count): enough for an error message to say what exists.
std::string list_some(const std::vector<std::string>& items) {
  constexpr size_t kShown = 8;
  if (items.size() <= kShown) return base::join(items, ", ");
  std::vector<std::string> head(items.begin(), items.begin() + kShown);
  return fmt::format("{}, … ({} in all)", base::join(head, ", "), items.size());
}

std::vector<int> attempt_numbers(const store::TaskRecord& t) {
  std::vector<int> out;
  for (const auto& a : t.attempts) out.push_back(a.attempt);
  return out;
}

std::string describe_attempts(const std::vector<int>& numbers) {
  if (numbers.empty()) return "no attempts";
  if (numbers.size() == 1) return fmt::format("only attempt {}", numbers.front());
  std::vector<std::string> text;
  for (int n : numbers) text.push_back(std::to_string(n));
  return fmt::format("attempts {}", base::join(text, ", "));
}

// task.json is written when an attempt ends: an attempt still running (a first one, or a
// retry after a recorded failure) is known only by its log files.
void add_live_attempts(const store::Datastore& store, store::TaskRecord& t) {
  auto live = store.running_task(t.run_id, t.step, t.task_id);
  if (!live.ok()) return;
  for (auto& a : live->attempts) {
    if (t.attempts.empty() || a.attempt > t.attempts.back().attempt) t.attempts.push_back(a);
  }
}

// An attempt with logs but no record runs only while its run does; in a crashed or
// interrupted run it never finished and never will.
std::string attempt_label(const store::TaskRecord& t, int attempt, bool run_running) {
  auto it = std::find_if(t.attempts.begin(), t.attempts.end(),
                         [&](const store::AttemptRecord& a) { return a.attempt == attempt; });
  if (it == t.attempts.end() || it->outcome != "running") return "";
  return run_running ? ", running" : ", unfinished: the run ended before this attempt did";
}

// How an attempt that did not succeed ended ("failed: exit code 3", "timed out: ..."), for a
// task with no output to show; "" for a success (an empty log says it all).
std::string attempt_outcome(const store::TaskRecord& t, int attempt, bool run_running) {
  auto it = std::find_if(t.attempts.begin(), t.attempts.end(),
                         [&](const store::AttemptRecord& a) { return a.attempt == attempt; });
  if (it == t.attempts.end() || it->outcome == "succeeded") return "";
  if (it->outcome == "running") return attempt_label(t, attempt, run_running).substr(2);
  return it->reason.empty() ? it->outcome : fmt::format("{}: {}", it->outcome, it->reason);
}

void warn_problems(const std::vector<base::Status>& problems) {
  for (const auto& p : problems) std::cerr << "mflow: warning: logs: " << p.message() << "\n";
}

// `mflow logs RUN`: steps in the order they first started (the order the run went), each
// step's tasks in their own order; reused tasks count from their record's first attempt.
void order_steps_by_start(std::vector<store::TaskRecord>& tasks) {
  std::map<std::string, store::Clock::time_point> first;
  for (const auto& t : tasks) {
    auto started = t.attempts.empty() ? store::Clock::time_point::max() : t.attempts.front().started;
    auto [it, added] = first.emplace(t.step, started);
    if (!added) it->second = std::min(it->second, started);
  }
  std::stable_sort(tasks.begin(), tasks.end(), [&](const auto& a, const auto& b) {
    return first[a.step] < first[b.step] || (first[a.step] == first[b.step] && a.step < b.step);
  });
}

// The error for a task or step that does not exist: says which tasks (or steps) do.
// `task_id` is empty for RUN/STEP.
ExitCode report_missing(const store::Datastore& store, const store::RunInfo& run,
                        const std::string& step, const std::string& task_id) {
  std::vector<base::Status> problems;
  auto tasks = store.list_tasks(run.run_id, step, &problems, /*include_running=*/true);
  if (!task_id.empty() && tasks.ok() && (!tasks->empty() || !problems.empty())) {
    std::vector<std::string> ids;
    for (const auto& t : tasks.value()) ids.push_back(t.task_id);
    std::string exist = ids.empty() ? "has no readable task records"
                        : ids.size() == 1 ? "has only task " + ids.front()
                                          : "has tasks " + list_some(ids);
    std::cerr << fmt::format(
        "mflow: error: logs: run {} has no task {}/{}; step '{}' {} (`mflow logs {}/{}` shows "
        "them all)\n",
        run.run_id, step, task_id, step, exist, run.run_id, step);
    return ExitCode::kUsage;
  }
  auto all = store.list_tasks(run.run_id, "", nullptr, /*include_running=*/true);
  std::vector<std::string> steps;
  if (all.ok()) {
    for (const auto& t : all.value()) {
      if (steps.empty() || steps.back() != t.step) steps.push_back(t.step);
    }
  }
  std::cerr << fmt::format("mflow: error: logs: run {} (flow {}) has no tasks of step '{}'; {}\n",
                           run.run_id, run.flow, step,
                           steps.empty() ? "it has no tasks yet"
                                         : "steps with tasks: " + list_some(steps));
  return ExitCode::kUsage;
}

ExitCode run_logs(const LogsOptions& options) {
  auto parts = base::split(options.path, '/');
  if (parts.size() > 3 || std::any_of(parts.begin(), parts.end(),
                                       [](const std::string& p) { return p.empty(); })) {
    std::cerr << fmt::format(
        "mflow: error: logs: '{}' is not RUN, RUN/STEP or RUN/STEP/TASK (e.g. 12, latest/start "
        "or 12/body/3); `mflow runs` lists runs\n", options.path);
    return ExitCode::kUsage;
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    if (!store::layout::valid_component(parts[i])) {
      std::cerr << fmt::format("mflow: error: logs: '{}' is not a valid {} in '{}'\n", parts[i],
                               i == 1 ? "step name" : "task id", options.path);
      return ExitCode::kUsage;
    }
  }
  const std::string step = parts.size() > 1 ? parts[1] : "";  // "": the whole run
  std::string root_dir = resolve_datastore(options.datastore);
  auto store = store::Datastore::open(root_dir, false);
  if (!store.ok()) {
    std::cerr << "mflow: error: " << store.status().message() << "\n";
    return ExitCode::kEnvironment;
  }
  auto run = read_run_ref(store.value(), parts[0]);
  const std::string run_id = run.ok() ? run->run_id : parts[0];
  if (!run.ok()) {
    if (run.status().code() != base::StatusCode::kNotFound) {
      // A damaged run.json: the message names the file.
      std::cerr << "mflow: error: logs: " << run.status().message() << "\n";
      return ExitCode::kEnvironment;
    }
    std::cerr << fmt::format("mflow: error: logs: no run '{}' in datastore {}; `mflow runs` "
                             "lists runs\n", run_id, root_dir);
    return ExitCode::kUsage;
  }
  const bool run_running = run->status == store::RunStatus::kRunning;
  if (options.follow) {
    if (parts.size() != 3) {
      std::cerr << fmt::format("mflow: error: logs: -f follows one task: give RUN/STEP/TASK, "
                               "not '{}'\n", options.path);
      return ExitCode::kUsage;
    }
    return follow_task(store.value(), run_id, step, parts[2]);
  }

  std::vector<store::TaskRecord> tasks;
  bool damaged = false;
  if (parts.size() == 3) {
    const std::string& task_id = parts[2];
    auto t = store->read_task(run_id, step, task_id);
    if (!t.ok() && t.status().code() == base::StatusCode::kNotFound) {
      // A task's record is written when an attempt ends; a running task has only its logs.
      if (auto running = store->running_task(run_id, step, task_id); running.ok()) {
        t = std::move(running);
      } else {
        return report_missing(*store, *run, step, task_id);
      }
    }
    if (!t.ok()) {
      // The record exists but cannot be read: the message names the file. The logs are
      // still there, but without the record we cannot say which attempt is which.
      std::cerr << fmt::format("mflow: error: logs: {}; its log files are in {}\n",
                               t.status().message(),
                               store::layout::task_dir(root_dir, run_id, step, task_id));
      return ExitCode::kEnvironment;
    }
    tasks.push_back(std::move(t.value()));
  } else {
    std::vector<base::Status> problems;
    auto all = store->list_tasks(run_id, step, &problems, /*include_running=*/true);
    if (!all.ok()) {
      std::cerr << "mflow: error: logs: " << all.status().message() << "\n";
      return ExitCode::kEnvironment;
    }
    warn_problems(problems);
    damaged = !problems.empty();
    if (all->empty() && !damaged) {
      if (step.empty()) {
        std::cerr << fmt::format("mflow: error: logs: run {} (flow {}) has no tasks yet\n",
                                 run_id, run->flow);
        return ExitCode::kUsage;
      }
      return report_missing(*store, *run, step, "");
    }
    tasks = std::move(all.value());
    if (step.empty()) order_steps_by_start(tasks);
  }
  for (auto& t : tasks) add_live_attempts(*store, t);

  // An --attempt that no task has is a usage error that says which attempts exist.
  if (options.attempt >= 0) {
    std::vector<store::TaskRecord> with_attempt;
    std::set<int> existing;
    for (auto& t : tasks) {
      auto numbers = attempt_numbers(t);
      existing.insert(numbers.begin(), numbers.end());
      if (std::count(numbers.begin(), numbers.end(), options.attempt)) {
        with_attempt.push_back(std::move(t));
      }
    }
    if (with_attempt.empty() && !tasks.empty()) {
      std::vector<int> numbers(existing.begin(), existing.end());
      if (parts.size() == 3) {
        std::cerr << fmt::format("mflow: error: logs: task {} has no attempt {}; it has {}\n",
                                 options.path, options.attempt, describe_attempts(numbers));
      } else {
        std::cerr << fmt::format(
            "mflow: error: logs: no task of {} has an attempt {}; its tasks have {}\n",
            options.path, options.attempt, describe_attempts(numbers));
      }
      return ExitCode::kUsage;
    }
    tasks = std::move(with_attempt);
  }

  std::fflush(stdout);
  for (const auto& t : tasks) {
    if (t.attempts.empty()) continue;
    int attempt = options.attempt >= 0 ? options.attempt : t.attempts.back().attempt;
    std::string header;
    if (parts.size() < 3) {
      header = fmt::format("==> {}/{}/{} (attempt {}{}) <==\n", t.run_id, t.step, t.task_id,
                           attempt, attempt_label(t, attempt, run_running));
    }
    // A single task's attempt that failed without a word still says how it ended (on stderr,
    // so `mflow logs R/S/T > file` keeps the task's bytes alone).
    if (parts.size() == 3 && !non_empty_log(*store, t, attempt, false) &&
        !non_empty_log(*store, t, attempt, true)) {
      std::string outcome = attempt_outcome(t, attempt, run_running);
      if (!outcome.empty()) {
        std::cerr << fmt::format("==> {}/{}/{} (attempt {}: {}) <== no output\n", t.run_id,
                                 t.step, t.task_id, attempt, outcome);
      }
    }
    base::Status s;
    bool written = true;
    if (!options.only_stderr) {
      written &= write_text(1, header);
      if (written) s = copy_log(*store, t, attempt, false, 1);
    }
    if (s.ok() && written && !options.only_stdout) {
      // With both streams, stdout already lists every task: stderr gets the header only
      // before output, so a terminal showing both does not repeat it for silent tasks.
      if (options.only_stderr || non_empty_log(*store, t, attempt, true)) written &= write_text(2, header);
      if (written) s = copy_log(*store, t, attempt, true, 2);
    }
    if (!s.ok() || !written) {
      std::cerr << fmt::format("mflow: error: logs: cannot show the logs of {}/{}/{}{}\n",
                               t.run_id, t.step, t.task_id,
                               s.ok() ? "" : ": " + s.message());
      return ExitCode::kEnvironment;
    }
  }
  if (damaged) {
    std::cerr << fmt::format("mflow: error: logs: some task records of {} are damaged (see the "
                             "warnings above); the other tasks were shown\n", options.path);
    return ExitCode::kEnvironment;
  }
  return ExitCode::kOk;
}

}  // namespace

void add_logs_command(CLI::App& root, const GlobalOptions&, Commands& out) {
  auto options = std::make_shared<LogsOptions>();
  auto* app = root.add_subcommand("logs", "Show the stored output of a past or running task");
  app->add_option("RUN[/STEP[/TASK]]", options->path,
                  "Which task (all tasks of the step without TASK; the whole run, step by step, "
                  "without STEP); RUN may be `latest`, the datastore's newest run")
      ->required();
  app->add_option("--datastore", options->datastore,
                  "Datastore directory (default $MFLOW_DATASTORE or ./.mflow)");
  auto* o = app->add_flag("--stdout", options->only_stdout, "Only the tasks' stdout");
  app->add_flag("--stderr", options->only_stderr, "Only the tasks' stderr")->excludes(o);
  auto* attempt = app->add_option("--attempt", options->attempt,
                                  "Which attempt (default: each task's last)")
      ->check(whole_number(0, std::numeric_limits<int>::max()));
  app->add_flag("-f,--follow", options->follow,
                "Follow RUN/STEP/TASK while it runs, through retries, until it ends; exit 0 if "
                "it succeeded, 1 if it failed, 4 if its run ended without it")
      ->excludes(attempt);
  app->footer(
      "A task's stdout goes to stdout and its stderr to stderr. For RUN/STEP, a header\n"
      "'==> RUN/STEP/TASK (attempt N) <==' precedes each task on the stream(s) shown: with\n"
      "--stdout on stdout, with --stderr on stderr; by default on stdout for every task and\n"
      "also on stderr before a task's non-empty stderr.\n"
      "Exit codes: 0 ok; 2 bad path, no such run, step, task or attempt (the message says\n"
      "what exists); 4 a damaged record (named on stderr; for RUN/STEP after showing the\n"
      "other tasks, with one 'mflow: warning:' line per damaged task.json).");
  out.push_back({app, [options] { return run_logs(*options); }});
}

}  // namespace mflow::cli
