#include "exec/executor.h"

namespace mflow::exec {

const char* to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSucceeded: return "succeeded";
    case Outcome::kFailed: return "failed";
    case Outcome::kTimedOut: return "timed out";
    case Outcome::kCancelled: return "cancelled";
    case Outcome::kLaunchFailed: return "launch failed";
    case Outcome::kOomKilled: return "OOMKilled";
    case Outcome::kUnschedulable: return "unschedulable";
    case Outcome::kImagePull: return "image pull failed";
    case Outcome::kEvicted: return "evicted";
  }
  return "?";
}

}  // namespace mflow::exec
