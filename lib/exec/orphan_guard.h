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
// after the grace, and exits. An orderly exit says goodbye first (atexit) and lists nothing,
// so the guard just exits.
//
// The report of a group can only follow posix_spawn, so a task spawned at the instant mflow
// is SIGKILLed would never be listed (issue 9: 25 of 30 targeted trials left one such task).
// The guard therefore does not rely on the list alone. Every child also carries a per-guard
// random token in its environment (MFLOW_GUARD_TOKEN, see guard_token_env()), and after an
// unorderly end the guard scans /proc for processes of its own session whose environment holds
// the token, and stops their whole process groups, scanning again until none is left. This
// covers the window exactly: the child inherits the pipe's write end (close-on-exec) until its
// exec, so the guard cannot see EOF before the child runs with the token in its environment.
// Why not the alternatives: telling the guard before the spawn cannot name a group that does
// not exist yet; a child subreaper must be an ancestor of the tasks, which the guard (a child
// of mflow) cannot be; cgroups need a delegated hierarchy mflow cannot count on. The token
// costs one environment string per task and the scan happens only after mflow died. Limits:
// a process that leaves mflow's session (setsid, daemons) is out of reach on purpose (see
// README), and /proc must be readable (it is wherever tasks run as mflow's user).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>

#include "base/status.h"

namespace mflow::exec {

/// Spawns the guard for this process (once; later calls do nothing). Call it before the first
/// task starts. `grace` is the time between SIGTERM and SIGKILL. Fails only when the guard
/// cannot be spawned; callers go on unguarded with a warning.
base::Status start_orphan_guard(std::chrono::milliseconds grace);

/// Reports a process group that has started / has been reaped. No-ops without a guard.
void watch_group(pid_t pgid);
void unwatch_group(pid_t pgid);

/// "MFLOW_GUARD_TOKEN=<token>" for the environment of every child, "" without a guard.
const std::string& guard_token_env();

/// The name of the token variable (children of a nested mflow get that mflow's token).
inline constexpr std::string_view kGuardTokenVar = "MFLOW_GUARD_TOKEN";

/// The guard process itself (`mflow guard`): reads reports from `fd` until EOF, then stops
/// the groups still listed and, unless mflow said goodbye, every process group of this session
/// holding a process whose environment carries `token`. Returns the process exit status.
int run_orphan_guard(int fd, std::chrono::milliseconds grace, const std::string& token);

}  // namespace mflow::exec
