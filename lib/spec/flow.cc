#include "spec/flow.h"

#include <cctype>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base/hash.h"

namespace mflow::spec {

const char* to_string(ParamType type) {
  switch (type) {
    case ParamType::kString: return "string";
    case ParamType::kInteger: return "integer";
    case ParamType::kNumber: return "number";
    case ParamType::kBoolean: return "boolean";
    case ParamType::kJson: return "json";
  }
  return "?";
}

const Step* Flow::find_step(const std::string& step_name) const {
  for (const auto& s : steps) {
    if (s.name == step_name) return &s;
  }
  return nullptr;
}

std::optional<std::chrono::seconds> parse_duration(const std::string& text) {
  if (text.empty()) return std::nullopt;
  int64_t total = 0;
  size_t i = 0;
  bool any = false;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
    int64_t n = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      n = n * 10 + (text[i] - '0');
      if (n > 100'000'000'000LL) return std::nullopt;  // far beyond any sane duration
      ++i;
    }
    int64_t unit = 1;
    if (i < text.size()) {
      switch (text[i]) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        case 'w': unit = 7 * 86400; break;
        default: return std::nullopt;
      }
      ++i;
    } else if (any) {
      return std::nullopt;  // "1h30" is ambiguous; a bare number only stands alone
    }
    total += n * unit;
    any = true;
  }
  return std::chrono::seconds(total);
}

std::string format_duration(std::chrono::seconds d) {
  int64_t s = d.count();
  if (s == 0) return "0s";
  std::string out;
  const std::pair<int64_t, char> units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
  for (auto [size, suffix] : units) {
    if (s >= size) {
      out += fmt::format("{}{}", s / size, suffix);
      s %= size;
    }
  }
  return out;
}

namespace {

nlohmann::json resources_json(const Resources& r) {
  nlohmann::json j = nlohmann::json::object();
  if (r.cpu) j["cpu"] = *r.cpu;
  if (r.memory_mb) j["memory"] = *r.memory_mb;
  if (r.disk_mb) j["disk"] = *r.disk_mb;
  if (r.gpu) j["gpu"] = *r.gpu;
  return j;
}

}  // namespace

std::string step_spec_hash(const Step& step) {
  // nlohmann::json objects are std::map-backed, so dump() is canonical (sorted keys).
  nlohmann::json j;
  j["format"] = 1;
  if (step.run.shell) {
    j["run"] = step.run.script;
  } else {
    j["run"] = step.run.argv;
  }
  j["next"] = step.next;
  j["foreach"] = step.foreach;
  j["join"] = step.join;
  j["resources"] = resources_json(step.resources);
  j["env"] = step.env;
  j["timeout"] = step.timeout ? step.timeout->count() : -1;
  j["retries"] = step.retries;
  j["retry_delay"] = step.retry_delay.count();
  if (step.kubernetes) {
    const auto& k = *step.kubernetes;
    nlohmann::json kj;
    kj["resources"] = resources_json(k.resources);
    kj["image"] = k.image;
    kj["namespace"] = k.namespace_name;
    kj["service_account"] = k.service_account;
    kj["image_pull_policy"] = k.image_pull_policy;
    kj["gpu_vendor"] = k.gpu_vendor;
    kj["node_selector"] = k.node_selector;
    kj["secrets"] = k.secrets;
    kj["env"] = k.env;
    kj["labels"] = k.labels;
    kj["annotations"] = k.annotations;
    nlohmann::json tol = nlohmann::json::array();
    for (const auto& t : k.tolerations) {
      tol.push_back({{"key", t.key}, {"operator", t.op}, {"value", t.value}, {"effect", t.effect},
                     {"seconds", t.toleration_seconds ? *t.toleration_seconds : -1}});
    }
    kj["tolerations"] = tol;
    j["kubernetes"] = kj;
  }
  return base::sha256_hex(j.dump());
}

}  // namespace mflow::spec
