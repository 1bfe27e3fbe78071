#include "cli/credential_process.h"

#include <signal.h>

#include <fmt/core.h>

#include "exec/subprocess.h"

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

}  // namespace mflow::cli
