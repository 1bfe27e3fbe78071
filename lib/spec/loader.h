// Loads a flow file (YAML or TOML, chosen by extension or content) into spec::Flow:
// parse -> JSON document with source positions -> JSON Schema validation -> model building
// (defaults applied, durations parsed). Every problem found is pushed to `diags` with a
// file:line:col position; nothing is thrown. Thread-safe (no shared state).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "spec/diagnostic.h"
#include "spec/flow.h"

namespace mflow::spec {

enum class FileFormat { kYaml, kToml };

/// Why `path` cannot be a flow file to read, as a sentence naming it ("flow file 'x' not
/// found", "'x' is a directory, not a flow file", "cannot read flow file 'x': Permission
/// denied"); ok when it is a readable regular file.
base::Status check_flow_path(const std::string& path);

/// Reads and loads `path`. Returns nullopt when any error was diagnosed.
std::optional<Flow> load_flow_file(const std::string& path, Diagnostics* diags);

/// Loads flow text already in memory; `file_label` is used in diagnostics.
std::optional<Flow> load_flow_text(std::string_view text, FileFormat format,
                                   const std::string& file_label, Diagnostics* diags);

/// The JSON Schema (draft 7) every flow file is validated against, as compiled in.
std::string_view flow_schema_text();

}  // namespace mflow::spec
