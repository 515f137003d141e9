// Status and Result<T>: how weft reports failures that can happen in operation (I/O errors, bad
// input, corruption, full devices). Programmer errors are WEFT_ASSERTs instead (assert.h).
//
// A Status is cheap on success (an enum and an empty string, no allocation). It is
// [[nodiscard]]: dropping one is a compile error; ignoring one on purpose is spelled
// `status.IgnoreError()` so that it can be grepped for.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "base/assert.h"

namespace weft {

enum class StatusCode : uint8_t {
  kOk = 0,
  kNotFound,
  kCorruption,
  kInvalidArgument,
  kIOError,
  kNoSpace,
  kAlreadyExists,
  kBusy,
  kAborted,
  kNotSupported,
  kTimedOut,     // A deadline passed; the outcome of what was asked is unknown.
  kUnavailable,  // A peer or quorum cannot be reached now; retrying later may succeed.
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;

  static Status Ok() { return Status(); }
  static Status NotFound(std::string message) {
    return {StatusCode::kNotFound, std::move(message)};
  }
  static Status Corruption(std::string message) {
    return {StatusCode::kCorruption, std::move(message)};
  }
  static Status InvalidArgument(std::string message) {
    return {StatusCode::kInvalidArgument, std::move(message)};
  }
  static Status IOError(std::string message) { return {StatusCode::kIOError, std::move(message)}; }
  static Status NoSpace(std::string message) { return {StatusCode::kNoSpace, std::move(message)}; }
  static Status AlreadyExists(std::string message) {
    return {StatusCode::kAlreadyExists, std::move(message)};
  }
  static Status Busy(std::string message) { return {StatusCode::kBusy, std::move(message)}; }
  static Status Aborted(std::string message) { return {StatusCode::kAborted, std::move(message)}; }
  static Status NotSupported(std::string message) {
    return {StatusCode::kNotSupported, std::move(message)};
  }
  static Status TimedOut(std::string message) {
    return {StatusCode::kTimedOut, std::move(message)};
  }
  static Status Unavailable(std::string message) {
    return {StatusCode::kUnavailable, std::move(message)};
  }
  // An errno from a system call, translated at the boundary that made the call.
  static Status FromErrno(int error_number, std::string_view context);

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == StatusCode::kNotFound; }
  bool IsCorruption() const { return code_ == StatusCode::kCorruption; }
  bool IsInvalidArgument() const { return code_ == StatusCode::kInvalidArgument; }
  bool IsIOError() const { return code_ == StatusCode::kIOError; }
  bool IsNoSpace() const { return code_ == StatusCode::kNoSpace; }
  bool IsAlreadyExists() const { return code_ == StatusCode::kAlreadyExists; }
  bool IsBusy() const { return code_ == StatusCode::kBusy; }
  bool IsAborted() const { return code_ == StatusCode::kAborted; }
  bool IsNotSupported() const { return code_ == StatusCode::kNotSupported; }

  // "Corruption: egroup 7 offset 8192: checksum mismatch" style, for logs and error messages.
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context` (kept in the same code).
  Status WithContext(std::string_view context) const;

  // The one greppable way to drop a Status on purpose.
  void IgnoreError() const {}

 private:
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {
    WEFT_ASSERT(code != StatusCode::kOk);
  }

  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : storage_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : storage_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    WEFT_ASSERT(!std::get<Status>(storage_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(storage_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(storage_);
  }
  T& value() & {
    WEFT_ASSERT(ok());
    return std::get<T>(storage_);
  }
  const T& value() const& {
    WEFT_ASSERT(ok());
    return std::get<T>(storage_);
  }
  T&& value() && {
    WEFT_ASSERT(ok());
    return std::get<T>(std::move(storage_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> storage_;
};

}  // namespace weft

#define WEFT_STATUS_CONCAT_INNER(a, b) a##b
#define WEFT_STATUS_CONCAT(a, b) WEFT_STATUS_CONCAT_INNER(a, b)

// Returns the Status of `expression` from the current function when it is not ok.
#define WEFT_RETURN_IF_ERROR(expression)         \
  do {                                           \
    ::weft::Status weft_status_ = (expression);  \
    if (!weft_status_.ok()) return weft_status_; \
  } while (false)

// Declares `lhs` from a Result, or returns its Status from the current function.
#define WEFT_ASSIGN_OR_RETURN(lhs, expression)                    \
  auto WEFT_STATUS_CONCAT(weft_result_, __LINE__) = (expression); \
  if (!WEFT_STATUS_CONCAT(weft_result_, __LINE__).ok())           \
    return WEFT_STATUS_CONCAT(weft_result_, __LINE__).status();   \
  lhs = std::move(WEFT_STATUS_CONCAT(weft_result_, __LINE__)).value()  // NOLINT: a declaration
