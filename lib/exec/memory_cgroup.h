// MemoryCgroup: optional enforcement of a local task's memory request (`--enforce-resources`)
// through a memory cgroup per task attempt, so an out-of-memory kill is reported as
// OOMKilled exactly as on Kubernetes. Supports cgroup v2 (memory.max, memory.events) and the
// v1 memory controller (memory.limit_in_bytes, memory.oom_control). Where no writable memory
// controller exists, MemoryCgroupRoot::open() says why and the run goes on unenforced.
// Not thread-safe; owned by the scheduler thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"

namespace mflow::exec {

/// One task attempt's cgroup; removed (after its processes are gone) on destruction.
class MemoryCgroup {
 public:
  MemoryCgroup(std::string path, bool v2) : path_(std::move(path)), v2_(v2) {}
  ~MemoryCgroup();
  MemoryCgroup(const MemoryCgroup&) = delete;
  MemoryCgroup& operator=(const MemoryCgroup&) = delete;

  /// Moves a process (the task's leader; its children follow automatically) into the group.
  base::Status add(pid_t pid);
  /// True when the kernel OOM-killed a process of this group.
  bool oom_killed() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool v2_;
};

class MemoryCgroupRoot {
 public:
  /// Finds a writable memory controller and creates mflow's parent group in it
  /// (`mflow-<pid>`). `mount_root` is /sys/fs/cgroup except in tests.
  static base::Result<MemoryCgroupRoot> open(const std::string& mount_root = "/sys/fs/cgroup");

  /// A new group limited to `limit_mb` megabytes (swap included where the kernel allows).
  base::Result<std::unique_ptr<MemoryCgroup>> create(const std::string& name, int64_t limit_mb);

  const std::string& path() const { return path_; }
  bool v2() const { return v2_; }

  MemoryCgroupRoot(MemoryCgroupRoot&& other) noexcept;
  MemoryCgroupRoot& operator=(MemoryCgroupRoot&&) = delete;
  MemoryCgroupRoot(const MemoryCgroupRoot&) = delete;
  ~MemoryCgroupRoot();

 private:
  MemoryCgroupRoot(std::string path, bool v2) : path_(std::move(path)), v2_(v2) {}
  std::string path_;
  bool v2_;
};

}  // namespace mflow::exec
