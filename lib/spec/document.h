// Document: a parsed flow file as plain JSON plus the source position of every key and value,
// addressed by JSON pointer. The YAML (yaml_document.cc) and TOML (toml_document.cc) front ends
// produce it; schema validation and the model builder consume it, so both formats share every
// later check and every diagnostic position. Parse errors become diagnostics; nothing throws.
// Thread-compatible.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "spec/diagnostic.h"

namespace mflow::spec {

/// Where a member's key and its value start. For array items and the root, key == value.
struct NodePos {
  SourcePos key;
  SourcePos value;
};

struct Document {
  nlohmann::json root;
  /// JSON pointer ("" for the root, "/steps/start/run", "/steps/a/next/0") -> position.
  std::map<std::string, NodePos> positions;

  /// Position of the key at `pointer`, or of its closest ancestor that has one, else 1:1.
  SourcePos key_pos(const std::string& pointer) const;
  /// Position of the value at `pointer`, falling back like key_pos.
  SourcePos value_pos(const std::string& pointer) const;
};

/// Nesting deeper than this is refused (it also bounds recursion on hostile input).
inline constexpr int kMaxDocumentDepth = 64;
/// Documents expanding to more nodes than this (YAML alias bombs) are refused. A 100,000-step
/// flow has about 500,000 nodes; an alias bomb passes any bound within a few levels.
inline constexpr size_t kMaxDocumentNodes = 2'000'000;

/// Appends one escaped reference token to a JSON pointer ("~" -> "~0", "/" -> "~1").
std::string pointer_append(const std::string& pointer, std::string_view token);

/// The position of the first byte that is not part of well-formed UTF-8 (overlong forms,
/// surrogates and code points above U+10FFFF included), or nullopt when `text` is valid.
std::optional<SourcePos> first_invalid_utf8(std::string_view text);

/// The position of the first NUL byte in `text` (valid UTF-8), or nullopt when it has none.
std::optional<SourcePos> first_nul(std::string_view text);

/// Parses YAML text. Plain scalars are typed by the YAML 1.2 core schema (null, true/false,
/// integers, floats); quoted scalars are always strings. Duplicate keys, multiple documents,
/// non-string keys and over-deep nesting are diagnosed. Returns nullopt on any error.
std::optional<Document> parse_yaml_document(std::string_view text, const std::string& file,
                                            Diagnostics* diags);

/// Parses TOML text (TOML 1.0). Dates and times are kept as their text. Returns nullopt on
/// any error.
std::optional<Document> parse_toml_document(std::string_view text, const std::string& file,
                                            Diagnostics* diags);

}  // namespace mflow::spec
