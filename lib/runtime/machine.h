// Machine: what this computer offers local tasks (cpus, memory, GPUs), and the preflight
// that refuses, before anything runs, a local step that could never fit. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "graph/graph.h"

namespace mflow::runtime {

struct Machine {
  double cpus = 1;
  int64_t memory_mb = 0;
  int64_t gpus = 0;
  /// The device ids GPU slot 0, 1, ... stand for in a task's CUDA_VISIBLE_DEVICES: mflow's
  /// own CUDA_VISIBLE_DEVICES list when it has one (slot 0 of "2,3" is GPU 2), else "0".."n-1".
  std::vector<std::string> gpu_ids;
  std::string gpu_id(size_t slot) const {
    return slot < gpu_ids.size() ? gpu_ids[slot] : std::to_string(slot);
  }
};

/// Reads online cpus, MemTotal (/proc/meminfo) and NVIDIA device nodes (/dev/nvidiaN).
/// MFLOW_LOCAL_GPUS overrides the GPU count (used by tests and machines without /dev); a
/// value that is not a whole number >= 0 is an error naming it.
base::Result<Machine> detect_machine();

/// One message per local step whose explicit resources exceed `machine`; empty when all fit.
/// `on_kubernetes(step)` tells which steps leave the machine (they are not checked).
std::vector<std::string> preflight(const graph::Graph& graph, const Machine& machine,
                                   const std::vector<bool>& on_kubernetes);

}  // namespace mflow::runtime
