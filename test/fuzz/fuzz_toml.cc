// libFuzzer target: arbitrary bytes through the TOML front end and the rest of `mflow check`
// (document -> schema -> model -> graph lint). Any crash, sanitizer report, leak or hang fails.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "graph/graph.h"
#include "spec/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mflow::spec::Diagnostics diags;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto flow = mflow::spec::load_flow_text(text, mflow::spec::FileFormat::kToml, "fuzz.toml", &diags);
  if (flow) mflow::graph::Graph::build(std::move(*flow), &diags);
  diags.sort_and_dedupe();
  // Every diagnostic must render, and loading must never succeed while reporting errors.
  if (diags.format_all().empty() && diags.has_errors()) __builtin_trap();
  return 0;
}
