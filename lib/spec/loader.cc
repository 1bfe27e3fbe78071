#include "spec/loader.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/core.h>

#include "base/file_util.h"
#include "base/strings.h"
#include "spec/document.h"
#include "spec/embedded_schema.h"
#include "spec/flow_builder.h"
#include "spec/schema.h"

namespace mflow::spec {
namespace {

// Guesses the format of a file without a known extension from its first meaningful line:
// TOML starts with `[table]` or `key = value`, anything else is treated as YAML.
FileFormat sniff_format(std::string_view text) {
  for (const auto& raw : base::split(text, '\n')) {
    std::string_view line = base::trim(raw);
    if (line.empty() || line[0] == '#') continue;
    if (line == "---" || line[0] == '-') return FileFormat::kYaml;
    if (line[0] == '[' && line.back() == ']' && line.find(':') == std::string_view::npos) {
      return FileFormat::kToml;
    }
    size_t eq = line.find('=');
    size_t colon = line.find(':');
    if (eq != std::string_view::npos && (colon == std::string_view::npos || eq < colon)) {
      return FileFormat::kToml;
    }
    return FileFormat::kYaml;
  }
  return FileFormat::kYaml;
}

}  // namespace

std::optional<Flow> load_flow_text(std::string_view text, FileFormat format,
                                   const std::string& file_label, Diagnostics* diags) {
  // Flow files are UTF-8, whichever the format; checking up front also shields the
  // validator, whose UTF-8 decoder reads out of bounds on malformed sequences (fuzzing).
  if (std::optional<SourcePos> bad = first_invalid_utf8(text)) {
    diags->error(file_label, *bad, "the file is not valid UTF-8 here",
                 "save the flow file as UTF-8");
    return std::nullopt;
  }
  // A NUL byte would end a command or variable early for the kernel, whatever quoting holds
  // it; check_no_nul (schema.cc) catches the escaped forms.
  if (std::optional<SourcePos> nul = first_nul(text)) {
    diags->error(file_label, *nul, "the file contains a NUL character here",
                 "flow files are text: remove the NUL byte (an editor shows it as ^@ or \\0)");
    return std::nullopt;
  }
  // Parse -> validate the shape -> build the model. The builder runs even when the schema
  // found problems so that one pass reports everything; it skips what the schema rejected.
  std::optional<Document> doc = format == FileFormat::kToml
                                    ? parse_toml_document(text, file_label, diags)
                                    : parse_yaml_document(text, file_label, diags);
  if (!doc) return std::nullopt;
  bool valid = validate_flow_schema(*doc, file_label, diags);
  std::optional<Flow> flow = build_flow(*doc, file_label, diags);
  if (!valid) return std::nullopt;
  return flow;
}

base::Status check_flow_path(const std::string& path) {
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) {
    return base::Status::not_found(fmt::format("flow file '{}' not found", path));
  }
  if (std::filesystem::is_directory(st)) {
    return base::Status::invalid(fmt::format("'{}' is a directory, not a flow file", path));
  }
  if (!std::filesystem::is_regular_file(st)) {
    return base::Status::invalid(fmt::format("'{}' is not a regular file", path));
  }
  if (::access(path.c_str(), R_OK) != 0) {
    return base::Status::io_error(
        fmt::format("cannot read flow file '{}': {}", path, std::strerror(errno)));
  }
  return base::Status();
}

std::optional<Flow> load_flow_file(const std::string& path, Diagnostics* diags) {
  base::Result<std::string> text = base::read_file(path);
  if (!text.ok()) {
    diags->error(path, {}, fmt::format("cannot read flow file: {}", text.status().message()),
                 "check the path and the file's permissions");
    return std::nullopt;
  }
  FileFormat format;
  if (base::ends_with(path, ".toml")) {
    format = FileFormat::kToml;
  } else if (base::ends_with(path, ".yaml") || base::ends_with(path, ".yml")) {
    format = FileFormat::kYaml;
  } else {
    format = sniff_format(*text);
  }
  return load_flow_text(*text, format, path, diags);
}

std::string_view flow_schema_text() { return kEmbeddedFlowSchema; }

}  // namespace mflow::spec
