// The RPC frame (wire format version 1.0). The prose spec is docs/protocol/rpc.md; keep the two
// in step.
//
// A frame is a fixed little-endian header (FrameHeader, 48 bytes in version 1.0), then
// `message_bytes` of an encoded protobuf message (opaque here), then `bulk_bytes` of bulk data
// (block contents), which travel after the message so that they never pass through protobuf.
// The header, the message and the bulk data each have their own crc32c, so that the sizes are
// trusted before anything is buffered for them and an error names the part that is damaged.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>

#include "base/status.h"

namespace weft::rpc {

static_assert(std::endian::native == std::endian::little, "weft wire formats are little-endian");

inline constexpr uint32_t kFrameMagic = 0x43505257;  // "WRPC" in a little-endian dump.
// A peer with another major version lays the frame out differently: it is refused. Minor
// versions of the same major may only append header fields (see header_bytes), which older
// decoders skip.
inline constexpr uint8_t kVersionMajor = 1;
inline constexpr uint8_t kVersionMinor = 0;

// Frame kinds and modifiers. Exactly one of kRequest, kResponse and kCancel is set; kError only
// with kResponse (the message is then an error reply instead of the method's response).
enum FrameFlag : uint8_t {
  kFlagRequest = 1 << 0,
  kFlagResponse = 1 << 1,
  kFlagError = 1 << 2,
  kFlagCancel = 1 << 3,
};
inline constexpr uint8_t kFlagsKnown = kFlagRequest | kFlagResponse | kFlagError | kFlagCancel;

struct FrameHeader {
  uint32_t magic;           // kFrameMagic.
  uint8_t version_major;    // kVersionMajor.
  uint8_t version_minor;    // Any; a newer minor may carry a longer header.
  uint16_t header_bytes;    // sizeof(FrameHeader)..kHeaderBytesMax: where the message starts.
  uint16_t message_type;    // Which protobuf message follows; opaque to the codec.
  uint8_t flags;            // FrameFlag bits; unknown bits must be zero.
  uint8_t reserved0;        // Zero.
  uint32_t timeout_ms;      // Requests: relative deadline, 0 = none. Other frames: 0.
  uint64_t request_id;      // Chosen by the requester; responses and cancels repeat it.
  uint32_t message_bytes;   // 0..FrameLimits::message_bytes_max.
  uint32_t bulk_bytes;      // 0..FrameLimits::bulk_bytes_max.
  uint32_t message_crc32c;  // Of the message bytes.
  uint32_t bulk_crc32c;     // Of the bulk bytes.
  uint32_t reserved1;       // Zero.
  uint32_t header_crc32c;   // Of header bytes [0, header_bytes) with this field as zero.
};
static_assert(sizeof(FrameHeader) == 48);
static_assert(std::has_unique_object_representations_v<FrameHeader>, "no padding");
static_assert(offsetof(FrameHeader, header_crc32c) == 44);

// A newer minor version may append fields up to this size; anything longer is corrupt.
inline constexpr size_t kHeaderBytesMax = 256;

// Limits a connection enforces on both sides (the encoder refuses to build, the decoder refuses
// to buffer). The defaults fit a metadata row batch and a 16 MiB data transfer.
struct FrameLimits {
  uint32_t message_bytes_max = 4u << 20;
  uint32_t bulk_bytes_max = 32u << 20;
};

// The fields of a header the caller chooses; the codec fills in the rest.
struct FrameFields {
  uint16_t message_type = 0;
  uint8_t flags = 0;
  uint64_t request_id = 0;
  uint32_t timeout_ms = 0;
};

// The crc32c of `header` (header_bytes long, including any extension) with its header_crc32c
// field taken as zero. Asserts header.size() >= sizeof(FrameHeader).
uint32_t ComputeHeaderCrc32c(std::span<const std::byte> header);

// Checks flags and timeout against the rules above; InvalidArgument naming the rule otherwise.
// Shared by the encoder (a caller's mistake) and the decoder (a peer's).
Status ValidateFrameFields(const FrameFields& fields);

// "request", "response", "error response", "cancel", or "flags 0x??" for other values; for logs.
std::string DescribeFrameKind(uint8_t flags);

}  // namespace weft::rpc
