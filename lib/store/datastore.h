// Datastore: mflow's record of runs, tasks, logs and artifacts. The logic (records, run id
// allocation, liveness, content addressing, resume's reuse, reading logs) is written once on
// the ObjectStore seam (store/object_store.h); what tasks need as plain files (task
// directories, $MFLOW_OUTPUT_DIR, artifacts/ and input/ directories, the log files a child
// writes to, a cache of objects) lives in a local *workspace* directory with the same
// layout. For a local datastore the workspace is the datastore directory itself, so its
// objects are the workspace's files and nothing is copied. Layout and format are described
// in docs/datastore.md; every key and path comes from store/layout.h. Every record write is
// atomic, so killing mflow at any instant leaves a store that every reader accepts. Several
// mflow processes may use one datastore at once (run ids are claimed with a conditional
// create; each run holds a lease while active). A Datastore object is thread-compatible:
// const methods may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "store/local_object_store.h"
#include "store/object_store.h"

namespace mflow::store {

using Clock = std::chrono::system_clock;

/// Version of the on-disk format, written to <root>/FORMAT and into every JSON record.
inline constexpr int kFormatVersion = 1;

enum class RunStatus { kRunning, kSucceeded, kFailed, kInterrupted, kCrashed };
enum class TaskStatus { kRunning, kSucceeded, kFailed, kReused };

const char* to_string(RunStatus s);
const char* to_string(TaskStatus s);

/// One artifact value: its content address and size.
struct ArtifactRef {
  std::string sha256;
  int64_t size = 0;
  bool operator==(const ArtifactRef&) const = default;
};
/// Artifact name -> value.
using ArtifactMap = std::map<std::string, ArtifactRef>;

struct RunInfo {
  std::string run_id;  // decimal, unique in the datastore across all flows
  std::string flow;
  std::string flow_file;  // absolute path of the flow file the run was started from
  RunStatus status = RunStatus::kRunning;
  Clock::time_point started;
  std::optional<Clock::time_point> finished;
  std::map<std::string, std::string> params;  // resolved parameter values
  std::string origin_run_id;                  // for resume: the run it reused tasks from
  std::string command;                        // the command line that started it
  int exit_code = -1;
  /// Placement: the --with values the run used (its own, or kept from its origin by
  /// resume) and --kubernetes-context; resume keeps them unless given anew.
  std::vector<std::string> with;
  std::string kubernetes_context;
};

struct AttemptRecord {
  int attempt = 0;
  std::string outcome;  // exec::to_string(Outcome) text, or "running"
  int exit_code = -1;
  int signal = 0;
  std::string reason;
  Clock::time_point started;
  std::optional<Clock::time_point> finished;
  std::string host;
  int64_t pid = 0;
  std::string executor;  // "local" or "kubernetes"
};

struct TaskRecord {
  std::string run_id;
  std::string step;
  std::string task_id;                // e.g. "0", "3", "3.1" (foreach index path)
  std::vector<int64_t> index_path;    // foreach indices, outermost first
  TaskStatus status = TaskStatus::kRunning;
  std::vector<AttemptRecord> attempts;
  std::string spec_hash;   // spec::step_spec_hash of the resolved step
  std::string input_hash;  // hash of everything the task read (inputs + params)
  std::map<std::string, std::string> resources;  // resolved prescription, for display
  ArtifactMap outputs;     // what this task wrote
  ArtifactMap view;        // what its children see (inputs merged with outputs)
  std::optional<int64_t> num_splits;  // for a foreach step: the width it produced
  /// For a reused task: where it came from ("<run>/<step>/<task>"); its logs stay readable.
  std::string reused_from;
};

/// Marks a run as alive for the lifetime of the object: the lease on the run's lock key
/// (ObjectStore::hold: an flock locally, a heartbeat on S3). Released on destruction or
/// process death, so a dead run is recognisable: nobody holds its lock.
class RunLock {
 public:
  RunLock() = default;
  explicit RunLock(std::unique_ptr<Lease> lease) : lease_(std::move(lease)) {}
  bool held() const { return lease_ != nullptr; }

 private:
  std::unique_ptr<Lease> lease_;
};

class Datastore {
 public:
  /// Opens (and with `create`, initialises) the datastore at `root`. Refuses a FORMAT newer
  /// than kFormatVersion with a message naming both versions.
  static base::Result<Datastore> open(const std::string& root, bool create);
  /// Opens the datastore held by `objects`, with `workspace` (an existing local directory)
  /// for task directories, logs being written and the object cache. open(root) is this with
  /// a LocalObjectStore on `root` and `root` as the workspace.
  static base::Result<Datastore> open(std::shared_ptr<ObjectStore> objects,
                                      const std::string& workspace, bool create);

  /// The workspace directory (for a local datastore, the datastore itself): what tasks get
  /// as $MFLOW_DATASTORE and where their directories are.
  const std::string& root() const { return root_; }
  /// Where the datastore is, for messages (the directory, or s3://bucket/prefix).
  std::string url() const { return objects_->url(); }

  /// The datastore's identity (<root>/ID, 32 hex digits): unique per datastore, so that
  /// things outside it that name its runs (Kubernetes Jobs) are never confused with those
  /// of another datastore whose run ids are the same numbers. Created with the datastore;
  /// a datastore from before identities gets one here on first use. Creation publishes a
  /// complete temp file with link(2), which never replaces, and reads back the winner, so
  /// concurrent first users agree. Errors: unwritable root, a damaged ID file (named).
  base::Result<std::string> identity() const;
  /// The identity if the datastore has one; never creates it (for --dry-run).
  base::Result<std::string> existing_identity() const;

  // --- runs -------------------------------------------------------------------------
  /// Allocates the next run id, creates its directory, writes run.json and takes its lock.
  base::Result<RunInfo> create_run(RunInfo info, RunLock* lock);
  /// Atomically replaces run.json. When the status is final (not kRunning) the write is
  /// durable: the file system is synced first, so a run recorded as finished has all its
  /// task records and objects on disk, then run.json is fsynced.
  base::Status write_run(const RunInfo& info);
  /// What create_run sets aside for the final records (runs/<id>/reserve; removed when the
  /// run's final record is written).
  static constexpr size_t kRecordReserveBytes = 128 * 1024;
  /// Takes `origin_run_id`'s resume lock (runs/<id>/resume.lock) for the lifetime of `lock`:
  /// a resume that may adopt the origin's Kubernetes Jobs holds it, so two resumes at once
  /// never both follow (and both take the outcome of) the same Job. Errors: kConflict when
  /// another process holds it (the message says what to do), I/O errors naming the file.
  base::Status lock_resume(const std::string& origin_run_id, RunLock* lock);
  /// Reads run.json; a run marked running whose lock is free is reported as kCrashed.
  base::Result<RunInfo> read_run(const std::string& run_id) const;
  /// All runs (optionally of one flow), oldest first. Unreadable runs are skipped; with
  /// `problems`, one Status naming the file is appended per skipped record. A run directory
  /// without run.json (a run being created, or whose creation was killed) is not a problem.
  base::Result<std::vector<RunInfo>> list_runs(const std::string& flow = "",
                                               std::vector<base::Status>* problems = nullptr) const;
  /// The newest run of `flow`; not_found when it has none.
  base::Result<RunInfo> latest_run(const std::string& flow) const;

  // --- tasks ------------------------------------------------------------------------
  /// The task's directory (created on demand), where its logs live.
  base::Result<std::string> task_dir(const std::string& run_id, const std::string& step,
                                     const std::string& task_id);
  /// The workspace file the running attempt's stream is written to.
  std::string log_path(const std::string& run_id, const std::string& step,
                       const std::string& task_id, int attempt, bool stderr_stream) const;
  /// Streams an attempt's log, as stored (the concatenation of its parts, see
  /// docs/datastore.md), to `sink` in pieces of bounded size. A stream the attempt never
  /// wrote to is empty, not an error. Reads a running task's log as far as it has reached.
  base::Status read_log(const std::string& run_id, const std::string& step,
                        const std::string& task_id, int attempt, bool stderr_stream,
                        const std::function<base::Status(std::string_view)>& sink) const;
  /// Bytes stored for an attempt's log so far (0 when it has none).
  base::Result<int64_t> log_size(const std::string& run_id, const std::string& step,
                                 const std::string& task_id, int attempt,
                                 bool stderr_stream) const;
  /// Atomically replaces the task's task.json.
  base::Status write_task(const TaskRecord& task);
  base::Result<TaskRecord> read_task(const std::string& run_id, const std::string& step,
                                     const std::string& task_id) const;
  /// What the log files alone say about a task (they are created on their first byte, while
  /// task.json is written only when an attempt ends): status kRunning, one attempt (outcome
  /// "running") per attempt number that has a log file. Stands in for the record of a task
  /// whose first attempt still runs, and reveals a retry in progress. not_found without logs.
  base::Result<TaskRecord> running_task(const std::string& run_id, const std::string& step,
                                        const std::string& task_id) const;
  /// Every task of a run (optionally of one step), ordered by step name, then index path,
  /// then task id (numerically: "2" before "10"). A damaged task.json is skipped; with
  /// `problems`, one Status naming the file is appended for it. With `include_running`, a
  /// task without task.json that has logs is listed as running_task() describes it. not_found
  /// if the run does not exist.
  base::Result<std::vector<TaskRecord>> list_tasks(
      const std::string& run_id, const std::string& step = "",
      std::vector<base::Status>* problems = nullptr, bool include_running = false) const;
  /// Makes a reused task's logs readable under the new run (hard links, copy as fallback).
  base::Status link_logs(const TaskRecord& from, const std::string& to_run_id);

  // --- artifacts --------------------------------------------------------------------
  /// Creates (empty) the attempt's $MFLOW_OUTPUT_DIR, <task>/<attempt>.out. It is never
  /// removed: ingestion empties it on success, and a failed attempt's partial outputs stay.
  base::Result<std::string> make_output_dir(const std::string& run_id, const std::string& step,
                                            const std::string& task_id, int attempt);
  /// <task>/artifacts: what the task's children see.
  std::string artifacts_dir(const std::string& run_id, const std::string& step,
                            const std::string& task_id) const;
  /// Fills <task>/artifacts with `view` (hard links to objects) and returns its path; it is
  /// the $MFLOW_INPUT_DIR of every child with this task as its only parent.
  base::Result<std::string> write_artifacts_dir(const std::string& run_id, const std::string& step,
                                                const std::string& task_id,
                                                const ArtifactMap& view);
  /// Creates <task>/input for a task without a single parent: `top_level` artifacts as files
  /// and, for a join, entry k as a relative symlink to inputs[k] (an artifacts directory).
  base::Result<std::string> make_input_dir(const std::string& run_id, const std::string& step,
                                           const std::string& task_id,
                                           const ArtifactMap& top_level,
                                           const std::vector<std::string>& inputs);
  /// Moves every regular file of `dir` into the object store (deduplicated) and returns
  /// name -> ref. Artifact names must be valid (see valid_artifact_name); subdirectories
  /// and invalid names are an error naming the file.
  base::Result<ArtifactMap> ingest_dir(const std::string& dir);
  /// After a task ran: whether the input directory `dir` (a task's $MFLOW_INPUT_DIR or one
  /// branch of a join) still holds `view` exactly as stored. Objects, the files placed in
  /// input directories and the directories themselves carry a fixed modification time (the
  /// seal, see docs/datastore.md), so a task that wrote to an input, or added or removed an
  /// entry, is caught by a few lstat calls, even as root, for whom mode 0444 means nothing.
  /// A changed object is quarantined. invalid() naming every changed path otherwise.
  base::Status check_unchanged(const std::string& dir, const ArtifactMap& view) const;
  /// Stores bytes as an object.
  base::Result<ArtifactRef> put_bytes(std::string_view bytes);
  /// The workspace's copy of an object (read-only file; for a local datastore, the object).
  std::string object_path(const std::string& sha256) const;
  base::Result<std::string> read_object(const ArtifactRef& ref) const;
  /// Creates `dir/<name>` for every artifact (hard link into the object store; copy when the
  /// file system refuses links).
  base::Status materialize(const ArtifactMap& artifacts, const std::string& dir) const;
  /// Moves the workspace's copy of a changed object to objects/damaged/, so no reader gets
  /// wrong bytes under its name (for a local datastore that is the object itself).
  void quarantine(const std::string& sha256) const;

 private:
  Datastore(std::shared_ptr<ObjectStore> objects, std::string root)
      : objects_(std::move(objects)), root_(std::move(root)), workspace_(root_) {}
  // ingest_dir's two ways into the object store: take the file itself, or copy it.
  base::Result<ArtifactRef> move_object(const std::string& path);
  base::Result<ArtifactRef> copy_object(const std::string& path);
  // Stores the complete, sealed, read-only file `file` (which is given up) as object
  // `sha256`, unless the store has it: into the workspace's cache, then into the store.
  base::Status publish_object(const std::string& file, const std::string& sha256);
  // Makes the workspace's copy of an object present and checked (downloading it if needed);
  // `name` is the artifact, for messages.
  base::Status cache_object(const std::string& name, const ArtifactRef& ref) const;
  // An atomic put of a record of `run_id`; when it fails, gives up the run's reserve (a
  // full disk) and tries once more.
  base::Status write_record(const std::string& run_id, const std::string& key,
                            const std::string& content, bool durable);
  // Whether the store has anything under runs/<run_id>/.
  base::Result<bool> run_exists(const std::string& run_id) const;

  std::shared_ptr<ObjectStore> objects_;
  std::string root_;
  // The workspace as an object store of its own: its files, linked and moved with the
  // local store's rules (for a local datastore, the same files as objects_).
  mutable LocalObjectStore workspace_;
};

/// Artifact names: [A-Za-z_][A-Za-z0-9_.-]*, at most 128 characters.
bool valid_artifact_name(const std::string& name);

}  // namespace mflow::store
