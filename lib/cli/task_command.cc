// `mflow task` (hidden): the entry point a Kubernetes pod runs, so a task on Kubernetes sees
// exactly the local task contract. The contract is fixed by exec/job_manifest.h:
//   mflow task --datastore MOUNT --run-id RUN --step STEP --task-id TASK --attempt N -- CMD...
// It checks that MOUNT is an mflow datastore, empties $MFLOW_OUTPUT_DIR (a pod replacing an
// evicted one starts from scratch), then replaces itself with CMD (stdin /dev/null; stdout
// and stderr become the pod log). Replacing itself rather than spawning a child means CMD's
// exit status, or the signal that killed it, is the container's own.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include <fmt/core.h>

#include "base/file_util.h"
#include "cli/command.h"

namespace mflow::cli {

namespace {

base::ExitCode run_task(const std::string& mount, const std::vector<std::string>& command) {
  if (!std::filesystem::exists(mount + "/FORMAT")) {
    std::cerr << fmt::format(
        "mflow task: --datastore {}: not an mflow datastore (no FORMAT file); mount the "
        "datastore's PersistentVolumeClaim at this path (see docs/kubernetes.md)\n", mount);
    return base::ExitCode::kUsage;
  }
  if (command.empty()) {
    std::cerr << "mflow task: no command after `--`\n";
    return base::ExitCode::kUsage;
  }
  if (const char* out = std::getenv("MFLOW_OUTPUT_DIR"); out && *out) {
    std::error_code ec;
    std::filesystem::remove_all(out, ec);
    if (auto s = base::make_dirs(out); !s.ok()) {
      std::cerr << "mflow task: " << s.message() << "\n";
      return base::ExitCode::kEnvironment;
    }
  }
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd >= 0) {
    ::dup2(null_fd, 0);  // dup2 clears O_CLOEXEC on fd 0
    ::close(null_fd);
  }
  std::vector<char*> argv;
  for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::cout.flush();
  ::execvp(argv[0], argv.data());
  int err = errno;
  std::cerr << fmt::format("mflow task: cannot run '{}': {}\n", command[0], std::strerror(err));
  // 127/126 as a shell would report a missing or non-executable command.
  std::exit(err == ENOENT ? 127 : 126);
}

}  // namespace

void add_task_command(CLI::App& root, const GlobalOptions&, Commands& out) {
  struct State {
    std::string datastore, run_id, step, task_id;
    int attempt = 0;
    std::vector<std::string> command;
  };
  auto state = std::make_shared<State>();
  auto* app = root.add_subcommand("task", "Run one task inside a Kubernetes pod (internal)");
  app->group("");  // hidden from --help: users never call it
  app->add_option("--datastore", state->datastore, "Datastore mount path")->required();
  app->add_option("--run-id", state->run_id, "Run id")->required();
  app->add_option("--step", state->step, "Step name")->required();
  app->add_option("--task-id", state->task_id, "Task id")->required();
  app->add_option("--attempt", state->attempt, "Attempt number")->required();
  app->add_option("command", state->command, "The step's command")->required();
  app->positionals_at_end();
  out.push_back({app, [state] { return run_task(state->datastore, state->command); }});
}

}  // namespace mflow::cli
