// Config: where the Kubernetes API is and how to authenticate, loaded the way kubectl does it
// (KUBECONFIG with several files and client-go's merge rule, ~/.kube/config, a context
// override, or the in-cluster service account). Pure data plus loaders; the credentials are
// turned into request headers by kube/credentials.h and into TLS settings by
// kube/rest_api_client.cc. Loaders are thread-safe (no shared state).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace mflow::kube {

/// A client.authentication.k8s.io exec credential plugin (users[].user.exec).
struct ExecPluginConfig {
  std::string api_version;  // client.authentication.k8s.io/v1 or /v1beta1
  std::string command;      // resolved against the kubeconfig's directory when it has a '/'
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::string install_hint;
  bool provide_cluster_info = false;
  /// "<kubeconfig file>: users[<name>].user.exec", used in every error about the plugin.
  std::string where;
};

enum class AuthMethod {
  kNone,           // anonymous (or client certificate only)
  kToken,          // static bearer token
  kTokenFile,      // bearer token re-read from a file (tokenFile, in-cluster service account)
  kExec,           // exec credential plugin
};

struct Config {
  /// https://host:port (or http:// for a plain-text test server), without trailing '/'.
  std::string server;
  /// Human-readable origin for messages: "context \"kind\" in /home/u/.kube/config" or
  /// "in-cluster service account (/var/run/secrets/kubernetes.io/serviceaccount)".
  std::string source;
  std::string context;          // empty for in-cluster
  std::string default_namespace = "default";

  // TLS. PEM bytes are loaded eagerly so a missing file fails at load time, naming the key.
  std::string ca_pem;                 // empty = the system trust store
  std::string ca_where;               // which file/key the CA came from (for TLS errors)
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;        // verify the server certificate against this name
  std::string client_cert_pem;
  std::string client_key_pem;

  AuthMethod auth = AuthMethod::kNone;
  std::string token;       // kToken, and the fallback for kTokenFile if the file is unreadable
  std::string token_file;  // kTokenFile
  ExecPluginConfig exec;   // kExec
};

struct LoadOptions {
  /// Value of the --kubernetes-context flag; empty = the merged current-context.
  std::string context;
  /// Explicit kubeconfig file (like kubectl --kubeconfig): used alone, must exist.
  std::string kubeconfig;
  /// The KUBECONFIG value to honour (':'-separated). Callers pass getenv("KUBECONFIG").
  std::string kubeconfig_env;
  /// $HOME, for the ~/.kube/config default.
  std::string home;
  /// In-cluster detection inputs: KUBERNETES_SERVICE_HOST/PORT, POD_NAMESPACE, and the
  /// service-account directory (injectable for tests).
  std::string service_host;
  std::string service_port;
  std::string pod_namespace;
  std::string service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
};

/// LoadOptions filled from the process environment (KUBECONFIG, HOME,
/// KUBERNETES_SERVICE_HOST/PORT, POD_NAMESPACE) plus the given context override.
LoadOptions options_from_environment(const std::string& context = "");

/// Loads kubeconfig files in kubectl's order: `kubeconfig` alone if set; else every file of
/// `kubeconfig_env` (missing ones skipped; the first file to set a map entry or
/// current-context wins); else `home`/.kube/config. When no kubeconfig file exists and
/// in-cluster variables are set, falls back to the in-cluster config. Errors name the file
/// and the key ("…/config: users[dev].user.client-key: cannot read /x/key.pem: …").
base::Result<Config> load_config(const LoadOptions& options);

/// Loads exactly these kubeconfig files (merged as above) and resolves `context`.
base::Result<Config> load_kubeconfig_files(const std::vector<std::string>& files,
                                           const std::string& context);

/// The in-cluster service account config: server https://host:port, token file (re-read by
/// the client as it rotates), ca.crt, namespace from `pod_namespace` or the namespace file.
base::Result<Config> load_in_cluster_config(const LoadOptions& options);

}  // namespace mflow::kube
