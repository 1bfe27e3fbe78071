// The process runner the S3 credential chain uses for a profile's credential_process: lib/s3
// may not spawn processes, so cli/ hands it this one, built on exec/subprocess (posix_spawn,
// own process group, killed with its group on timeout). Thread-safe: each call owns its child.
#pragma once

#include "s3/credentials.h"

namespace mflow::cli {

/// Runs the command with /bin/sh -c, stdin /dev/null, capturing stdout and stderr.
s3::ProcessRunner credential_process_runner();

}  // namespace mflow::cli
