// Record JSON: the serialised form of RunInfo (run.json) and TaskRecord (task.json), and the
// timestamp format they use (RFC 3339, UTC, milliseconds: "2026-11-24T02:43:39.689Z").
// The only place nlohmann::json meets the datastore's records; every exception it throws
// becomes a Status naming the file. Readers accept records of format <= kFormatVersion and
// refuse newer ones. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "store/datastore.h"

namespace mflow::store {

/// "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, truncated to milliseconds).
std::string format_time(Clock::time_point t);
/// Parses "YYYY-MM-DDTHH:MM:SS[.fraction]Z"; kInvalid for anything else.
base::Result<Clock::time_point> parse_time(std::string_view text);

std::string run_to_json(const RunInfo& run);
/// `path` names the file in error messages.
base::Result<RunInfo> run_from_json(std::string_view text, const std::string& path);

std::string task_to_json(const TaskRecord& task);
base::Result<TaskRecord> task_from_json(std::string_view text, const std::string& path);

/// Parses the text of a run or task status, as written by to_string.
bool parse_run_status(std::string_view text, RunStatus* out);
bool parse_task_status(std::string_view text, TaskStatus* out);

}  // namespace mflow::store
