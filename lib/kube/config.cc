#include "kube/config.h"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>

#include <fmt/core.h>
#include <yaml-cpp/yaml.h>

#include "base/file_util.h"
#include "base/strings.h"

namespace mflow::kube {
namespace {

namespace fs = std::filesystem;
using base::Result;
using base::Status;

// One named entry (cluster, context or user) together with the file that defined it, so that
// relative paths resolve against that file and errors can name it.
struct Entry {
  YAML::Node body;  // the "cluster"/"context"/"user" mapping
  std::string file;
  std::string key;  // e.g. "users[dev].user"
};

struct Merged {
  std::vector<std::string> files;
  std::string current_context;
  std::map<std::string, Entry> clusters, contexts, users;
};

std::string mark_of(const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  if (m.line < 0) return "";
  return fmt::format(":{}:{}", m.line + 1, m.column + 1);
}

Result<std::string> base64_decode(std::string_view in, const std::string& where) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r' || c == ' ' || c == '\t') continue;
    size_t v = kAlphabet.find(c);
    if (v == std::string_view::npos) {
      return Status::invalid(fmt::format("{}: not valid base64 (unexpected character '{}')", where, c));
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// A string field of `node`, or "" when absent. Non-scalars are an error naming file and key.
Result<std::string> get_string(const YAML::Node& node, const std::string& field,
                               const std::string& file, const std::string& key) {
  YAML::Node v = node[field];
  if (!v || v.IsNull()) return std::string();
  if (!v.IsScalar()) {
    return Status::invalid(fmt::format("{}{}: {}.{}: expected a string", file, mark_of(v), key, field));
  }
  return v.Scalar();
}

Result<bool> get_bool(const YAML::Node& node, const std::string& field, const std::string& file,
                      const std::string& key) {
  YAML::Node v = node[field];
  if (!v || v.IsNull()) return false;
  bool b = false;
  if (!v.IsScalar() || !YAML::convert<bool>::decode(v, b)) {
    return Status::invalid(
        fmt::format("{}{}: {}.{}: expected true or false", file, mark_of(v), key, field));
  }
  return b;
}

std::string resolve_path(const std::string& path, const std::string& file) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(file).parent_path() / path).lexically_normal().string();
}

// Reads a PEM either from `<field>-data` (base64) or from the file named by `<field>`;
// the data form wins, as in client-go.
Result<std::string> read_pem(const Entry& e, const std::string& field) {
  auto data = get_string(e.body, field + "-data", e.file, e.key);
  if (!data.ok()) return data.status();
  if (!data->empty()) {
    return base64_decode(*data, fmt::format("{}: {}.{}-data", e.file, e.key, field));
  }
  auto path = get_string(e.body, field, e.file, e.key);
  if (!path.ok()) return path.status();
  if (path->empty()) return std::string();
  std::string resolved = resolve_path(*path, e.file);
  auto content = base::read_file(resolved);
  if (!content.ok()) {
    return Status::invalid(fmt::format("{}: {}.{}: cannot read {}: {}", e.file, e.key, field,
                                       resolved, content.status().message()));
  }
  return std::move(content).value();
}

// Adds the named entries of one section ("clusters", "contexts", "users") of one file;
// entries already defined by an earlier file win (client-go's merge rule).
Status merge_section(const YAML::Node& root, const std::string& section, const std::string& body,
                     const std::string& file, std::map<std::string, Entry>* into) {
  YAML::Node list = root[section];
  if (!list || list.IsNull()) return Status::ok_status();
  if (!list.IsSequence()) {
    return Status::invalid(fmt::format("{}{}: {}: expected a list", file, mark_of(list), section));
  }
  for (size_t i = 0; i < list.size(); ++i) {
    YAML::Node item = list[i];
    std::string where = fmt::format("{}[{}]", section, i);
    if (!item.IsMap()) {
      return Status::invalid(fmt::format("{}{}: {}: expected a mapping", file, mark_of(item), where));
    }
    auto name = get_string(item, "name", file, where);
    if (!name.ok()) return name.status();
    if (name->empty()) {
      return Status::invalid(fmt::format("{}{}: {}.name: missing", file, mark_of(item), where));
    }
    YAML::Node b = item[body];
    std::string key = fmt::format("{}[{}].{}", section, *name, body);
    if (b && !b.IsNull() && !b.IsMap()) {
      return Status::invalid(fmt::format("{}{}: {}: expected a mapping", file, mark_of(b), key));
    }
    if (!b || b.IsNull()) b = YAML::Node(YAML::NodeType::Map);
    into->try_emplace(*name, Entry{b, file, key});
  }
  return Status::ok_status();
}

Status merge_file(const std::string& file, Merged* m) {
  auto text = base::read_file(file);
  if (!text.ok()) return Status::invalid(fmt::format("kubeconfig {}: {}", file, text.status().message()));
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return Status::invalid(fmt::format("{}:{}:{}: not a valid kubeconfig (YAML): {}", file,
                                       e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  m->files.push_back(file);
  if (!root || root.IsNull()) return Status::ok_status();  // an empty file is allowed
  if (!root.IsMap()) {
    return Status::invalid(fmt::format("{}: not a kubeconfig: expected a mapping at the top", file));
  }
  auto cc = get_string(root, "current-context", file, "");
  if (!cc.ok()) return cc.status();
  if (m->current_context.empty()) m->current_context = *cc;
  MFLOW_RETURN_IF_ERROR(merge_section(root, "clusters", "cluster", file, &m->clusters));
  MFLOW_RETURN_IF_ERROR(merge_section(root, "contexts", "context", file, &m->contexts));
  MFLOW_RETURN_IF_ERROR(merge_section(root, "users", "user", file, &m->users));
  return Status::ok_status();
}

std::vector<std::string> names_of(const std::map<std::string, Entry>& map) {
  std::vector<std::string> names;
  for (const auto& [name, entry] : map) names.push_back(name);
  return names;
}

Status load_cluster(const Entry& e, Config* config) {
  auto server = get_string(e.body, "server", e.file, e.key);
  if (!server.ok()) return server.status();
  std::string s = std::string(base::trim(*server));
  if (s.empty()) return Status::invalid(fmt::format("{}: {}.server: missing", e.file, e.key));
  if (!base::starts_with(s, "https://") && !base::starts_with(s, "http://")) {
    if (s.find("://") != std::string::npos) {
      return Status::invalid(fmt::format("{}: {}.server: \"{}\": only https:// (or http://) is supported",
                                         e.file, e.key, s));
    }
    s = "https://" + s;  // client-go defaults a bare host:port to https
  }
  while (base::ends_with(s, "/")) s.pop_back();
  config->server = s;

  auto ca = read_pem(e, "certificate-authority");
  if (!ca.ok()) return ca.status();
  config->ca_pem = std::move(ca).value();
  if (!config->ca_pem.empty()) {
    auto has_data = get_string(e.body, "certificate-authority-data", e.file, e.key);
    config->ca_where = fmt::format("{}: {}.{}", e.file, e.key,
                                   has_data.ok() && !has_data->empty() ? "certificate-authority-data"
                                                                       : "certificate-authority");
  }
  auto insecure = get_bool(e.body, "insecure-skip-tls-verify", e.file, e.key);
  if (!insecure.ok()) return insecure.status();
  config->insecure_skip_tls_verify = *insecure;
  if (*insecure && !config->ca_pem.empty()) {
    return Status::invalid(fmt::format(
        "{}: {}: insecure-skip-tls-verify: true together with a certificate authority is not "
        "allowed (remove one of them)", e.file, e.key));
  }
  auto sni = get_string(e.body, "tls-server-name", e.file, e.key);
  if (!sni.ok()) return sni.status();
  config->tls_server_name = *sni;
  auto proxy = get_string(e.body, "proxy-url", e.file, e.key);
  if (!proxy.ok()) return proxy.status();
  if (!proxy->empty()) {
    return Status::invalid(fmt::format("{}: {}.proxy-url: proxies are not supported by mflow; "
                                       "remove the key or reach the API server directly",
                                       e.file, e.key));
  }
  return Status::ok_status();
}

Status load_exec(const Entry& e, const YAML::Node& exec, Config* config) {
  std::string key = e.key + ".exec";
  if (!exec.IsMap()) return Status::invalid(fmt::format("{}{}: {}: expected a mapping", e.file, mark_of(exec), key));
  ExecPluginConfig& p = config->exec;
  p.where = fmt::format("{}: {}", e.file, key);
  auto get = [&](const char* field) { return get_string(exec, field, e.file, key); };
  auto api = get("apiVersion");
  if (!api.ok()) return api.status();
  if (*api != "client.authentication.k8s.io/v1" && *api != "client.authentication.k8s.io/v1beta1") {
    return Status::invalid(fmt::format(
        "{}.apiVersion: \"{}\" is not supported; use client.authentication.k8s.io/v1 or "
        "client.authentication.k8s.io/v1beta1", p.where, *api));
  }
  p.api_version = *api;
  auto cmd = get("command");
  if (!cmd.ok()) return cmd.status();
  if (cmd->empty()) return Status::invalid(fmt::format("{}.command: missing", p.where));
  // client-go: a relative command containing a path separator is relative to the kubeconfig.
  p.command = cmd->find('/') != std::string::npos ? resolve_path(*cmd, e.file) : *cmd;
  if (YAML::Node args = exec["args"]; args && !args.IsNull()) {
    if (!args.IsSequence()) return Status::invalid(fmt::format("{}.args: expected a list of strings", p.where));
    for (const auto& a : args) {
      if (!a.IsScalar()) return Status::invalid(fmt::format("{}.args: expected a list of strings", p.where));
      p.args.push_back(a.Scalar());
    }
  }
  if (YAML::Node env = exec["env"]; env && !env.IsNull()) {
    if (!env.IsSequence()) return Status::invalid(fmt::format("{}.env: expected a list of {{name, value}}", p.where));
    for (size_t i = 0; i < env.size(); ++i) {
      std::string ek = fmt::format("{}.env[{}]", key, i);
      auto name = get_string(env[i], "name", e.file, ek);
      if (!name.ok()) return name.status();
      auto value = get_string(env[i], "value", e.file, ek);
      if (!value.ok()) return value.status();
      if (name->empty()) return Status::invalid(fmt::format("{}: {}.name: missing", e.file, ek));
      p.env.emplace_back(*name, *value);
    }
  }
  auto hint = get("installHint");
  if (!hint.ok()) return hint.status();
  p.install_hint = *hint;
  auto pci = get_bool(exec, "provideClusterInfo", e.file, key);
  if (!pci.ok()) return pci.status();
  p.provide_cluster_info = *pci;
  auto mode = get("interactiveMode");
  if (!mode.ok()) return mode.status();
  if (*mode == "Always") {
    return Status::invalid(fmt::format(
        "{}.interactiveMode: Always needs a terminal, but mflow runs plugins non-interactively; "
        "use Never or IfAvailable", p.where));
  }
  config->auth = AuthMethod::kExec;
  return Status::ok_status();
}

Status load_user(const Entry& e, Config* config) {
  auto cert = read_pem(e, "client-certificate");
  if (!cert.ok()) return cert.status();
  auto key = read_pem(e, "client-key");
  if (!key.ok()) return key.status();
  if (cert->empty() != key->empty()) {
    return Status::invalid(fmt::format(
        "{}: {}: client-certificate and client-key must be given together (only {} is set)",
        e.file, e.key, cert->empty() ? "client-key" : "client-certificate"));
  }
  config->client_cert_pem = std::move(cert).value();
  config->client_key_pem = std::move(key).value();

  for (const char* unsupported : {"username", "auth-provider", "as", "as-groups"}) {
    YAML::Node v = e.body[unsupported];
    if (v && !v.IsNull()) {
      return Status::invalid(fmt::format(
          "{}{}: {}.{}: not supported by mflow; use a token, tokenFile, client certificate or "
          "an exec credential plugin", e.file, mark_of(v), e.key, unsupported));
    }
  }
  auto token = get_string(e.body, "token", e.file, e.key);
  if (!token.ok()) return token.status();
  auto token_file = get_string(e.body, "tokenFile", e.file, e.key);
  if (!token_file.ok()) return token_file.status();
  if (!token->empty()) {
    config->auth = AuthMethod::kToken;
    config->token = *token;
  }
  if (!token_file->empty()) {
    std::string path = resolve_path(*token_file, e.file);
    auto content = base::read_file(path);
    if (!content.ok() && token->empty()) {
      return Status::invalid(fmt::format("{}: {}.tokenFile: cannot read {}: {}", e.file, e.key,
                                         path, content.status().message()));
    }
    config->auth = AuthMethod::kTokenFile;
    config->token_file = path;
  }
  if (YAML::Node exec = e.body["exec"]; exec && !exec.IsNull()) {
    if (config->auth != AuthMethod::kNone) {
      return Status::invalid(fmt::format("{}: {}: exec and token/tokenFile are mutually exclusive",
                                         e.file, e.key));
    }
    MFLOW_RETURN_IF_ERROR(load_exec(e, exec, config));
  }
  return Status::ok_status();
}

std::string getenv_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

LoadOptions options_from_environment(const std::string& context) {
  LoadOptions o;
  o.context = context;
  o.kubeconfig_env = getenv_or_empty("KUBECONFIG");
  o.home = getenv_or_empty("HOME");
  o.service_host = getenv_or_empty("KUBERNETES_SERVICE_HOST");
  o.service_port = getenv_or_empty("KUBERNETES_SERVICE_PORT");
  o.pod_namespace = getenv_or_empty("POD_NAMESPACE");
  return o;
}

Result<Config> load_kubeconfig_files(const std::vector<std::string>& files,
                                     const std::string& context) {
  Merged m;
  for (const auto& f : files) MFLOW_RETURN_IF_ERROR(merge_file(f, &m));
  const std::string all_files = base::join(m.files, ", ");
  std::string ctx_name = context.empty() ? m.current_context : context;
  if (ctx_name.empty()) {
    return Status::invalid(fmt::format(
        "{}: no current-context is set; pass --kubernetes-context (contexts: {})", all_files,
        m.contexts.empty() ? "none" : base::join(names_of(m.contexts), ", ")));
  }
  auto ctx_it = m.contexts.find(ctx_name);
  if (ctx_it == m.contexts.end()) {
    std::string origin = context.empty() ? "current-context" : "--kubernetes-context";
    std::string hint = base::closest_match(ctx_name, names_of(m.contexts));
    return Status::invalid(fmt::format(
        "{}: {} \"{}\" is not defined{} (contexts: {})", all_files, origin, ctx_name,
        hint.empty() ? "" : fmt::format("; did you mean \"{}\"?", hint),
        m.contexts.empty() ? "none" : base::join(names_of(m.contexts), ", ")));
  }
  const Entry& ctx = ctx_it->second;
  Config config;
  config.context = ctx_name;
  config.source = fmt::format("context \"{}\" in {}", ctx_name, ctx.file);

  auto cluster_name = get_string(ctx.body, "cluster", ctx.file, ctx.key);
  if (!cluster_name.ok()) return cluster_name.status();
  if (cluster_name->empty()) return Status::invalid(fmt::format("{}: {}.cluster: missing", ctx.file, ctx.key));
  auto cl = m.clusters.find(*cluster_name);
  if (cl == m.clusters.end()) {
    return Status::invalid(fmt::format("{}: {}.cluster: cluster \"{}\" is not defined in {}",
                                       ctx.file, ctx.key, *cluster_name, all_files));
  }
  MFLOW_RETURN_IF_ERROR(load_cluster(cl->second, &config));

  auto user_name = get_string(ctx.body, "user", ctx.file, ctx.key);
  if (!user_name.ok()) return user_name.status();
  if (!user_name->empty()) {
    auto us = m.users.find(*user_name);
    if (us == m.users.end()) {
      return Status::invalid(fmt::format("{}: {}.user: user \"{}\" is not defined in {}", ctx.file,
                                         ctx.key, *user_name, all_files));
    }
    MFLOW_RETURN_IF_ERROR(load_user(us->second, &config));
  }
  auto ns = get_string(ctx.body, "namespace", ctx.file, ctx.key);
  if (!ns.ok()) return ns.status();
  if (!ns->empty()) config.default_namespace = *ns;
  return config;
}

Result<Config> load_in_cluster_config(const LoadOptions& options) {
  const std::string dir = options.service_account_dir;
  if (options.service_host.empty() || options.service_port.empty()) {
    return Status::invalid(
        "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set");
  }
  Config config;
  std::string host = options.service_host;
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  config.server = fmt::format("https://{}:{}", host, options.service_port);
  config.source = fmt::format("in-cluster service account ({})", dir);
  config.token_file = dir + "/token";
  auto token = base::read_file(config.token_file);
  if (!token.ok()) {
    return Status::invalid(fmt::format("in-cluster config: cannot read the service account token {}: {}",
                                       config.token_file, token.status().message()));
  }
  config.auth = AuthMethod::kTokenFile;
  auto ca = base::read_file(dir + "/ca.crt");
  if (!ca.ok()) {
    return Status::invalid(fmt::format("in-cluster config: cannot read the cluster CA {}/ca.crt: {}",
                                       dir, ca.status().message()));
  }
  config.ca_pem = std::move(ca).value();
  config.ca_where = dir + "/ca.crt";
  if (!options.pod_namespace.empty()) {
    config.default_namespace = options.pod_namespace;
  } else if (auto ns = base::read_file(dir + "/namespace"); ns.ok() && !base::trim(*ns).empty()) {
    config.default_namespace = std::string(base::trim(*ns));
  }
  return config;
}

Result<Config> load_config(const LoadOptions& options) {
  if (!options.kubeconfig.empty()) {
    std::error_code ec;
    if (!fs::exists(options.kubeconfig, ec)) {
      return Status::invalid(fmt::format("kubeconfig {} does not exist", options.kubeconfig));
    }
    return load_kubeconfig_files({options.kubeconfig}, options.context);
  }
  std::vector<std::string> files;
  std::string looked_at;
  if (!options.kubeconfig_env.empty()) {
    for (const auto& f : base::split(options.kubeconfig_env, ':')) {
      std::error_code ec;
      if (!f.empty() && fs::exists(f, ec)) files.push_back(f);
    }
    looked_at = fmt::format("KUBECONFIG={}", options.kubeconfig_env);
  } else if (!options.home.empty()) {
    std::string def = options.home + "/.kube/config";
    std::error_code ec;
    if (fs::exists(def, ec)) files.push_back(def);
    looked_at = def;
  }
  if (!files.empty()) return load_kubeconfig_files(files, options.context);
  if (!options.service_host.empty() && !options.service_port.empty()) {
    return load_in_cluster_config(options);
  }
  return Status::invalid(fmt::format(
      "no Kubernetes configuration found ({} names no existing file and this is not a pod "
      "with KUBERNETES_SERVICE_HOST set); set KUBECONFIG or create ~/.kube/config",
      looked_at.empty() ? "HOME is unset and KUBECONFIG" : looked_at));
}

}  // namespace mflow::kube
