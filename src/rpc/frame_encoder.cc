#include "rpc/frame_encoder.h"

#include <fmt/format.h>

#include <cstring>

#include "base/crc32c.h"

namespace weft::rpc {

FrameEncoder::FrameEncoder(FrameLimits limits) : limits_(limits) {}

Result<EncodedFrameHeader> FrameEncoder::EncodeHeader(const FrameFields& fields,
                                                      std::span<const std::byte> message,
                                                      std::span<const std::byte> bulk) const {
  WEFT_RETURN_IF_ERROR(ValidateFrameFields(fields));
  if (message.size() > limits_.message_bytes_max) {
    return Status::InvalidArgument(fmt::format("message of {} bytes exceeds the limit of {}",
                                               message.size(), limits_.message_bytes_max));
  }
  if (bulk.size() > limits_.bulk_bytes_max) {
    return Status::InvalidArgument(fmt::format("bulk data of {} bytes exceeds the limit of {}",
                                               bulk.size(), limits_.bulk_bytes_max));
  }
  FrameHeader header{};
  header.magic = kFrameMagic;
  header.version_major = kVersionMajor;
  header.version_minor = kVersionMinor;
  header.header_bytes = sizeof(FrameHeader);
  header.message_type = fields.message_type;
  header.flags = fields.flags;
  header.timeout_ms = fields.timeout_ms;
  header.request_id = fields.request_id;
  header.message_bytes = static_cast<uint32_t>(message.size());
  header.bulk_bytes = static_cast<uint32_t>(bulk.size());
  header.message_crc32c = Crc32c(message);
  header.bulk_crc32c = Crc32c(bulk);

  EncodedFrameHeader encoded;
  std::memcpy(encoded.storage.data(), &header, sizeof(header));
  header.header_crc32c = ComputeHeaderCrc32c(encoded.storage);
  std::memcpy(encoded.storage.data(), &header, sizeof(header));
  return encoded;
}

}  // namespace weft::rpc
