#include "kube/credentials.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <set>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "base/strings.h"
#include "base/unique_fd.h"

extern char** environ;

namespace mflow::kube {
namespace {

using base::Result;
using base::Status;
using Clock = std::chrono::steady_clock;

// Refresh exec credentials a little before they expire, so a request never carries a token
// that runs out in flight.
constexpr auto kExpiryLeeway = std::chrono::seconds(10);

std::string describe_exit(int wstatus) {
  if (WIFEXITED(wstatus)) return fmt::format("exited with status {}", WEXITSTATUS(wstatus));
  if (WIFSIGNALED(wstatus)) return fmt::format("was killed by signal {}", WTERMSIG(wstatus));
  return "ended abnormally";
}

std::string exec_info(const ExecPluginConfig& plugin, const std::string& server) {
  nlohmann::json spec = {{"interactive", false}};
  if (plugin.provide_cluster_info) spec["cluster"] = {{"server", server}};
  return nlohmann::json{{"apiVersion", plugin.api_version}, {"kind", "ExecCredential"}, {"spec", spec}}
      .dump();
}

}  // namespace

Result<ExecCredential> parse_exec_credential(const std::string& text, const std::string& api_version,
                                             const std::string& where) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return Status::unavailable(fmt::format(
        "{}: the plugin did not print an ExecCredential JSON document ({}); output was: {}", where,
        e.what(), std::string(base::trim(text.substr(0, 200)))));
  }
  if (!doc.is_object() || doc.value("kind", "") != "ExecCredential") {
    return Status::unavailable(fmt::format("{}: the plugin printed JSON that is not an ExecCredential "
                                           "(kind must be \"ExecCredential\")", where));
  }
  if (doc.value("apiVersion", "") != api_version) {
    return Status::unavailable(fmt::format(
        "{}: the plugin answered with apiVersion \"{}\" but the kubeconfig asks for \"{}\"", where,
        doc.value("apiVersion", ""), api_version));
  }
  auto status = doc.find("status");
  if (status == doc.end() || !status->is_object()) {
    return Status::unavailable(fmt::format("{}: the plugin's ExecCredential has no status", where));
  }
  ExecCredential cred;
  auto str = [&](const char* key) {
    auto it = status->find(key);
    return it != status->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  cred.token = str("token");
  cred.client_cert_pem = str("clientCertificateData");
  cred.client_key_pem = str("clientKeyData");
  if (cred.client_cert_pem.empty() != cred.client_key_pem.empty()) {
    return Status::unavailable(fmt::format(
        "{}: the plugin's ExecCredential must set both clientCertificateData and clientKeyData "
        "or neither", where));
  }
  if (cred.token.empty() && cred.client_cert_pem.empty()) {
    return Status::unavailable(fmt::format(
        "{}: the plugin's ExecCredential has neither status.token nor status.clientCertificateData",
        where));
  }
  if (std::string ts = str("expirationTimestamp"); !ts.empty()) {
    cred.expires = parse_rfc3339(ts);
    if (!cred.expires) {
      return Status::unavailable(fmt::format(
          "{}: status.expirationTimestamp \"{}\" is not an RFC 3339 time", where, ts));
    }
  }
  return cred;
}

Result<ExecCredential> run_exec_plugin(const ExecPluginConfig& plugin, const std::string& server,
                                       std::chrono::seconds timeout) {
  // Environment: ours, with the plugin's env entries and KUBERNETES_EXEC_INFO overriding.
  std::vector<std::string> env_strings;
  std::set<std::string> overridden{"KUBERNETES_EXEC_INFO"};
  for (const auto& [k, v] : plugin.env) overridden.insert(k);
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    if (!overridden.count(std::string(kv.substr(0, kv.find('='))))) env_strings.emplace_back(kv);
  }
  for (const auto& [k, v] : plugin.env) env_strings.push_back(k + "=" + v);
  env_strings.push_back("KUBERNETES_EXEC_INFO=" + exec_info(plugin, server));
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args{plugin.command};
  args.insert(args.end(), plugin.args.begin(), plugin.args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return Status::from_errno(plugin.where + ": pipe", errno);
  base::UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return Status::from_errno(plugin.where + ": pipe", errno);
  base::UniqueFd err_r(err_pipe[0]), err_w(err_pipe[1]);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, plugin.command.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    std::string msg = fmt::format("{}: cannot run the credential plugin \"{}\": {}", plugin.where,
                                  plugin.command, std::strerror(rc));
    if (!plugin.install_hint.empty()) msg += "\n" + plugin.install_hint;
    return Status::unavailable(msg);
  }
  out_w.reset();
  err_w.reset();

  std::string out, err;
  const auto deadline = Clock::now() + timeout;
  bool timed_out = false;
  while (out_r.get() >= 0 || err_r.get() >= 0) {
    pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int n = ::poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        (i == 0 ? out_r : err_r).reset();
      } else {
        (i == 0 ? out : err).append(buf, static_cast<size_t>(got));
      }
    }
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  std::string err_text(base::trim(err));
  if (timed_out) {
    return Status::unavailable(fmt::format("{}: the credential plugin \"{}\" did not finish within {} s",
                                           plugin.where, plugin.command, timeout.count()));
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    std::string msg = fmt::format("{}: the credential plugin \"{}\" {}", plugin.where,
                                  plugin.command, describe_exit(wstatus));
    if (!err_text.empty()) msg += ": " + err_text;
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 127 && !plugin.install_hint.empty()) {
      msg += "\n" + plugin.install_hint;
    }
    return Status::unavailable(msg);
  }
  return parse_exec_credential(out, plugin.api_version, plugin.where);
}

Credentials::Credentials(Config config, std::chrono::seconds token_file_refresh)
    : config_(std::move(config)), token_file_refresh_(token_file_refresh) {}

Result<Credential> Credentials::get() {
  std::lock_guard<std::mutex> lock(mu_);
  switch (config_.auth) {
    case AuthMethod::kNone:
    case AuthMethod::kToken:
      return Credential{config_.token, config_.client_cert_pem, config_.client_key_pem};
    case AuthMethod::kTokenFile: {
      bool due = !cached_ || !token_read_at_ || Clock::now() - *token_read_at_ >= token_file_refresh_;
      if (due) {
        auto content = base::read_file(config_.token_file);
        if (content.ok() && !base::trim(*content).empty()) {
          cached_ = Credential{std::string(base::trim(*content)), config_.client_cert_pem,
                               config_.client_key_pem};
        } else if (!cached_) {
          // client-go: the last good read wins, then the inline token.
          if (config_.token.empty()) {
            return Status::unavailable(fmt::format(
                "cannot read the bearer token file {} ({}): {}", config_.token_file, config_.source,
                content.ok() ? "the file is empty" : content.status().message()));
          }
          cached_ = Credential{config_.token, config_.client_cert_pem, config_.client_key_pem};
        }
        token_read_at_ = Clock::now();
      }
      return *cached_;
    }
    case AuthMethod::kExec: {
      bool expired = expires_ && std::chrono::system_clock::now() + kExpiryLeeway >= *expires_;
      if (!cached_ || expired) {
        auto cred = run_exec_plugin(config_.exec, config_.server);
        ++exec_runs_;
        if (!cred.ok()) return cred.status();
        Credential c;
        c.token = cred->token;
        c.client_cert_pem = cred->client_cert_pem.empty() ? config_.client_cert_pem : cred->client_cert_pem;
        c.client_key_pem = cred->client_key_pem.empty() ? config_.client_key_pem : cred->client_key_pem;
        cached_ = std::move(c);
        expires_ = cred->expires;
      }
      return *cached_;
    }
  }
  return Status::internal("unknown auth method");
}

bool Credentials::invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  if (config_.auth == AuthMethod::kExec || config_.auth == AuthMethod::kTokenFile) {
    token_read_at_.reset();
    if (config_.auth == AuthMethod::kExec) cached_.reset();
    return true;
  }
  return false;
}

int64_t Credentials::exec_runs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return exec_runs_;
}

}  // namespace mflow::kube
