#include "store/datastore.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
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

// Copies `src` to `dst` through a temp file beside `dst` and a rename, so `dst` is either
// absent or complete. `mode` is applied to the copy.
Status copy_file_atomic(const std::string& src, const std::string& dst, mode_t mode) {
  std::string tmp = fmt::format("{}.tmp.{}", dst, ::getpid());
  std::error_code ec;
  fs::copy_file(src, tmp, fs::copy_options::overwrite_existing, ec);
  if (ec) {
    ::unlink(tmp.c_str());
    return Status::io_error(fmt::format("copying {} to {}: {}", src, dst, ec.message()));
  }
  if (::chmod(tmp.c_str(), mode) != 0 || ::rename(tmp.c_str(), dst.c_str()) != 0) {
    Status s = Status::from_errno(dst, errno);
    ::unlink(tmp.c_str());
    return s;
  }
  return Status();
}

// Hard-links `src` to `dst`, replacing `dst`; copies when the file system refuses the link.
Status link_or_copy(const std::string& src, const std::string& dst, mode_t copy_mode) {
  for (int tries = 0; tries < 3; ++tries) {
    if (::link(src.c_str(), dst.c_str()) == 0) return Status();
    int err = errno;
    if (err == EEXIST) {
      if (::unlink(dst.c_str()) != 0 && errno != ENOENT) return Status::from_errno(dst, errno);
      continue;
    }
    if (err == EXDEV || err == EPERM || err == EMLINK || err == ENOTSUP || err == EACCES) {
      return copy_file_atomic(src, dst, copy_mode);
    }
    return Status::from_errno(fmt::format("linking {} to {}", src, dst), err);
  }
  return Status::io_error(fmt::format("{}: keeps being recreated while mflow replaces it", dst));
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

// Reports whether some process holds the run's lock. A shared probe (not exclusive) is used
// so that two readers probing at the same instant never see each other as the owner.
bool run_lock_held(const std::string& lock_path) {
  // A lock that is not a regular file (a FIFO put there by hand) is held by no mflow, and
  // opening it plainly would block.
  auto fd = base::open_regular_file(lock_path);
  if (!fd.ok()) return false;
  while (::flock(fd->get(), LOCK_SH | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    return errno == EWOULDBLOCK;
  }
  return false;  // closing the fd drops the probe
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

  const std::string format_path = layout::format_file(root);
  auto text = base::read_regular_file(format_path);
  if (!text.ok() && create && !exists(format_path)) {
    // Initialise, refusing to take over a directory that holds something else. FORMAT is
    // published with link(2), which fails if it exists, so concurrent initialisers agree.
    auto names = list_dir(root);
    if (!names.ok()) return names.status();
    bool foreign = std::any_of(names->begin(), names->end(), [](const std::string& n) {
      return n.rfind(".FORMAT.", 0) != 0 && n.rfind(".ID.", 0) != 0 && n != "runs" &&
             n != "objects" && n != layout::kIdentityFile;
    });
    if (!foreign || exists(format_path)) {
      static std::atomic<unsigned> counter{0};
      std::string tmp = fmt::format("{}/.FORMAT.{}.{}.tmp", root, ::getpid(), counter++);
      MFLOW_RETURN_IF_ERROR(base::write_file_atomic(
          tmp, fmt::format("{} {}\n", layout::kFormatMagic, kFormatVersion), /*durable=*/true));
      int rc = ::link(tmp.c_str(), format_path.c_str());
      int err = errno;
      ::unlink(tmp.c_str());
      if (rc != 0 && err != EEXIST) return Status::from_errno(format_path, err);
    } else {
      return Status::invalid(fmt::format(
          "{} is not empty and has no FORMAT file, so it is not an mflow datastore; refusing to "
          "use it (pass --datastore with a new or empty directory)",
          root));
    }
    text = base::read_regular_file(format_path);
  }
  if (!text.ok()) {
    if (!exists(format_path)) {
      return Status::invalid(fmt::format(
          "{} is not an mflow datastore (no FORMAT file); point --datastore or MFLOW_DATASTORE "
          "at a datastore",
          root));
    }
    return text.status();
  }
  auto version = parse_format_file(format_path, text.value());
  if (!version.ok()) return version.status();
  if (version.value() > kFormatVersion) {
    return Status::invalid(fmt::format(
        "datastore {} has format version {}, but this mflow ({}) reads versions up to {}; "
        "upgrade mflow, or use another datastore (--datastore / MFLOW_DATASTORE)",
        root, version.value(), MFLOW_VERSION, kFormatVersion));
  }
  if (version.value() < 1) {
    return Status::invalid(
        fmt::format("{}: format version {} does not exist", format_path, version.value()));
  }
  Datastore store(root);
  if (create) {
    MFLOW_RETURN_IF_ERROR(base::make_dirs(layout::runs_dir(root)));
    MFLOW_RETURN_IF_ERROR(base::make_dirs(layout::object_tmp_dir(root)));
    MFLOW_RETURN_IF_ERROR(store.identity().status());
  }
  return store;
}

Result<std::string> Datastore::existing_identity() const {
  const std::string path = layout::identity_file(root_);
  auto text = base::read_file(path);
  if (!text.ok()) return text.status();
  std::string_view id = text.value();
  if (!id.empty() && id.back() == '\n') id.remove_suffix(1);
  if (!layout::is_datastore_id(id)) {
    return Status::invalid(fmt::format(
        "{}: not a datastore identity (expected 32 lowercase hex digits); it was changed "
        "outside mflow. Restore it, or delete it to give the datastore a new identity (mflow "
        "then no longer recognises the Kubernetes Jobs of its earlier runs)",
        path));
  }
  return std::string(id);
}

Result<std::string> Datastore::identity() const {
  auto existing = existing_identity();
  if (existing.ok() || exists(layout::identity_file(root_))) return existing;
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
  // Publish with link(2), which fails when ID exists: of concurrent first users exactly one
  // wins, and every one of them reads the winner back. (An object store does the same with
  // a conditional put, If-None-Match: *.)
  static std::atomic<unsigned> counter{0};
  const std::string path = layout::identity_file(root_);
  std::string tmp = fmt::format("{}/.ID.{}.{}.tmp", root_, ::getpid(), counter++);
  MFLOW_RETURN_IF_ERROR(base::write_file_atomic(tmp, id + "\n", /*durable=*/true));
  int rc = ::link(tmp.c_str(), path.c_str());
  int err = errno;
  ::unlink(tmp.c_str());
  if (rc != 0 && err != EEXIST) return Status::from_errno(path, err);
  return existing_identity();
}

// ---- runs -------------------------------------------------------------------------------

Status Datastore::lock_resume(const std::string& origin_run_id, RunLock* lock) {
  std::string path = layout::resume_lock_file(root_, origin_run_id);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) return Status::from_errno(path, errno);
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) {
      return Status::conflict(fmt::format(
          "run {} is being resumed by another mflow (it holds {}); wait for that resume to end, "
          "then resume the run it started if needed", origin_run_id, path));
    }
    return Status::from_errno(path, errno);
  }
  *lock = RunLock(std::move(fd));
  return Status::ok_status();
}

Result<RunInfo> Datastore::create_run(RunInfo info, RunLock* lock) {
  if (lock == nullptr) return Status::internal("create_run needs a RunLock to hold the run's lock");
  const std::string runs = layout::runs_dir(root_);
  MFLOW_RETURN_IF_ERROR(base::make_dirs(runs));
  auto names = list_dir(runs);
  if (!names.ok()) return names.status();
  uint64_t next = 1;
  for (const auto& n : names.value()) {
    if (layout::is_run_id(n)) next = std::max<uint64_t>(next, std::stoull(n) + 1);
  }
  // mkdir is the allocation: exactly one process succeeds for each id. On a collision the
  // next id is tried, so concurrent creators spread over consecutive ids.
  std::string run_id;
  for (int tries = 0;; ++tries, ++next) {
    if (tries == 10000) {
      return Status::io_error(fmt::format("{}: could not allocate a run id", runs));
    }
    std::string candidate = std::to_string(next);
    std::string dir = layout::run_dir(root_, candidate);
    if (::mkdir(dir.c_str(), 0755) == 0) {
      run_id = candidate;
      break;
    }
    if (errno != EEXIST) return Status::from_errno(dir, errno);
  }

  std::string lock_path = layout::run_lock_file(root_, run_id);
  // O_CLOEXEC: task processes must not inherit the lock, or a killed mflow would still look
  // alive while its orphans run.
  UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) return Status::from_errno(lock_path, errno);
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    return Status::from_errno(lock_path, errno);
  }
  info.run_id = run_id;
  info.status = RunStatus::kRunning;
  MFLOW_RETURN_IF_ERROR(
      base::write_file_atomic(layout::run_file(root_, run_id), run_to_json(info)));
  // Set aside room for the records that say how the run ended: on a full disk the task that
  // hit ENOSPC and the run itself must still be recorded (write_record gives it up). Best
  // effort: a disk already too full for it fails soon enough, and says so.
  const std::string reserve(kRecordReserveBytes, '\0');
  (void)base::write_file_atomic(layout::run_reserve_file(root_, run_id), reserve);
  *lock = RunLock(std::move(fd));
  return info;
}

Status Datastore::write_record(const std::string& run_id, const std::string& path,
                               const std::string& content, bool durable) {
  Status s = base::write_file_atomic(path, content, durable);
  if (s.ok()) return s;
  // Most likely a full disk: give up the run's reserve and try once more.
  if (::unlink(layout::run_reserve_file(root_, run_id).c_str()) != 0) return s;
  return base::write_file_atomic(path, content, durable);
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
      write_record(info.run_id, layout::run_file(root_, info.run_id), run_to_json(info), durable));
  if (durable) ::unlink(layout::run_reserve_file(root_, info.run_id).c_str());  // not needed now
  return Status();
}

Result<RunInfo> Datastore::read_run(const std::string& run_id) const {
  MFLOW_RETURN_IF_ERROR(check_run_id(run_id));
  const std::string path = layout::run_file(root_, run_id);
  auto text = base::read_regular_file(path);
  if (!text.ok()) {
    if (!exists(layout::run_dir(root_, run_id))) {
      return Status::not_found(fmt::format("no run {} in datastore {}", run_id, root_));
    }
    if (!exists(path)) {
      return Status::not_found(fmt::format(
          "run {} has no {} (it is being created, or mflow was killed while creating it; a "
          "directory like this whose lock is free can be deleted)",
          run_id, path));
    }
    return text.status();
  }
  auto run = run_from_json(text.value(), path);
  if (!run.ok()) return run.status();
  if (run->run_id != run_id) {
    return Status::invalid(
        fmt::format("{}: records run id '{}', expected '{}'", path, run->run_id, run_id));
  }
  if (run->status == RunStatus::kRunning && !run_lock_held(layout::run_lock_file(root_, run_id))) {
    run->status = RunStatus::kCrashed;
  }
  return run;
}

Result<std::vector<RunInfo>> Datastore::list_runs(const std::string& flow,
                                                  std::vector<Status>* problems) const {
  auto names = list_dir(layout::runs_dir(root_));
  if (!names.ok()) return names.status();
  std::vector<std::string> ids;
  for (auto& n : names.value()) {
    if (layout::is_run_id(n)) ids.push_back(std::move(n));
  }
  std::sort(ids.begin(), ids.end(), run_id_less);
  std::vector<RunInfo> out;
  for (const auto& id : ids) {
    if (!exists(layout::run_file(root_, id))) continue;  // being created, or never was
    auto run = read_run(id);
    if (!run.ok()) {
      if (problems) problems->push_back(run.status());
      continue;
    }
    if (flow.empty() || run->flow == flow) out.push_back(std::move(run.value()));
  }
  return out;
}

Result<RunInfo> Datastore::latest_run(const std::string& flow) const {
  auto names = list_dir(layout::runs_dir(root_));
  if (!names.ok()) return names.status();
  std::vector<std::string> ids;
  for (auto& n : names.value()) {
    if (layout::is_run_id(n)) ids.push_back(std::move(n));
  }
  std::sort(ids.begin(), ids.end(), run_id_less);
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    auto run = read_run(*it);
    if (run.ok() && (flow.empty() || run->flow == flow)) return run;
  }
  if (flow.empty()) return Status::not_found(fmt::format("no runs in datastore {}", root_));
  return Status::not_found(fmt::format("no run of flow '{}' in datastore {}", flow, root_));
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

Status Datastore::write_task(const TaskRecord& task) {
  MFLOW_RETURN_IF_ERROR(check_task_names(task.run_id, task.step, task.task_id));
  // No fsync per task: a crash of mflow loses nothing (rename is atomic), and the final
  // write_run syncs the file system once for the whole run.
  std::string path = layout::task_file(root_, task.run_id, task.step, task.task_id);
  const std::string json = task_to_json(task);
  Status s = write_record(task.run_id, path, json, false);
  if (s.ok() || exists(layout::task_dir(root_, task.run_id, task.step, task.task_id))) return s;
  MFLOW_RETURN_IF_ERROR(
      base::make_dirs(layout::task_dir(root_, task.run_id, task.step, task.task_id)));
  return write_record(task.run_id, path, json, false);
}

Result<TaskRecord> Datastore::read_task(const std::string& run_id, const std::string& step,
                                        const std::string& task_id) const {
  MFLOW_RETURN_IF_ERROR(check_task_names(run_id, step, task_id));
  std::string path = layout::task_file(root_, run_id, step, task_id);
  auto text = base::read_regular_file(path);
  if (!text.ok()) {
    if (!exists(path)) {
      return Status::not_found(
          fmt::format("run {} has no task {}/{} (no {})", run_id, step, task_id, path));
    }
    return text.status();
  }
  auto task = task_from_json(text.value(), path);
  if (!task.ok()) return task.status();
  if (task->step != step || task->task_id != task_id) {
    return Status::invalid(fmt::format("{}: records task {}/{}, expected {}/{}", path, task->step,
                                       task->task_id, step, task_id));
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
  if (auto names = list_dir(layout::task_dir(root_, run_id, step, task_id)); names.ok()) {
    for (const auto& name : names.value()) {
      // <attempt>.stdout / <attempt>.stderr
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
  if (!exists(layout::run_dir(root_, run_id))) {
    return Status::not_found(fmt::format("no run {} in datastore {}", run_id, root_));
  }
  std::vector<std::string> steps;
  if (!step.empty()) {
    if (!layout::valid_component(step)) return bad_name("step name", step, kComponentRule);
    steps.push_back(step);
  } else {
    auto names = list_dir(layout::tasks_dir(root_, run_id));
    if (!names.ok()) return names.status();
    for (auto& n : names.value()) {
      if (layout::valid_component(n)) steps.push_back(std::move(n));
    }
    std::sort(steps.begin(), steps.end());
  }
  std::vector<TaskRecord> out;
  for (const auto& s : steps) {
    auto names = list_dir(layout::step_dir(root_, run_id, s));
    if (!names.ok()) return names.status();
    size_t first = out.size();
    for (const auto& id : names.value()) {
      if (!layout::valid_component(id)) continue;
      std::string path = layout::task_file(root_, run_id, s, id);
      auto text = base::read_regular_file(path);
      if (!text.ok()) {
        // A task directory without task.json is a task being set up or still running.
        if (exists(path)) {
          if (problems) problems->push_back(text.status());
        } else if (include_running) {
          if (auto running = running_task(run_id, s, id); running.ok()) {
            out.push_back(std::move(running.value()));
          }
        }
        continue;
      }
      auto task = task_from_json(text.value(), path);
      if (task.ok() && (task->step != s || task->task_id != id)) {
        task = Status::invalid(fmt::format("{}: records task {}/{}, expected {}/{}", path,
                                           task->step, task->task_id, s, id));
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
      std::string src =
          layout::log_file(root_, from.run_id, from.step, from.task_id, a.attempt, err_stream);
      if (!exists(src)) continue;  // the attempt never produced that stream
      std::string dst =
          layout::log_file(root_, to_run_id, from.step, from.task_id, a.attempt, err_stream);
      MFLOW_RETURN_IF_ERROR(link_or_copy(src, dst, 0644));
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
  std::string obj = layout::object_path(root_, ref.sha256);
  if (exists(obj)) {
    ::unlink(path.c_str());  // deduplicated: the store already has these bytes
    return ref;
  }
  MFLOW_RETURN_IF_ERROR(base::make_dirs(layout::object_fanout_dir(root_, ref.sha256)));
  if (::chmod(path.c_str(), 0444) != 0) return Status::from_errno(path, errno);
  MFLOW_RETURN_IF_ERROR(seal(path));
  if (::rename(path.c_str(), obj.c_str()) != 0) {
    if (errno == EXDEV) return copy_object(path);
    return Status::from_errno(fmt::format("moving {} to {}", path, obj), errno);
  }
  return ref;
}

Result<ArtifactRef> Datastore::copy_object(const std::string& path) {
  // Copy and hash in one pass into objects/tmp, then rename into place.
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
  if (s.ok()) s = publish_object(tmp, ref.sha256);
  ::unlink(tmp.c_str());
  if (!s.ok()) return s;
  return ref;
}

Status Datastore::publish_object(const std::string& tmp, const std::string& sha256) {
  std::string obj = layout::object_path(root_, sha256);
  if (exists(obj)) return Status();
  MFLOW_RETURN_IF_ERROR(base::make_dirs(layout::object_fanout_dir(root_, sha256)));
  MFLOW_RETURN_IF_ERROR(seal(tmp));
  if (::rename(tmp.c_str(), obj.c_str()) != 0) {
    return Status::from_errno(fmt::format("moving {} to {}", tmp, obj), errno);
  }
  return Status();
}

Result<ArtifactRef> Datastore::put_bytes(std::string_view bytes) {
  ArtifactRef ref{base::sha256_hex(bytes), static_cast<int64_t>(bytes.size())};
  if (exists(layout::object_path(root_, ref.sha256))) return ref;
  std::string tmp_dir = layout::object_tmp_dir(root_);
  MFLOW_RETURN_IF_ERROR(base::make_dirs(tmp_dir));
  std::string tmp = temp_name(tmp_dir);
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
  if (!fd) return Status::from_errno(tmp, errno);
  Status s = base::write_all(fd.get(), bytes.data(), bytes.size(), tmp);
  fd.reset();
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
  std::string path = layout::object_path(root_, ref.sha256);
  auto bytes = base::read_regular_file(path);
  if (!bytes.ok()) {
    if (!exists(path)) {
      return Status::not_found(fmt::format(
          "object {} is missing from datastore {} (it was deleted by hand; re-run the task that "
          "produced it)",
          ref.sha256, root_));
    }
    return bytes.status();
  }
  if (static_cast<int64_t>(bytes->size()) != ref.size ||
      base::sha256_hex(bytes.value()) != ref.sha256) {
    return Status::io_error(fmt::format(
        "{}: object is damaged (its content no longer matches its name); delete it and re-run "
        "the task that produced it",
        path));
  }
  return bytes;
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
    std::string obj = layout::object_path(root_, ref.sha256);
    if (!exists(obj)) {
      return Status::not_found(fmt::format(
          "artifact '{}': object {} is missing from datastore {} (it was deleted by hand; run "
          "the flow again without resume)",
          name, ref.sha256, root_));
    }
    struct stat st;
    if (::lstat(obj.c_str(), &st) != 0) return Status::from_errno(obj, errno);
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
    std::string entry = dir + "/" + name;
    MFLOW_RETURN_IF_ERROR(link_or_copy(obj, entry, 0444));
    struct stat placed;
    if (::lstat(entry.c_str(), &placed) == 0 && placed.st_ino != st.st_ino) {
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
