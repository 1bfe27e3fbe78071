#include "spec/flow_builder.h"

#include <algorithm>
#include <tuple>

#include <fmt/core.h>

#include "spec/schema.h"

namespace mflow::spec {
namespace {

using nlohmann::json;

// The text a task sees for a scalar setting (env values, parameter defaults).
std::string scalar_text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_number_integer()) return std::to_string(value.get<int64_t>());
  return value.dump();
}

const json* member(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string string_member(const json& object, const char* key) {
  const json* v = member(object, key);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

// Deep merge for `defaults`: objects merge key by key, anything else takes the step's value.
json merge(const json& base, const json& over) {
  if (!base.is_object() || !over.is_object()) return over;
  json out = base;
  for (const auto& [key, value] : over.items()) {
    out[key] = out.contains(key) ? merge(out[key], value) : value;
  }
  return out;
}

json merge_step(const json& defaults, const json& step) {
  if (!defaults.is_object()) return step;
  json out = step;
  for (const auto& [key, value] : defaults.items()) {
    if (!out.contains(key)) {
      out[key] = value;
    } else if (key == "kubernetes") {
      // `false` opts the step out; `true` means "on Kubernetes, with the defaults' settings".
      const json& mine = out[key];
      if (mine.is_boolean() && mine.get<bool>()) {
        out[key] = value.is_object() ? value : mine;
      } else if (mine.is_object() && value.is_object()) {
        out[key] = merge(value, mine);
      }
    } else {
      out[key] = merge(value, out[key]);
    }
  }
  return out;
}

class FlowBuilder {
 public:
  FlowBuilder(const Document& doc, const std::string& file, Diagnostics* diags)
      : doc_(doc), root_(doc.root), file_(file), diags_(diags) {}

  std::optional<Flow> build() {
    size_t errors_before = count_errors();
    Flow flow;
    flow.file = file_;
    flow.name = string_member(root_, "name");
    flow.name_pos = doc_.key_pos("/name");
    flow.description = string_member(root_, "description");
    if (const json* params = member(root_, "parameters"); params && params->is_object()) {
      for (const auto& [name, spec] : params->items()) {
        if (spec.is_object()) flow.parameters.push_back(parameter(name, spec));
      }
    }
    const json* defaults = member(root_, "defaults");
    if (defaults) check_settings(*defaults, "/defaults");
    if (const json* steps = member(root_, "steps"); steps && steps->is_object()) {
      for (const auto& [name, spec] : steps->items()) {
        if (!spec.is_object()) continue;
        std::string pointer = pointer_append("/steps", name);
        check_settings(spec, pointer);
        flow.steps.push_back(step(name, pointer, merge_step(defaults ? *defaults : json(), spec)));
      }
    }
    // Keep file order (JSON objects are sorted by key; positions are not).
    auto order = [](const auto& a, const auto& b) {
      return std::tie(a.pos.line, a.pos.column) < std::tie(b.pos.line, b.pos.column);
    };
    std::stable_sort(flow.steps.begin(), flow.steps.end(), order);
    std::stable_sort(flow.parameters.begin(), flow.parameters.end(), order);
    if (count_errors() > errors_before) return std::nullopt;
    return flow;
  }

 private:
  Parameter parameter(const std::string& name, const json& spec) {
    std::string pointer = pointer_append("/parameters", name);
    Parameter p;
    p.name = name;
    p.pos = doc_.key_pos(pointer);
    p.help = string_member(spec, "help");
    const json* required = member(spec, "required");
    p.required = required && required->is_boolean() && required->get<bool>();
    const json* def = member(spec, "default");
    const json* type = member(spec, "type");
    if (type && type->is_string()) {
      const std::string t = type->get<std::string>();
      p.type = t == "integer"   ? ParamType::kInteger
               : t == "number"  ? ParamType::kNumber
               : t == "boolean" ? ParamType::kBoolean
               : t == "json"    ? ParamType::kJson
                                : ParamType::kString;
    } else if (def && !type) {
      // No declared type: the default's own type decides, so `default: 1000` is an integer.
      p.type = def->is_boolean()          ? ParamType::kBoolean
               : def->is_number_integer() ? ParamType::kInteger
               : def->is_number()         ? ParamType::kNumber
               : def->is_string()         ? ParamType::kString
                                          : ParamType::kJson;
    } else if (type) {
      return p;  // mistyped `type`, reported by the schema
    }
    if (def && !def->is_null()) {
      bool ok = true;
      switch (p.type) {
        case ParamType::kString: ok = def->is_string(); break;
        case ParamType::kInteger: ok = def->is_number_integer(); break;
        case ParamType::kNumber: ok = def->is_number(); break;
        case ParamType::kBoolean: ok = def->is_boolean(); break;
        case ParamType::kJson: ok = true; break;
      }
      if (!ok) {
        std::string hint = p.type == ParamType::kString
                               ? "quote the default to make it a string, or change `type`"
                               : fmt::format("give a default of type {}, or change `type`",
                                             to_string(p.type));
        error(pointer_append(pointer, "default"),
              fmt::format("default {} of parameter '{}' does not match its type {}",
                          def->is_string() ? "'" + def->get<std::string>() + "'" : def->dump(),
                          name, to_string(p.type)),
              hint);
      } else {
        p.default_value = p.type == ParamType::kJson ? def->dump() : scalar_text(*def);
      }
    }
    return p;
  }

  // Checks made on the step or defaults object as written, so positions point at the source.
  void check_settings(const json& spec, const std::string& pointer) {
    if (!spec.is_object()) return;
    for (const char* key : {"timeout", "retry_delay"}) {
      const json* v = member(spec, key);
      if (!v) continue;
      std::string at = pointer_append(pointer, key);
      if (reported(at)) continue;
      std::optional<std::chrono::seconds> d;
      if (v->is_string()) d = parse_duration(v->get<std::string>());
      if (v->is_number_integer() && v->get<int64_t>() >= 0) d = std::chrono::seconds(v->get<int64_t>());
      if (!v->is_string() && !v->is_number_integer()) continue;  // the schema reported it
      if (!d) {
        error(at, fmt::format("invalid duration '{}' for `{}`", scalar_text(*v),
                              display_path(root_, at)),
              "write a number with a unit (s, m, h, d, w) such as 90s, 30m, 1h30m, 5d, or whole "
              "seconds");
      } else if (std::string(key) == "timeout" && d->count() == 0) {
        error(at, fmt::format("`{}` must be longer than 0 seconds", display_path(root_, at)),
              "leave `timeout` out for no limit");
      }
    }
    auto check_env = [&](const json* env, const std::string& at) {
      if (!env || !env->is_object()) return;
      for (const auto& [name, value] : env->items()) {
        if (name.rfind("MFLOW_", 0) == 0) {
          error(pointer_append(at, name),
                fmt::format("environment variable '{}' is reserved for mflow", name),
                "MFLOW_* variables carry the task contract (MFLOW_RUN_ID, MFLOW_INPUT, ...); "
                "choose another name");
        }
      }
    };
    check_env(member(spec, "env"), pointer_append(pointer, "env"));
    if (const json* k = member(spec, "kubernetes")) {
      check_env(member(*k, "env"), pointer_append(pointer_append(pointer, "kubernetes"), "env"));
    }
    const json* foreach = member(spec, "foreach");
    const json* next = member(spec, "next");
    if (foreach && foreach->is_string() && next && next->is_array() && next->size() != 1) {
      error(pointer_append(pointer, "next"),
            fmt::format("step '{}' has `foreach`, so it needs exactly one `next`, not {}",
                        pointer.substr(pointer.rfind('/') + 1), next->size()),
            "a foreach fans out to one step that runs once per element; branch inside it");
    }
  }

  Step step(const std::string& name, const std::string& pointer, const json& spec) {
    Step s;
    s.name = name;
    s.pos = doc_.key_pos(pointer);
    if (const json* run = member(spec, "run")) {
      if (run->is_string()) {
        s.run.shell = true;
        s.run.script = run->get<std::string>();
      } else if (run->is_array()) {
        s.run.shell = false;
        for (const auto& arg : *run) {
          if (arg.is_string()) s.run.argv.push_back(arg.get<std::string>());
        }
      }
    }
    std::string next_pointer = pointer_append(pointer, "next");
    if (const json* next = member(spec, "next")) {
      if (next->is_string()) {
        s.next.push_back(next->get<std::string>());
        s.next_pos.push_back(doc_.value_pos(next_pointer));
      } else if (next->is_array()) {
        for (size_t i = 0; i < next->size(); ++i) {
          if (!(*next)[i].is_string()) continue;
          s.next.push_back((*next)[i].get<std::string>());
          s.next_pos.push_back(doc_.value_pos(pointer_append(next_pointer, std::to_string(i))));
        }
      }
    }
    s.foreach = string_member(spec, "foreach");
    s.foreach_pos = doc_.value_pos(pointer_append(pointer, "foreach"));
    if (const json* join = member(spec, "join"); join && join->is_boolean()) s.join = join->get<bool>();
    s.join_pos = doc_.key_pos(pointer_append(pointer, "join"));
    if (const json* r = member(spec, "resources")) s.resources = resources(*r);
    if (const json* k = member(spec, "kubernetes")) {
      if (k->is_object()) {
        s.kubernetes = kubernetes(*k);
      } else if (k->is_boolean() && k->get<bool>()) {
        s.kubernetes = KubernetesSpec{};
      }
    }
    s.env = string_map(member(spec, "env"));
    if (const json* t = member(spec, "timeout")) s.timeout = duration(*t);
    if (const json* r = member(spec, "retries"); r && r->is_number_integer()) {
      s.retries = static_cast<int>(std::clamp<int64_t>(r->get<int64_t>(), 0, 10));
    }
    if (const json* d = member(spec, "retry_delay")) {
      s.retry_delay = duration(*d).value_or(std::chrono::seconds(0));
    }
    return s;
  }

  static std::optional<std::chrono::seconds> duration(const json& v) {
    if (v.is_string()) return parse_duration(v.get<std::string>());
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return std::chrono::seconds(v.get<int64_t>());
    return std::nullopt;
  }

  static Resources resources(const json& r) {
    Resources out;
    if (const json* v = member(r, "cpu"); v && v->is_number()) out.cpu = v->get<double>();
    if (const json* v = member(r, "memory"); v && v->is_number_integer()) out.memory_mb = v->get<int64_t>();
    if (const json* v = member(r, "disk"); v && v->is_number_integer()) out.disk_mb = v->get<int64_t>();
    if (const json* v = member(r, "gpu"); v && v->is_number_integer()) out.gpu = v->get<int64_t>();
    return out;
  }

  static std::map<std::string, std::string> string_map(const json* m) {
    std::map<std::string, std::string> out;
    if (!m || !m->is_object()) return out;
    for (const auto& [key, value] : m->items()) {
      if (value.is_primitive() && !value.is_null()) out[key] = scalar_text(value);
    }
    return out;
  }

  static KubernetesSpec kubernetes(const json& k) {
    KubernetesSpec out;
    out.resources = resources(k);
    out.image = string_member(k, "image");
    out.namespace_name = string_member(k, "namespace");
    out.service_account = string_member(k, "service_account");
    out.image_pull_policy = string_member(k, "image_pull_policy");
    out.gpu_vendor = string_member(k, "gpu_vendor");
    out.node_selector = string_map(member(k, "node_selector"));
    out.env = string_map(member(k, "env"));
    out.labels = string_map(member(k, "labels"));
    out.annotations = string_map(member(k, "annotations"));
    if (const json* secrets = member(k, "secrets"); secrets && secrets->is_array()) {
      for (const auto& s : *secrets) {
        if (s.is_string()) out.secrets.push_back(s.get<std::string>());
      }
    }
    if (const json* tolerations = member(k, "tolerations"); tolerations && tolerations->is_array()) {
      for (const auto& t : *tolerations) {
        if (!t.is_object()) continue;
        Toleration tol;
        tol.key = string_member(t, "key");
        tol.op = string_member(t, "operator");
        tol.value = string_member(t, "value");
        tol.effect = string_member(t, "effect");
        if (const json* secs = member(t, "toleration_seconds"); secs && secs->is_number_integer()) {
          tol.toleration_seconds = secs->get<int64_t>();
        }
        out.tolerations.push_back(std::move(tol));
      }
    }
    return out;
  }

  bool reported(const std::string& pointer) const {
    for (const auto& d : diags_->items()) {
      if (d.file == file_ && d.json_pointer == pointer) return true;
    }
    return false;
  }

  size_t count_errors() const {
    return static_cast<size_t>(std::count_if(diags_->items().begin(), diags_->items().end(),
                                             [](const Diagnostic& d) {
                                               return d.severity == Severity::kError;
                                             }));
  }

  void error(const std::string& pointer, std::string message, std::string hint) {
    diags_->error(file_, doc_.key_pos(pointer), std::move(message), std::move(hint), pointer);
  }

  const Document& doc_;
  const json& root_;
  const std::string& file_;
  Diagnostics* diags_;
};

}  // namespace

std::optional<Flow> build_flow(const Document& doc, const std::string& file, Diagnostics* diags) {
  return FlowBuilder(doc, file, diags).build();
}

}  // namespace mflow::spec
