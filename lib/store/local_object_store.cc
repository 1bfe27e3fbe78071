#include "store/local_object_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <vector>

#include <fmt/core.h>

#include "base/file_util.h"
#include "base/hash.h"
#include "base/unique_fd.h"

namespace mflow::store {

using base::Result;
using base::Status;
using base::UniqueFd;

namespace {

std::string parent_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

// A hidden temp name beside `path`: listings skip it, and no key can name it (keys never
// have a component starting with '.').
std::string temp_beside(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  size_t slash = path.rfind('/');
  return fmt::format("{}/.{}.{}.{}.tmp", path.substr(0, slash), path.substr(slash + 1), ::getpid(),
                     counter++);
}

bool missing(int err) { return err == ENOENT || err == ENOTDIR; }

// Runs `op`; when it fails because the parent directory is missing, creates it and retries.
template <typename Op>
int with_parent(const std::string& path, Op op) {
  int rc = op();
  if (rc != 0 && errno == ENOENT) {
    int err = errno;
    if (!base::make_dirs(parent_of(path)).ok()) {
      errno = err;
      return rc;
    }
    rc = op();
  }
  return rc;
}

// Copies `src` (an open fd) into a new temp file beside `dest`, keeping mode and times.
Result<std::string> copy_beside(int in, const std::string& src, const std::string& dest) {
  struct stat st;
  if (::fstat(in, &st) != 0) return Status::from_errno(src, errno);
  std::string tmp = temp_beside(dest);
  int out_fd = -1;
  with_parent(tmp, [&] {
    out_fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    return out_fd < 0 ? -1 : 0;
  });
  UniqueFd out(out_fd);
  if (!out) return Status::from_errno(tmp, errno);
  std::vector<char> buf(1 << 20);
  Status s;
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      s = Status::from_errno(src, errno);
      break;
    }
    if (n == 0) break;
    s = base::write_all(out.get(), buf.data(), static_cast<size_t>(n), tmp);
    if (!s.ok()) break;
  }
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (s.ok() && ::fchmod(out.get(), st.st_mode & 07777) != 0) s = Status::from_errno(tmp, errno);
  if (s.ok() && ::futimens(out.get(), times) != 0) s = Status::from_errno(tmp, errno);
  if (s.ok() && ::close(out.release()) != 0) s = Status::from_errno(tmp, errno);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return tmp;
}

// Publishes the complete file `tmp` at `dest`: rename (kOverwrite) or link(2), which never
// replaces (kIfAbsent). `tmp` is gone afterwards unless an error other than kConflict.
Status publish(const std::string& tmp, const std::string& dest, PutMode mode) {
  if (mode == PutMode::kOverwrite) {
    if (::rename(tmp.c_str(), dest.c_str()) == 0) return Status();
    Status s = Status::from_errno(dest, errno);
    ::unlink(tmp.c_str());
    return s;
  }
  int rc = ::link(tmp.c_str(), dest.c_str());
  int err = errno;
  ::unlink(tmp.c_str());
  if (rc == 0) return Status();
  if (err == EEXIST) return Status::conflict(fmt::format("{} exists", dest));
  return Status::from_errno(dest, err);
}

bool link_refused(int err) {
  return err == EXDEV || err == EPERM || err == EMLINK || err == ENOTSUP || err == EACCES;
}

class FlockLease : public Lease {
 public:
  explicit FlockLease(UniqueFd fd) : fd_(std::move(fd)) {}

 private:
  UniqueFd fd_;  // closing it releases the lock
};

}  // namespace

Result<std::string> LocalObjectStore::get(const std::string& key) const {
  const std::string p = path(key);
  auto text = base::read_regular_file(p);
  if (text.ok()) return text;
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) {
    if (missing(errno)) return Status::not_found(fmt::format("{}: no such file", p));
    return text.status();
  }
  // It exists now. A file published (link or rename, always whole) between the failed open
  // and the lstat is read again: reporting the open's ENOENT as an I/O error made one of
  // several concurrent first users of a datastore fail on FORMAT or ID.
  return base::read_regular_file(p);
}

Status LocalObjectStore::put(const std::string& key, std::string_view bytes, PutMode mode,
                             bool durable) {
  const std::string p = path(key);
  std::string tmp = temp_beside(p);
  int fd_raw = -1;
  with_parent(tmp, [&] {
    fd_raw = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    return fd_raw < 0 ? -1 : 0;
  });
  UniqueFd fd(fd_raw);
  if (!fd) return Status::from_errno(tmp, errno);
  Status s = base::write_all(fd.get(), bytes.data(), bytes.size(), tmp);
  if (s.ok() && durable && ::fsync(fd.get()) != 0) s = Status::from_errno(tmp, errno);
  if (s.ok() && ::close(fd.release()) != 0) s = Status::from_errno(tmp, errno);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  MFLOW_RETURN_IF_ERROR(publish(tmp, p, mode));
  if (durable) {
    // The rename (or link) itself survives a power loss only once the directory is synced.
    UniqueFd dir(::open(parent_of(p).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir && ::fsync(dir.get()) != 0) return Status::from_errno(parent_of(p), errno);
  }
  return Status();
}

Status LocalObjectStore::put_file(const std::string& key, const std::string& src, PutMode mode,
                                  bool consume) {
  const std::string dest = path(key);
  struct stat s_st, d_st;
  if (::lstat(src.c_str(), &s_st) != 0) return Status::from_errno(src, errno);
  if (::lstat(dest.c_str(), &d_st) == 0 && d_st.st_ino == s_st.st_ino &&
      d_st.st_dev == s_st.st_dev) {
    return Status();  // the file already is the object
  }
  if (consume) {
    int rc = with_parent(dest, [&] {
      return mode == PutMode::kOverwrite ? ::rename(src.c_str(), dest.c_str())
                                         : ::link(src.c_str(), dest.c_str());
    });
    int err = errno;
    if (rc == 0 || (mode == PutMode::kIfAbsent && err == EEXIST)) {
      if (mode == PutMode::kIfAbsent) ::unlink(src.c_str());
      if (rc == 0) return Status();
      return Status::conflict(fmt::format("{} exists", dest));
    }
    if (!link_refused(err)) {
      return Status::from_errno(fmt::format("moving {} to {}", src, dest), err);
    }
    // Another file system: copy below, then give the source up.
  }
  UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return Status::from_errno(src, errno);
  auto tmp = copy_beside(in.get(), src, dest);
  if (!tmp.ok()) return tmp.status();
  Status s = publish(tmp.value(), dest, mode);
  if (consume && (s.ok() || s.code() == base::StatusCode::kConflict)) ::unlink(src.c_str());
  return s;
}

Status LocalObjectStore::get_file(const std::string& key, const std::string& dest,
                                  const std::optional<std::string>& expect_sha256) const {
  const std::string src = path(key);
  if (src == dest) {
    // Asked to place the object where it already is (a workspace that is the store).
    struct stat st;
    if (::lstat(src.c_str(), &st) == 0) return Status();
    if (missing(errno)) return Status::not_found(fmt::format("{}: no such file", src));
    return Status::from_errno(src, errno);
  }
  if (expect_sha256) {
    auto sha = base::sha256_file(src);
    if (!sha.ok()) {
      struct stat st;
      if (::lstat(src.c_str(), &st) != 0 && missing(errno)) {
        return Status::not_found(fmt::format("{}: no such file", src));
      }
      return sha.status();
    }
    if (sha.value() != *expect_sha256) {
      return Status::io_error(fmt::format("{}: content does not match its SHA-256 {}", src,
                                          *expect_sha256));
    }
  }
  for (int tries = 0; tries < 3; ++tries) {
    if (::link(src.c_str(), dest.c_str()) == 0) return Status();
    int err = errno;
    if (err == EEXIST) {
      if (::unlink(dest.c_str()) != 0 && errno != ENOENT) return Status::from_errno(dest, errno);
      continue;
    }
    if (missing(err)) {
      struct stat st;
      if (::lstat(src.c_str(), &st) != 0 && missing(errno)) {
        return Status::not_found(fmt::format("{}: no such file", src));
      }
      return Status::from_errno(dest, err);
    }
    if (!link_refused(err)) {
      return Status::from_errno(fmt::format("linking {} to {}", src, dest), err);
    }
    UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return Status::from_errno(src, errno);
    auto tmp = copy_beside(in.get(), src, dest);
    if (!tmp.ok()) return tmp.status();
    return publish(tmp.value(), dest, PutMode::kOverwrite);
  }
  return Status::io_error(fmt::format("{}: keeps being recreated while mflow replaces it", dest));
}

Result<std::string> LocalObjectStore::get_range(const std::string& key, int64_t offset,
                                                int64_t max_bytes) const {
  const std::string p = path(key);
  auto fd = base::open_regular_file(p);
  if (!fd.ok()) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) {
      if (missing(errno)) return Status::not_found(fmt::format("{}: no such file", p));
      return fd.status();
    }
    fd = base::open_regular_file(p);  // created meanwhile (see get())
    if (!fd.ok()) return fd.status();
  }
  std::string out;
  out.resize(static_cast<size_t>(std::max<int64_t>(max_bytes, 0)));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::pread(fd->get(), out.data() + got, out.size() - got,
                        static_cast<off_t>(offset) + static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno(p, errno);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

Result<std::optional<ObjectInfo>> LocalObjectStore::head(const std::string& key) const {
  const std::string p = path(key);
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) {
    if (missing(errno)) return std::optional<ObjectInfo>();
    return Status::from_errno(p, errno);
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::invalid(fmt::format("{} is not a regular file", p));
  }
  ObjectInfo info;
  info.key = key;
  info.size = st.st_size;
  info.modified = std::chrono::system_clock::time_point(
      std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec));
  return std::optional<ObjectInfo>(std::move(info));
}

Result<Listing> LocalObjectStore::list(const std::string& prefix) const {
  Listing out;
  std::string dir = prefix.empty() ? root_ : path(prefix.substr(0, prefix.size() - 1));
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (missing(errno)) return out;
    return Status::from_errno(dir, errno);
  }
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name.empty() || name[0] == '.') continue;
    unsigned char type = e->d_type;
    struct stat st;
    bool have_stat = false;
    if (type == DT_UNKNOWN || type == DT_REG) {
      std::string p = dir + "/" + std::string(name);
      if (::lstat(p.c_str(), &st) != 0) continue;  // removed meanwhile
      have_stat = true;
      type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
    }
    if (type == DT_DIR) {
      out.subdirs.emplace_back(name);
    } else if (type == DT_REG && have_stat) {
      ObjectInfo info;
      info.key = prefix + std::string(name);
      info.size = st.st_size;
      info.modified = std::chrono::system_clock::time_point(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec));
      out.objects.push_back(std::move(info));
    }
  }
  ::closedir(d);
  return out;
}

Status LocalObjectStore::remove(const std::string& key) {
  const std::string p = path(key);
  if (::unlink(p.c_str()) != 0 && !missing(errno)) return Status::from_errno(p, errno);
  return Status();
}

Result<std::unique_ptr<Lease>> LocalObjectStore::hold(const std::string& key) {
  const std::string p = path(key);
  int fd_raw = -1;
  // O_CLOEXEC: task processes must not inherit the lock, or a killed mflow would still look
  // alive while its orphans run.
  with_parent(p, [&] {
    fd_raw = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    return fd_raw < 0 ? -1 : 0;
  });
  UniqueFd fd(fd_raw);
  if (!fd) return Status::from_errno(p, errno);
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return Status::conflict(fmt::format("{} is held", p));
    return Status::from_errno(p, errno);
  }
  return std::unique_ptr<Lease>(new FlockLease(std::move(fd)));
}

Result<bool> LocalObjectStore::held(const std::string& key) const {
  // A lock that is not a regular file (a FIFO put there by hand) is held by no mflow, and
  // opening it plainly would block.
  auto fd = base::open_regular_file(path(key));
  if (!fd.ok()) return false;
  while (::flock(fd->get(), LOCK_SH | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    return errno == EWOULDBLOCK;
  }
  return false;  // closing the fd drops the probe
}

}  // namespace mflow::store
