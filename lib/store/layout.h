// Layout: every path name inside a datastore, in one place (leveldb's db/filename.h). The
// rest of mflow never builds a datastore path by hand. Also owns the validity rules for the
// names that become path components (run ids, step names, task ids, object hashes), so a
// name read from the command line or from a record can never escape the datastore root.
// Pure functions; thread-safe. The format is described in docs/datastore.md.
#pragma once

#include <string>
#include <string_view>

namespace mflow::store::layout {

/// Object keys: the same names relative to the datastore root, '/'-separated, as the
/// ObjectStore seam takes them (store/object_store.h). The path functions below are
/// `<root>/` + these keys, so a local datastore's files are its objects.
namespace key {
std::string format();
std::string identity();
/// "objects/<2 hex>/<sha256>"
std::string object(const std::string& sha256);
/// "runs/": the listing prefix whose subdirectories are the runs.
std::string runs_prefix();
std::string run_file(const std::string& run_id);
std::string run_lock(const std::string& run_id);
/// "runs/<run_id>/resume.lock": held by the resume that may adopt run <id>'s Kubernetes Jobs.
std::string resume_lock(const std::string& run_id);
/// "runs/<run_id>/tasks/": its subdirectories are the steps that have tasks.
std::string tasks_prefix(const std::string& run_id);
/// "runs/<run_id>/tasks/<step>/": its subdirectories are the step's task ids.
std::string step_prefix(const std::string& run_id, const std::string& step);
/// "runs/<run_id>/tasks/<step>/<task_id>/": the task's record and logs.
std::string task_prefix(const std::string& run_id, const std::string& step,
                        const std::string& task_id);
std::string task_file(const std::string& run_id, const std::string& step,
                      const std::string& task_id);
/// Part `chunk` of an attempt's log: part 0 is "<attempt>.stdout" (or .stderr), part k > 0
/// "<attempt>.stdout.<k>". A log is the concatenation of its parts in order (see
/// docs/datastore.md, Logs).
std::string log_part(const std::string& run_id, const std::string& step,
                     const std::string& task_id, int attempt, bool stderr_stream, int chunk = 0);
}  // namespace key

inline constexpr std::string_view kFormatFile = "FORMAT";
/// First word of the FORMAT file; the version number follows after one space.
inline constexpr std::string_view kFormatMagic = "mflow-datastore";
/// The datastore's identity: 32 lowercase hex digits and a newline (docs/datastore.md).
inline constexpr std::string_view kIdentityFile = "ID";
inline constexpr std::string_view kRunFile = "run.json";
inline constexpr std::string_view kLockFile = "lock";
inline constexpr std::string_view kTaskFile = "task.json";

/// <root>/FORMAT
std::string format_file(const std::string& root);

/// <root>/ID
std::string identity_file(const std::string& root);

/// <root>/objects
std::string objects_dir(const std::string& root);
/// <root>/objects/tmp: objects being written (never read as objects; see docs for garbage).
std::string object_tmp_dir(const std::string& root);
/// Where an object found changed after it was stored is moved, out of every reader's way.
std::string damaged_objects_dir(const std::string& root);
/// <root>/objects/<first 2 hex digits of sha256>
std::string object_fanout_dir(const std::string& root, const std::string& sha256);
/// <root>/objects/<2 hex>/<sha256>
std::string object_path(const std::string& root, const std::string& sha256);

/// <root>/runs
std::string runs_dir(const std::string& root);
/// <root>/runs/<run_id>
std::string run_dir(const std::string& root, const std::string& run_id);
/// <root>/runs/<run_id>/run.json
std::string run_file(const std::string& root, const std::string& run_id);
/// <root>/runs/<run_id>/lock
std::string run_lock_file(const std::string& root, const std::string& run_id);
/// runs/<id>/resume.lock: held by the resume that may adopt run <id>'s Kubernetes Jobs.
std::string resume_lock_file(const std::string& root, const std::string& run_id);
/// <root>/runs/<run_id>/reserve: space set aside while the run runs, given up to record an
/// outcome when the disk is full.
std::string run_reserve_file(const std::string& root, const std::string& run_id);

/// <root>/runs/<run_id>/tasks
std::string tasks_dir(const std::string& root, const std::string& run_id);
/// <root>/runs/<run_id>/tasks/<step>
std::string step_dir(const std::string& root, const std::string& run_id, const std::string& step);
/// <root>/runs/<run_id>/tasks/<step>/<task_id>
std::string task_dir(const std::string& root, const std::string& run_id, const std::string& step,
                     const std::string& task_id);
/// <root>/runs/<run_id>/tasks/<step>/<task_id>/task.json
std::string task_file(const std::string& root, const std::string& run_id, const std::string& step,
                      const std::string& task_id);
/// <root>/runs/<run_id>/tasks/<step>/<task_id>/<attempt>.stdout (or .stderr)
std::string log_file(const std::string& root, const std::string& run_id, const std::string& step,
                     const std::string& task_id, int attempt, bool stderr_stream);

/// <root>/runs/<run_id>/tasks/<step>/<task_id>/<attempt>.out: $MFLOW_OUTPUT_DIR of an
/// attempt. Emptied by ingestion when the attempt succeeds; a failed attempt's partial
/// outputs stay there for inspection.
std::string output_dir(const std::string& root, const std::string& run_id, const std::string& step,
                       const std::string& task_id, int attempt);
/// <root>/runs/<run_id>/tasks/<step>/<task_id>/artifacts: every artifact the task's children
/// see (hard links to objects); it is their $MFLOW_INPUT_DIR.
std::string artifacts_dir(const std::string& root, const std::string& run_id,
                          const std::string& step, const std::string& task_id);
/// <root>/runs/<run_id>/tasks/<step>/<task_id>/input: $MFLOW_INPUT_DIR of a task that has no
/// single parent (start, joins).
std::string input_dir(const std::string& root, const std::string& run_id, const std::string& step,
                      const std::string& task_id);

/// A run id: 1 to 18 decimal digits without a leading zero.
bool is_run_id(std::string_view name);
/// A datastore identity: 32 lowercase hex digits.
bool is_datastore_id(std::string_view text);
/// 64 lowercase hex digits.
bool is_sha256(std::string_view name);
/// A name usable as one path component: not empty, at most 255 bytes, not "." or "..",
/// no '/' or NUL, and not starting with '.' (dot names are reserved for temp files).
bool valid_component(std::string_view name);

}  // namespace mflow::store::layout
