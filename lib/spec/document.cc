#include "spec/document.h"

#include "base/strings.h"

namespace mflow::spec {

std::string pointer_append(const std::string& pointer, std::string_view token) {
  std::string out = pointer;
  out += '/';
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

// The line and column (in characters) of byte `offset` of `text`.
SourcePos position_at(std::string_view text, size_t offset) {
  SourcePos pos{1, 1};
  for (size_t i = 0; i < offset; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++pos.line;
      pos.column = 1;
    } else if ((c & 0xC0) != 0x80) {  // a continuation byte is part of the previous character
      ++pos.column;
    }
  }
  return pos;
}

}  // namespace

std::optional<SourcePos> first_invalid_utf8(std::string_view text) {
  size_t at = base::invalid_utf8_offset(text);
  if (at == std::string_view::npos) return std::nullopt;
  return position_at(text, at);
}

std::optional<SourcePos> first_nul(std::string_view text) {
  size_t at = text.find('\0');
  if (at == std::string_view::npos) return std::nullopt;
  return position_at(text, at);
}

namespace {

// Walks up the pointer until a recorded position is found, so a diagnostic about a value the
// document does not contain (a missing key) lands on its parent.
const NodePos* find_pos(const std::map<std::string, NodePos>& positions, std::string pointer) {
  while (true) {
    auto it = positions.find(pointer);
    if (it != positions.end()) return &it->second;
    if (pointer.empty()) return nullptr;
    pointer.erase(pointer.rfind('/'));
  }
}

}  // namespace

SourcePos Document::key_pos(const std::string& pointer) const {
  const NodePos* p = find_pos(positions, pointer);
  return p ? p->key : SourcePos{1, 1};
}

SourcePos Document::value_pos(const std::string& pointer) const {
  const NodePos* p = find_pos(positions, pointer);
  return p ? p->value : SourcePos{1, 1};
}

}  // namespace mflow::spec
