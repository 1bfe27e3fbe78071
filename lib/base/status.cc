#include "base/status.h"

#include <cstring>

namespace mflow::base {

Status Status::from_errno(const std::string& what, int err) {
  return Status(StatusCode::kIoError, what + ": " + std::strerror(err));
}

}  // namespace mflow::base
