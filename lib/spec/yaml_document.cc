// The YAML front end: yaml-cpp nodes -> Document. This is the only file that includes
// yaml-cpp; its exceptions stop here and become diagnostics with the parser's line/column.
#include <charconv>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include <fmt/core.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "base/strings.h"
#include "spec/document.h"

namespace mflow::spec {
namespace {

SourcePos to_pos(const YAML::Mark& mark) {
  if (mark.line < 0 || mark.column < 0) return {};
  return {mark.line + 1, mark.column + 1};
}

bool is_null_word(const std::string& s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

bool all_digits(std::string_view s, int base) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = base == 16 ? std::isxdigit(static_cast<unsigned char>(c)) != 0
              : base == 8 ? (c >= '0' && c <= '7')
                          : (c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// A plain scalar typed by the YAML 1.2 core schema. Integers that overflow int64 become
// floating point, as JSON readers do.
nlohmann::json plain_scalar(const std::string& s) {
  if (is_null_word(s)) return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  std::string_view body = s;
  bool negative = false;
  if (!body.empty() && (body[0] == '-' || body[0] == '+')) {
    negative = body[0] == '-';
    body.remove_prefix(1);
  }
  int base = 10;
  std::string_view digits = body;
  if (s[0] != '-' && s[0] != '+' && body.size() > 2 && body[0] == '0' &&
      (body[1] == 'x' || body[1] == 'o')) {
    base = body[1] == 'x' ? 16 : 8;
    digits = body.substr(2);
  }
  if (all_digits(digits, base)) {
    uint64_t magnitude = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
    if (ec == std::errc() && ptr == digits.data() + digits.size()) {
      if (!negative && magnitude <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return static_cast<int64_t>(magnitude);
      }
      if (negative && magnitude <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1) {
        return static_cast<int64_t>(0 - magnitude);
      }
    }
    if (base == 10) return std::strtod(s.c_str(), nullptr);
    return s;
  }
  if (body == ".inf" || body == ".Inf" || body == ".INF") {
    return negative ? -std::numeric_limits<double>::infinity()
                    : std::numeric_limits<double>::infinity();
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  // [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
  size_t i = 0;
  size_t int_digits = 0, frac_digits = 0;
  while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i]))) ++i, ++int_digits;
  bool dot = i < body.size() && body[i] == '.';
  if (dot) {
    ++i;
    while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i]))) ++i, ++frac_digits;
  }
  if (int_digits + frac_digits == 0) return s;
  if (i < body.size() && (body[i] == 'e' || body[i] == 'E')) {
    ++i;
    if (i < body.size() && (body[i] == '+' || body[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i]))) ++i, ++exp_digits;
    if (exp_digits == 0) return s;
  } else if (!dot) {
    return s;
  }
  if (i != body.size()) return s;
  return std::strtod(s.c_str(), nullptr);
}

class YamlConverter {
 public:
  YamlConverter(const std::string& file, Diagnostics* diags, Document* doc)
      : file_(file), diags_(diags), doc_(doc) {}

  nlohmann::json convert(const YAML::Node& node, const std::string& pointer, SourcePos key_pos,
                         int depth) {
    if (++nodes_ > kMaxDocumentNodes) {
      if (!too_large_reported_) {
        too_large_reported_ = true;
        error(key_pos, fmt::format("the document expands to more than {} values",
                                   kMaxDocumentNodes),
              "a flow file this large is almost certainly an alias loop or a mistake");
      }
      return nullptr;
    }
    SourcePos value_pos = to_pos(node.Mark());
    // yaml-cpp marks an empty value at the start of the next token; the key is the better place.
    if (node.IsNull() || value_pos.line == 0) value_pos = key_pos;
    doc_->positions[pointer] = {key_pos, value_pos};
    if (depth > kMaxDocumentDepth) {
      error(value_pos, fmt::format("nesting deeper than {} levels", kMaxDocumentDepth));
      return nullptr;
    }
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return nullptr;
      case YAML::NodeType::Scalar:
        return scalar(node, value_pos);
      case YAML::NodeType::Sequence: {
        nlohmann::json out = nlohmann::json::array();
        size_t index = 0;
        for (const auto& item : node) {
          std::string child = pointer_append(pointer, std::to_string(index++));
          SourcePos item_pos = to_pos(item.Mark());
          if (item_pos.line == 0 || item.IsNull()) item_pos = value_pos;
          out.push_back(convert(item, child, item_pos, depth + 1));
        }
        return out;
      }
      case YAML::NodeType::Map: {
        nlohmann::json out = nlohmann::json::object();
        std::map<std::string, SourcePos> seen;
        for (const auto& entry : node) {
          const YAML::Node& key = entry.first;
          SourcePos kpos = to_pos(key.Mark());
          if (kpos.line == 0) kpos = value_pos;
          if (!key.IsScalar()) {
            error(kpos, "a mapping key must be a plain string, not a list or mapping");
            continue;
          }
          const std::string& name = key.Scalar();
          if (name == "<<" && key.Tag() == "?") {
            // yaml-cpp keeps a merge key as an ordinary key; saying "unknown key '<<'" would
            // hide that the whole construct is unsupported.
            error(kpos, "YAML merge keys (`<<:`) are not supported in flow files",
                  "write the keys out; settings shared by every step go in `defaults`");
            continue;
          }
          auto [first, inserted] = seen.emplace(name, kpos);
          if (!inserted) {
            error(kpos,
                  fmt::format("duplicate key '{}' (first defined at line {}, column {})", name,
                              first->second.line, first->second.column),
                  "YAML keeps only one of them; remove or rename the other");
            continue;
          }
          out[name] = convert(entry.second, pointer_append(pointer, name), kpos, depth + 1);
        }
        return out;
      }
    }
    return nullptr;
  }

 private:
  nlohmann::json scalar(const YAML::Node& node, SourcePos pos) {
    const std::string& tag = node.Tag();
    const std::string& text = node.Scalar();
    if (tag == "!" || tag == "tag:yaml.org,2002:str") return text;
    if (tag == "?" || tag.empty() || tag == "tag:yaml.org,2002:int" ||
        tag == "tag:yaml.org,2002:float" || tag == "tag:yaml.org,2002:bool" ||
        tag == "tag:yaml.org,2002:null") {
      nlohmann::json value = plain_scalar(text);
      if (value.is_number_float() && !std::isfinite(value.get<double>())) {
        // JSON (the schema, task environments, `show --format json`) has no inf or NaN.
        error(pos, fmt::format("'{}' is not a finite number", text),
              "use a finite number, or quote it to pass a string");
        return nullptr;
      }
      return value;
    }
    error(pos, fmt::format("unsupported YAML tag '{}'", tag),
          "flow files use plain YAML values; remove the tag");
    return text;
  }

  void error(SourcePos pos, std::string message, std::string hint = {}) {
    diags_->error(file_, pos, std::move(message), std::move(hint));
  }

  const std::string& file_;
  Diagnostics* diags_;
  Document* doc_;
  size_t nodes_ = 0;
  bool too_large_reported_ = false;
};

// Records where each document starts; used to refuse multi-document files.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  std::vector<YAML::Mark> starts;
};

// Whether any line starts with a document marker (`---` or `...` followed by a blank or the end
// of the line). Only then can the text hold a second document: inside a document such a line is
// either a marker or an error (YAML forbids them in scalars), so this prefilter never misses one
// and saves the second, event-level parse for the usual single-document file.
bool has_document_marker(std::string_view text) {
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    if ((base::starts_with(line, "---") || base::starts_with(line, "...")) &&
        (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r')) {
      return true;
    }
    at = end + 1;
  }
  return false;
}

// The first character that is not blank, a comment, a directive or a document marker.
std::optional<SourcePos> first_content(std::string_view text) {
  int line = 1;
  for (const auto& raw : base::split(text, '\n')) {
    std::string_view trimmed = base::trim(raw);
    bool skip = trimmed.empty() || trimmed[0] == '#' || trimmed[0] == '%' || trimmed == "---" ||
                trimmed == "...";
    if (!skip) {
      size_t column = raw.find_first_not_of(" \t\r");
      if (base::starts_with(trimmed, "--- ")) column += 4;
      return SourcePos{line, static_cast<int>(column) + 1};
    }
    ++line;
  }
  return std::nullopt;
}

// A tab in the indentation of line `line` or of the line before it (yaml-cpp reports an
// indentation error there, or at the next token), as the position of the tab. YAML indents
// with spaces only, and yaml-cpp's "end of map not found" does not say that a tab is the cause.
std::optional<SourcePos> indenting_tab(std::string_view text, int line) {
  int current = 1;
  for (const std::string& row : base::split(text, '\n')) {
    if (current > line) break;
    if (current >= line - 1) {
      std::string_view raw = row;
      size_t content = raw.find_first_not_of(" \t");
      std::string_view indent = raw.substr(0, content == std::string_view::npos ? 0 : content);
      size_t tab = indent.find('\t');
      if (tab != std::string_view::npos && raw[content] != '#') {
        return SourcePos{current, static_cast<int>(tab) + 1};
      }
    }
    ++current;
  }
  return std::nullopt;
}

}  // namespace

std::optional<Document> parse_yaml_document(std::string_view text, const std::string& file,
                                            Diagnostics* diags) {
  size_t errors_before = diags->items().size();
  Document doc;
  try {
    // yaml-cpp 0.7's LoadAll never returns when a document starts with ',' (it yields empty
    // documents forever without consuming the token; found by fuzzing). So: load the first
    // document only, and count documents with a bounded event-level pass.
    std::string owned(text);
    YAML::Node root = YAML::Load(owned);
    if (root.IsNull()) {
      std::optional<SourcePos> content = first_content(text);
      if (content) {
        diags->error(file, *content, "YAML syntax error: unexpected text where the flow should start",
                     "a flow file is a mapping: `name: ...` and `steps: ...` at the top level");
      } else {
        diags->error(file, {1, 1}, "the flow file is empty",
                     "a flow needs at least `name:` and `steps:`; see docs/flow-file.md");
      }
      return std::nullopt;
    }
    DocumentStarts starts;
    if (has_document_marker(text)) {
      std::istringstream in(owned);
      YAML::Parser parser(in);
      for (int i = 0; i < 2 && parser.HandleNextDocument(starts); ++i) {
      }
    }
    if (starts.starts.size() > 1) {
      diags->error(file, to_pos(starts.starts[1]),
                   "a flow file holds one YAML document, but a second one starts here",
                   "remove the `---` separator and everything after it, or split the file");
    }
    if (!root.IsMap()) {
      diags->error(file, to_pos(root.Mark()),
                   "the top level of a flow file must be a mapping (`name: ...`, `steps: ...`)");
      return std::nullopt;
    }
    YamlConverter converter(file, diags, &doc);
    doc.root = converter.convert(root, "", {1, 1}, 0);
  } catch (const YAML::Exception& e) {
    SourcePos pos = to_pos(e.mark);
    if (pos.line == 0) pos = {1, 1};
    if (std::optional<SourcePos> tab = indenting_tab(text, pos.line)) {
      diags->error(file, *tab, "a tab indents this line; YAML indents with spaces only",
                   "replace the tab with spaces (editors can insert spaces for the Tab key)");
      return std::nullopt;
    }
    diags->error(file, pos, "YAML syntax error: " + e.msg,
                 "check indentation, colons and matching brackets/quotes around here");
    return std::nullopt;
  } catch (const std::exception& e) {
    diags->error(file, {1, 1}, std::string("cannot parse YAML: ") + e.what());
    return std::nullopt;
  }
  for (size_t i = errors_before; i < diags->items().size(); ++i) {
    if (diags->items()[i].severity == Severity::kError) return std::nullopt;
  }
  return doc;
}

}  // namespace mflow::spec
