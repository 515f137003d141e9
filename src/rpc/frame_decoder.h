// FrameDecoder turns the byte stream of one connection into RPC frames (frame_format.h). It is
// sans-I/O: the caller feeds it whatever chunks the socket returned, split anywhere, and takes
// complete frames out. It buffers at most one frame, of at most the limits' sizes, and checks
// every header field before it buffers anything the header announces.
//
// A frame that fails a check kills the decoder: Consume() returns the error (and keeps returning
// it), and the caller closes the connection with that error as the logged reason. No input
// makes it crash or allocate beyond the limits. One decoder per connection, one thread at a time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "base/aligned_buffer.h"
#include "base/status.h"
#include "rpc/frame_format.h"

namespace weft::rpc {

// One received frame, its bytes owned: the message in a string (protobuf parses it in place),
// the bulk data in an AlignedBuffer that O_DIRECT writes can take as it is.
struct Frame {
  FrameHeader header;  // As received; header fields of a newer minor version are dropped.
  std::string message;
  AlignedBuffer bulk;  // bulk.size() == header.bulk_bytes; an empty buffer when 0.

  FrameFields fields() const {
    return {header.message_type, header.flags, header.request_id, header.timeout_ms};
  }
};

class FrameDecoder {
 public:
  explicit FrameDecoder(FrameLimits limits = {});

  // Consumes a prefix of `input` and returns its length. It stops early when a frame is complete:
  // take it with TakeFrame(), then call again with the rest of the input. Errors:
  // Corruption (bad magic, header length, header/message/bulk crc mismatch, reserved bits, bad
  // flags), NotSupported (a major version other than kVersionMajor), InvalidArgument (a message
  // or bulk size above the limits). After an error every call returns the same error.
  // Asserts that no complete frame is waiting.
  Result<size_t> Consume(std::span<const std::byte> input);

  bool has_frame() const { return state_ == State::kFrameReady; }
  // The complete frame. Asserts has_frame().
  Frame TakeFrame();

  bool dead() const { return state_ == State::kDead; }
  // True when no byte of a next frame has arrived: the stream may end here cleanly.
  bool between_frames() const { return state_ == State::kPrefix && header_filled_bytes_ == 0; }
  // The error that killed the decoder; ok while it is alive.
  const Status& error() const { return error_; }
  // Bytes of the stream consumed so far, for error context in logs.
  uint64_t stream_offset() const { return stream_offset_; }

 private:
  enum class State : uint8_t { kPrefix, kHeader, kMessage, kBulk, kFrameReady, kDead };

  // Each step consumes from `input` and advances the state when its part is complete.
  Status ConsumeHeader(std::span<const std::byte>& input);
  Status CheckPrefix();
  Status CheckHeader();
  Status ConsumeMessage(std::span<const std::byte>& input);
  Status ConsumeBulk(std::span<const std::byte>& input);
  // The state after the header or the message, skipping empty parts.
  void AdvancePastEmptyParts();
  Status Fail(Status status);

  FrameLimits limits_;
  State state_ = State::kPrefix;
  Status error_;
  uint64_t stream_offset_ = 0;
  uint64_t frame_offset_ = 0;  // Stream offset where the current frame began.

  std::array<std::byte, kHeaderBytesMax> header_bytes_{};
  size_t header_filled_bytes_ = 0;
  size_t header_bytes_expected_ = 0;  // Known once the prefix is checked.
  Frame frame_;
  size_t part_filled_bytes_ = 0;  // Of the message or of the bulk data, whichever is filling.
  uint32_t part_crc32c_ = 0;
};

}  // namespace weft::rpc
