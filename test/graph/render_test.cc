#include "graph/render.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace mflow;
using graph::Graph;
using nlohmann::json;

namespace {

spec::Step step(std::string name, std::vector<std::string> next, std::string foreach = "",
                bool join = false) {
  spec::Step s;
  s.name = std::move(name);
  s.run.script = "echo " + s.name;
  s.next = std::move(next);
  s.next_pos.resize(s.next.size());
  s.foreach = std::move(foreach);
  s.join = join;
  return s;
}

// start -> [a, b]; a is a foreach over `items` whose body `work` is gathered by `gather`;
// b runs an argv; join gathers gather and b.
Graph sample() {
  spec::Flow flow;
  flow.file = "flows/sample.yaml";
  flow.name = "sample";
  flow.description = "A sample flow.\nSecond line.";
  spec::Parameter count;
  count.name = "count";
  count.type = spec::ParamType::kInteger;
  count.default_value = "3";
  count.help = "How many items";
  spec::Parameter label;
  label.name = "label";
  label.required = true;
  flow.parameters = {count, label};

  auto start = step("start", {"a", "b"});
  auto a = step("a", {"work"}, "items");
  auto work = step("work", {"gather"});
  work.run.script = "python3 train.py \"$X\"\nsecond line\n\nthird";
  work.resources.cpu = 2;
  work.resources.memory_mb = 512;
  work.timeout = std::chrono::seconds(90);
  work.retries = 2;
  work.retry_delay = std::chrono::seconds(10);
  work.env = {{"MODE", "fast"}};
  auto gather = step("gather", {"join"}, "", true);
  auto b = step("b", {"join"});
  b.run.shell = false;
  b.run.argv = {"python3", "-c", "print('hi there')"};
  spec::KubernetesSpec k;
  k.image = "python:3.11";
  k.namespace_name = "ml";
  k.node_selector = {{"pool", "gpu"}};
  k.tolerations = {{"dedicated", "Equal", "ml", "NoSchedule", std::nullopt}};
  k.resources.gpu = 1;
  b.kubernetes = k;
  auto join = step("join", {"end"});
  join.run.shell = false;
  join.run.argv = {"python3", "-c", "import os\nprint(os.getcwd())"};
  flow.steps = {start, a, work, gather, b, join, step("end", {})};
  spec::Diagnostics diags;
  auto g = Graph::build(flow, &diags);
  INFO(diags.format_all());
  REQUIRE(g.has_value());
  return std::move(*g);
}

size_t line_of(const std::string& text, const std::string& needle) {
  size_t at = text.find(needle);
  INFO("looking for: " << needle << "\nin:\n" << text);
  REQUIRE(at != std::string::npos);
  return at;
}

}  // namespace

TEST_CASE("render formats parse by name", "[graph]") {
  CHECK(graph::parse_render_format("text") == graph::RenderFormat::kText);
  CHECK(graph::parse_render_format("dot") == graph::RenderFormat::kDot);
  CHECK(graph::parse_render_format("mermaid") == graph::RenderFormat::kMermaid);
  CHECK(graph::parse_render_format("json") == graph::RenderFormat::kJson);
  CHECK_FALSE(graph::parse_render_format("svg").has_value());
}

TEST_CASE("text lists steps in topological order with kinds and settings", "[graph]") {
  Graph g = sample();
  std::string text = graph::render_text(g);
  INFO(text);
  CHECK(text.rfind("flow sample (flows/sample.yaml)\n  A sample flow.\n  Second line.\n", 0) == 0);
  line_of(text, "  count            integer, default 3\n                   How many items\n");
  line_of(text, "  label            string, required\n");
  // Topological order: start before a and b, work before gather, join last but end.
  CHECK(line_of(text, "\n  start  [branch]\n") < line_of(text, "\n  a  [foreach over 'items']\n"));
  CHECK(line_of(text, "\n  work\n") < line_of(text, "\n  gather  [foreach join of 'a']\n"));
  CHECK(line_of(text, "\n  gather  [") < line_of(text, "\n  join  [join of 'start']\n"));
  CHECK(line_of(text, "\n  join  [") < line_of(text, "\n  end\n"));
  line_of(text, "    next:       a, b\n");
  line_of(text, "    next:       work (one task per element of 'items')\n");
  line_of(text, "    run:        python3 train.py \"$X\"  (+2 more lines)\n");
  line_of(text, "    tasks:      inside 1 foreach: one task per element\n");
  line_of(text, "    resources:  cpu 2, memory 512 MB\n");
  line_of(text, "    timeout:    1m30s\n");
  line_of(text, "    retries:    2 (delay 10s)\n");
  line_of(text, "    env:        MODE=fast\n");
  line_of(text, "    joins:      gather, b\n");
  line_of(text, "    joins:      every task of work (one input per element)\n");
  line_of(text, "    run:        python3 -c 'print('\\''hi there'\\'')'\n");
  line_of(text, "    run:        python3 -c 'import os ...\n");
  line_of(text, "    kubernetes: image python:3.11, namespace ml, gpu 1\n");
  line_of(text, "      nodes:    pool=gpu\n");
  line_of(text, "      tolerate: dedicated=ml:NoSchedule\n");
}

TEST_CASE("dot output declares every node and edge", "[graph]") {
  Graph g = sample();
  std::string dot = graph::render_dot(g);
  INFO(dot);
  CHECK(dot.rfind("digraph \"sample\" {\n", 0) == 0);
  CHECK(dot.substr(dot.size() - 2) == "}\n");
  line_of(dot, "  \"start\" [label=\"start\\nbranch\", shape=oval];\n");
  line_of(dot, "  \"end\" [label=\"end\", shape=oval];\n");
  line_of(dot, "  \"a\" -> \"work\" [style=bold, label=\"foreach items\"];\n");
  line_of(dot, "  \"start\" -> \"a\";\n");
  line_of(dot, "  \"start\" -> \"b\";\n");
  line_of(dot, "  \"gather\" [label=\"gather\\nforeach join of 'a'\", shape=invhouse");
  size_t edges = 0;
  for (size_t at = dot.find(" -> "); at != std::string::npos; at = dot.find(" -> ", at + 1)) ++edges;
  CHECK(edges == 7);
}

TEST_CASE("dot and mermaid escape quotes in names and labels", "[graph]") {
  spec::Flow flow;
  flow.file = "f.yaml";
  flow.name = "q";
  flow.steps = {step("start", {"x"}, "it\"ems"), step("x", {"j"}), step("j", {"end"}, "", true),
                step("end", {})};
  spec::Diagnostics diags;
  auto g = Graph::build(flow, &diags);
  REQUIRE(g);
  line_of(graph::render_dot(*g), "label=\"foreach it\\\"ems\"");
  line_of(graph::render_mermaid(*g), "==>|\"foreach it#quot;ems\"|");
}

TEST_CASE("mermaid output is a flowchart with one id per step", "[graph]") {
  Graph g = sample();
  std::string m = graph::render_mermaid(g);
  INFO(m);
  CHECK(m.rfind("flowchart TD\n", 0) == 0);
  auto id = [&](const std::string& name) { return "n" + std::to_string(*g.find(name)); };
  line_of(m, "  " + id("start") + "([\"start<br/>branch\"])\n");
  line_of(m, "  " + id("a") + "[[\"a<br/>foreach over 'items'\"]]\n");
  line_of(m, "  " + id("join") + "[/\"join<br/>join of 'start'\"\\]\n");
  line_of(m, "  " + id("a") + " ==>|\"foreach items\"| " + id("work") + "\n");
  line_of(m, "  " + id("start") + " --> " + id("b") + "\n");
  line_of(m, "  " + id("join") + " --> " + id("end") + "\n");
}

TEST_CASE("json carries every resolved setting and edge", "[graph]") {
  Graph g = sample();
  json doc = json::parse(graph::render_json(g));
  CHECK(doc["name"] == "sample");
  CHECK(doc["file"] == "flows/sample.yaml");
  CHECK(doc["start"] == "start");
  CHECK(doc["end"] == "end");
  REQUIRE(doc["parameters"].size() == 2);
  CHECK(doc["parameters"][0]["default"] == 3);
  CHECK(doc["parameters"][0]["type"] == "integer");
  CHECK(doc["parameters"][1]["default"].is_null());
  CHECK(doc["parameters"][1]["required"] == true);

  REQUIRE(doc["steps"].size() == g.nodes().size());
  std::vector<std::string> order;
  for (const auto& s : doc["steps"]) order.push_back(s["name"]);
  CHECK(order.front() == "start");
  CHECK(order.back() == "end");
  auto by_name = [&](const std::string& name) {
    for (const auto& s : doc["steps"]) {
      if (s["name"] == name) return s;
    }
    FAIL("no step " << name);
    return json();
  };
  json work = by_name("work");
  CHECK(work["resources"] == json{{"cpu", 2.0}, {"memory_mb", 512}, {"disk_mb", 10240}, {"gpu", 0}});
  CHECK(work["resources_given"]["disk_mb"].is_null());
  CHECK(work["timeout_seconds"] == 90);
  CHECK(work["timeout"] == "1m30s");
  CHECK(work["retries"] == 2);
  CHECK(work["retry_delay_seconds"] == 10);
  CHECK(work["env"]["MODE"] == "fast");
  CHECK(work["foreach_depth"] == 1);
  CHECK(work["run"]["shell"].get<std::string>().rfind("python3 train.py", 0) == 0);
  CHECK(work["spec_hash"].is_string());

  json a = by_name("a");
  CHECK(a["fan_out"] == "foreach");
  CHECK(a["foreach"] == "items");
  CHECK(a["join_of_split"] == "gather");
  json gather = by_name("gather");
  CHECK(gather["fan_in"] == "foreach");
  CHECK(gather["split_of_join"] == "a");
  CHECK(gather["join"] == true);
  json join = by_name("join");
  CHECK(join["fan_in"] == "static");
  CHECK(join["parents"] == json{"gather", "b"});
  json b = by_name("b");
  CHECK(b["run"]["argv"] == json{"python3", "-c", "print('hi there')"});
  CHECK(b["kubernetes"]["image"] == "python:3.11");
  CHECK(b["kubernetes"]["tolerations"][0]["effect"] == "NoSchedule");
  CHECK(b["kubernetes"]["resources"]["gpu"] == 1);
  CHECK(by_name("start")["kubernetes"].is_null());
  CHECK(by_name("start")["critical_path"] == 6);

  CHECK(doc["edges"].size() == 7);
  CHECK(doc["edges"][0] == json{{"from", "start"}, {"to", "a"}, {"kind", "branch"}});
  bool foreach_edge = false;
  for (const auto& e : doc["edges"]) {
    foreach_edge |= e == json{{"from", "a"}, {"to", "work"}, {"kind", "foreach"}};
  }
  CHECK(foreach_edge);
}

TEST_CASE("render dispatches on the format", "[graph]") {
  Graph g = sample();
  CHECK(graph::render(g, graph::RenderFormat::kText) == graph::render_text(g));
  CHECK(graph::render(g, graph::RenderFormat::kDot) == graph::render_dot(g));
  CHECK(graph::render(g, graph::RenderFormat::kMermaid) == graph::render_mermaid(g));
  CHECK(graph::render(g, graph::RenderFormat::kJson) == graph::render_json(g));
}
