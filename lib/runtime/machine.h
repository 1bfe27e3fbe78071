// Machine: what this computer offers local tasks (cpus, memory, GPUs), and the preflight
// that refuses, before anything runs, a local step that could never fit. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/graph.h"

namespace mflow::runtime {

struct Machine {
  double cpus = 1;
  int64_t memory_mb = 0;
  int64_t gpus = 0;
};

/// Reads online cpus, MemTotal (/proc/meminfo) and NVIDIA device nodes (/dev/nvidiaN).
/// MFLOW_LOCAL_GPUS overrides the GPU count (used by tests and machines without /dev).
Machine detect_machine();

/// One message per local step whose explicit resources exceed `machine`; empty when all fit.
/// `on_kubernetes(step)` tells which steps leave the machine (they are not checked).
std::vector<std::string> preflight(const graph::Graph& graph, const Machine& machine,
                                   const std::vector<bool>& on_kubernetes);

}  // namespace mflow::runtime
