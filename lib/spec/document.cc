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
