#include "store/layout.h"

#include <fmt/core.h>

namespace mflow::store::layout {

namespace key {

std::string format() { return std::string(kFormatFile); }
std::string identity() { return std::string(kIdentityFile); }

std::string object(const std::string& sha256) {
  return fmt::format("objects/{}/{}", std::string_view(sha256).substr(0, 2), sha256);
}

std::string runs_prefix() { return "runs/"; }
std::string run_file(const std::string& run_id) { return fmt::format("runs/{}/{}", run_id, kRunFile); }
std::string run_lock(const std::string& run_id) {
  return fmt::format("runs/{}/{}", run_id, kLockFile);
}
std::string resume_lock(const std::string& run_id) {
  return fmt::format("runs/{}/resume.lock", run_id);
}
std::string tasks_prefix(const std::string& run_id) { return fmt::format("runs/{}/tasks/", run_id); }
std::string step_prefix(const std::string& run_id, const std::string& step) {
  return fmt::format("runs/{}/tasks/{}/", run_id, step);
}
std::string task_prefix(const std::string& run_id, const std::string& step,
                        const std::string& task_id) {
  return fmt::format("runs/{}/tasks/{}/{}/", run_id, step, task_id);
}
std::string task_file(const std::string& run_id, const std::string& step,
                      const std::string& task_id) {
  return task_prefix(run_id, step, task_id) + std::string(kTaskFile);
}
std::string log_part(const std::string& run_id, const std::string& step,
                     const std::string& task_id, int attempt, bool stderr_stream, int chunk) {
  std::string k = fmt::format("{}{}.{}", task_prefix(run_id, step, task_id), attempt,
                              stderr_stream ? "stderr" : "stdout");
  if (chunk > 0) k += fmt::format(".{}", chunk);
  return k;
}

}  // namespace key

std::string format_file(const std::string& root) { return root + "/" + key::format(); }

std::string identity_file(const std::string& root) {
  return fmt::format("{}/{}", root, kIdentityFile);
}

std::string objects_dir(const std::string& root) { return root + "/objects"; }

std::string object_tmp_dir(const std::string& root) { return root + "/objects/tmp"; }
std::string damaged_objects_dir(const std::string& root) { return root + "/objects/damaged"; }

std::string object_fanout_dir(const std::string& root, const std::string& sha256) {
  return fmt::format("{}/objects/{}", root, std::string_view(sha256).substr(0, 2));
}

std::string object_path(const std::string& root, const std::string& sha256) {
  return root + "/" + key::object(sha256);
}

std::string runs_dir(const std::string& root) { return root + "/runs"; }

std::string run_dir(const std::string& root, const std::string& run_id) {
  return fmt::format("{}/runs/{}", root, run_id);
}

std::string run_file(const std::string& root, const std::string& run_id) {
  return root + "/" + key::run_file(run_id);
}

std::string run_reserve_file(const std::string& root, const std::string& run_id) {
  return run_dir(root, run_id) + "/reserve";
}

std::string run_lock_file(const std::string& root, const std::string& run_id) {
  return root + "/" + key::run_lock(run_id);
}

std::string resume_lock_file(const std::string& root, const std::string& run_id) {
  return root + "/" + key::resume_lock(run_id);
}

std::string tasks_dir(const std::string& root, const std::string& run_id) {
  return fmt::format("{}/runs/{}/tasks", root, run_id);
}

std::string step_dir(const std::string& root, const std::string& run_id, const std::string& step) {
  return fmt::format("{}/runs/{}/tasks/{}", root, run_id, step);
}

std::string task_dir(const std::string& root, const std::string& run_id, const std::string& step,
                     const std::string& task_id) {
  return fmt::format("{}/runs/{}/tasks/{}/{}", root, run_id, step, task_id);
}

std::string task_file(const std::string& root, const std::string& run_id, const std::string& step,
                      const std::string& task_id) {
  return root + "/" + key::task_file(run_id, step, task_id);
}

std::string log_file(const std::string& root, const std::string& run_id, const std::string& step,
                     const std::string& task_id, int attempt, bool stderr_stream) {
  return root + "/" + key::log_part(run_id, step, task_id, attempt, stderr_stream);
}

std::string output_dir(const std::string& root, const std::string& run_id, const std::string& step,
                       const std::string& task_id, int attempt) {
  return fmt::format("{}/runs/{}/tasks/{}/{}/{}.out", root, run_id, step, task_id, attempt);
}

std::string artifacts_dir(const std::string& root, const std::string& run_id,
                          const std::string& step, const std::string& task_id) {
  return fmt::format("{}/runs/{}/tasks/{}/{}/artifacts", root, run_id, step, task_id);
}

std::string input_dir(const std::string& root, const std::string& run_id, const std::string& step,
                      const std::string& task_id) {
  return fmt::format("{}/runs/{}/tasks/{}/{}/input", root, run_id, step, task_id);
}

bool is_run_id(std::string_view name) {
  if (name.empty() || name.size() > 18 || name[0] == '0') return false;
  for (char c : name) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

namespace {

bool is_lower_hex(std::string_view text, size_t length) {
  if (text.size() != length) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

bool is_datastore_id(std::string_view text) { return is_lower_hex(text, 32); }

bool is_sha256(std::string_view name) { return is_lower_hex(name, 64); }

bool valid_component(std::string_view name) {
  if (name.empty() || name.size() > 255 || name[0] == '.') return false;
  for (char c : name) {
    if (c == '/' || c == '\0') return false;
  }
  return true;
}

}  // namespace mflow::store::layout
