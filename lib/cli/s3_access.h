// What a command needs to reach an S3 datastore: the connection settings and the credential
// chain (lib/s3, docs/s3.md "Credentials and settings"), wired with the process runner the
// chain uses for a profile's credential_process (lib/s3 may not spawn processes, so cli/
// hands it one built on exec/subprocess: posix_spawn, own process group, killed with its
// group on timeout). Thread-safe: each runner call owns its child.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "s3/credentials.h"

namespace mflow::cli {

/// Runs the command with /bin/sh -c, stdin /dev/null, capturing stdout and stderr.
s3::ProcessRunner credential_process_runner();

struct S3Access {
  s3::ConnectionSettings settings;
  std::shared_ptr<s3::CredentialProvider> credentials;
};

/// Resolves the settings and builds the default credential chain from the process
/// environment and the shared files; `profile` (a flag) overrides AWS_PROFILE. Errors name
/// the file:line, variable or profile at fault. Nothing is fetched yet.
base::Result<S3Access> resolve_s3_access(const std::string& profile = "");

}  // namespace mflow::cli
