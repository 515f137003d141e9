#include "base/status.h"

#include <fmt/format.h>

#include <cstring>

namespace weft {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kNotFound:
      return "NotFound";
    case StatusCode::kCorruption:
      return "Corruption";
    case StatusCode::kInvalidArgument:
      return "InvalidArgument";
    case StatusCode::kIOError:
      return "IOError";
    case StatusCode::kNoSpace:
      return "NoSpace";
    case StatusCode::kAlreadyExists:
      return "AlreadyExists";
    case StatusCode::kBusy:
      return "Busy";
    case StatusCode::kAborted:
      return "Aborted";
    case StatusCode::kNotSupported:
      return "NotSupported";
    case StatusCode::kTimedOut:
      return "TimedOut";
    case StatusCode::kUnavailable:
      return "Unavailable";
  }
  return "Unknown";
}

Status Status::FromErrno(int error_number, std::string_view context) {
  WEFT_ASSERT(error_number > 0);
  std::string message = fmt::format("{}: {}", context, std::strerror(error_number));
  switch (error_number) {
    case ENOSPC:
    case EDQUOT:
      return NoSpace(std::move(message));
    case ENOENT:
      return NotFound(std::move(message));
    case EEXIST:
      return AlreadyExists(std::move(message));
    case EINVAL:
      return InvalidArgument(std::move(message));
    case EBUSY:
    case EAGAIN:
      return Busy(std::move(message));
    case EOPNOTSUPP:
      return NotSupported(std::move(message));
    default:
      return IOError(std::move(message));
  }
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return fmt::format("{}: {}", StatusCodeName(code_), message_);
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, fmt::format("{}: {}", context, message_));
}

}  // namespace weft
