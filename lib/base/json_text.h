// Screening of JSON text that comes from users or tasks (foreach artifacts, `mflow map
// --items-json`, json parameters) before nlohmann/json sees it: its parser is iterative but
// dump() recurses once per nesting level, so `[[[[...]]]]` 100,000 deep would overflow the
// stack and crash mflow. Text nested deeper than kMaxJsonDepth is refused with a message.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/status.h"

namespace mflow::base {

/// Deeper than any sane document, far below what the recursion can take.
constexpr size_t kMaxJsonDepth = 1000;

/// The deepest nesting of arrays and objects in `text` (brackets inside strings do not count).
/// The text need not be valid JSON; the parser judges that.
size_t json_nesting_depth(std::string_view text);

/// invalid("<what> nests arrays/objects N levels deep; mflow accepts at most 1000") when
/// `text` is nested deeper than kMaxJsonDepth, ok otherwise.
Status check_json_depth(std::string_view text, const std::string& what);

}  // namespace mflow::base
