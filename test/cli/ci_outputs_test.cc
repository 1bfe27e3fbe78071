// issue 12: the pure parts of the CI outputs: GitHub workflow-command escaping, annotations of
// flow diagnostics, the JUnit text of retried and reused tasks, the run's task counts.
#include <catch2/catch.hpp>

#include "cli/ci_outputs.h"
#include "runtime/run_ledger.h"

namespace mflow::cli {
namespace {

runtime::TaskEntry task(const std::string& step, std::vector<exec::Outcome> outcomes) {
  runtime::TaskEntry t;
  t.step = step;
  t.task_id = "0";
  t.executor = "local";
  for (size_t k = 0; k < outcomes.size(); ++k) {
    runtime::AttemptEntry a;
    a.attempt = static_cast<int>(k);
    exec::Completion c;
    c.attempt = a.attempt;
    c.outcome = outcomes[k];
    c.exit_code = outcomes[k] == exec::Outcome::kSucceeded ? 0 : 3;
    c.reason = outcomes[k] == exec::Outcome::kSucceeded ? "" : "exit code 3 <&\"'>";
    a.completion = c;
    a.retry_in_seconds = k + 1 < outcomes.size() ? 0 : -1;
    t.attempts.push_back(a);
  }
  return t;
}

TEST_CASE("issue_12 GitHub workflow-command escaping", "[cli][ci]") {
  CHECK(github_escape_data("50% done\r\nnext: a, b") == "50%25 done%0D%0Anext: a, b");
  CHECK(github_escape_property("dir:a,b/50%\n") == "dir%3Aa%2Cb/50%25%0A");
}

TEST_CASE("issue_12 flow diagnostics become ::error annotations", "[cli][ci]") {
  spec::Diagnostics diags;
  diags.error("flows/a,b:c.yaml", {3, 7}, "no step named 'x'", "fix `next`");
  diags.warning("f.yaml", {0, 0}, "100% odd");
  std::string text = github_diagnostic_annotations(diags);
  CHECK(text ==
        "::error file=flows/a%2Cb%3Ac.yaml,line=3,col=7,title=mflow%3A invalid flow::no step "
        "named 'x'%0Ahint: fix `next`\n"
        "::warning file=f.yaml,title=mflow%3A invalid flow::100%25 odd\n");
}

TEST_CASE("issue_12 JUnit: retries are flaky or rerun failures, reused tasks skipped",
          "[cli][ci]") {
  runtime::RunSummary s;
  s.run_id = "7";
  s.flow = "f";
  std::vector<runtime::TaskEntry> tasks{
      task("flaky", {exec::Outcome::kFailed, exec::Outcome::kSucceeded}),
      task("broken", {exec::Outcome::kFailed, exec::Outcome::kTimedOut}),
      runtime::TaskEntry{}};
  tasks[2].step = "old";
  tasks[2].task_id = "0";
  tasks[2].reused_from = "6/old/0";
  std::string xml = junit_xml(s, tasks);
  CHECK_THAT(xml, Catch::Contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""));
  CHECK_THAT(xml, Catch::Contains("<flakyFailure message=\"attempt 0: exit code 3 &lt;&amp;&quot;&apos;&gt;\" type=\"failed\"/>"));
  CHECK_THAT(xml, Catch::Contains("<failure message=\"attempt 1 of 2: exit code 3 &lt;&amp;&quot;&apos;&gt;\" type=\"timed out\">"));
  CHECK_THAT(xml, Catch::Contains("<rerunFailure message=\"attempt 0: exit code 3"));
  CHECK_THAT(xml, Catch::Contains("<skipped message=\"reused from 6/old/0 (not run again)\"/>"));
}

TEST_CASE("issue_12 the end-of-run counts say how many succeeded after retries", "[cli][ci]") {
  runtime::RunSummary s;
  s.tasks_succeeded = 15;
  s.tasks_succeeded_after_retries = 2;
  CHECK(runtime::task_counts(s) == "15 succeeded (2 after retries), 0 reused, 0 failed");
  s.tasks_succeeded_after_retries = 0;
  s.tasks_stopped = 1;
  CHECK(runtime::task_counts(s) == "15 succeeded, 0 reused, 0 failed, 1 stopped");
}

}  // namespace
}  // namespace mflow::cli
