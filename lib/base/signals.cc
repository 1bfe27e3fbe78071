#include "base/signals.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <mutex>

#include "base/check.h"

namespace mflow::base {
namespace {

// Written by the handler, read anywhere: lock-free atomics are async-signal-safe.
std::atomic<int> g_fd{-1};
std::atomic<int> g_signal{0};
std::atomic<int> g_count{0};  // SIGINT/SIGTERM/SIGHUP received so far
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_interrupt(int sig) {
  int saved_errno = errno;
  int expected = 0;
  g_signal.compare_exchange_strong(expected, sig);
  g_count.fetch_add(1);
  uint64_t one = 1;
  int fd = g_fd.load();
  // The result is deliberately ignored: the eventfd counter cannot overflow in practice and
  // there is nothing safe to do about a failure inside a signal handler.
  if (fd >= 0) {
    ssize_t n = ::write(fd, &one, sizeof one);
    (void)n;
  }
  errno = saved_errno;
}

}  // namespace

void ignore_broken_pipes() {
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  ::sigaction(SIGPIPE, &ign, nullptr);
}

void install_interrupt_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    MFLOW_CHECK(fd >= 0, "eventfd failed: errno {}", errno);
    g_fd.store(fd);
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    // SA_RESTART: nothing in mflow relies on EINTR to notice a signal; the eventfd does that.
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    // A closed terminal or a dropped ssh session (SIGHUP) stops the run as SIGTERM does, so
    // its tasks are stopped and recorded as interrupted instead of mflow dying mid-run. Under
    // `nohup` (SIGHUP ignored when mflow starts) it stays ignored: the user asked for that.
    struct sigaction old {};
    if (::sigaction(SIGHUP, nullptr, &old) == 0 && old.sa_handler != SIG_IGN) {
      ::sigaction(SIGHUP, &sa, nullptr);
    }
    ignore_broken_pipes();
  });
}

int interrupt_fd() { return g_fd.load(); }

bool interrupted() { return g_signal.load() != 0; }

int interrupt_signal() { return g_signal.load(); }

int interrupt_count() { return g_count.load(); }

void acknowledge_interrupt() {
  int fd = g_fd.load();
  if (fd < 0) return;
  uint64_t value = 0;
  while (::read(fd, &value, sizeof value) < 0 && errno == EINTR) {
  }
}

void reset_interrupt_for_testing() {
  acknowledge_interrupt();
  g_signal.store(0);
  g_count.store(0);
}

}  // namespace mflow::base
