#include "spec/diagnostic.h"

#include <algorithm>
#include <tuple>

#include <fmt/core.h>

namespace mflow::spec {

void Diagnostics::error(std::string file, SourcePos pos, std::string message, std::string hint,
                        std::string json_pointer) {
  items_.push_back({Severity::kError, std::move(file), pos, std::move(json_pointer),
                    std::move(message), std::move(hint)});
}

void Diagnostics::warning(std::string file, SourcePos pos, std::string message, std::string hint,
                          std::string json_pointer) {
  items_.push_back({Severity::kWarning, std::move(file), pos, std::move(json_pointer),
                    std::move(message), std::move(hint)});
}

bool Diagnostics::has_errors() const {
  return std::any_of(items_.begin(), items_.end(),
                     [](const Diagnostic& d) { return d.severity == Severity::kError; });
}

void Diagnostics::sort_and_dedupe() {
  auto key = [](const Diagnostic& d) {
    return std::tie(d.file, d.pos.line, d.pos.column, d.message);
  };
  std::stable_sort(items_.begin(), items_.end(),
                   [&](const Diagnostic& a, const Diagnostic& b) { return key(a) < key(b); });
  items_.erase(std::unique(items_.begin(), items_.end(),
                           [&](const Diagnostic& a, const Diagnostic& b) {
                             return key(a) == key(b);
                           }),
               items_.end());
}

std::string Diagnostics::format(const Diagnostic& d) {
  std::string where = d.file;
  if (d.pos.line > 0) where += fmt::format(":{}:{}", d.pos.line, std::max(d.pos.column, 1));
  std::string out = fmt::format("{}: {}: {}", where,
                                d.severity == Severity::kError ? "error" : "warning", d.message);
  if (!d.hint.empty()) out += "\n  hint: " + d.hint;
  return out;
}

std::string Diagnostics::format_all() const {
  std::string out;
  for (const auto& d : items_) out += format(d) + "\n";
  return out;
}

}  // namespace mflow::spec
