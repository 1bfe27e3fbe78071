#include "base/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>

#include <fmt/core.h>

#include "base/unique_fd.h"

namespace mflow::base {

namespace {

Status read_fd_chunks(int fd, const std::string& path,
                      const std::function<void(const char* data, size_t size)>& sink) {
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno(path, errno);
    }
    if (n == 0) return Status();
    sink(buf, static_cast<size_t>(n));
  }
}

}  // namespace

Status read_file_chunks(const std::string& path,
                        const std::function<void(const char* data, size_t size)>& sink) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::from_errno(path, errno);
  return read_fd_chunks(fd.get(), path, sink);
}

Result<std::string> read_file(const std::string& path) {
  std::string out;
  MFLOW_RETURN_IF_ERROR(
      read_file_chunks(path, [&](const char* data, size_t size) { out.append(data, size); }));
  return out;
}

Result<UniqueFd> open_regular_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return Status::from_errno(path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Status::from_errno(path, errno);
  if (!S_ISREG(st.st_mode)) {
    const char* what = S_ISFIFO(st.st_mode)  ? "a FIFO"
                       : S_ISCHR(st.st_mode) ? "a character device"
                       : S_ISBLK(st.st_mode) ? "a block device"
                       : S_ISDIR(st.st_mode) ? "a directory"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a plain file";
    return Status::invalid(fmt::format("{} is not a regular file (it is {})", path, what));
  }
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

Result<std::string> read_regular_file(const std::string& path) {
  auto fd = open_regular_file(path);
  if (!fd.ok()) return fd.status();
  std::string out;
  MFLOW_RETURN_IF_ERROR(read_fd_chunks(fd->get(), path, [&](const char* data, size_t size) {
    out.append(data, size);
  }));
  return out;
}

Status write_all(int fd, const void* data, size_t size, const std::string& what) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno(what, errno);
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status();
}

Status write_file_atomic(const std::string& path, std::string_view content, bool durable) {
  // The temp name is unique per process and call so concurrent writers never share a temp.
  static std::atomic<unsigned> counter{0};
  std::string tmp = fmt::format("{}.tmp.{}.{}", path, ::getpid(), counter++);
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return Status::from_errno(tmp, errno);
  Status s = write_all(fd.get(), content.data(), content.size(), tmp);
  if (s.ok() && durable && ::fsync(fd.get()) != 0) s = Status::from_errno(tmp, errno);
  fd.reset();
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Status::from_errno(path, errno);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  if (durable) {
    std::string dir = std::filesystem::path(path).parent_path().string();
    UniqueFd dfd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dfd) ::fsync(dfd.get());
  }
  return Status();
}

Status write_output_file(const std::string& path, std::string_view content) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode)) {
    return write_file_atomic(path, content);
  }
  // A rename would replace the device node or FIFO itself (as root, even /dev/full), and the
  // bytes would never reach the reader.
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Status::from_errno(path, errno);
  MFLOW_RETURN_IF_ERROR(write_all(fd.get(), content.data(), content.size(), path));
  if (::close(fd.release()) != 0) return Status::from_errno(path, errno);
  return Status();
}

Status write_file_exclusive(const std::string& path, std::string_view content) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd) {
    if (errno == EEXIST) return Status::conflict(path + ": already exists");
    return Status::from_errno(path, errno);
  }
  return write_all(fd.get(), content.data(), content.size(), path);
}

Status make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Status::io_error(path + ": " + ec.message());
  return Status();
}

}  // namespace mflow::base
