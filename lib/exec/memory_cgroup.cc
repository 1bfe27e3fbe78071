#include "exec/memory_cgroup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/core.h>

#include "base/file_util.h"

namespace mflow::exec {

namespace {

base::Status write_value(const std::string& file, const std::string& value) {
  // cgroup files take one write(2); an atomic rename would not work on cgroupfs.
  std::ofstream out(file);
  if (!out) return base::Status::from_errno(file, errno);
  out << value;
  out.flush();
  if (!out) return base::Status::from_errno(file, errno);
  return base::Status();
}

// The cgroup v2 path of this process ("0::/some/path" in /proc/self/cgroup).
std::string own_v2_group() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return "/";
}

bool v2_has_memory(const std::string& dir) {
  auto controllers = base::read_file(dir + "/cgroup.controllers");
  return controllers.ok() && controllers->find("memory") != std::string::npos;
}

}  // namespace

MemoryCgroup::~MemoryCgroup() {
  // The group can only be removed once empty; the task's processes were reaped before the
  // attempt's completion was handled, so a few short retries cover the kernel's lag.
  for (int i = 0; i < 50; ++i) {
    if (::rmdir(path_.c_str()) == 0 || errno == ENOENT) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

base::Status MemoryCgroup::add(pid_t pid) {
  return write_value(path_ + "/cgroup.procs", std::to_string(pid));
}

bool MemoryCgroup::oom_killed() const {
  auto text = base::read_file(path_ + (v2_ ? "/memory.events" : "/memory.oom_control"));
  if (!text.ok()) return false;
  std::istringstream in(text.value());
  std::string key;
  int64_t value = 0;
  while (in >> key >> value) {
    if (key == "oom_kill" && value > 0) return true;
  }
  return false;
}

base::Result<MemoryCgroupRoot> MemoryCgroupRoot::open(const std::string& mount_root) {
  std::string name = fmt::format("mflow-{}", ::getpid());
  std::vector<std::string> tried;
  // cgroup v2: the memory controller must be enabled for our subtree.
  std::string v2_dir = mount_root + own_v2_group();
  if (v2_has_memory(mount_root) || v2_has_memory(v2_dir)) {
    std::string dir = v2_dir + "/" + name;
    if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) {
      if (v2_has_memory(dir)) return MemoryCgroupRoot(dir, true);
      ::rmdir(dir.c_str());
      tried.push_back(dir + ": memory controller not delegated to this subtree");
    } else {
      tried.push_back(fmt::format("{}: {}", dir, std::strerror(errno)));
    }
  }
  // cgroup v1 memory controller.
  for (const std::string& base : {mount_root + "/memory", mount_root}) {
    if (::access((base + "/memory.limit_in_bytes").c_str(), F_OK) != 0) continue;
    std::string dir = base + "/" + name;
    if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) return MemoryCgroupRoot(dir, false);
    tried.push_back(fmt::format("{}: {}", dir, std::strerror(errno)));
  }
  if (tried.empty()) tried.push_back("no cgroup memory controller is mounted under " + mount_root);
  std::string why;
  for (const auto& t : tried) why += (why.empty() ? "" : "; ") + t;
  return base::Status::unavailable("cannot enforce memory limits: " + why);
}

base::Result<std::unique_ptr<MemoryCgroup>> MemoryCgroupRoot::create(const std::string& name,
                                                                      int64_t limit_mb) {
  std::string dir = path_ + "/" + name;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return base::Status::from_errno(dir, errno);
  auto group = std::make_unique<MemoryCgroup>(dir, v2_);
  std::string bytes = std::to_string(limit_mb * 1024 * 1024);
  if (v2_) {
    MFLOW_RETURN_IF_ERROR(write_value(dir + "/memory.max", bytes));
    // Without swap the limit is a real ceiling; ignore kernels that lack the file.
    (void)write_value(dir + "/memory.swap.max", "0");
  } else {
    MFLOW_RETURN_IF_ERROR(write_value(dir + "/memory.limit_in_bytes", bytes));
    (void)write_value(dir + "/memory.memsw.limit_in_bytes", bytes);
  }
  return group;
}

MemoryCgroupRoot::MemoryCgroupRoot(MemoryCgroupRoot&& other) noexcept
    : path_(std::move(other.path_)), v2_(other.v2_) {
  other.path_.clear();
}

MemoryCgroupRoot::~MemoryCgroupRoot() {
  if (!path_.empty()) ::rmdir(path_.c_str());
}

}  // namespace mflow::exec
