// Process-wide interrupt handling: SIGINT, SIGTERM and SIGHUP are turned into a readable file
// descriptor (an eventfd) that the scheduler and `mflow map` put in their poll sets, so a
// Ctrl-C wakes the one loop that owns the children instead of interrupting random system
// calls. SIGPIPE is ignored so a closed pipe shows up as EPIPE on write. Thread-safe; the
// signal handler only does async-signal-safe work (an atomic store and one write()).
#pragma once

namespace mflow::base {

/// SIGPIPE ignored process-wide, so a write to a closed pipe or socket is an EPIPE error, not
/// death. Network clients need it: OpenSSL writes to its socket with plain write(2), so a
/// server that drops a TLS connection would otherwise kill the process. Idempotent.
void ignore_broken_pipes();

/// Installs the SIGINT/SIGTERM handlers and ignores SIGPIPE. Idempotent; call it once early in
/// a command that runs children. Children spawned by exec::SubprocessSet get these signals
/// reset to their defaults.
void install_interrupt_handlers();

/// An fd that becomes readable once SIGINT or SIGTERM arrives (after install_interrupt_handlers)
/// and stays readable until acknowledge_interrupt(). The scheduler's wait (through
/// LocalExecutor's wake fds) and `mflow map` poll it. Never closed; -1 before installation.
int interrupt_fd();

/// True once SIGINT or SIGTERM arrived. Stays true (acknowledge_interrupt() does not reset it).
bool interrupted();

/// The first interrupting signal (SIGINT, SIGTERM or SIGHUP), 0 if none arrived. SIGHUP is
/// handled only when it was not ignored at installation (nohup).
int interrupt_signal();

/// How many SIGINT/SIGTERM arrived (a second Ctrl-C means "stop now, no grace").
int interrupt_count();

/// Drains interrupt_fd() so a poll loop that already reacted does not spin on it. A later
/// signal makes it readable again.
void acknowledge_interrupt();

/// Forgets that a signal arrived and drains the fd. For tests that raise() a signal.
void reset_interrupt_for_testing();

}  // namespace mflow::base
