// mflow: the composition root. Everything lives in mflow_lib; main only maps the outcome to
// the process exit status and keeps a last-resort handler for escaped exceptions.
#include <cstdio>
#include <exception>

#include "base/exit_code.h"
#include "cli/command.h"

int main(int argc, char** argv) {
  try {
    return mflow::base::to_int(mflow::cli::run_main(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mflow: internal error: %s\n", e.what());
    return mflow::base::to_int(mflow::base::ExitCode::kInternal);
  }
}
