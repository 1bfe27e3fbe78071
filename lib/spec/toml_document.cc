// The TOML front end: toml++ tables -> Document. This is the only file that includes toml++;
// its parse_error stops here and becomes a diagnostic with the parser's line/column. toml++ is
// used through Debian's shared library (TOML_HEADER_ONLY=0, see docs/CONTRIBUTING notes):
// the header-only build asserts on some malformed input.
#include <cmath>
#include <sstream>

#include <fmt/core.h>
#include <toml++/toml.h>

#include "spec/document.h"

namespace mflow::spec {
namespace {

SourcePos to_pos(const toml::source_region& region) {
  if (region.begin.line == 0) return {};
  return {static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
}

class TomlConverter {
 public:
  TomlConverter(const std::string& file, Diagnostics* diags, Document* doc)
      : file_(file), diags_(diags), doc_(doc) {}

  nlohmann::json convert(const toml::node& node, const std::string& pointer, SourcePos key_pos,
                         int depth) {
    SourcePos value_pos = to_pos(node.source());
    if (value_pos.line == 0) value_pos = key_pos;
    doc_->positions[pointer] = {key_pos, value_pos};
    if (depth > kMaxDocumentDepth) {
      diags_->error(file_, value_pos, fmt::format("nesting deeper than {} levels", kMaxDocumentDepth));
      return nullptr;
    }
    if (const toml::table* table = node.as_table()) {
      nlohmann::json out = nlohmann::json::object();
      for (auto&& [key, value] : *table) {
        SourcePos kpos = to_pos(key.source());
        if (kpos.line == 0) kpos = value_pos;
        std::string name(key.str());
        out[name] = convert(value, pointer_append(pointer, name), kpos, depth + 1);
      }
      return out;
    }
    if (const toml::array* array = node.as_array()) {
      nlohmann::json out = nlohmann::json::array();
      size_t index = 0;
      for (const toml::node& item : *array) {
        SourcePos item_pos = to_pos(item.source());
        if (item_pos.line == 0) item_pos = value_pos;
        out.push_back(
            convert(item, pointer_append(pointer, std::to_string(index++)), item_pos, depth + 1));
      }
      return out;
    }
    if (auto s = node.value_exact<std::string>()) return *s;
    if (auto i = node.value_exact<int64_t>()) return *i;
    if (auto d = node.value_exact<double>()) {
      if (std::isfinite(*d)) return *d;
      // JSON (the schema, task environments, `show --format json`) has no inf or NaN.
      diags_->error(file_, value_pos, fmt::format("'{}' is not a finite number", *d),
                    "use a finite number, or quote it to pass a string");
      return nullptr;
    }
    if (auto b = node.value_exact<bool>()) return *b;
    // Dates and times have no JSON counterpart; keep their TOML text so errors can quote it.
    std::ostringstream text;
    if (const auto* date = node.as_date()) text << *date;
    if (const auto* time = node.as_time()) text << *time;
    if (const auto* date_time = node.as_date_time()) text << *date_time;
    return text.str();
  }

 private:
  const std::string& file_;
  Diagnostics* diags_;
  Document* doc_;
};

}  // namespace

std::optional<Document> parse_toml_document(std::string_view text, const std::string& file,
                                            Diagnostics* diags) {
  size_t errors_before = diags->items().size();
  Document doc;
  try {
    toml::table table = toml::parse(text, file);
    if (table.empty()) {
      diags->error(file, {1, 1}, "the flow file is empty",
                   "a flow needs at least `name = ...` and `[steps.NAME]` tables; see "
                   "docs/flow-file.md");
      return std::nullopt;
    }
    TomlConverter converter(file, diags, &doc);
    doc.root = converter.convert(table, "", {1, 1}, 0);
  } catch (const toml::parse_error& e) {
    SourcePos pos = to_pos(e.source());
    if (pos.line == 0) pos = {1, 1};
    diags->error(file, pos, fmt::format("TOML syntax error: {}", e.description()),
                 "check quoting, `key = value` syntax and [table] headers around here");
    return std::nullopt;
  } catch (const std::exception& e) {
    diags->error(file, {1, 1}, std::string("cannot parse TOML: ") + e.what());
    return std::nullopt;
  }
  for (size_t i = errors_before; i < diags->items().size(); ++i) {
    if (diags->items()[i].severity == Severity::kError) return std::nullopt;
  }
  return doc;
}

}  // namespace mflow::spec
