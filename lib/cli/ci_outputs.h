// CI outputs made at the end of a run from what the RunLedger recorded: the JUnit XML of
// --junit, the per-task list of --summary-json, and what GitHub Actions and GitLab CI show
// (workflow-command annotations, the Markdown job summary, collapsible log sections). See
// docs/ci.md for the formats and the decisions behind them. Pure functions except log_tail,
// which reads the task's stored logs; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/reporter.h"
#include "runtime/run_ledger.h"
#include "spec/diagnostic.h"

namespace mflow::cli {

/// The end of a task's stored output (stderr, then stdout), at most `max_lines` lines of
/// each and 8 KiB in all, as UTF-8 text (other bytes as \xNN); "" when it wrote nothing.
std::string log_tail(const runtime::TaskEntry& task, size_t max_lines = 40);

/// JUnit XML: one <testsuite> for the run, one <testcase> per task (classname = step);
/// failures carry the reason and the log tail; earlier failed attempts appear as
/// <rerunFailure> (failed in the end) or <flakyFailure> (succeeded in the end) as Maven
/// Surefire writes them; reused tasks are <skipped>.
std::string junit_xml(const runtime::RunSummary& summary,
                      const std::vector<runtime::TaskEntry>& tasks);

/// Every task with its attempts (executor, times, duration, outcome, exit code, reason), for
/// --summary-json's "task_list".
nlohmann::json tasks_json(const std::vector<runtime::TaskEntry>& tasks);

/// $GITHUB_ACTIONS == "true" / $GITLAB_CI == "true".
bool on_github_actions();
bool on_gitlab_ci();

/// GitHub workflow-command escaping: of a message (%, \r, \n) and of a property value
/// (also ':' and ',').
std::string github_escape_data(std::string_view text);
std::string github_escape_property(std::string_view text);

/// `::error file=…,line=…,col=…,title=…::message` (or ::warning) per flow diagnostic.
std::string github_diagnostic_annotations(const spec::Diagnostics& diags);

/// One `::error title=…::…` per failed task of the run, with the `mflow logs` command.
std::string github_failure_annotations(const runtime::RunSummary& summary,
                                       const std::string& command_options);

/// The Markdown job summary of a run (outcome, counts, failures, a table of tasks).
std::string github_step_summary(const runtime::RunSummary& summary,
                                const std::vector<runtime::TaskEntry>& tasks,
                                const std::string& command_options);

/// GitLab: each failed task's log tail in a collapsible section (section_start/section_end).
std::string gitlab_failure_sections(const runtime::RunSummary& summary,
                                    const std::vector<runtime::TaskEntry>& tasks);

}  // namespace mflow::cli
