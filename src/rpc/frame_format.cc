#include "rpc/frame_format.h"

#include <fmt/format.h>

#include <array>
#include <cstring>

#include "base/crc32c.h"

namespace weft::rpc {

uint32_t ComputeHeaderCrc32c(std::span<const std::byte> header) {
  WEFT_ASSERT(header.size() >= sizeof(FrameHeader));
  WEFT_ASSERT(header.size() <= kHeaderBytesMax);
  constexpr size_t kCrcOffset = offsetof(FrameHeader, header_crc32c);
  constexpr size_t kCrcBytes = sizeof(uint32_t);
  // The crc field counts as zero, so the value does not depend on what the field held.
  constexpr std::array<std::byte, kCrcBytes> kZeroes{};
  uint32_t crc = Crc32c(header.first(kCrcOffset));
  crc = Crc32c(kZeroes, crc);
  return Crc32c(header.subspan(kCrcOffset + kCrcBytes), crc);
}

Status ValidateFrameFields(const FrameFields& fields) {
  if ((fields.flags & ~kFlagsKnown) != 0) {
    return Status::InvalidArgument(fmt::format("unknown flag bits {:#04x}", fields.flags));
  }
  const int kinds = ((fields.flags & kFlagRequest) != 0) + ((fields.flags & kFlagResponse) != 0) +
                    ((fields.flags & kFlagCancel) != 0);
  if (kinds != 1) {
    return Status::InvalidArgument(
        fmt::format("flags {:#04x} set {} of request, response and cancel, expected exactly one",
                    fields.flags, kinds));
  }
  if ((fields.flags & kFlagError) != 0 && (fields.flags & kFlagResponse) == 0) {
    return Status::InvalidArgument(
        fmt::format("flags {:#04x}: the error flag is only valid on a response", fields.flags));
  }
  // A deadline means something only to the side that executes the request.
  if (fields.timeout_ms != 0 && (fields.flags & kFlagRequest) == 0) {
    return Status::InvalidArgument(fmt::format("a {} carries timeout_ms {}, expected 0",
                                               DescribeFrameKind(fields.flags), fields.timeout_ms));
  }
  return Status::Ok();
}

std::string DescribeFrameKind(uint8_t flags) {
  switch (flags) {
    case kFlagRequest:
      return "request";
    case kFlagResponse:
      return "response";
    case kFlagResponse | kFlagError:
      return "error response";
    case kFlagCancel:
      return "cancel";
    default:
      return fmt::format("flags {:#04x}", flags);
  }
}

}  // namespace weft::rpc
