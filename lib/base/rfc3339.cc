#include "base/rfc3339.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace mflow::base {

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view view) {
  std::string text(view);
  struct tm tm {};
  const char* p = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!p) return std::nullopt;
  if (*p == '.') {  // fractional seconds: ignored (second precision is plenty for expiry)
    ++p;
    while (*p >= '0' && *p <= '9') ++p;
  }
  long offset = 0;
  if (*p == 'Z' || *p == 'z') {
    ++p;
  } else if (*p == '+' || *p == '-') {
    int hh = 0, mm = 0;
    if (std::sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2) return std::nullopt;
    offset = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
    p += 6;
  } else {
    return std::nullopt;
  }
  if (*p != '\0') return std::nullopt;
  time_t t = ::timegm(&tm);
  if (t == static_cast<time_t>(-1)) return std::nullopt;
  // system_clock counts nanoseconds in 64 bits (until 2262): clamp far-future expiries.
  constexpr time_t kMax = 7258118400;  // 2200-01-01T00:00:00Z
  return std::chrono::system_clock::from_time_t(std::min<time_t>(t - offset, kMax));
}

}  // namespace mflow::base
