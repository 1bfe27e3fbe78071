// Checks for numeric flags, shared by every command. CLI11's own Range/PositiveNumber checks
// let `nan` and `inf` through (every comparison with NaN is false) and print their bounds as
// 310-digit doubles; these refuse non-finite and malformed numbers and say what is allowed in
// the numbers' own words (`--kill-grace: 'nan' is not a number; give seconds from 0 to 3600`).
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include <CLI/CLI.hpp>

namespace mflow::cli {

inline constexpr int64_t kNoUpperLimit = std::numeric_limits<int64_t>::max();

/// A whole number (decimal, optional sign) from `min` to `max`. `unit` names what is counted
/// in messages ("workers", "MB"); it may be empty.
CLI::Validator whole_number(int64_t min, int64_t max = kNoUpperLimit, std::string unit = {});

/// A finite number (decimal or exponent form; no nan, inf or hex) from `min` to `max`, or more
/// than `min` when `min_exclusive`. `max` may be infinity for no upper bound.
CLI::Validator finite_number(double min, double max, bool min_exclusive = false,
                             std::string unit = {});

}  // namespace mflow::cli
