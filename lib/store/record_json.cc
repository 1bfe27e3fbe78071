#include "store/record_json.h"

#include <fmt/core.h>
#include <nlohmann/json.hpp>

namespace mflow::store {

namespace {

using nlohmann::json;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

// Raised by the field readers below and turned into a Status by the *_from_json functions;
// it never leaves this file.
struct BadRecord {
  std::string message;
};

[[noreturn]] void bad(std::string message) { throw BadRecord{std::move(message)}; }

const json& field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) bad(fmt::format("missing field '{}'", key));
  return *it;
}

std::string get_string(const json& obj, const char* key, bool required = false) {
  auto it = obj.find(key);
  if (it == obj.end() || (!required && it->is_null())) {
    if (required) bad(fmt::format("missing field '{}'", key));
    return "";
  }
  if (!it->is_string()) bad(fmt::format("field '{}' must be a string", key));
  return it->get<std::string>();
}

int64_t get_int(const json& obj, const char* key, int64_t fallback) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) bad(fmt::format("field '{}' must be an integer", key));
  return it->get<int64_t>();
}

Clock::time_point get_time(const json& obj, const char* key) {
  const json& v = field(obj, key);
  if (!v.is_string()) bad(fmt::format("field '{}' must be an RFC 3339 time string", key));
  auto t = parse_time(v.get<std::string>());
  if (!t.ok()) bad(fmt::format("field '{}': {}", key, t.status().message()));
  return t.value();
}

std::optional<Clock::time_point> get_optional_time(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  return get_time(obj, key);
}

std::map<std::string, std::string> get_string_map(const json& obj, const char* key) {
  std::map<std::string, std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  if (!it->is_object()) bad(fmt::format("field '{}' must be an object", key));
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string()) bad(fmt::format("field '{}.{}' must be a string", key, k));
    out[k] = v.get<std::string>();
  }
  return out;
}

std::vector<std::string> get_string_list(const json& obj, const char* key) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  if (!it->is_array()) bad(fmt::format("field '{}' must be an array", key));
  for (const auto& v : *it) {
    if (!v.is_string()) bad(fmt::format("field '{}' must hold strings", key));
    out.push_back(v.get<std::string>());
  }
  return out;
}

// Records are written with their keys in declaration order ("format" first) for people
// reading them; readers do not depend on the order.
using ordered_json = nlohmann::ordered_json;

ordered_json artifacts_to_json(const ArtifactMap& m) {
  ordered_json out = ordered_json::object();
  for (const auto& [name, ref] : m) out[name] = {{"sha256", ref.sha256}, {"size", ref.size}};
  return out;
}

ArtifactMap get_artifacts(const json& obj, const char* key) {
  ArtifactMap out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  if (!it->is_object()) bad(fmt::format("field '{}' must be an object", key));
  for (const auto& [name, v] : it->items()) {
    if (!v.is_object()) bad(fmt::format("field '{}.{}' must be an object", key, name));
    ArtifactRef ref;
    ref.sha256 = get_string(v, "sha256", true);
    ref.size = get_int(v, "size", -1);
    if (ref.size < 0)
      bad(fmt::format("field '{}.{}.size' must be a non-negative integer", key, name));
    out.emplace(name, std::move(ref));
  }
  return out;
}

ordered_json time_or_null(const std::optional<Clock::time_point>& t) {
  return t ? ordered_json(format_time(*t)) : ordered_json(nullptr);
}

// Checks the record's own version: older versions this build knows are accepted, newer are
// refused so an old mflow never misreads a record written by a newer one.
void check_format(const json& j) {
  int64_t format = get_int(j, "format", -1);
  if (format < 1) bad("missing or invalid field 'format'");
  if (format > kFormatVersion) {
    bad(fmt::format("record format {} is newer than this mflow understands ({}); upgrade mflow",
                    format, kFormatVersion));
  }
}

json parse_object(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    bad(text.empty() ? "empty file (truncated record)"
                     : "not valid JSON (truncated or damaged record)");
  }
  if (!j.is_object()) bad("not a JSON object");
  return j;
}

// Days since 1970-01-01 from a civil date and back (Howard Hinnant's algorithms), so times
// are formatted without the C library's time-zone state.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool parse_digits(std::string_view text, size_t pos, size_t n, int64_t* out) {
  if (pos + n > text.size()) return false;
  int64_t v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    char c = text[i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::string format_time(Clock::time_point t) {
  int64_t ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
  int64_t in_day = ms - days * 86400000;
  int64_t y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", y, m, d, in_day / 3600000,
                     in_day / 60000 % 60, in_day / 1000 % 60, in_day % 1000);
}

base::Result<Clock::time_point> parse_time(std::string_view text) {
  auto invalid = [&] {
    return base::Status::invalid(
        fmt::format("'{}' is not an RFC 3339 UTC time like 2026-11-24T02:43:39.689Z", text));
  };
  int64_t y, mo, d, h, mi, s;
  if (!parse_digits(text, 0, 4, &y) || text.size() < 20 || text[4] != '-' ||
      !parse_digits(text, 5, 2, &mo) || text[7] != '-' || !parse_digits(text, 8, 2, &d) ||
      (text[10] != 'T' && text[10] != 't') || !parse_digits(text, 11, 2, &h) || text[13] != ':' ||
      !parse_digits(text, 14, 2, &mi) || text[16] != ':' || !parse_digits(text, 17, 2, &s)) {
    return invalid();
  }
  size_t pos = 19;
  int64_t nanos = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 9) nanos = nanos * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return invalid();
    for (size_t k = digits; k < 9; ++k) nanos *= 10;
  }
  if (pos + 1 != text.size() || (text[pos] != 'Z' && text[pos] != 'z')) return invalid();
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return invalid();
  int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + s;
  auto since_epoch = std::chrono::seconds(secs) + std::chrono::nanoseconds(nanos);
  return Clock::time_point(duration_cast<Clock::duration>(since_epoch));
}

bool parse_run_status(std::string_view text, RunStatus* out) {
  for (RunStatus s : {RunStatus::kRunning, RunStatus::kSucceeded, RunStatus::kFailed,
                      RunStatus::kInterrupted, RunStatus::kCrashed}) {
    if (text == to_string(s)) {
      *out = s;
      return true;
    }
  }
  return false;
}

bool parse_task_status(std::string_view text, TaskStatus* out) {
  for (TaskStatus s :
       {TaskStatus::kRunning, TaskStatus::kSucceeded, TaskStatus::kFailed, TaskStatus::kReused}) {
    if (text == to_string(s)) {
      *out = s;
      return true;
    }
  }
  return false;
}

std::string run_to_json(const RunInfo& run) {
  ordered_json j = {
      {"format", kFormatVersion},
      {"run_id", run.run_id},
      {"flow", run.flow},
      {"flow_file", run.flow_file},
      {"status", to_string(run.status)},
      {"started", format_time(run.started)},
      {"finished", time_or_null(run.finished)},
      {"params", run.params},
      {"origin_run_id", run.origin_run_id},
      {"command", run.command},
      {"exit_code", run.exit_code},
  };
  // Where the steps ran, for `resume` to keep (optional: absent in older records).
  if (!run.with.empty()) j["with"] = run.with;
  if (!run.kubernetes_context.empty()) j["kubernetes_context"] = run.kubernetes_context;
  return j.dump(2) + "\n";
}

base::Result<RunInfo> run_from_json(std::string_view text, const std::string& path) {
  try {
    json j = parse_object(text);
    check_format(j);
    RunInfo run;
    run.run_id = get_string(j, "run_id", true);
    run.flow = get_string(j, "flow", true);
    run.flow_file = get_string(j, "flow_file");
    std::string status = get_string(j, "status", true);
    if (!parse_run_status(status, &run.status)) bad(fmt::format("unknown status '{}'", status));
    run.started = get_time(j, "started");
    run.finished = get_optional_time(j, "finished");
    run.params = get_string_map(j, "params");
    run.origin_run_id = get_string(j, "origin_run_id");
    run.command = get_string(j, "command");
    run.exit_code = static_cast<int>(get_int(j, "exit_code", -1));
    run.with = get_string_list(j, "with");
    run.kubernetes_context = get_string(j, "kubernetes_context");
    return run;
  } catch (const BadRecord& e) {
    return base::Status::invalid(fmt::format("{}: {}", path, e.message));
  } catch (const json::exception& e) {
    return base::Status::invalid(fmt::format("{}: {}", path, e.what()));
  }
}

std::string task_to_json(const TaskRecord& task) {
  ordered_json attempts = ordered_json::array();
  for (const auto& a : task.attempts) {
    attempts.push_back({
        {"attempt", a.attempt},
        {"outcome", a.outcome},
        {"exit_code", a.exit_code},
        {"signal", a.signal},
        {"reason", a.reason},
        {"started", format_time(a.started)},
        {"finished", time_or_null(a.finished)},
        {"host", a.host},
        {"pid", a.pid},
        {"executor", a.executor},
    });
  }
  ordered_json j = {
      {"format", kFormatVersion},
      {"run_id", task.run_id},
      {"step", task.step},
      {"task_id", task.task_id},
      {"index_path", task.index_path},
      {"status", to_string(task.status)},
      {"attempts", std::move(attempts)},
      {"spec_hash", task.spec_hash},
      {"input_hash", task.input_hash},
      {"resources", task.resources},
      {"outputs", artifacts_to_json(task.outputs)},
      {"view", artifacts_to_json(task.view)},
      {"num_splits", task.num_splits ? ordered_json(*task.num_splits) : ordered_json(nullptr)},
      {"reused_from", task.reused_from},
  };
  // Compact: a run may hold 10,000 of these and only tools read them.
  return j.dump() + "\n";
}

base::Result<TaskRecord> task_from_json(std::string_view text, const std::string& path) {
  try {
    json j = parse_object(text);
    check_format(j);
    TaskRecord task;
    task.run_id = get_string(j, "run_id", true);
    task.step = get_string(j, "step", true);
    task.task_id = get_string(j, "task_id", true);
    if (auto it = j.find("index_path"); it != j.end() && !it->is_null()) {
      if (!it->is_array()) bad("field 'index_path' must be an array of integers");
      for (const auto& v : *it) {
        if (!v.is_number_integer()) bad("field 'index_path' must be an array of integers");
        task.index_path.push_back(v.get<int64_t>());
      }
    }
    std::string status = get_string(j, "status", true);
    if (!parse_task_status(status, &task.status)) bad(fmt::format("unknown status '{}'", status));
    if (auto it = j.find("attempts"); it != j.end() && !it->is_null()) {
      if (!it->is_array()) bad("field 'attempts' must be an array");
      for (const auto& v : *it) {
        if (!v.is_object()) bad("field 'attempts' must be an array of objects");
        AttemptRecord a;
        a.attempt = static_cast<int>(get_int(v, "attempt", 0));
        a.outcome = get_string(v, "outcome");
        a.exit_code = static_cast<int>(get_int(v, "exit_code", -1));
        a.signal = static_cast<int>(get_int(v, "signal", 0));
        a.reason = get_string(v, "reason");
        a.started = get_time(v, "started");
        a.finished = get_optional_time(v, "finished");
        a.host = get_string(v, "host");
        a.pid = get_int(v, "pid", 0);
        a.executor = get_string(v, "executor");
        task.attempts.push_back(std::move(a));
      }
    }
    task.spec_hash = get_string(j, "spec_hash");
    task.input_hash = get_string(j, "input_hash");
    task.resources = get_string_map(j, "resources");
    task.outputs = get_artifacts(j, "outputs");
    task.view = get_artifacts(j, "view");
    if (auto it = j.find("num_splits"); it != j.end() && !it->is_null()) {
      task.num_splits = get_int(j, "num_splits", 0);
    }
    task.reused_from = get_string(j, "reused_from");
    return task;
  } catch (const BadRecord& e) {
    return base::Status::invalid(fmt::format("{}: {}", path, e.message));
  } catch (const json::exception& e) {
    return base::Status::invalid(fmt::format("{}: {}", path, e.what()));
  }
}

}  // namespace mflow::store
