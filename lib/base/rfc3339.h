// Parsing RFC 3339 / ISO 8601 timestamps as Kubernetes and AWS write them
// ("2026-01-01T00:00:00Z", with fractions or offsets), for credential expiry times. Thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace mflow::base {

/// The instant `text` names; nullopt unless it is exactly "YYYY-MM-DDTHH:MM:SS" with optional
/// fractional seconds (ignored) and a "Z" or "+HH:MM"/"-HH:MM" offset. Times past 2200 are
/// clamped (system_clock's nanoseconds end in 2262).
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

}  // namespace mflow::base
