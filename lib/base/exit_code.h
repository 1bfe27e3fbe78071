// The process exit codes of every mflow command, one table (documented in README.md).
// Commands return an ExitCode; only main() turns it into the process status.
#pragma once

namespace mflow::base {

enum class ExitCode : int {
  kOk = 0,
  kTaskFailed = 1,      // the flow ran and at least one task failed
  kUsage = 2,           // bad command line (unknown flag, bad value, missing argument)
  kInvalidFlow = 3,     // the flow file does not parse, validate or lint
  kEnvironment = 4,     // datastore, file system or machine problem; resources do not fit
  kKubernetes = 5,      // the Kubernetes API refused or could not be reached
  kInternal = 70,       // a bug in mflow (EX_SOFTWARE)
  kInterrupted = 130,   // Ctrl-C or SIGTERM
  kOutputClosed = 141,  // stdout's reader went away (`| head`): quiet, like death by SIGPIPE
};

inline int to_int(ExitCode code) { return static_cast<int>(code); }

}  // namespace mflow::base
