// MFLOW_CHECK: invariant violations inside mflow (bugs, never user errors). Prints the
// location and message to stderr and aborts. Thread-safe.
#pragma once

#include <fmt/core.h>

namespace mflow::base {
[[noreturn]] void check_failed(const char* file, int line, const char* cond, const std::string& msg);
}  // namespace mflow::base

#define MFLOW_CHECK(cond, ...)                                                          \
  do {                                                                                  \
    if (!(cond)) ::mflow::base::check_failed(__FILE__, __LINE__, #cond, fmt::format(__VA_ARGS__)); \
  } while (0)
