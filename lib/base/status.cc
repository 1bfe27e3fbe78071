#include "base/status.h"

#include <cerrno>
#include <cstring>

namespace mflow::base {

Status Status::from_errno(const std::string& what, int err) {
  return Status(err == EPIPE ? StatusCode::kClosed : StatusCode::kIoError,
                what + ": " + std::strerror(err));
}

}  // namespace mflow::base
