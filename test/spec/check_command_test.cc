// `mflow check` and `mflow schema` through the real binary: output format, exit codes, JSON.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace {

struct Output {
  int exit_code = -1;
  std::string out;  // stdout, plus stderr when asked for
};

// Runs `mflow ARGS` in the source directory; stderr is captured too when `with_stderr`.
Output mflow(const std::string& args, bool with_stderr) {
  std::string command = std::string("cd '") + MFLOW_SOURCE_DIR + "' && '" + MFLOW_BINARY + "' " +
                        args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  Output result;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) result.out.append(buf, n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace

TEST_CASE("mflow check accepts the examples and prints a summary line", "[spec][cli]") {
  Output r = mflow("check flows/hello.yaml flows/branch.toml", true);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "flows/hello.yaml: ok (2 steps)\nflows/branch.toml: ok (5 steps)\n");
}

TEST_CASE("mflow check reports file:line:col with hints and exits 3", "[spec][cli]") {
  Output r = mflow(
      "check flows/hello.yaml test/corpus/invalid/two_errors_one_pass.toml "
      "test/corpus/invalid/unknown_step_key.yaml",
      true);
  CHECK(r.exit_code == 3);
  CHECK(r.out.find("flows/hello.yaml: ok (2 steps)") != std::string::npos);
  CHECK(r.out.find("test/corpus/invalid/two_errors_one_pass.toml:7:1: error: "
                   "`steps.start.retries` is 20, but it must be at most 10\n  hint: ") !=
        std::string::npos);
  CHECK(r.out.find("two_errors_one_pass.toml:8:1: error:") != std::string::npos);
  CHECK(r.out.find("two_errors_one_pass.toml:10:1: error:") != std::string::npos);
  CHECK(r.out.find("test/corpus/invalid/unknown_step_key.yaml:6:5: error: unknown key 'retires' "
                   "in `steps.start`\n  hint: did you mean 'retries'?") != std::string::npos);
  // Diagnostics go to stderr only.
  Output quiet = mflow("check test/corpus/invalid/unknown_step_key.yaml", false);
  CHECK(quiet.exit_code == 3);
  CHECK(quiet.out.empty());
}

TEST_CASE("mflow check: a missing file is a usage error", "[spec][cli]") {
  Output r = mflow("check flows/does-not-exist.yaml", true);
  CHECK(r.exit_code == 2);
  CHECK(r.out.find("flow file 'flows/does-not-exist.yaml' not found") != std::string::npos);
}

TEST_CASE("mflow check --format json is machine-readable", "[spec][cli]") {
  Output r = mflow("check --format json flows/foreach.yaml test/corpus/invalid/cpu_zero.yaml", false);
  CHECK(r.exit_code == 3);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["ok"] == false);
  REQUIRE(j["files"].size() == 2);
  CHECK(j["files"][0]["ok"] == true);
  CHECK(j["files"][0]["steps"] == 4);
  const auto& d = j["files"][1]["diagnostics"].at(0);
  CHECK(d["severity"] == "error");
  CHECK(d["line"] == 7);
  CHECK(d["column"] == 7);
  CHECK(d["pointer"] == "/steps/start/resources/cpu");
  CHECK(d["message"] == "`steps.start.resources.cpu` is 0, but it must be greater than 0");
  CHECK_FALSE(d["hint"].get<std::string>().empty());

  Output bad = mflow("check --format xml flows/hello.yaml", true);
  CHECK(bad.exit_code == 2);
}

TEST_CASE("mflow schema prints the schema in schemas/", "[spec][cli]") {
  Output r = mflow("schema", false);
  CHECK(r.exit_code == 0);
  std::ifstream in(std::string(MFLOW_SOURCE_DIR) + "/schemas/flow.schema.json");
  std::stringstream file;
  file << in.rdbuf();
  CHECK(nlohmann::json::parse(r.out) == nlohmann::json::parse(file.str()));
}
