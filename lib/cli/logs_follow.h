// `mflow logs -f RUN/STEP/TASK`: follows one task's output while it runs (both streams, each
// to its own), through retries, until the task ends; the exit code says how it ended. Reads
// the datastore only through store::Datastore. Single-threaded.
#pragma once

#include <chrono>
#include <string>

#include "base/exit_code.h"
#include "store/datastore.h"

namespace mflow::cli {

/// 0 when the task succeeded (or was reused), 1 when it failed for good (its last attempt
/// failed, timed out or was stopped and no retry follows), 4 when the run ended without the
/// task ending (mflow was killed: the run reads as crashed; or the run ended before the
/// task started). Waits for a task that has not started yet while its run is running.
base::ExitCode follow_task(const store::Datastore& store, const std::string& run_id,
                           const std::string& step, const std::string& task_id,
                           std::chrono::milliseconds poll = std::chrono::milliseconds(200));

}  // namespace mflow::cli
