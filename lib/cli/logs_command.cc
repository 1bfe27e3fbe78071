// `mflow logs RUN/STEP[/TASK]`: the stored output of past tasks, including tasks that are
// still running and tasks a resume reused. The task's stdout goes to our stdout and its
// stderr to our stderr, so pipelines see the same split the task produced.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <iostream>

#include <fmt/core.h>

#include "base/strings.h"
#include "base/unique_fd.h"
#include "cli/command.h"
#include "cli/run_support.h"
#include "store/datastore.h"

namespace mflow::cli {

namespace {

// Copies a log file to `out_fd` in chunks: logs may be gigabytes.
bool copy_file(const std::string& path, int out_fd) {
  base::UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return errno == ENOENT;  // an attempt that wrote nothing has no file
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(in.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0;
    ssize_t off = 0;
    while (off < n) {
      ssize_t w = ::write(out_fd, buf + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return false;
      off += w;
    }
  }
}

}  // namespace

void add_logs_command(CLI::App& root, const GlobalOptions&, Commands& out) {
  struct State {
    std::string path;
    std::string datastore;
    bool only_stdout = false;
    bool only_stderr = false;
    int attempt = -1;
  };
  auto state = std::make_shared<State>();
  auto* app = root.add_subcommand("logs", "Show the stored output of a past or running task");
  app->add_option("RUN/STEP[/TASK]", state->path,
                  "Which task (all tasks of the step, in order, when TASK is omitted)")
      ->required();
  app->add_option("--datastore", state->datastore,
                  "Datastore directory (default $MFLOW_DATASTORE or ./.mflow)");
  auto* o = app->add_flag("--stdout", state->only_stdout, "Only the tasks' stdout");
  app->add_flag("--stderr", state->only_stderr, "Only the tasks' stderr")->excludes(o);
  app->add_option("--attempt", state->attempt, "Which attempt (default: the last)")
      ->check(CLI::NonNegativeNumber);
  out.push_back({app, [state] {
    auto parts = base::split(state->path, '/');
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty()) {
      std::cerr << fmt::format(
          "mflow: error: logs: '{}' is not RUN/STEP or RUN/STEP/TASK (e.g. 12/start or "
          "12/body/3); `mflow runs` lists runs\n", state->path);
      return base::ExitCode::kUsage;
    }
    std::string root_dir = resolve_datastore(state->datastore);
    auto store = store::Datastore::open(root_dir, false);
    if (!store.ok()) {
      std::cerr << "mflow: error: " << store.status().message() << "\n";
      return base::ExitCode::kEnvironment;
    }
    auto run = store->read_run(parts[0]);
    if (!run.ok()) {
      std::cerr << fmt::format("mflow: error: logs: no run '{}' in datastore {}; `mflow runs` "
                               "lists runs\n", parts[0], root_dir);
      return base::ExitCode::kUsage;
    }
    std::vector<store::TaskRecord> tasks;
    if (parts.size() == 3) {
      auto t = store->read_task(parts[0], parts[1], parts[2]);
      if (!t.ok() && t.status().code() == base::StatusCode::kNotFound) {
        // A task's record is written when an attempt ends; a running task has only its logs.
        if (auto running = store->running_task(parts[0], parts[1], parts[2]); running.ok()) {
          t = std::move(running);
        }
      }
      if (!t.ok()) {
        std::cerr << fmt::format("mflow: error: logs: run {} has no task {}/{} ({})\n", parts[0],
                                 parts[1], parts[2], t.status().message());
        return base::ExitCode::kUsage;
      }
      tasks.push_back(std::move(t.value()));
    } else {
      auto all = store->list_tasks(parts[0], parts[1], nullptr, /*include_running=*/true);
      if (!all.ok() || all->empty()) {
        std::cerr << fmt::format("mflow: error: logs: run {} (flow {}) has no tasks of step "
                                 "'{}'\n", parts[0], run->flow, parts[1]);
        return base::ExitCode::kUsage;
      }
      tasks = std::move(all.value());
    }
    // task.json is written when an attempt ends: an attempt still running (a first one, or a
    // retry after a recorded failure) is known only by its log files.
    for (auto& t : tasks) {
      auto live = store->running_task(t.run_id, t.step, t.task_id);
      if (!live.ok()) continue;
      for (auto& a : live->attempts) {
        if (t.attempts.empty() || a.attempt > t.attempts.back().attempt) t.attempts.push_back(a);
      }
    }
    std::fflush(stdout);
    for (const auto& t : tasks) {
      if (t.attempts.empty()) continue;
      int attempt = state->attempt >= 0 ? state->attempt : t.attempts.back().attempt;
      if (tasks.size() > 1) {
        bool running = t.attempts.back().outcome == "running" && attempt == t.attempts.back().attempt;
        std::string header = fmt::format("==> {}/{}/{} (attempt {}{}) <==\n", t.run_id, t.step,
                                         t.task_id, attempt, running ? ", running" : "");
        if (::write(1, header.data(), header.size()) < 0) return base::ExitCode::kEnvironment;
      }
      bool ok = true;
      if (!state->only_stderr) {
        ok &= copy_file(store->log_path(t.run_id, t.step, t.task_id, attempt, false), 1);
      }
      if (!state->only_stdout) {
        ok &= copy_file(store->log_path(t.run_id, t.step, t.task_id, attempt, true), 2);
      }
      if (!ok) {
        std::cerr << fmt::format("mflow: error: logs: cannot read the logs of {}/{}/{}\n",
                                 t.run_id, t.step, t.task_id);
        return base::ExitCode::kEnvironment;
      }
    }
    return base::ExitCode::kOk;
  }});
}

}  // namespace mflow::cli
