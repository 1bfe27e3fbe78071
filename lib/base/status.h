// Status and Result<T>: how environment and I/O errors travel as values (leveldb's Status,
// abseil's StatusOr). Messages always name the path, URL or flag involved. Not thread-safe
// to share a single instance; values are cheap to copy.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "base/check.h"

namespace mflow::base {

enum class StatusCode {
  kOk,
  kNotFound,
  kInvalid,      // bad input from the user (flag, file content)
  kIoError,      // the file system said no
  kUnavailable,  // a remote service (Kubernetes API) cannot be reached or refused us
  kConflict,     // something already exists or is locked by someone else
  kClosed,       // the reading end of a pipe went away (EPIPE): `mflow map ... | head`
  kInternal,
};

class Status {
 public:
  Status() = default;
  static Status ok_status() { return Status(); }
  static Status not_found(std::string msg) { return Status(StatusCode::kNotFound, std::move(msg)); }
  static Status invalid(std::string msg) { return Status(StatusCode::kInvalid, std::move(msg)); }
  static Status io_error(std::string msg) { return Status(StatusCode::kIoError, std::move(msg)); }
  /// An I/O error for `what` (usually a path) with strerror(err) appended.
  static Status from_errno(const std::string& what, int err);
  static Status unavailable(std::string msg) {
    return Status(StatusCode::kUnavailable, std::move(msg));
  }
  static Status conflict(std::string msg) { return Status(StatusCode::kConflict, std::move(msg)); }
  static Status internal(std::string msg) { return Status(StatusCode::kInternal, std::move(msg)); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  /// Returns a copy whose message is "context: message".
  Status with_context(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  Status(StatusCode code, std::string msg) : code_(code), message_(std::move(msg)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

/// Either a value or a non-ok Status.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    MFLOW_CHECK(!status_.ok(), "Result constructed from an ok Status without a value");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & {
    MFLOW_CHECK(ok(), "Result::value() on error: {}", status_.message());
    return *value_;
  }
  const T& value() const& {
    MFLOW_CHECK(ok(), "Result::value() on error: {}", status_.message());
    return *value_;
  }
  T&& value() && {
    MFLOW_CHECK(ok(), "Result::value() on error: {}", status_.message());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace mflow::base

/// Returns early from a function returning Status or Result<T> when `expr` is not ok.
#define MFLOW_RETURN_IF_ERROR(expr)               \
  do {                                            \
    ::mflow::base::Status mflow_status_ = (expr); \
    if (!mflow_status_.ok()) return mflow_status_; \
  } while (0)
