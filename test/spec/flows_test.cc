// Every example in flows/ exists as YAML and TOML, and both produce the identical model.
#include <filesystem>
#include <set>

#include <catch2/catch.hpp>

#include "spec/loader.h"

namespace fs = std::filesystem;
using namespace mflow::spec;

namespace {

Flow load(const fs::path& path) {
  Diagnostics diags;
  auto flow = load_flow_file(path.string(), &diags);
  INFO(diags.format_all());
  REQUIRE(flow);
  return *flow;
}

}  // namespace

TEST_CASE("each example's YAML and TOML versions give the identical model", "[spec][flows]") {
  fs::path dir = fs::path(MFLOW_SOURCE_DIR) / "flows";
  std::set<std::string> yaml, toml;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".yaml") yaml.insert(entry.path().stem().string());
    if (entry.path().extension() == ".toml") toml.insert(entry.path().stem().string());
  }
  CHECK(yaml == toml);
  for (const char* required : {"hello", "branch", "foreach", "bigsum", "bigsum-80k",
                               "nested-foreach"}) {
    CHECK(yaml.count(required) == 1);
  }
  for (const auto& name : yaml) {
    INFO(name);
    Flow y = load(dir / (name + ".yaml"));
    Flow t = load(dir / (name + ".toml"));
    CHECK(y.name == name);
    CHECK(y.name == t.name);
    CHECK(y.description == t.description);
    REQUIRE(y.parameters.size() == t.parameters.size());
    for (size_t i = 0; i < y.parameters.size(); ++i) {
      CHECK(y.parameters[i].name == t.parameters[i].name);
      CHECK(y.parameters[i].type == t.parameters[i].type);
      CHECK(y.parameters[i].default_value == t.parameters[i].default_value);
      CHECK(y.parameters[i].help == t.parameters[i].help);
      CHECK(y.parameters[i].required == t.parameters[i].required);
    }
    REQUIRE(y.steps.size() == t.steps.size());
    for (const auto& ys : y.steps) {
      INFO(ys.name);
      const Step* ts = t.find_step(ys.name);
      REQUIRE(ts);
      CHECK(ys.next == ts->next);
      CHECK(ys.join == ts->join);
      CHECK(ys.foreach == ts->foreach);
      CHECK(step_spec_hash(ys) == step_spec_hash(*ts));
    }
  }
}

TEST_CASE("bigsum-80k asks for more than a laptop has", "[spec][flows]") {
  Flow f = load(fs::path(MFLOW_SOURCE_DIR) / "flows/bigsum-80k.yaml");
  const Step* start = f.find_step("start");
  REQUIRE(start);
  CHECK(start->resources.memory_mb == 49152);
  CHECK(start->resources.cpu == 4.0);
  CHECK(f.parameters.at(0).default_value == "80000");
}
