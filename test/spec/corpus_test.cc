// Runs every flow in test/corpus: each invalid file must produce the diagnostics its leading
// `# expect: LINE:COL: substring` lines name (at exactly that position), through the same path
// as `mflow check` (loader, then graph lint when loading succeeded); each valid file must load
// and lint cleanly.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "base/strings.h"
#include "graph/graph.h"
#include "spec/loader.h"

namespace fs = std::filesystem;
using mflow::spec::Diagnostics;

namespace {

struct Expectation {
  int line = 0;
  int column = 0;
  std::string substring;
};

std::vector<fs::path> corpus_files(const std::string& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(fs::path(MFLOW_SOURCE_DIR) / "test/corpus" / dir)) {
    auto ext = entry.path().extension();
    if (ext == ".yaml" || ext == ".yml" || ext == ".toml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Reads the leading `# expect: L:C: text` lines; the first line of the file must be one.
std::vector<Expectation> expectations(const fs::path& path) {
  std::ifstream in(path);
  std::vector<Expectation> out;
  std::string line;
  const std::string prefix = "# expect: ";
  while (std::getline(in, line) && mflow::base::starts_with(line, prefix)) {
    std::string rest = line.substr(prefix.size());
    Expectation e;
    size_t c1 = rest.find(':');
    size_t c2 = rest.find(':', c1 + 1);
    REQUIRE(c1 != std::string::npos);
    REQUIRE(c2 != std::string::npos);
    e.line = std::stoi(rest.substr(0, c1));
    e.column = std::stoi(rest.substr(c1 + 1, c2 - c1 - 1));
    e.substring = std::string(mflow::base::trim(rest.substr(c2 + 1)));
    out.push_back(e);
  }
  return out;
}

Diagnostics check(const fs::path& path) {
  Diagnostics diags;
  auto flow = mflow::spec::load_flow_file(path.string(), &diags);
  if (flow) mflow::graph::Graph::build(std::move(*flow), &diags);
  return diags;
}

}  // namespace

TEST_CASE("every invalid corpus flow reports its expected diagnostics", "[spec][corpus]") {
  auto files = corpus_files("invalid");
  CHECK(files.size() >= 40);
  size_t yaml = 0, toml = 0;
  for (const auto& path : files) {
    (path.extension() == ".toml" ? toml : yaml)++;
    auto expected = expectations(path);
    Diagnostics diags = check(path);
    INFO(path.filename().string() << "\n" << diags.format_all());
    CHECK_FALSE(expected.empty());
    CHECK(diags.has_errors());
    for (const auto& e : expected) {
      INFO("expected " << e.line << ":" << e.column << ": " << e.substring);
      bool found = std::any_of(diags.items().begin(), diags.items().end(), [&](const auto& d) {
        return d.pos.line == e.line && d.pos.column == e.column &&
               d.message.find(e.substring) != std::string::npos;
      });
      CHECK(found);
    }
    for (const auto& d : diags.items()) CHECK(d.file == path.string());
    // Each problem is reported once: no error beyond those expected (issue 9: one cycle used
    // to be reported five times, as the cycle and as every step it traps).
    size_t errors = static_cast<size_t>(std::count_if(
        diags.items().begin(), diags.items().end(),
        [](const auto& d) { return d.severity == mflow::spec::Severity::kError; }));
    CHECK(errors == expected.size());
  }
  CHECK(yaml >= 15);
  CHECK(toml >= 15);
}

TEST_CASE("every valid corpus flow and every example loads and lints cleanly", "[spec][corpus]") {
  auto files = corpus_files("valid");
  CHECK_FALSE(files.empty());
  for (const auto& entry : fs::directory_iterator(fs::path(MFLOW_SOURCE_DIR) / "flows")) {
    files.push_back(entry.path());
  }
  for (const auto& path : files) {
    Diagnostics diags = check(path);
    INFO(path.string() << "\n" << diags.format_all());
    CHECK_FALSE(diags.has_errors());
  }
}
