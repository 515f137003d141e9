// FrameEncoder builds the header of an RPC frame (frame_format.h) into a small buffer, so that the
// caller gather-writes header, message and bulk bytes (one writev) without copying the bulk
// data anywhere. It holds no state besides its limits and is safe to share between threads.
#pragma once

#include <array>
#include <cstddef>
#include <span>

#include "base/status.h"
#include "rpc/frame_format.h"

namespace weft::rpc {

// The encoded header of one frame: send bytes(), then the message, then the bulk data.
struct EncodedFrameHeader {
  std::array<std::byte, sizeof(FrameHeader)> storage;

  std::span<const std::byte> bytes() const { return storage; }
};

class FrameEncoder {
 public:
  explicit FrameEncoder(FrameLimits limits = {});

  // The header for a frame carrying `message` and `bulk`, with their crcs computed (the only
  // pass over the bytes). InvalidArgument when the fields break a rule of ValidateFrameFields or
  // a size exceeds the limits: the caller is at fault, and nothing is sent.
  Result<EncodedFrameHeader> EncodeHeader(const FrameFields& fields,
                                          std::span<const std::byte> message,
                                          std::span<const std::byte> bulk) const;

  const FrameLimits& limits() const { return limits_; }

 private:
  FrameLimits limits_;
};

}  // namespace weft::rpc
