#include "spec/loader.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <catch2/catch.hpp>

#include "spec/document.h"
#include "spec/flow_builder.h"
#include "spec/schema.h"

using namespace mflow::spec;

namespace {

std::optional<Flow> load(const std::string& text, FileFormat format, Diagnostics* diags) {
  return load_flow_text(text, format, format == FileFormat::kToml ? "t.toml" : "t.yaml", diags);
}

// Finds a diagnostic containing `needle`; fails the test with everything that was found.
const Diagnostic* find(const Diagnostics& diags, const std::string& needle) {
  for (const auto& d : diags.items()) {
    if (d.message.find(needle) != std::string::npos) return &d;
  }
  INFO(diags.format_all());
  FAIL("no diagnostic contains: " << needle);
  return nullptr;
}

const char* kHello = R"y(name: hello
steps:
  start:
    run: echo hi
    next: end
  end:
    run: [python3, -c, "print(1)"]
)y";

}  // namespace

TEST_CASE("YAML document keeps positions of keys and values", "[spec]") {
  Diagnostics diags;
  auto doc = parse_yaml_document("a: 1\nb:\n  c: 'x'\n  d: [1, two]\n", "f.yaml", &diags);
  REQUIRE(doc);
  CHECK(doc->root["a"] == 1);
  CHECK(doc->root["b"]["c"] == "x");
  CHECK(doc->root["b"]["d"][1] == "two");
  CHECK(doc->key_pos("/b/c").line == 3);
  CHECK(doc->key_pos("/b/c").column == 3);
  CHECK(doc->value_pos("/b/c").column == 6);
  CHECK(doc->value_pos("/b/d/1").line == 4);
  CHECK(doc->value_pos("/b/d/1").column == 10);
  // Unknown pointers fall back to the nearest ancestor.
  CHECK(doc->key_pos("/b/zzz").line == 2);
}

TEST_CASE("YAML plain scalars follow the core schema; quoted ones stay strings", "[spec]") {
  Diagnostics diags;
  auto doc = parse_yaml_document(
      "i: 42\nn: -7\nh: 0x1F\nf: 2.5\ne: 1e3\nb: true\nB: False\nz: ~\nq: '42'\ns: 10s\n"
      "big: 99999999999999999999\nv: 1.2.3\n",
      "f.yaml", &diags);
  REQUIRE(doc);
  const auto& r = doc->root;
  CHECK(r["i"].is_number_integer());
  CHECK(r["i"] == 42);
  CHECK(r["n"] == -7);
  CHECK(r["h"] == 31);
  CHECK(r["f"] == 2.5);
  CHECK(r["e"] == 1000.0);
  CHECK(r["b"] == true);
  CHECK(r["B"] == false);
  CHECK(r["z"].is_null());
  CHECK(r["q"] == "42");
  CHECK(r["s"] == "10s");
  CHECK(r["big"].is_number_float());
  CHECK(r["v"] == "1.2.3");
}

TEST_CASE("YAML duplicate keys are rejected with both positions", "[spec]") {
  Diagnostics diags;
  auto doc = parse_yaml_document("name: a\nsteps: {}\nname: b\n", "f.yaml", &diags);
  CHECK_FALSE(doc);
  const Diagnostic* d = find(diags, "duplicate key 'name'");
  REQUIRE(d);
  CHECK(d->pos.line == 3);
  CHECK(d->pos.column == 1);
  CHECK(d->message.find("line 1, column 1") != std::string::npos);
}

TEST_CASE("YAML and TOML syntax errors keep line and column", "[spec]") {
  Diagnostics diags;
  CHECK_FALSE(parse_yaml_document("a: [1, 2\nb: c\n", "f.yaml", &diags));
  REQUIRE(diags.items().size() == 1);
  CHECK(diags.items()[0].pos.line >= 1);
  CHECK(diags.items()[0].message.find("YAML syntax error") == 0);

  Diagnostics tdiags;
  CHECK_FALSE(parse_toml_document("name = \"x\"\nsteps = [\n", "f.toml", &tdiags));
  REQUIRE(tdiags.items().size() == 1);
  CHECK(tdiags.items()[0].message.find("TOML syntax error") == 0);
  CHECK(tdiags.items()[0].pos.line >= 2);
}

TEST_CASE("YAML alias bombs and multiple documents are refused", "[spec]") {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'h'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ", " : "") + "*" + prev;
    bomb += "]\n";
    prev = c;
  }
  Diagnostics diags;
  CHECK_FALSE(parse_yaml_document(bomb, "f.yaml", &diags));
  find(diags, "expands to more than");

  Diagnostics two;
  CHECK_FALSE(parse_yaml_document("a: 1\n---\nb: 2\n", "f.yaml", &two));
  find(two, "second one starts here");
}

TEST_CASE("TOML document keeps positions and types", "[spec]") {
  Diagnostics diags;
  auto doc = parse_toml_document(
      "name = \"x\"\n[steps.start]\nrun = ['a', 'b']\nretries = 2\ncpu = 0.5\nflag = true\n",
      "f.toml", &diags);
  REQUIRE(doc);
  CHECK(doc->root["steps"]["start"]["run"][1] == "b");
  CHECK(doc->root["steps"]["start"]["retries"] == 2);
  CHECK(doc->root["steps"]["start"]["cpu"] == 0.5);
  CHECK(doc->key_pos("/steps/start/retries").line == 4);
  CHECK(doc->key_pos("/steps/start/retries").column == 1);
  CHECK(doc->value_pos("/steps/start/run/1").line == 3);
  CHECK(doc->value_pos("/steps/start/run/1").column == 13);
}

TEST_CASE("a valid flow loads into the model", "[spec]") {
  Diagnostics diags;
  auto flow = load(kHello, FileFormat::kYaml, &diags);
  INFO(diags.format_all());
  REQUIRE(flow);
  CHECK(flow->name == "hello");
  REQUIRE(flow->steps.size() == 2);
  CHECK(flow->steps[0].name == "start");  // file order, not key order
  CHECK(flow->steps[0].run.shell);
  CHECK(flow->steps[0].run.script == "echo hi");
  CHECK(flow->steps[0].next == std::vector<std::string>{"end"});
  CHECK(flow->steps[0].next_pos[0].line == 5);
  CHECK(flow->steps[0].next_pos[0].column == 11);
  CHECK_FALSE(flow->steps[1].run.shell);
  CHECK(flow->steps[1].run.argv == std::vector<std::string>{"python3", "-c", "print(1)"});
  CHECK(flow->steps[1].next.empty());
}

TEST_CASE("defaults apply to every step and step values win", "[spec]") {
  Diagnostics diags;
  auto flow = load(R"y(name: d
defaults:
  retries: 2
  retry_delay: 1m
  timeout: 1h30m
  env: {A: a, B: b}
  resources: {cpu: 2, memory: 1024}
  kubernetes: {image: "py:3", labels: {team: x}}
steps:
  start:
    run: "true"
    next: end
    env: {B: mine, C: 3}
    resources: {memory: 2048}
    kubernetes: {labels: {step: s}}
  end:
    run: "true"
    retries: 0
    timeout: 90
    kubernetes: false
)y",
                   FileFormat::kYaml, &diags);
  INFO(diags.format_all());
  REQUIRE(flow);
  const Step& start = *flow->find_step("start");
  CHECK(start.retries == 2);
  CHECK(start.retry_delay == std::chrono::seconds(60));
  CHECK(start.timeout == std::chrono::seconds(5400));
  CHECK(start.env == std::map<std::string, std::string>{{"A", "a"}, {"B", "mine"}, {"C", "3"}});
  CHECK(start.resources.cpu == 2.0);
  CHECK(start.resources.memory_mb == 2048);
  REQUIRE(start.kubernetes);
  CHECK(start.kubernetes->image == "py:3");
  CHECK(start.kubernetes->labels ==
        std::map<std::string, std::string>{{"team", "x"}, {"step", "s"}});
  const Step& end = *flow->find_step("end");
  CHECK(end.retries == 0);
  CHECK(end.timeout == std::chrono::seconds(90));
  CHECK_FALSE(end.kubernetes);
}

TEST_CASE("kubernetes: true forces a step onto Kubernetes with the defaults' settings",
          "[spec]") {
  Diagnostics diags;
  auto flow = load(R"y(name: k
defaults: {kubernetes: {namespace: ml}}
steps:
  start: {run: a, next: end, kubernetes: true}
  end: {run: b}
)y",
                   FileFormat::kYaml, &diags);
  REQUIRE(flow);
  REQUIRE(flow->find_step("start")->kubernetes);
  CHECK(flow->find_step("start")->kubernetes->namespace_name == "ml");
  CHECK(flow->find_step("end")->kubernetes);  // defaults apply to every step

  Diagnostics d2;
  auto plain = load("name: k\nsteps:\n  start: {run: a, kubernetes: true}\n", FileFormat::kYaml, &d2);
  REQUIRE(plain);
  REQUIRE(plain->steps[0].kubernetes);
  CHECK(plain->steps[0].kubernetes->image.empty());
}

TEST_CASE("parameters: types, inference and default checks", "[spec]") {
  Diagnostics diags;
  auto flow = load(R"y(name: p
parameters:
  size: {default: 1000, help: rows}
  rate: {type: number, default: 1}
  tag: {type: string, default: "v1", required: true}
  cfg: {type: json, default: {a: [1, 2]}}
  dry: {type: boolean}
steps:
  start: {run: a}
)y",
                   FileFormat::kYaml, &diags);
  INFO(diags.format_all());
  REQUIRE(flow);
  REQUIRE(flow->parameters.size() == 5);
  CHECK(flow->parameters[0].name == "size");
  CHECK(flow->parameters[0].type == ParamType::kInteger);
  CHECK(flow->parameters[0].default_value == "1000");
  CHECK(flow->parameters[0].help == "rows");
  CHECK(flow->parameters[1].default_value == "1");
  CHECK(flow->parameters[2].required);
  CHECK(flow->parameters[3].type == ParamType::kJson);
  CHECK(flow->parameters[3].default_value == "{\"a\":[1,2]}");
  CHECK_FALSE(flow->parameters[4].default_value);

  Diagnostics bad;
  CHECK_FALSE(load("name: p\nparameters:\n  n: {type: integer, default: 1.5}\n"
                   "  s: {type: string, default: 5}\nsteps: {start: {run: a}}\n",
                   FileFormat::kYaml, &bad));
  const Diagnostic* d = find(bad, "default 1.5 of parameter 'n' does not match its type integer");
  REQUIRE(d);
  CHECK(d->pos.line == 3);
  CHECK(d->pos.column == 22);
  d = find(bad, "default 5 of parameter 's'");
  CHECK(d->hint.find("quote") != std::string::npos);
}

TEST_CASE("schema errors map to the offending key with did-you-mean", "[spec]") {
  Diagnostics diags;
  CHECK_FALSE(load(R"y(name: s
steps:
  start:
    run: a
    retires: 2
    next: 5
    resources: {cpu: 0, memory: "8G"}
    kubernetes: {image_pull_policy: always}
  end:
    run: b
    timeout: soon
)y",
                   FileFormat::kYaml, &diags));
  INFO(diags.format_all());
  const Diagnostic* d = find(diags, "unknown key 'retires' in `steps.start`");
  CHECK(d->hint == "did you mean 'retries'?");
  CHECK(d->pos.line == 5);
  CHECK(d->pos.column == 5);
  CHECK(d->json_pointer == "/steps/start/retires");
  d = find(diags, "`steps.start.next` must be a string or a list, not an integer");
  CHECK(d->pos.line == 6);
  d = find(diags, "`steps.start.resources.cpu` is 0, but it must be greater than 0");
  CHECK(d->pos.column == 17);
  find(diags, "`steps.start.resources.memory` must be an integer, not a string");
  d = find(diags, "must be one of Always, IfNotPresent, Never, not 'always'");
  CHECK(d->hint == "did you mean 'Always'?");
  d = find(diags, "invalid value 'soon' for `steps.end.timeout`");
  CHECK(d->pos.line == 11);
  CHECK(diags.items().size() == 6);  // everything in one pass, nothing twice
}

TEST_CASE("names are checked: flow DNS label, step and parameter names", "[spec]") {
  Diagnostics diags;
  CHECK_FALSE(load(R"y(name: My_Flow
parameters:
  Size: {default: 1}
steps:
  Start: {run: a}
)y",
                   FileFormat::kYaml, &diags));
  INFO(diags.format_all());
  CHECK(find(diags, "invalid value 'My_Flow' for `name`")->pos.line == 1);
  CHECK(find(diags, "invalid parameter name 'Size'")->pos.line == 3);
  CHECK(find(diags, "invalid step name 'Start'")->pos.line == 5);
}

TEST_CASE("missing required keys and empty files are diagnosed", "[spec]") {
  Diagnostics diags;
  CHECK_FALSE(load("name: x\nsteps:\n  start: {next: end}\n", FileFormat::kYaml, &diags));
  const Diagnostic* d = find(diags, "`steps.start` has no `run`, which is required");
  CHECK(d->pos.line == 3);
  Diagnostics top;
  CHECK_FALSE(load("description: x\n", FileFormat::kYaml, &top));
  find(top, "the flow has no `name`");
  find(top, "the flow has no `steps`");
  Diagnostics empty;
  CHECK_FALSE(load("# nothing\n", FileFormat::kYaml, &empty));
  find(empty, "the flow file is empty");
  Diagnostics tempty;
  CHECK_FALSE(load("", FileFormat::kToml, &tempty));
  find(tempty, "the flow file is empty");
}

TEST_CASE("semantic checks: durations, reserved env, foreach fan-out", "[spec]") {
  Diagnostics diags;
  CHECK_FALSE(load(R"y(name: x
defaults: {timeout: 0s}
steps:
  start:
    run: a
    env: {MFLOW_STEP: x}
    foreach: items
    next: [a, b]
)y",
                   FileFormat::kYaml, &diags));
  INFO(diags.format_all());
  CHECK(find(diags, "`defaults.timeout` must be longer than 0 seconds")->pos.line == 2);
  CHECK(find(diags, "environment variable 'MFLOW_STEP' is reserved")->pos.line == 6);
  CHECK(find(diags, "needs exactly one `next`, not 2")->pos.line == 8);
}

TEST_CASE("TOML flows produce the same diagnostics wording", "[spec]") {
  Diagnostics diags;
  CHECK_FALSE(load(R"y(name = "t"
[steps.start]
run = "a"
nxt = "end"
)y",
                   FileFormat::kToml, &diags));
  const Diagnostic* d = find(diags, "unknown key 'nxt' in `steps.start`");
  CHECK(d->hint == "did you mean 'next'?");
  CHECK(d->pos.line == 4);
  CHECK(d->pos.column == 1);
}

TEST_CASE("load_flow_file picks the format by extension, then by content", "[spec]") {
  Diagnostics diags;
  auto missing = load_flow_file("/nonexistent/flow.yaml", &diags);
  CHECK_FALSE(missing);
  find(diags, "cannot read flow file");
}

TEST_CASE("the embedded schema is the file in schemas/", "[spec]") {
  CHECK(flow_schema_text().find("\"$schema\": \"http://json-schema.org/draft-07/schema#\"") !=
        std::string_view::npos);
  auto schema = nlohmann::json::parse(flow_schema_text());
  // additionalProperties: false on every object schema (unknown keys are always errors).
  std::function<void(const nlohmann::json&, const std::string&)> walk =
      [&](const nlohmann::json& node, const std::string& where) {
        if (!node.is_object()) return;
        if (node.contains("properties") || node.contains("patternProperties")) {
          INFO(where);
          CHECK(node.contains("additionalProperties"));
          CHECK(node.contains("description"));
        }
        for (const auto& [key, child] : node.items()) {
          if (key == "enum" || key == "default") continue;
          walk(child, where + "/" + key);
        }
      };
  walk(schema, "");
}

TEST_CASE("malformed UTF-8 is reported at its position", "[spec]") {
  CHECK_FALSE(first_invalid_utf8("plain ascii\nand ünïcödé ✓ 𝄞"));
  auto at = [](std::string_view text) {
    auto pos = first_invalid_utf8(text);
    return pos ? std::to_string(pos->line) + ":" + std::to_string(pos->column) : "ok";
  };
  CHECK(at("ab\ncd\xff") == "2:3");
  CHECK(at("\xc0\xaf") == "1:1");          // overlong '/'
  CHECK(at("x\xed\xa0\x80") == "1:2");     // UTF-16 surrogate
  CHECK(at("\xf4\x90\x80\x80") == "1:1");  // above U+10FFFF
  CHECK(at("\xe2\x9c") == "1:1");          // truncated sequence
  Diagnostics diags;
  CHECK_FALSE(load_flow_text("name: a\nsteps: {start: {run: \"\xb1\xb2\"}}\n", FileFormat::kYaml,
                             "t.yaml", &diags));
  REQUIRE(diags.items().size() == 1);
  CHECK(diags.items()[0].message == "the file is not valid UTF-8 here");
  CHECK(diags.items()[0].pos.line == 2);
}

TEST_CASE("strings too long for the regex engine are reported, not matched", "[spec]") {
  // std::regex recurses per character; 300k characters would overflow the stack.
  Diagnostics diags;
  std::string text = "name: " + std::string(300000, 'a') + "\nsteps:\n  start: {run: a}\n";
  CHECK_FALSE(load_flow_text(text, FileFormat::kYaml, "t.yaml", &diags));
  CHECK(find(diags, "`name` is far too long (300000 characters)")->pos.line == 1);

  Diagnostics tdiags;
  std::string toml = "name = \"ok\"\n[steps." + std::string(5000, 'c') + "]\nrun = \"a\"\n";
  CHECK_FALSE(load_flow_text(toml, FileFormat::kToml, "t.toml", &tdiags));
  CHECK(find(tdiags, "invalid step name 'cccc")->pos.line == 2);
}

TEST_CASE("files without a known extension are sniffed", "[spec]") {
  char dir_template[] = "/tmp/mflow-spec-XXXXXX";
  REQUIRE(mkdtemp(dir_template));
  std::string dir = dir_template;
  auto write = [&](const std::string& name, const std::string& content) {
    std::string path = dir + "/" + name;
    FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f);
    std::fputs(content.c_str(), f);
    std::fclose(f);
    return path;
  };
  std::string toml = write("flow", "# c\nname = \"t\"\n[steps.start]\nrun = \"a\"\n");
  std::string yaml = write("flow.txt", "# c\nname: y\nsteps:\n  start: {run: a}\n");
  Diagnostics diags;
  auto t = load_flow_file(toml, &diags);
  auto y = load_flow_file(yaml, &diags);
  INFO(diags.format_all());
  REQUIRE(t);
  REQUIRE(y);
  CHECK(t->name == "t");
  CHECK(y->name == "y");
  std::remove(toml.c_str());
  std::remove(yaml.c_str());
  rmdir(dir.c_str());
}
