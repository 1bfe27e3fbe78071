#include "runtime/machine.h"

#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include <fmt/core.h>

#include "base/strings.h"

namespace mflow::runtime {

base::Result<Machine> detect_machine() {
  Machine m;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  m.cpus = n > 0 ? static_cast<double>(n) : 1;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (meminfo >> key >> kb >> unit) {
    if (key == "MemTotal:") {
      m.memory_mb = kb / 1024;
      break;
    }
  }
  if (const char* gpus = std::getenv("MFLOW_LOCAL_GPUS")) {
    std::string_view text(gpus);
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), m.gpus);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || m.gpus < 0) {
      return base::Status::invalid(fmt::format(
          "MFLOW_LOCAL_GPUS={}: expected a whole number of GPUs (0 or more)", text));
    }
  } else {
    std::error_code ec;
    static const std::regex kNvidia("nvidia[0-9]+");
    for (const auto& entry : std::filesystem::directory_iterator("/dev", ec)) {
      if (std::regex_match(entry.path().filename().string(), kNvidia)) ++m.gpus;
    }
  }
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"); visible && *visible) {
    for (auto& id : base::split(visible, ',')) {
      if (!base::trim(id).empty()) m.gpu_ids.emplace_back(base::trim(id));
    }
  }
  return m;
}

std::vector<std::string> preflight(const graph::Graph& graph, const Machine& machine,
                                   const std::vector<bool>& on_kubernetes) {
  std::vector<std::string> problems;
  for (const auto& node : graph.nodes()) {
    if (on_kubernetes.at(node.index)) continue;
    const auto& r = node.step->resources;
    const std::string& file = graph.flow().file;
    auto where = fmt::format("{}:{}:{}: step '{}'", file, node.step->pos.line,
                             node.step->pos.column, node.name());
    const char* advice =
        "run it on Kubernetes with `--with kubernetes` (or give the step a `kubernetes` "
        "block), or lower its resources";
    // Every resource that does not fit, in one message: fixing one and rerunning must not be
    // how the next is found.
    std::vector<std::string> excess;
    if (r.cpu && *r.cpu > machine.cpus) {
      excess.push_back(fmt::format("{} CPU(s) but this machine has {} (--local-cpus)", *r.cpu,
                                   machine.cpus));
    }
    if (r.memory_mb && *r.memory_mb > machine.memory_mb) {
      excess.push_back(fmt::format("{} MB of memory but this machine has {} MB (--local-memory)",
                                   *r.memory_mb, machine.memory_mb));
    }
    if (r.gpu && *r.gpu > machine.gpus) {
      excess.push_back(fmt::format(
          "{} GPU(s) but this machine has {} (MFLOW_LOCAL_GPUS / --local-gpus)", *r.gpu,
          machine.gpus));
    }
    if (excess.empty()) continue;
    std::string asks = excess.back();
    if (excess.size() > 1) {
      excess.pop_back();
      asks = base::join(excess, ", ") + ", and " + asks;
    }
    problems.push_back(fmt::format("{} asks for {}; {}", where, asks, advice));
  }
  return problems;
}

}  // namespace mflow::runtime
