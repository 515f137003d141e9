#include "rpc/error_reply.h"

#include <fmt/format.h>

#include "rpc/rpc.pb.h"

namespace weft::rpc {

namespace {

Status StatusFromCode(StatusCode code, std::string message) {
  switch (code) {
    case StatusCode::kOk:
      break;  // Refused by the caller.
    case StatusCode::kNotFound:
      return Status::NotFound(std::move(message));
    case StatusCode::kCorruption:
      return Status::Corruption(std::move(message));
    case StatusCode::kInvalidArgument:
      return Status::InvalidArgument(std::move(message));
    case StatusCode::kIOError:
      return Status::IOError(std::move(message));
    case StatusCode::kNoSpace:
      return Status::NoSpace(std::move(message));
    case StatusCode::kAlreadyExists:
      return Status::AlreadyExists(std::move(message));
    case StatusCode::kBusy:
      return Status::Busy(std::move(message));
    case StatusCode::kAborted:
      return Status::Aborted(std::move(message));
    case StatusCode::kNotSupported:
      return Status::NotSupported(std::move(message));
    case StatusCode::kTimedOut:
      return Status::TimedOut(std::move(message));
    case StatusCode::kUnavailable:
      return Status::Unavailable(std::move(message));
  }
  WEFT_ASSERT(false);
  return Status::IOError(std::move(message));
}

}  // namespace

std::string EncodeErrorReply(const Status& status) {
  WEFT_ASSERT(!status.ok());
  ErrorReply reply;
  reply.set_status_code(static_cast<uint32_t>(status.code()));
  reply.set_message(status.message());
  std::string bytes = reply.SerializeAsString();
  WEFT_ASSERT(!bytes.empty());  // The code is never 0, so it is always encoded.
  return bytes;
}

Result<RemoteStatus> DecodeErrorReply(std::string_view bytes) {
  ErrorReply reply;
  if (!reply.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::Corruption(fmt::format("error reply of {} bytes does not parse", bytes.size()));
  }
  const uint32_t code = reply.status_code();
  if (code == 0) return Status::Corruption("error reply carries status code 0 (Ok)");
  if (code > static_cast<uint32_t>(StatusCode::kUnavailable)) {
    return RemoteStatus{
        Status::IOError(fmt::format("unknown status code {}: {}", code, reply.message()))};
  }
  return RemoteStatus{StatusFromCode(static_cast<StatusCode>(code), reply.message())};
}

}  // namespace weft::rpc
