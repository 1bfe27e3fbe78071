// The orphan guard: stops mflow's task process groups when mflow itself dies without doing it
// (kill -9, the OOM killer, a crash). Ctrl-C and SIGTERM are handled by the runtime, but a
// process that is SIGKILLed runs no code, and every task leads its own process group (so a
// timeout can kill its whole tree), so nothing else would stop them; PR_SET_PDEATHSIG would
// need fork instead of posix_spawn and still reach only the direct child.
//
// start_orphan_guard() spawns `mflow guard` (this same binary) in its own process group with
// the read end of a pipe as its stdin. Subprocess reports each group it starts and reaps
// (watch_group / unwatch_group: one 4-byte write, atomic on a pipe). When the pipe reaches EOF
// (mflow exited, however) the guard SIGTERMs every group still listed, SIGKILLs what is left
// after the grace, and exits. A normal exit lists nothing, so the guard just exits.
#pragma once

#include <sys/types.h>

#include <chrono>

#include "base/status.h"

namespace mflow::exec {

/// Spawns the guard for this process (once; later calls do nothing). Call it before the first
/// task starts. `grace` is the time between SIGTERM and SIGKILL. Fails only when the guard
/// cannot be spawned; callers go on unguarded with a warning.
base::Status start_orphan_guard(std::chrono::milliseconds grace);

/// Reports a process group that has started / has been reaped. No-ops without a guard.
void watch_group(pid_t pgid);
void unwatch_group(pid_t pgid);

/// The guard process itself (`mflow guard`): reads reports from `fd` until EOF, then stops
/// the groups still listed. Returns the process exit status.
int run_orphan_guard(int fd, std::chrono::milliseconds grace);

}  // namespace mflow::exec
