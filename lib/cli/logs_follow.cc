#include "cli/logs_follow.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iostream>
#include <thread>

#include <fmt/core.h>

#include "base/file_util.h"

namespace mflow::cli {

namespace {

using base::ExitCode;

// Copies what `path` gained since `*offset` to `fd` and advances the offset. A log that does
// not exist yet has gained nothing; one that is not a regular file is an error.
base::Status copy_new_bytes(const std::string& path, off_t* offset, int fd) {
  if (::access(path.c_str(), F_OK) != 0) return base::Status();
  auto in = base::open_regular_file(path);
  if (!in.ok()) return in.status();
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = pread(in->get(), buf, sizeof buf, *offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::Status::from_errno(path, errno);
    if (n == 0) return base::Status();
    MFLOW_RETURN_IF_ERROR(base::write_all(fd, buf, static_cast<size_t>(n), "the output"));
    *offset += n;
  }
}

bool final_status(store::TaskStatus s) { return s != store::TaskStatus::kRunning; }

}  // namespace

base::ExitCode follow_task(const store::Datastore& store, const std::string& run_id,
                           const std::string& step, const std::string& task_id,
                           std::chrono::milliseconds poll) {
  const std::string who = fmt::format("{}/{}/{}", run_id, step, task_id);
  int attempt = -1;  // the attempt being shown; -1 before the task started
  off_t out_offset = 0, err_offset = 0;
  auto drain = [&]() -> base::Status {
    if (attempt < 0) return base::Status();
    MFLOW_RETURN_IF_ERROR(copy_new_bytes(store.log_path(run_id, step, task_id, attempt, false),
                                         &out_offset, 1));
    return copy_new_bytes(store.log_path(run_id, step, task_id, attempt, true), &err_offset, 2);
  };
  for (;;) {
    // The run's state first: a task that ends as the run ends is then seen ended below.
    auto run = store.read_run(run_id);
    if (!run.ok()) {
      std::cerr << "mflow: error: logs: " << run.status().message() << "\n";
      return ExitCode::kEnvironment;
    }
    bool run_going = run->status == store::RunStatus::kRunning;
    auto record = store.read_task(run_id, step, task_id);
    if (!record.ok() && record.status().code() != base::StatusCode::kNotFound) {
      std::cerr << "mflow: error: logs: " << record.status().message() << "\n";
      return ExitCode::kEnvironment;
    }
    int newest = -1;
    if (record.ok()) {
      for (const auto& a : record->attempts) newest = std::max(newest, a.attempt);
    }
    if (auto live = store.running_task(run_id, step, task_id); live.ok()) {
      for (const auto& a : live->attempts) newest = std::max(newest, a.attempt);
    }
    if (newest > attempt) {
      // A retry started: finish the previous attempt's output, then say where the next begins.
      if (auto s = drain(); !s.ok()) {
        std::cerr << "mflow: error: logs: " << s.message() << "\n";
        return ExitCode::kEnvironment;
      }
      if (attempt >= 0) std::cerr << fmt::format("==> {} (attempt {}) <==\n", who, newest);
      attempt = newest;
      out_offset = err_offset = 0;
    }
    if (auto s = drain(); !s.ok()) {
      std::cerr << "mflow: error: logs: " << s.message() << "\n";
      return ExitCode::kEnvironment;
    }
    if (record.ok() && final_status(record->status)) {
      if (record->status == store::TaskStatus::kFailed) {
        const auto& last = record->attempts.back();
        std::cerr << fmt::format("==> {} (attempt {}) ended: {} <==\n", who, last.attempt,
                                 last.reason.empty() ? last.outcome : last.reason);
        return ExitCode::kTaskFailed;
      }
      return ExitCode::kOk;
    }
    if (!run_going) {
      std::cerr << fmt::format("mflow: error: logs: run {} is {} and task {} {}\n", run_id,
                               store::to_string(run->status), who,
                               attempt < 0 ? "never started" : "did not finish");
      return ExitCode::kEnvironment;
    }
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace mflow::cli
