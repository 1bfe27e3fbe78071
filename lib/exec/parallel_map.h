// ParallelMap: the engine of `mflow map` (Metaflow's parallel_map for any command). Runs a
// command once per item on N worker processes, each item its own process group with the item
// in MFLOW_ITEM / MFLOW_ITEM_INDEX and in every "{}" of argv. Each item's stdout and stderr go
// straight into unlinked temp files (no pipes, nothing in memory), handed back in input order.
// The first failure or an interrupt stops every worker. Not thread-safe; one call at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"

namespace mflow::exec {

struct MapOptions {
  /// argv of the command; "{}" anywhere in an element is replaced by the item (no shell).
  std::vector<std::string> command;
  /// Most items running at once (>= 1).
  int jobs = 1;
  /// Where the per-item temp files live ("" = $TMPDIR or /tmp). They are unlinked from the
  /// start (O_TMPFILE), so nothing is left behind even after kill -9.
  std::string temp_dir;
  /// Most items started but not yet handed to on_output (bounds open files and temp space
  /// while an early item is slow); 0 = automatic (from jobs and the open-file limit).
  size_t window = 0;
  /// SIGTERM to the remaining workers' groups on failure or interrupt, SIGKILL after this.
  std::chrono::milliseconds kill_grace{std::chrono::seconds(10)};
  /// Readable fds that mean "maybe stop" (base::interrupt_fd()); `interrupted` decides.
  std::vector<int> wake_fds;
  std::function<bool()> interrupted = [] { return false; };
};

/// Why the map did not complete.
struct MapFailure {
  size_t index = 0;
  std::string item;
  int exit_code = -1;  // -1 when killed by a signal or never started
  int signal = 0;
  std::string reason;                    // "exit code 3", "cannot run 'x': No such file..."
  std::vector<std::string> stderr_tail;  // the last kStderrTailLines lines of its stderr
};

struct MapResult {
  enum class Kind { kOk, kItemFailed, kInterrupted };
  Kind kind = Kind::kOk;
  std::optional<MapFailure> failure;  // set for kItemFailed
  size_t items_done = 0;              // items handed to on_output
};

inline constexpr size_t kStderrTailLines = 20;

/// Called with an item's finished stdout (a file positioned at offset 0), strictly in input
/// order; a non-ok Status stops the map and is returned.
using MapOutputFn = std::function<base::Status(size_t index, int fd)>;
/// Called with a successful item's stderr file (offset 0) as soon as the item finishes.
using MapStderrFn = std::function<base::Status(size_t index, int fd)>;

/// Runs the map. A non-ok Status is an environment problem (temp files, on_output failing);
/// item failures and interrupts are data in MapResult.
base::Result<MapResult> run_parallel_map(const std::vector<std::string>& items,
                                         const MapOptions& options, const MapOutputFn& on_output,
                                         const MapStderrFn& on_stderr);

/// The item's argv: every "{}" in every element of `command` replaced by `item`.
std::vector<std::string> substitute_item(const std::vector<std::string>& command,
                                         const std::string& item);

/// The online cpus of this machine (sysconf), at least 1.
int online_cpus();

/// $TMPDIR, else /tmp: where items' temp files go without --temp-dir.
std::string default_temp_dir();

/// An anonymous file in `dir`: O_TMPFILE where the file system supports it, else a named temp
/// file unlinked at once. Either way nothing is left behind, even after kill -9.
base::Result<base::UniqueFd> anonymous_file(const std::string& dir);

}  // namespace mflow::exec
