// Validation of a parsed flow Document against the embedded JSON Schema
// (schemas/flow.schema.json, draft 7, checked with valijson). Each schema violation becomes one
// diagnostic at the offending key's position, worded for people: unknown keys get a
// did-you-mean, type/enum/range errors name the dotted key path and what is allowed.
// Thread-safe: the compiled schema is built once and only read afterwards.
#pragma once

#include <string>
#include <string_view>

#include "spec/diagnostic.h"
#include "spec/document.h"

namespace mflow::spec {

/// Validates `doc`; pushes every problem to `diags`. Returns true when the document conforms.
bool validate_flow_schema(const Document& doc, const std::string& file, Diagnostics* diags);

/// Renders a JSON pointer as the dotted path users write: /steps/a/next/0 -> steps.a.next[0].
std::string display_path(const nlohmann::json& root, const std::string& pointer);

}  // namespace mflow::spec
