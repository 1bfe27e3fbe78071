#include "cli/number_flags.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include <fmt/core.h>

#include "base/strings.h"

namespace mflow::cli {
namespace {

// What the flag takes, in words: "a whole number of workers from 1 to 100000".
std::string allowed(const std::string& kind, const std::string& unit, const std::string& min,
                    const std::string& max, bool min_exclusive) {
  std::string what = unit.empty() ? kind : kind + " of " + unit;
  if (min_exclusive) return fmt::format("{} greater than {}", what, min);
  if (max.empty()) return fmt::format("{}, at least {}", what, min);
  return fmt::format("{} from {} to {}", what, min, max);
}

// The value as typed, safe to print: a flag value can hold any bytes.
std::string as_typed(const std::string& text) {
  return "'" + base::printable(text.size() > 40 ? text.substr(0, 40) + "..." : text) + "'";
}

}  // namespace

CLI::Validator whole_number(int64_t min, int64_t max, std::string unit) {
  std::string range = allowed("a whole number", unit, fmt::format("{}", min),
                              max == kNoUpperLimit ? "" : fmt::format("{}", max), false);
  auto check = [min, max, range](std::string& text) -> std::string {
    std::string_view digits = text;
    if (!digits.empty() && digits[0] == '+') digits.remove_prefix(1);
    int64_t value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || end != digits.data() + digits.size() ||
        (ec != std::errc() && ec != std::errc::result_out_of_range)) {
      return fmt::format("{} is not a whole number; give {}", as_typed(text), range);
    }
    if (ec == std::errc::result_out_of_range || value < min || value > max) {
      return fmt::format("{} is out of range; give {}", text, range);
    }
    return std::string();
  };
  return CLI::Validator(check, max == kNoUpperLimit ? fmt::format(">={}", min)
                                                    : fmt::format("{}..{}", min, max));
}

CLI::Validator finite_number(double min, double max, bool min_exclusive, std::string unit) {
  std::string range = allowed("a number", unit, fmt::format("{}", min),
                              std::isinf(max) ? "" : fmt::format("{}", max), min_exclusive);
  auto check = [min, max, min_exclusive, range](std::string& text) -> std::string {
    // strtod alone would take "nan", "inf", "infinity" and hex floats; a flag takes decimals.
    bool decimal = !text.empty() && text.find_first_not_of("0123456789+-.eE") == std::string::npos;
    char* end = nullptr;
    double value = decimal ? std::strtod(text.c_str(), &end) : 0;
    if (!decimal || end != text.c_str() + text.size()) {
      return fmt::format("{} is not a number; give {}", as_typed(text), range);
    }
    if (!std::isfinite(value) || value < min || (min_exclusive && value == min) || value > max) {
      return fmt::format("{} is out of range; give {}", text, range);
    }
    return std::string();
  };
  std::string bounds = std::isinf(max) ? fmt::format("{}{}", min_exclusive ? ">" : ">=", min)
                                        : fmt::format("{}..{}", min, max);
  return CLI::Validator(check, bounds);
}

}  // namespace mflow::cli
