#include "cli/s3_access.h"

#include <signal.h>

#include <fmt/core.h>

#include "exec/subprocess.h"
#include "s3/config.h"
#include "s3/credential_chain.h"

namespace mflow::cli {

s3::ProcessRunner credential_process_runner() {
  return [](const std::string& command, std::chrono::seconds timeout) -> base::Result<s3::ProcessOutput> {
    exec::SubprocessSet set;
    exec::SpawnRequest request;
    request.command.shell = true;
    request.command.script = command;
    s3::ProcessOutput output;
    // Lines arrive without their '\n'; JSON and error text read the same with it restored.
    auto started = set.add(request, [&](exec::Stream stream, std::string_view line) {
      std::string& into = stream == exec::Stream::kStdout ? output.out : output.err;
      into.append(line).push_back('\n');
    });
    if (!started.ok()) return started.status();
    auto deadline = exec::Clock::now() + timeout;
    std::vector<std::unique_ptr<exec::Subprocess>> finished;
    while (finished.empty()) {
      if (set.wait(deadline, &finished) == exec::SubprocessSet::WaitResult::kDeadline) {
        set.signal_all(SIGKILL);  // the set's destructor reaps the group
        return base::Status::unavailable(
            fmt::format("`{}` did not finish within {} s and was killed", command, timeout.count()));
      }
    }
    const exec::Subprocess& child = *finished.front();
    output.exit_code = child.exit_code() >= 0 ? child.exit_code() : -1;
    return output;
  };
}

base::Result<S3Access> resolve_s3_access(const std::string& profile) {
  s3::Env env = s3::process_env();
  auto config = s3::SharedConfig::load(env);
  if (!config.ok()) return config.status();
  auto settings = s3::resolve_connection_settings(*config, env, profile);
  if (!settings.ok()) return settings.status();
  s3::ChainOptions options;
  options.env = env;
  options.profile = profile;
  options.run_process = credential_process_runner();
  auto chain = s3::make_default_chain(std::move(options));
  if (!chain.ok()) return chain.status();
  return S3Access{std::move(settings).value(), std::shared_ptr<s3::CredentialProvider>(std::move(chain).value())};
}

}  // namespace mflow::cli
