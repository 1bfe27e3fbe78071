// Small string helpers shared by every area. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mflow::base {

std::vector<std::string> split(std::string_view text, char sep);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string_view trim(std::string_view text);
bool starts_with(std::string_view text, std::string_view prefix);
bool ends_with(std::string_view text, std::string_view suffix);

/// Levenshtein distance, used for did-you-mean hints.
size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate closest to `word` if it is close enough to be a plausible typo, else "".
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

/// Quotes `text` for a POSIX shell when it contains anything but safe characters, so the
/// commands mflow prints for users to copy (`mflow logs ...`) paste back correctly.
std::string shell_quote(std::string_view text);

/// Offset of the first byte that is not part of well-formed UTF-8 (overlong forms, surrogates
/// and code points above U+10FFFF included), or std::string_view::npos when `text` is valid.
size_t invalid_utf8_offset(std::string_view text);

/// `text` for a message: bytes that are not UTF-8, and control characters other than tab and
/// newline (NUL, ESC), written as `\xNN`, so that a bad value can be shown without garbling
/// the terminal. Characters in `backslashed` get a backslash before them (`"'\\"` makes the
/// result the body of a bash `$'...'` string).
std::string printable(std::string_view text, std::string_view backslashed = {});

}  // namespace mflow::base
