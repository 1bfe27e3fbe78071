#include "spec/schema.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>
#include <regex>
#include <set>

#include <fmt/core.h>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "base/check.h"
#include "base/strings.h"
#include "spec/embedded_schema.h"

namespace mflow::spec {
namespace {

using nlohmann::json;

// Longer strings are never matched against a pattern (see check_property_names).
constexpr size_t kMaxPatternInput = 1024;

struct CompiledSchema {
  json document;
  valijson::Schema schema;
};

// The embedded schema is part of the binary, so failing to parse it is a build defect.
const CompiledSchema& compiled_schema() {
  static const std::unique_ptr<CompiledSchema> compiled = [] {
    auto c = std::make_unique<CompiledSchema>();
    try {
      c->document = json::parse(kEmbeddedFlowSchema);
      valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
      valijson::adapters::NlohmannJsonAdapter adapter(c->document);
      parser.populateSchema(adapter, c->schema);
    } catch (const std::exception& e) {
      MFLOW_CHECK(false, "embedded flow schema is invalid: {}", e.what());
    }
    return c;
  }();
  return *compiled;
}

// Patterns come only from the embedded schema, so the cache stays small. Compiling a
// std::regex costs ~50 us (locale collation tables for every bracket); doing it once per key
// made `check` of a 10,000-step flow spend 60% of its time here.
const std::regex& compiled_pattern(const std::string& pattern) {
  thread_local std::map<std::string, std::regex, std::less<>> cache;
  auto it = cache.find(pattern);
  if (it == cache.end()) it = cache.emplace(pattern, std::regex(pattern)).first;
  return it->second;
}

std::string unescape_token(std::string_view token) {
  std::string out;
  for (size_t i = 0; i < token.size(); ++i) {
    if (token[i] == '~' && i + 1 < token.size()) {
      out += token[i + 1] == '1' ? '/' : '~';
      ++i;
    } else {
      out += token[i];
    }
  }
  return out;
}

std::vector<std::string> pointer_tokens(const std::string& pointer) {
  std::vector<std::string> tokens;
  if (pointer.empty()) return tokens;
  for (const auto& t : base::split(std::string_view(pointer).substr(1), '/')) {
    tokens.push_back(unescape_token(t));
  }
  return tokens;
}

const json* deref(const json& schema_root, const json* node) {
  for (int guard = 0; node && node->is_object() && node->contains("$ref") && guard < 16; ++guard) {
    std::string ref = (*node)["$ref"].get<std::string>();
    if (!base::starts_with(ref, "#/")) return nullptr;
    const json* target = &schema_root;
    for (const auto& token : pointer_tokens(ref.substr(1))) {
      if (!target->is_object() || !target->contains(token)) return nullptr;
      target = &(*target)[token];
    }
    node = target;
  }
  return node;
}

// The subschema that applies to the value at `pointer`, following properties,
// patternProperties, additionalProperties and items; nullptr when none does.
const json* schema_at(const json& schema_root, const std::string& pointer) {
  const json* node = deref(schema_root, &schema_root);
  for (const auto& token : pointer_tokens(pointer)) {
    if (!node || !node->is_object()) return nullptr;
    const json* next = nullptr;
    if (node->contains("properties") && (*node)["properties"].contains(token)) {
      next = &(*node)["properties"][token];
    } else if (node->contains("patternProperties")) {
      for (const auto& [pattern, sub] : (*node)["patternProperties"].items()) {
        if (std::regex_search(token, compiled_pattern(pattern))) next = &sub;
      }
    }
    if (!next && node->contains("additionalProperties") &&
        (*node)["additionalProperties"].is_object()) {
      next = &(*node)["additionalProperties"];
    }
    if (!next && node->contains("items") && (*node)["items"].is_object()) {
      next = &(*node)["items"];
    }
    node = deref(schema_root, next);
  }
  return node;
}

const json* value_at(const json& root, const std::string& pointer) {
  const json* node = &root;
  for (const auto& token : pointer_tokens(pointer)) {
    if (node->is_object() && node->contains(token)) {
      node = &(*node)[token];
    } else if (node->is_array()) {
      size_t index = 0;
      auto [p, ec] = std::from_chars(token.data(), token.data() + token.size(), index);
      if (ec != std::errc() || p != token.data() + token.size() || index >= node->size()) {
        return nullptr;
      }
      node = &(*node)[index];
    } else {
      return nullptr;
    }
  }
  return node;
}

std::string type_phrase(const std::string& type) {
  if (type == "string") return "a string";
  if (type == "integer") return "an integer";
  if (type == "number") return "a number";
  if (type == "boolean") return "true or false";
  if (type == "object") return "a map";
  if (type == "array") return "a list";
  if (type == "null") return "empty";
  return type;
}

std::string json_type_phrase(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "empty";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "a list";
    case json::value_t::object: return "a map";
    default: return "a value";
  }
}

std::string expected_types(const json& schema) {
  if (!schema.contains("type")) return "a value";
  const json& type = schema["type"];
  if (type.is_string()) return type_phrase(type.get<std::string>());
  std::vector<std::string> names;
  for (const auto& t : type) names.push_back(t.get<std::string>());
  // "a number" already covers integers.
  if (std::find(names.begin(), names.end(), "number") != names.end()) {
    names.erase(std::remove(names.begin(), names.end(), "integer"), names.end());
  }
  std::vector<std::string> phrases;
  for (const auto& name : names) {
    phrases.push_back(name == "boolean" && names.size() > 1 ? "a boolean" : type_phrase(name));
  }
  if (phrases.size() == 1) return phrases[0];
  std::string last = phrases.back();
  phrases.pop_back();
  return base::join(phrases, ", ") + " or " + last;
}

std::string short_value(const json& value) {
  std::string text = value.is_string() ? value.get<std::string>() : value.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

std::string number_text(const json& n) {
  return n.is_number_integer() ? std::to_string(n.get<int64_t>()) : n.dump();
}

std::string description_of(const json* schema) {
  if (schema && schema->contains("description")) return (*schema)["description"];
  return {};
}

// Descriptions valijson pushes for a parent whose child failed; the child's own error is
// already reported, so these only add noise.
bool is_cascade(const std::string& description) {
  return base::starts_with(description, "Failed to validate against schema associated") ||
         base::starts_with(description, "Failed to validate against additional") ||
         base::starts_with(description, "Failed to validate item #") ||
         base::starts_with(description, "Failed to validate against any child") ||
         base::starts_with(description, "Failed to validate against exactly one");
}

class SchemaErrorMapper {
 public:
  SchemaErrorMapper(const Document& doc, const std::string& file, Diagnostics* diags)
      : doc_(doc), file_(file), diags_(diags), schema_(compiled_schema().document) {}

  void map(const std::vector<std::string>& context, const std::string& description) {
    std::string pointer;
    for (const auto& element : context) {
      if (element == "<root>") continue;
      std::string token = element;
      if (token.size() >= 2 && token.front() == '[' && token.back() == ']') {
        token = token.substr(1, token.size() - 2);
      }
      pointer = pointer_append(pointer, token);
    }
    if (!seen_.insert(pointer + "\n" + description).second) return;

    const json* schema = schema_at(schema_, pointer);
    const json* value = value_at(doc_.root, pointer);
    std::string path = display_path(doc_.root, pointer);

    const std::string unwanted_marker = "constraints: '";
    size_t marker = description.find(unwanted_marker);
    if (base::starts_with(description, "Object contains a property") && marker != std::string::npos) {
      unknown_keys(pointer, schema, value);
      return;
    }
    if (base::starts_with(description, "Missing required property '")) {
      std::string key = description.substr(std::string("Missing required property '").size());
      if (base::ends_with(key, "'.")) key.resize(key.size() - 2);
      std::string where = pointer.empty() ? "the flow" : "`" + path + "`";
      std::string hint;
      const json* child = schema ? schema_at(schema_, pointer_append(pointer, key)) : nullptr;
      if (child) hint = fmt::format("`{}`: {}", key, description_of(child));
      error(pointer, fmt::format("{} has no `{}`, which is required", where, key), hint);
      return;
    }
    if (!schema || !value) {
      error(pointer, fmt::format("`{}`: {}", path, description));
      return;
    }
    if (description == "Value type not permitted by 'type' constraint.") {
      error(pointer,
            fmt::format("`{}` must be {}, not {}", path, expected_types(*schema),
                        json_type_phrase(*value)),
            description_of(schema));
    } else if (description == "Failed to match against any enum values.") {
      std::vector<std::string> allowed;
      for (const auto& v : (*schema)["enum"]) allowed.push_back(v.is_string() ? v.get<std::string>() : v.dump());
      std::string suggestion =
          value->is_string() ? base::closest_match(value->get<std::string>(), allowed) : "";
      error(pointer,
            fmt::format("`{}` must be one of {}, not '{}'", path, base::join(allowed, ", "),
                        short_value(*value)),
            suggestion.empty() ? description_of(schema)
                               : fmt::format("did you mean '{}'?", suggestion));
    } else if (description == "Failed to match regex specified by 'pattern' constraint.") {
      error(pointer, fmt::format("invalid value '{}' for `{}`", short_value(*value), path),
            description_of(schema));
    } else if (base::starts_with(description, "Expected number")) {
      std::string bound;
      if (schema->contains("exclusiveMinimum") && value->is_number() &&
          value->get<double>() <= (*schema)["exclusiveMinimum"].get<double>()) {
        bound = "greater than " + number_text((*schema)["exclusiveMinimum"]);
      } else if (schema->contains("minimum") && value->is_number() &&
                 value->get<double>() < (*schema)["minimum"].get<double>()) {
        bound = "at least " + number_text((*schema)["minimum"]);
      } else if (schema->contains("maximum")) {
        bound = "at most " + number_text((*schema)["maximum"]);
      }
      error(pointer, fmt::format("`{}` is {}, but it must be {}", path, short_value(*value), bound),
            description_of(schema));
    } else if (base::starts_with(description, "String should be no fewer") ||
               base::starts_with(description, "Array should contain no fewer") ||
               base::starts_with(description, "Object should have no fewer")) {
      error(pointer, fmt::format("`{}` must not be empty", path), description_of(schema));
    } else if (base::starts_with(description, "String should be no more than")) {
      error(pointer,
            fmt::format("`{}` is longer than {} characters", path,
                        schema->value("maxLength", 0)),
            description_of(schema));
    } else {
      error(pointer, fmt::format("`{}`: {}", path, description), description_of(schema));
    }
  }

 private:
  // valijson names only the first unknown key of an object; report every one of them.
  void unknown_keys(const std::string& pointer, const json* schema, const json* value) {
    if (!schema || !value || !value->is_object()) return;
    std::vector<std::string> allowed;
    if (schema->contains("properties")) {
      for (const auto& [name, sub] : (*schema)["properties"].items()) {
        if (name != "$schema") allowed.push_back(name);
      }
    }
    std::string where =
        pointer.empty() ? "at the top level" : "in `" + display_path(doc_.root, pointer) + "`";
    for (const auto& [key, child_value] : value->items()) {
      if (schema->contains("properties") && (*schema)["properties"].contains(key)) continue;
      std::string child = pointer_append(pointer, key);
      if (!seen_.insert(child + "\nunknown").second) continue;
      std::string suggestion = base::closest_match(key, allowed);
      std::string hint = suggestion.empty()
                             ? (allowed.empty() ? std::string()
                                                : "allowed keys: " + base::join(allowed, ", "))
                             : fmt::format("did you mean '{}'?", suggestion);
      error(child, fmt::format("unknown key '{}' {}", key, where), hint);
    }
  }

  void error(const std::string& pointer, std::string message, std::string hint = {}) {
    diags_->error(file_, doc_.key_pos(pointer), std::move(message), std::move(hint), pointer);
  }

  const Document& doc_;
  const std::string& file_;
  Diagnostics* diags_;
  const json& schema_;
  std::set<std::string> seen_;
};

// valijson checks `propertyNames` but does not say which name failed, so names are checked
// here against the same subschema (pattern, maxLength) to report each one at its key.
//
// It also screens out strings too long for std::regex, whose recursive matcher overflows the
// stack on inputs of some ten thousand characters: such a name or value is reported here and
// `*unsafe` is set, and the caller must not hand the document to valijson.
void check_property_names(const Document& doc, const json& schema_root, const json& value,
                          const json* schema, const std::string& pointer, const std::string& file,
                          Diagnostics* diags, int depth, bool* unsafe) {
  schema = deref(schema_root, schema);
  if (!schema || !schema->is_object() || depth > kMaxDocumentDepth) return;
  if (value.is_string() && schema->contains("pattern") &&
      value.get_ref<const std::string&>().size() > kMaxPatternInput) {
    *unsafe = true;
    diags->error(file, doc.key_pos(pointer),
                 fmt::format("`{}` is far too long ({} characters)", display_path(doc.root, pointer),
                             value.get_ref<const std::string&>().size()),
                 description_of(schema), pointer);
    return;
  }
  if (value.is_object()) {
    const json* names = schema->contains("propertyNames") ? &(*schema)["propertyNames"] : nullptr;
    for (const auto& [key, child] : value.items()) {
      std::string child_pointer = pointer_append(pointer, key);
      if (names) {
        bool ok = true;
        if (key.size() > kMaxPatternInput) {
          *unsafe = true;
          ok = false;
        } else if (names->contains("pattern")) {
          ok = std::regex_search(key, compiled_pattern((*names)["pattern"].get_ref<const std::string&>()));
        }
        if (names->contains("maxLength") && key.size() > (*names)["maxLength"].get<size_t>()) {
          ok = false;
        }
        if (!ok) {
          std::string last = pointer.substr(pointer.rfind('/') + 1);
          std::string what = last == "steps"        ? "step name"
                             : last == "parameters" ? "parameter name"
                             : last == "env"        ? "environment variable name"
                                                    : "key";
          diags->error(file, doc.key_pos(child_pointer),
                       fmt::format("invalid {} '{}'", what, short_value(json(key))),
                       description_of(names), child_pointer);
        }
      }
      const json* sub = nullptr;
      if (schema->contains("properties") && (*schema)["properties"].contains(key)) {
        sub = &(*schema)["properties"][key];
      } else if (schema->contains("additionalProperties") &&
                 (*schema)["additionalProperties"].is_object()) {
        sub = &(*schema)["additionalProperties"];
      }
      check_property_names(doc, schema_root, child, sub, child_pointer, file, diags, depth + 1,
                           unsafe);
    }
  } else if (value.is_array() && schema->contains("items") && (*schema)["items"].is_object()) {
    for (size_t i = 0; i < value.size(); ++i) {
      check_property_names(doc, schema_root, value[i], &(*schema)["items"],
                           pointer_append(pointer, std::to_string(i)), file, diags, depth + 1,
                           unsafe);
    }
  }
}

// No string in a flow file may hold a NUL character (a YAML `\0` or `\x00` escape, a TOML
// `\u0000`; a raw NUL byte is refused earlier, with the loader's UTF-8 check). The kernel takes
// commands, argv elements and environment values as C strings, so a task would run only up to
// the NUL while `mflow show` printed the whole text. Keys are checked too: they become step,
// parameter and variable names.
void check_no_nul(const Document& doc, const json& value, const std::string& pointer,
                  const std::string& file, Diagnostics* diags, int depth) {
  if (depth > kMaxDocumentDepth) return;
  auto has_nul = [](const std::string& s) { return s.find('\0') != std::string::npos; };
  auto report = [&](SourcePos pos, const std::string& at, const char* what) {
    std::string path;
    for (char c : display_path(doc.root, at)) {
      path += c == '\0' ? std::string("\\0") : std::string(1, c);
    }
    diags->error(file, pos,
                 fmt::format("{} `{}` contains a NUL character (\\0)", what,
                             path.empty() ? std::string("(top level)") : path),
                 "a command, argument or environment value ends at a NUL for the operating "
                 "system, so the rest would be cut off silently; remove the NUL",
                 at);
  };
  if (value.is_string()) {
    if (has_nul(value.get_ref<const std::string&>())) {
      report(doc.value_pos(pointer), pointer, "the value of");
    }
  } else if (value.is_object()) {
    for (const auto& [key, child] : value.items()) {
      std::string child_pointer = pointer_append(pointer, key);
      if (has_nul(key)) report(doc.key_pos(child_pointer), child_pointer, "the key");
      check_no_nul(doc, child, child_pointer, file, diags, depth + 1);
    }
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      check_no_nul(doc, value[i], pointer_append(pointer, std::to_string(i)), file, diags,
                   depth + 1);
    }
  }
}

}  // namespace

std::string display_path(const nlohmann::json& root, const std::string& pointer) {
  std::string out;
  const json* node = &root;
  for (const auto& token : pointer_tokens(pointer)) {
    if (node && node->is_array()) {
      out += "[" + token + "]";
      const json* next = value_at(*node, "/" + token);
      node = next;
      continue;
    }
    if (!out.empty()) out += '.';
    bool plain = !token.empty() && token.find_first_not_of(
                                       "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789_-") == std::string::npos;
    out += plain ? token : "\"" + token + "\"";
    node = node && node->is_object() && node->contains(token) ? &(*node)[token] : nullptr;
  }
  return out;
}

bool validate_flow_schema(const Document& doc, const std::string& file, Diagnostics* diags) {
  const CompiledSchema& compiled = compiled_schema();
  size_t before = diags->items().size();
  bool unsafe = false;
  check_no_nul(doc, doc.root, "", file, diags, 0);
  check_property_names(doc, compiled.document, doc.root, &compiled.document, "", file, diags, 0,
                       &unsafe);
  if (unsafe) return false;
  valijson::Validator validator(valijson::Validator::kStrongTypes);
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter target(doc.root);
  if (validator.validate(compiled.schema, target, &results)) return diags->items().size() == before;
  SchemaErrorMapper mapper(doc, file, diags);
  for (const auto& e : results) {
    if (!is_cascade(e.description)) mapper.map(e.context, e.description);
  }
  // Should valijson ever fail with nothing but parent-level messages, show those rather than
  // claim success.
  if (diags->items().size() == before) {
    for (const auto& e : results) mapper.map(e.context, e.description);
  }
  return false;
}

}  // namespace mflow::spec
