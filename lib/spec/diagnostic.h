// Diagnostics: input errors found while loading, validating and linting a flow. They are
// accumulated (every problem in one pass, mold's Error + checkpoint()) and printed as
// `file:line:col: error: message` with an optional hint line. Not thread-safe.
#pragma once

#include <string>
#include <vector>

namespace mflow::spec {

/// A 1-based position in a flow file; line 0 means "unknown" (e.g. the whole file).
struct SourcePos {
  int line = 0;
  int column = 0;
};

enum class Severity { kError, kWarning };

struct Diagnostic {
  Severity severity = Severity::kError;
  std::string file;
  SourcePos pos;
  std::string json_pointer;  // where in the document, e.g. /steps/start/next
  std::string message;
  std::string hint;  // what to do about it; may be empty
};

class Diagnostics {
 public:
  void error(std::string file, SourcePos pos, std::string message, std::string hint = {},
             std::string json_pointer = {});
  void warning(std::string file, SourcePos pos, std::string message, std::string hint = {},
               std::string json_pointer = {});
  void add(Diagnostic d) { items_.push_back(std::move(d)); }

  bool has_errors() const;
  const std::vector<Diagnostic>& items() const { return items_; }
  /// Sorts by file, then position, and drops exact duplicates.
  void sort_and_dedupe();

  /// One diagnostic as `file:line:col: error: message` plus `  hint: ...` when present.
  static std::string format(const Diagnostic& d);
  /// All diagnostics, one per line (with hints), as printed by `mflow check`.
  std::string format_all() const;

 private:
  std::vector<Diagnostic> items_;
};

}  // namespace mflow::spec
