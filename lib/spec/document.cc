#include "spec/document.h"

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

std::optional<SourcePos> first_invalid_utf8(std::string_view text) {
  int line = 1;
  int column = 1;
  size_t i = 0;
  while (i < text.size()) {
    auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
    unsigned char c = byte(i);
    size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = length > 0 && i + length <= text.size();
    for (size_t k = 1; ok && k < length; ++k) ok = (byte(i + k) & 0xC0) == 0x80;
    if (ok && length == 2) ok = c >= 0xC2;                                  // overlong
    if (ok && length == 3) {
      unsigned char c1 = byte(i + 1);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);     // overlong, surrogate
    }
    if (ok && length == 4) {
      unsigned char c1 = byte(i + 1);
      ok = c <= 0xF4 && !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (!ok) return SourcePos{line, column};
    if (c == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
    i += length;
  }
  return std::nullopt;
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
