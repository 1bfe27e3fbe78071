#include "store/datastore.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <set>

#include <fmt/core.h>

#include "base/file_util.h"
#include "base/hash.h"
#include "base/strings.h"
#include "store/layout.h"
#include "store/record_json.h"

namespace mflow::store {

namespace fs = std::filesystem;
using base::Result;
using base::Status;
using base::UniqueFd;

namespace {

// Names of the entries of `dir` except "." and "..". A missing directory is empty unless
// `must_exist`.
Result<std::vector<std::string>> list_dir(const std::string& dir, bool must_exist = false) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT && !must_exist) return names;
    return Status::from_errno(dir, errno);
  }
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  ::closedir(d);
  return names;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Run ids have no leading zeros, so shorter means smaller.
bool run_id_less(const std::string& a, const std::string& b) {
  return a.size() != b.size() ? a.size() < b.size() : a < b;
}

// Task ids compare like version numbers ("2" < "10", "3.2" < "3.10").
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    bool da = a[i] >= '0' && a[i] <= '9', db = b[j] >= '0' && b[j] <= '9';
    if (da && db) {
      size_t ei = i, ej = j;
      while (ei < a.size() && a[ei] >= '0' && a[ei] <= '9') ++ei;
      while (ej < b.size() && b[ej] >= '0' && b[ej] <= '9') ++ej;
      std::string_view na(a.data() + i, ei - i), nb(b.data() + j, ej - j);
      while (na.size() > 1 && na[0] == '0') na.remove_prefix(1);
      while (nb.size() > 1 && nb[0] == '0') nb.remove_prefix(1);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ei;
      j = ej;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

Status bad_name(const char* what, const std::string& name, const char* rule) {
  return Status::invalid(fmt::format("invalid {} '{}': {}", what, name, rule));
}

constexpr const char* kComponentRule =
    "must be a non-empty name without '/', not starting with '.', at most 255 bytes";

Status check_run_id(const std::string& run_id) {
  if (layout::is_run_id(run_id)) return Status();
  return Status::not_found(fmt::format(
      "'{}' is not a run id (run ids are positive numbers; `mflow runs` lists them)", run_id));
}

Status check_task_names(const std::string& run_id, const std::string& step,
                        const std::string& task_id) {
  MFLOW_RETURN_IF_ERROR(check_run_id(run_id));
  if (!layout::valid_component(step)) return bad_name("step name", step, kComponentRule);
  if (!layout::valid_component(task_id)) return bad_name("task id", task_id, kComponentRule);
  return Status();
}

// A unique name for a temp file of this process.
std::string temp_name(const std::string& dir) {
  static std::atomic<unsigned> counter{0};
  return fmt::format("{}/{}.{}.tmp", dir, ::getpid(), counter++);
}

// The seal: the fixed modification time (2000-01-01T00:00:00Z) of every object, of the files
// placed in input directories and of those directories. Writing to a file, or adding or
// removing a directory entry, sets the time to now, which a single lstat then reveals.
constexpr time_t kSealSeconds = 946684800;

bool is_sealed(const struct stat& st) {
  return st.st_mtim.tv_sec == kSealSeconds && st.st_mtim.tv_nsec == 0;
}

Status seal(const std::string& path) {
  struct timespec times[2] = {{kSealSeconds, 0}, {kSealSeconds, 0}};
  if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return Status::from_errno("sealing " + path, errno);
  }
  return Status();
}

// remove_all that also copes with directories a task made read-only.
Status remove_tree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (!ec) return Status();
  for (auto it = fs::recursive_directory_iterator(path, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec)) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
  }
  fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
  ec.clear();
  fs::remove_all(path, ec);
  if (ec) return Status::io_error(fmt::format("removing {}: {}", path, ec.message()));
  return Status();
}

Result<int> parse_format_file(const std::string& path, const std::string& text) {
  std::string_view t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' '))
    t.remove_suffix(1);
  auto invalid = Status::invalid(fmt::format(
      "{}: not an mflow datastore FORMAT file (expected '{} <version>'); point --datastore or "
      "MFLOW_DATASTORE at an mflow datastore",
      path, layout::kFormatMagic));
  if (t.size() <= layout::kFormatMagic.size() + 1 ||
      t.substr(0, layout::kFormatMagic.size()) != layout::kFormatMagic ||
      t[layout::kFormatMagic.size()] != ' ') {
    return invalid;
  }
  std::string_view digits = t.substr(layout::kFormatMagic.size() + 1);
  if (digits.size() > 9) return invalid;
  int version = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return invalid;
    version = version * 10 + (c - '0');
  }
  return version;
}

}  // namespace

const char* to_string(RunStatus s) {
  switch (s) {
    case RunStatus::kRunning:
      return "running";
    case RunStatus::kSucceeded:
      return "succeeded";
    case RunStatus::kFailed:
      return "failed";
    case RunStatus::kInterrupted:
      return "interrupted";
    case RunStatus::kCrashed:
      return "crashed";
  }
  return "unknown";
}

const char* to_string(TaskStatus s) {
  switch (s) {
    case TaskStatus::kRunning:
      return "running";
    case TaskStatus::kSucceeded:
      return "succeeded";
    case TaskStatus::kFailed:
      return "failed";
    case TaskStatus::kReused:
      return "reused";
  }
  return "unknown";
}

bool valid_artifact_name(const std::string& name) {
  if (name.empty() || name.size() > 128) return false;
  auto head = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!head(name[0])) return false;
  for (char c : name) {
    if (!(head(c) || (c >= '0' && c <= '9') || c == '.' || c == '-')) return false;
  }
  return true;
}

// ---- opening ----------------------------------------------------------------------------

Result<Datastore> Datastore::open(const std::string& root_arg, bool create) {
  if (root_arg.empty()) {
    return Status::invalid("datastore path is empty; pass --datastore DIR or set MFLOW_DATASTORE");
  }
  // Absolute, so the path handed to tasks ($MFLOW_DATASTORE) works from any directory.
  std::error_code ec;
  std::string root = fs::absolute(root_arg, ec).lexically_normal().string();
  if (ec) return Status::io_error(fmt::format("datastore {}: {}", root_arg, ec.message()));
  while (root.size() > 1 && root.back() == '/') root.pop_back();

  struct stat st;
  if (::stat(root.c_str(), &st) != 0) {
    if (errno != ENOENT) return Status::from_errno(root, errno);
    if (!create) {
      return Status::not_found(fmt::format(
          "no datastore at {}: nothing has run here yet (run `mflow run FLOW`, or point "
          "--datastore / MFLOW_DATASTORE at an existing datastore)",
          root));
    }
    MFLOW_RETURN_IF_ERROR(base::make_dirs(root));
  } else if (!S_ISDIR(st.st_mode)) {
    return Status::invalid(fmt::format(
        "datastore {} is not a directory; pass --datastore DIR or set MFLOW_DATASTORE", root));
  }
  return open(std::make_shared<LocalObjectStore>(root), root, create);
}

Result<Datastore> Datastore::open(std::shared_ptr<ObjectStore> objects,
                                  const std::string& workspace, bool create) {
  const std::string format_key = layout::key::format();
  const std::string where = objects->url();
  auto text = objects->get(format_key);
  if (!text.ok() && text.status().code() == base::StatusCode::kNotFound && create) {
    // Initialise, refusing to take over a place that holds something else. FORMAT is
    // created only if absent (link(2) locally, If-None-Match on S3), so concurrent
    // initialisers agree on it.
    auto top = objects->list("");
    if (!top.ok()) return top.status();
    bool foreign =
        std::any_of(top->subdirs.begin(), top->subdirs.end(),
                    [](const std::string& d) { return d != "runs" && d != "objects"; }) ||
        std::any_of(top->objects.begin(), top->objects.end(), [](const ObjectInfo& o) {
          return o.key != layout::kIdentityFile && o.key != layout::kFormatFile;
        });
    if (foreign) {
      return Status::invalid(fmt::format(
          "{} is not empty and has no FORMAT file, so it is not an mflow datastore; refusing to "
          "use it (pass --datastore with a new or empty directory)",
          where));
    }
    Status s = objects->put(format_key, fmt::format("{} {}\n", layout::kFormatMagic, kFormatVersion),
                            PutMode::kIfAbsent, /*durable=*/true);
    if (!s.ok() && s.code() != base::StatusCode::kConflict) return s;
    text = objects->get(format_key);
  }
  if (!text.ok()) {
    if (text.status().code() == base::StatusCode::kNotFound) {
      return Status::invalid(fmt::format(
          "{} is not an mflow datastore (no FORMAT file); point --datastore or MFLOW_DATASTORE "
          "at a datastore",
          where));
    }
    return text.status();
  }
  const std::string format_name = objects->describe(format_key);
  auto version = parse_format_file(format_name, text.value());
  if (!version.ok()) return version.status();
  if (version.value() > kFormatVersion) {
    return Status::invalid(fmt::format(
        "datastore {} has format version {}, but this mflow ({}) reads versions up to {}; "
        "upgrade mflow, or use another datastore (--datastore / MFLOW_DATASTORE)",
        where, version.value(), MFLOW_VERSION, kFormatVersion));
  }
  if (version.value() < 1) {
    return Status::invalid(
        fmt::format("{}: format version {} does not exist", format_name, version.value()));
  }
  Datastore store(std::move(objects), workspace);
  if (create) {
    MFLOW_RETURN_IF_ERROR(base::make_dirs(layout::runs_dir(workspace)));
    MFLOW_RETURN_IF_ERROR(base::make_dirs(layout::object_tmp_dir(workspace)));
    MFLOW_RETURN_IF_ERROR(store.identity().status());
  }
  return store;
}

Result<std::string> Datastore::existing_identity() const {
  const std::string key = layout::key::identity();
  auto text = objects_->get(key);
  if (!text.ok()) return text.status();
  std::string_view id = text.value();
  if (!id.empty() && id.back() == '\n') id.remove_suffix(1);
  if (!layout::is_datastore_id(id)) {
    return Status::invalid(fmt::format(
        "{}: not a datastore identity (expected 32 lowercase hex digits); it was changed "
        "outside mflow. Restore it, or delete it to give the datastore a new identity (mflow "
        "then no longer recognises the Kubernetes Jobs of its earlier runs)",
        objects_->describe(key)));
  }
  return std::string(id);
}

Result<std::string> Datastore::identity() const {
  auto existing = existing_identity();
  if (existing.ok() || existing.status().code() != base::StatusCode::kNotFound) return existing;
  // 128 random bits: two datastores never share an identity, whoever created them.
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno("getrandom", errno);
    }
    got += static_cast<size_t>(n);
  }
  std::string id;
  for (unsigned char b : bytes) id += fmt::format("{:02x}", b);
  // Created only if absent (link(2) locally, If-None-Match: * on S3): of concurrent first
  // users exactly one wins, and every one of them reads the winner back.
  Status s = objects_->put(layout::key::identity(), id + "\n", PutMode::kIfAbsent,
                           /*durable=*/true);
  if (!s.ok() && s.code() != base::StatusCode::kConflict) return s;
  return existing_identity();
}

// ---- runs -------------------------------------------------------------------------------

Status Datastore::lock_resume(const std::string& origin_run_id, RunLock* lock) {
  MFLOW_RETURN_IF_ERROR(check_run_id(origin_run_id));
  const std::string key = layout::key::resume_lock(origin_run_id);
  auto lease = objects_->hold(key);
  if (!lease.ok()) {
    if (lease.status().code() == base::StatusCode::kConflict) {
      return Status::conflict(fmt::format(
          "run {} is being resumed by another mflow (it holds {}); wait for that resume to end, "
          "then resume the run it started if needed",
          origin_run_id, objects_->describe(key)));
    }
    return lease.status();
  }
  *lock = RunLock(std::move(lease.value()));
  return Status::ok_status();
}

Result<RunInfo> Datastore::create_run(RunInfo info, RunLock* lock) {
  if (lock == nullptr) return Status::internal("create_run needs a RunLock to hold the run's lock");
  auto listing = objects_->list(layout::key::runs_prefix());
  if (!listing.ok()) return listing.status();
  uint64_t next = 1;
  for (const auto& n : listing->subdirs) {
    if (layout::is_run_id(n)) next = std::max<uint64_t>(next, std::stoull(n) + 1);
  }
  // The conditional create of run.json is the allocation: exactly one process succeeds for
  // each id, with no lock server. On a collision the next id is tried, so concurrent
  // creators spread over consecutive ids. The lease is taken first, so no reader ever sees
  // the new run.json unheld (it would read as crashed).
  info.status = RunStatus::kRunning;
  for (int tries = 0;; ++tries, ++next) {
    if (tries == 10000) {
      return Status::io_error(
          fmt::format("{}: could not allocate a run id", objects_->describe("runs")));
    }
    info.run_id = std::to_string(next);
    auto lease = objects_->hold(layout::key::run_lock(info.run_id));
    if (!lease.ok()) {
      if (lease.status().code() == base::StatusCode::kConflict) continue;  // a live run
      return lease.status();
    }
    Status s = objects_->put(layout::key::run_file(info.run_id), run_to_json(info),
                             PutMode::kIfAbsent);
    if (s.code() == base::StatusCode::kConflict) continue;  // drops the lease
    if (!s.ok()) return s;
    *lock = RunLock(std::move(lease.value()));
    break;
  }
  // Set aside room for the records that say how the run ended: on a full disk the task that
  // hit ENOSPC and the run itself must still be recorded (write_record gives it up). Best
  // effort: a disk already too full for it fails soon enough, and says so.
  const std::string reserve(kRecordReserveBytes, '\0');
  if (base::make_dirs(layout::run_dir(root_, info.run_id)).ok()) {
    (void)base::write_file_atomic(layout::run_reserve_file(root_, info.run_id), reserve);
  }
  return info;
}

Status Datastore::write_record(const std::string& run_id, const std::string& key,
                               const std::string& content, bool durable) {
  Status s = objects_->put(key, content, PutMode::kOverwrite, durable);
  if (s.ok()) return s;
  // Most likely a full disk: give up the run's reserve and try once more.
  if (::unlink(layout::run_reserve_file(root_, run_id).c_str()) != 0) return s;
  return objects_->put(key, content, PutMode::kOverwrite, durable);
}

Status Datastore::write_run(const RunInfo& info) {
  MFLOW_RETURN_IF_ERROR(check_run_id(info.run_id));
  bool durable = info.status != RunStatus::kRunning;
  if (durable) {
    // Everything the run wrote (objects, task records) reaches the disk before the record
    // that says the run is finished.
    UniqueFd dfd(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dfd) ::syncfs(dfd.get());
  }
  MFLOW_RETURN_IF_ERROR(
      write_record(info.run_id, layout::key::run_file(info.run_id), run_to_json(info), durable));
  if (durable) ::unlink(layout::run_reserve_file(root_, info.run_id).c_str());  // not needed now
  return Status();
}

Result<bool> Datastore::run_exists(const std::string& run_id) const {
  auto listing = objects_->list(fmt::format("{}{}/", layout::key::runs_prefix(), run_id));
  if (!listing.ok()) return listing.status();
  return !listing->objects.empty() || !listing->subdirs.empty();
}

Result<RunInfo> Datastore::read_run(const std::string& run_id) const {
  MFLOW_RETURN_IF_ERROR(check_run_id(run_id));
  const std::string key = layout::key::run_file(run_id);
  auto text = objects_->get(key);
  if (!text.ok()) {
    if (text.status().code() != base::StatusCode::kNotFound) return text.status();
    auto any = run_exists(run_id);
    if (!any.ok()) return any.status();
    if (!any.value()) {
      return Status::not_found(fmt::format("no run {} in datastore {}", run_id, url()));
    }
    return Status::not_found(fmt::format(
        "run {} has no {} (it is being created, or mflow was killed while creating it; a "
        "directory like this whose lock is free can be deleted)",
        run_id, objects_->describe(key)));
  }
  auto run = run_from_json(text.value(), objects_->describe(key));
  if (!run.ok()) return run.status();
  if (run->run_id != run_id) {
    return Status::invalid(fmt::format("{}: records run id '{}', expected '{}'",
                                       objects_->describe(key), run->run_id, run_id));
  }
  if (run->status == RunStatus::kRunning) {
    auto held = objects_->held(layout::key::run_lock(run_id));
    if (!held.ok()) return held.status();
    if (!held.value()) run->status = RunStatus::kCrashed;
  }
  return run;
}

namespace {

// The run ids under runs/, oldest first.
Result<std::vector<std::string>> run_ids(const ObjectStore& objects) {
  auto listing = objects.list(layout::key::runs_prefix());
  if (!listing.ok()) return listing.status();
  std::vector<std::string> ids;
  for (auto& n : listing->subdirs) {
    if (layout::is_run_id(n)) ids.push_back(std::move(n));
  }
  std::sort(ids.begin(), ids.end(), run_id_less);
  return ids;
}

}  // namespace

Result<std::vector<RunInfo>> Datastore::list_runs(const std::string& flow,
                                                  std::vector<Status>* problems) const {
  auto ids = run_ids(*objects_);
  if (!ids.ok()) return ids.status();
  std::vector<RunInfo> out;
  for (const auto& id : ids.value()) {
    auto run = read_run(id);
    if (!run.ok()) {
      // No run.json: being created, or never was. Not a problem.
      if (problems && run.status().code() != base::StatusCode::kNotFound) {
        problems->push_back(run.status());
      }
      continue;
    }
    if (flow.empty() || run->flow == flow) out.push_back(std::move(run.value()));
  }
  return out;
}

Result<RunInfo> Datastore::latest_run(const std::string& flow) const {
  auto ids = run_ids(*objects_);
  if (!ids.ok()) return ids.status();
  for (auto it = ids->rbegin(); it != ids->rend(); ++it) {
    auto run = read_run(*it);
    if (run.ok() && (flow.empty() || run->flow == flow)) return run;
  }
  if (flow.empty()) return Status::not_found(fmt::format("no runs in datastore {}", url()));
  return Status::not_found(fmt::format("no run of flow '{}' in datastore {}", flow, url()));
}

// ---- tasks ------------------------------------------------------------------------------

Result<std::string> Datastore::task_dir(const std::string& run_id, const std::string& step,
                                        const std::string& task_id) {
  MFLOW_RETURN_IF_ERROR(check_task_names(run_id, step, task_id));
  std::string dir = layout::task_dir(root_, run_id, step, task_id);
  MFLOW_RETURN_IF_ERROR(base::make_dirs(dir));
  return dir;
}

std::string Datastore::log_path(const std::string& run_id, const std::string& step,
                                const std::string& task_id, int attempt, bool stderr_stream) const {
  return layout::log_file(root_, run_id, step, task_id, attempt, stderr_stream);
}

Status Datastore::read_log(const std::string& run_id, const std::string& step,
                           const std::string& task_id, int attempt, bool stderr_stream,
                           const std::function<Status(std::string_view)>& sink) const {
  MFLOW_RETURN_IF_ERROR(check_task_names(run_id, step, task_id));
  constexpr int64_t kPiece = 1 << 20;
  // Parts in order until the first that does not exist. A local log is part 0 alone (the
  // file the task writes to); a shipped log adds immutable parts 1, 2, ...
  for (int part = 0;; ++part) {
    const std::string key = layout::key::log_part(run_id, step, task_id, attempt, stderr_stream,
                                                  part);
    for (int64_t offset = 0;; ) {
      auto piece = objects_->get_range(key, offset, kPiece);
      if (!piece.ok()) {
        if (piece.status().code() == base::StatusCode::kNotFound && offset == 0) return Status();
        return piece.status();
      }
      if (piece->empty()) break;
      MFLOW_RETURN_IF_ERROR(sink(piece.value()));
      offset += static_cast<int64_t>(piece->size());
      if (static_cast<int64_t>(piece->size()) < kPiece) break;
    }
  }
}

Result<int64_t> Datastore::log_size(const std::string& run_id, const std::string& step,
                                    const std::string& task_id, int attempt,
                                    bool stderr_stream) const {
  MFLOW_RETURN_IF_ERROR(check_task_names(run_id, step, task_id));
  int64_t size = 0;
  for (int part = 0;; ++part) {
    auto info = objects_->head(
        layout::key::log_part(run_id, step, task_id, attempt, stderr_stream, part));
    if (!info.ok()) return info.status();
    if (!info->has_value()) return size;
    size += info.value()->size;
  }
}

Status Datastore::write_task(const TaskRecord& task) {
  MFLOW_RETURN_IF_ERROR(check_task_names(task.run_id, task.step, task.task_id));
  // No fsync per task: a crash of mflow loses nothing (the put is atomic), and the final
  // write_run syncs the file system once for the whole run.
  return write_record(task.run_id, layout::key::task_file(task.run_id, task.step, task.task_id),
                      task_to_json(task), false);
}

Result<TaskRecord> Datastore::read_task(const std::string& run_id, const std::string& step,
                                        const std::string& task_id) const {
  MFLOW_RETURN_IF_ERROR(check_task_names(run_id, step, task_id));
  const std::string key = layout::key::task_file(run_id, step, task_id);
  auto text = objects_->get(key);
  if (!text.ok()) {
    if (text.status().code() == base::StatusCode::kNotFound) {
      return Status::not_found(fmt::format("run {} has no task {}/{} (no {})", run_id, step,
                                           task_id, objects_->describe(key)));
    }
    return text.status();
  }
  auto task = task_from_json(text.value(), objects_->describe(key));
  if (!task.ok()) return task.status();
  if (task->step != step || task->task_id != task_id) {
    return Status::invalid(fmt::format("{}: records task {}/{}, expected {}/{}",
                                       objects_->describe(key), task->step, task->task_id, step,
                                       task_id));
  }
  return task;
}

Result<TaskRecord> Datastore::running_task(const std::string& run_id, const std::string& step,
                                           const std::string& task_id) const {
  MFLOW_RETURN_IF_ERROR(check_task_names(run_id, step, task_id));
  TaskRecord task;
  task.run_id = run_id;
  task.step = step;
  task.task_id = task_id;
  // A foreach task's id is its index path ("3.1"), which orders it among finished tasks.
  for (const auto& part : base::split(task_id, '.')) {
    int64_t index = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), index);
    if (ec != std::errc() || end != part.data() + part.size()) {
      task.index_path.clear();
      break;
    }
    task.index_path.push_back(index);
  }
  std::set<int> attempts;
  const std::string prefix = layout::key::task_prefix(run_id, step, task_id);
  if (auto listing = objects_->list(prefix); listing.ok()) {
    for (const auto& object : listing->objects) {
      // <attempt>.stdout / <attempt>.stderr (part 0 of the log)
      std::string name = object.key.substr(prefix.size());
      size_t dot = name.find('.');
      std::string_view ext = dot == std::string::npos ? "" : std::string_view(name).substr(dot);
      if (ext != ".stdout" && ext != ".stderr") continue;
      int attempt = -1;
      auto [end, ec] = std::from_chars(name.data(), name.data() + dot, attempt);
      if (ec == std::errc() && end == name.data() + dot && attempt >= 0) attempts.insert(attempt);
    }
  }
  if (attempts.empty()) {
    return Status::not_found(
        fmt::format("run {} has no task {}/{} (no record and no logs)", run_id, step, task_id));
  }
  for (int n : attempts) {
    AttemptRecord a;
    a.attempt = n;
    a.outcome = "running";
    task.attempts.push_back(std::move(a));
  }
  return task;
}

Result<std::vector<TaskRecord>> Datastore::list_tasks(const std::string& run_id,
                                                      const std::string& step,
                                                      std::vector<Status>* problems,
                                                      bool include_running) const {
  MFLOW_RETURN_IF_ERROR(check_run_id(run_id));
  auto any = run_exists(run_id);
  if (!any.ok()) return any.status();
  if (!any.value()) return Status::not_found(fmt::format("no run {} in datastore {}", run_id, url()));
  std::vector<std::string> steps;
  if (!step.empty()) {
    if (!layout::valid_component(step)) return bad_name("step name", step, kComponentRule);
    steps.push_back(step);
  } else {
    auto listing = objects_->list(layout::key::tasks_prefix(run_id));
    if (!listing.ok()) return listing.status();
    for (auto& n : listing->subdirs) {
      if (layout::valid_component(n)) steps.push_back(std::move(n));
    }
    std::sort(steps.begin(), steps.end());
  }
  std::vector<TaskRecord> out;
  for (const auto& s : steps) {
    auto listing = objects_->list(layout::key::step_prefix(run_id, s));
    if (!listing.ok()) return listing.status();
    size_t first = out.size();
    for (const auto& id : listing->subdirs) {
      if (!layout::valid_component(id)) continue;
      const std::string key = layout::key::task_file(run_id, s, id);
      auto text = objects_->get(key);
      if (!text.ok()) {
        // A task without task.json is a task being set up or still running.
        if (text.status().code() != base::StatusCode::kNotFound) {
          if (problems) problems->push_back(text.status());
        } else if (include_running) {
          if (auto running = running_task(run_id, s, id); running.ok()) {
            out.push_back(std::move(running.value()));
          }
        }
        continue;
      }
      auto task = task_from_json(text.value(), objects_->describe(key));
      if (task.ok() && (task->step != s || task->task_id != id)) {
        task = Status::invalid(fmt::format("{}: records task {}/{}, expected {}/{}",
                                           objects_->describe(key), task->step, task->task_id, s,
                                           id));
      }
      if (!task.ok()) {
        if (problems) problems->push_back(task.status());
        continue;
      }
      out.push_back(std::move(task.value()));
    }
    std::sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
              [](const TaskRecord& a, const TaskRecord& b) {
                if (a.index_path != b.index_path) return a.index_path < b.index_path;
                return natural_less(a.task_id, b.task_id);
              });
  }
  return out;
}

Status Datastore::link_logs(const TaskRecord& from, const std::string& to_run_id) {
  MFLOW_RETURN_IF_ERROR(check_task_names(from.run_id, from.step, from.task_id));
  MFLOW_RETURN_IF_ERROR(check_run_id(to_run_id));
  if (from.run_id == to_run_id) return Status();
  MFLOW_RETURN_IF_ERROR(
      base::make_dirs(layout::task_dir(root_, to_run_id, from.step, from.task_id)));
  for (const auto& a : from.attempts) {
    for (bool err_stream : {false, true}) {
      for (int part = 0;; ++part) {
        // Into the workspace (a hard link locally), then stored under the new run's key
        // (locally the file already is that object).
        const std::string dst_key =
            layout::key::log_part(to_run_id, from.step, from.task_id, a.attempt, err_stream, part);
        const std::string dst = workspace_.path(dst_key);
        Status s = objects_->get_file(
            layout::key::log_part(from.run_id, from.step, from.task_id, a.attempt, err_stream,
                                  part),
            dst, std::nullopt);
        if (s.code() == base::StatusCode::kNotFound) break;  // no (further) part
        MFLOW_RETURN_IF_ERROR(s);
        MFLOW_RETURN_IF_ERROR(objects_->put_file(dst_key, dst, PutMode::kOverwrite, false));
      }
    }
  }
  return Status();
}

// ---- artifacts --------------------------------------------------------------------------

Result<std::string> Datastore::make_output_dir(const std::string& run_id, const std::string& step,
                                               const std::string& task_id, int attempt) {
  MFLOW_RETURN_IF_ERROR(check_task_names(run_id, step, task_id));
  std::string dir = layout::output_dir(root_, run_id, step, task_id, attempt);
  // Leftovers (a pod replaced after an eviction wrote into it) must not become outputs.
  if (exists(dir)) MFLOW_RETURN_IF_ERROR(remove_tree(dir));
  MFLOW_RETURN_IF_ERROR(base::make_dirs(dir));
  return dir;
}

std::string Datastore::artifacts_dir(const std::string& run_id, const std::string& step,
                                     const std::string& task_id) const {
  return layout::artifacts_dir(root_, run_id, step, task_id);
}

Result<std::string> Datastore::write_artifacts_dir(const std::string& run_id,
                                                   const std::string& step,
                                                   const std::string& task_id,
                                                   const ArtifactMap& view) {
  MFLOW_RETURN_IF_ERROR(check_task_names(run_id, step, task_id));
  std::string dir = layout::artifacts_dir(root_, run_id, step, task_id);
  if (exists(dir)) MFLOW_RETURN_IF_ERROR(remove_tree(dir));
  MFLOW_RETURN_IF_ERROR(base::make_dirs(dir));
  MFLOW_RETURN_IF_ERROR(materialize(view, dir));
  MFLOW_RETURN_IF_ERROR(seal(dir));  // last: adding the entries changed its time
  return dir;
}

Result<std::string> Datastore::make_input_dir(const std::string& run_id, const std::string& step,
                                              const std::string& task_id,
                                              const ArtifactMap& top_level,
                                              const std::vector<std::string>& inputs) {
  MFLOW_RETURN_IF_ERROR(check_task_names(run_id, step, task_id));
  std::string dir = layout::input_dir(root_, run_id, step, task_id);
  if (exists(dir)) MFLOW_RETURN_IF_ERROR(remove_tree(dir));
  MFLOW_RETURN_IF_ERROR(base::make_dirs(dir));
  MFLOW_RETURN_IF_ERROR(materialize(top_level, dir));
  for (size_t k = 0; k < inputs.size(); ++k) {
    // Relative links keep working where the datastore is mounted elsewhere (a pod's PVC).
    std::string target = fs::path(inputs[k]).lexically_relative(dir).string();
    std::string link = fmt::format("{}/{}", dir, k);
    if (::symlink(target.c_str(), link.c_str()) != 0) return Status::from_errno(link, errno);
  }
  MFLOW_RETURN_IF_ERROR(seal(dir));  // last: adding the entries changed its time
  return dir;
}

Result<ArtifactMap> Datastore::ingest_dir(const std::string& dir) {
  auto names = list_dir(dir, /*must_exist=*/true);
  if (!names.ok()) return names.status();
  std::sort(names->begin(), names->end());

  // Check everything first, so a bad entry leaves the directory untouched.
  enum class Kind { kMove, kCopy };
  std::vector<std::pair<std::string, Kind>> files;
  std::string errors;
  auto reject = [&](const std::string& message) {
    errors += (errors.empty() ? "" : "; ") + message;
  };
  for (const auto& name : names.value()) {
    std::string path = dir + "/" + name;
    if (!valid_artifact_name(name)) {
      reject(
          fmt::format("{}: invalid artifact name '{}': names must match "
                      "[A-Za-z_][A-Za-z0-9_.-]* and be at most 128 characters",
                      path, name));
      continue;
    }
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return Status::from_errno(path, errno);
    if (S_ISREG(st.st_mode)) {
      // A file with other links (say, hard-linked from outside) is copied: moving it would
      // let a write through the other link change a stored object.
      files.emplace_back(name, st.st_nlink > 1 ? Kind::kCopy : Kind::kMove);
    } else if (S_ISLNK(st.st_mode) && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      files.emplace_back(name, Kind::kCopy);
    } else if (S_ISDIR(st.st_mode)) {
      reject(
          fmt::format("{}: artifact '{}' is a directory; an artifact is one regular file "
                      "(write one file per artifact, or pack the directory with tar)",
                      path, name));
    } else {
      reject(
          fmt::format("{}: artifact '{}' is not a regular file (or a symlink to one)", path, name));
    }
  }
  if (!errors.empty()) return Status::invalid(errors);

  ArtifactMap out;
  for (const auto& [name, kind] : files) {
    std::string path = dir + "/" + name;
    auto ref = kind == Kind::kMove ? move_object(path) : copy_object(path);
    if (!ref.ok()) return ref.status();
    out.emplace(name, std::move(ref.value()));
  }
  return out;
}


Result<ArtifactRef> Datastore::move_object(const std::string& path) {
  auto sha = base::sha256_file(path);
  if (!sha.ok()) return sha.status();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::from_errno(path, errno);
  ArtifactRef ref{sha.value(), static_cast<int64_t>(st.st_size)};
  if (::chmod(path.c_str(), 0444) != 0) return Status::from_errno(path, errno);
  MFLOW_RETURN_IF_ERROR(seal(path));
  MFLOW_RETURN_IF_ERROR(publish_object(path, ref.sha256));
  return ref;
}

Result<ArtifactRef> Datastore::copy_object(const std::string& path) {
  // Copy and hash in one pass into objects/tmp, then publish.
  UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return Status::from_errno(path, errno);
  std::string tmp_dir = layout::object_tmp_dir(root_);
  MFLOW_RETURN_IF_ERROR(base::make_dirs(tmp_dir));
  std::string tmp = temp_name(tmp_dir);
  UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
  if (!out) return Status::from_errno(tmp, errno);
  base::Sha256 hash;
  int64_t size = 0;
  std::vector<char> buf(1 << 20);
  Status s;
  while (s.ok()) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      s = Status::from_errno(path, errno);
      break;
    }
    if (n == 0) break;
    hash.update(buf.data(), static_cast<size_t>(n));
    size += n;
    s = base::write_all(out.get(), buf.data(), static_cast<size_t>(n), tmp);
  }
  out.reset();
  ArtifactRef ref{hash.hex_digest(), size};
  if (s.ok()) s = seal(tmp);
  if (s.ok()) s = publish_object(tmp, ref.sha256);
  ::unlink(tmp.c_str());
  if (!s.ok()) return s;
  return ref;
}

Status Datastore::publish_object(const std::string& file, const std::string& sha256) {
  const std::string key = layout::key::object(sha256);
  auto known = objects_->head(key);
  if (!known.ok()) return known.status();
  if (known->has_value()) {
    ::unlink(file.c_str());  // deduplicated: the store already has these bytes
    return Status();
  }
  // Into the workspace's cache first (a rename on one file system), so this run's children
  // read it without a download; then into the store (locally the cache file is the object,
  // and the put finds it there). An object stored meanwhile by another process (kConflict)
  // has the same bytes.
  Status s = workspace_.put_file(key, file, PutMode::kIfAbsent, /*consume=*/true);
  if (!s.ok() && s.code() != base::StatusCode::kConflict) return s;
  s = objects_->put_file(key, workspace_.path(key), PutMode::kIfAbsent, /*consume=*/false);
  if (!s.ok() && s.code() != base::StatusCode::kConflict) return s;
  return Status();
}

Result<ArtifactRef> Datastore::put_bytes(std::string_view bytes) {
  ArtifactRef ref{base::sha256_hex(bytes), static_cast<int64_t>(bytes.size())};
  auto known = objects_->head(layout::key::object(ref.sha256));
  if (!known.ok()) return known.status();
  if (known->has_value()) return ref;
  std::string tmp_dir = layout::object_tmp_dir(root_);
  MFLOW_RETURN_IF_ERROR(base::make_dirs(tmp_dir));
  std::string tmp = temp_name(tmp_dir);
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
  if (!fd) return Status::from_errno(tmp, errno);
  Status s = base::write_all(fd.get(), bytes.data(), bytes.size(), tmp);
  fd.reset();
  if (s.ok()) s = seal(tmp);
  if (s.ok()) s = publish_object(tmp, ref.sha256);
  ::unlink(tmp.c_str());
  if (!s.ok()) return s;
  return ref;
}

std::string Datastore::object_path(const std::string& sha256) const {
  return layout::object_path(root_, sha256);
}

Result<std::string> Datastore::read_object(const ArtifactRef& ref) const {
  if (!layout::is_sha256(ref.sha256)) {
    return Status::invalid(fmt::format("'{}' is not a SHA-256 object name", ref.sha256));
  }
  const std::string key = layout::key::object(ref.sha256);
  auto bytes = objects_->get(key);
  if (!bytes.ok()) {
    if (bytes.status().code() == base::StatusCode::kNotFound) {
      return Status::not_found(fmt::format(
          "object {} is missing from datastore {} (it was deleted by hand; re-run the task that "
          "produced it)",
          ref.sha256, url()));
    }
    return bytes.status();
  }
  if (static_cast<int64_t>(bytes->size()) != ref.size ||
      base::sha256_hex(bytes.value()) != ref.sha256) {
    return Status::io_error(fmt::format(
        "{}: object is damaged (its content no longer matches its name); delete it and re-run "
        "the task that produced it",
        objects_->describe(key)));
  }
  return bytes;
}

Status Datastore::cache_object(const std::string& name, const ArtifactRef& ref) const {
  const std::string key = layout::key::object(ref.sha256);
  const std::string obj = workspace_.path(key);
  struct stat st;
  if (::lstat(obj.c_str(), &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) return Status::from_errno(obj, errno);
    // Not in the workspace: download it, checked against its name (locally the workspace
    // is the store, so the object is simply missing).
    MFLOW_RETURN_IF_ERROR(base::make_dirs(layout::object_fanout_dir(root_, ref.sha256)));
    Status s = objects_->get_file(key, obj, ref.sha256);
    if (s.code() == base::StatusCode::kNotFound) {
      return Status::not_found(fmt::format(
          "artifact '{}': object {} is missing from datastore {} (it was deleted by hand; run "
          "the flow again without resume)",
          name, ref.sha256, url()));
    }
    MFLOW_RETURN_IF_ERROR(s);
    if (::chmod(obj.c_str(), 0444) != 0) return Status::from_errno(obj, errno);
    return seal(obj);
  }
  if (!is_sealed(st)) {
    // Stored by an mflow from before the seal, or changed since: the hash decides.
    auto sha = base::sha256_file(obj);
    if (!sha.ok()) return sha.status();
    if (sha.value() != ref.sha256) {
      quarantine(ref.sha256);
      return Status::io_error(fmt::format(
          "artifact '{}': object {} was changed after it was stored (moved to {}); re-run the "
          "task that produced it (without resume)",
          name, ref.sha256, layout::damaged_objects_dir(root_)));
    }
    MFLOW_RETURN_IF_ERROR(seal(obj));
  }
  return Status();
}

Status Datastore::materialize(const ArtifactMap& artifacts, const std::string& dir) const {
  MFLOW_RETURN_IF_ERROR(base::make_dirs(dir));
  for (const auto& [name, ref] : artifacts) {
    if (!valid_artifact_name(name)) {
      return bad_name("artifact name", name, "names must match [A-Za-z_][A-Za-z0-9_.-]*");
    }
    if (!layout::is_sha256(ref.sha256)) {
      return Status::invalid(
          fmt::format("artifact '{}': '{}' is not a SHA-256 object name", name, ref.sha256));
    }
    MFLOW_RETURN_IF_ERROR(cache_object(name, ref));
    const std::string key = layout::key::object(ref.sha256);
    std::string entry = dir + "/" + name;
    // A hard link to the cached object (a copy, sealed alike, where links are refused).
    MFLOW_RETURN_IF_ERROR(workspace_.get_file(key, entry, std::nullopt));
    struct stat obj, placed;
    if (::lstat(workspace_.path(key).c_str(), &obj) == 0 &&
        ::lstat(entry.c_str(), &placed) == 0 && placed.st_ino != obj.st_ino) {
      MFLOW_RETURN_IF_ERROR(seal(entry));  // a copy (too many links, another file system)
    }
  }
  return Status();
}

void Datastore::quarantine(const std::string& sha256) const {
  static std::atomic<unsigned> counter{0};
  std::string dir = layout::damaged_objects_dir(root_);
  if (!base::make_dirs(dir).ok()) return;
  std::string to = fmt::format("{}/{}.{}.{}", dir, sha256, ::getpid(), counter++);
  ::rename(layout::object_path(root_, sha256).c_str(), to.c_str());
}

Status Datastore::check_unchanged(const std::string& dir, const ArtifactMap& view) const {
  std::vector<std::string> changed;
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    return Status::invalid(fmt::format("{} was removed", dir));
  }
  if (!is_sealed(st)) {
    std::vector<std::string> extra;
    if (auto names = list_dir(dir); names.ok()) {
      for (const auto& n : names.value()) {
        bool join_link = !n.empty() && n.find_first_not_of("0123456789") == std::string::npos;
        if (!view.count(n) && !join_link) extra.push_back(n);
      }
    }
    changed.push_back(extra.empty() ? dir + " (entries added or removed)"
                                    : fmt::format("{} (added: {})", dir, base::join(extra, ", ")));
  }
  bool quarantined = false;
  for (const auto& [name, ref] : view) {
    std::string entry = dir + "/" + name;
    if (::lstat(entry.c_str(), &st) != 0) {
      changed.push_back(entry + " (removed)");
    } else if (!is_sealed(st) || st.st_size != ref.size) {
      changed.push_back(entry + " (written to)");
      struct stat obj;
      std::string obj_path = layout::object_path(root_, ref.sha256);
      if (::lstat(obj_path.c_str(), &obj) == 0 && obj.st_ino == st.st_ino) {
        quarantine(ref.sha256);  // the entry is the stored object itself (a hard link)
        quarantined = true;
      }
    }
  }
  if (changed.empty()) return Status();
  return Status::invalid(fmt::format(
      "the task changed its inputs, which are read-only: {}; write new artifacts to "
      "$MFLOW_OUTPUT_DIR instead{}",
      base::join(changed, "; "),
      quarantined ? " (the changed stored object was moved to " +
                        layout::damaged_objects_dir(root_) + ")"
                  : ""));
}

}  // namespace mflow::store
