#include "rpc/frame_decoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "base/crc32c.h"

namespace weft::rpc {

namespace {

// Magic, versions and header length: enough to know the layout of the rest.
constexpr size_t kPrefixBytes = offsetof(FrameHeader, message_type);
static_assert(kPrefixBytes == 8);

// Moves up to `wanted` bytes from the front of `input` to `destination`; returns how many.
size_t TakeBytes(std::span<const std::byte>& input, std::byte* destination, size_t wanted) {
  const size_t count = std::min(wanted, input.size());
  if (count == 0) return 0;  // memcpy must not see the null data() of an empty span.
  std::memcpy(destination, input.data(), count);
  input = input.subspan(count);
  return count;
}

}  // namespace

FrameDecoder::FrameDecoder(FrameLimits limits) : limits_(limits) {}

Result<size_t> FrameDecoder::Consume(std::span<const std::byte> input) {
  WEFT_ASSERT(state_ != State::kFrameReady);
  if (state_ == State::kDead) return error_;
  const size_t input_bytes = input.size();
  // Every pass either completes a part or empties `input`, so this ends.
  while (!input.empty() && state_ != State::kFrameReady) {
    const size_t before_bytes = input.size();
    Status status;
    switch (state_) {
      case State::kPrefix:
      case State::kHeader:
        status = ConsumeHeader(input);
        break;
      case State::kMessage:
        status = ConsumeMessage(input);
        break;
      case State::kBulk:
        status = ConsumeBulk(input);
        break;
      case State::kFrameReady:
      case State::kDead:
        WEFT_ASSERT(false);
    }
    stream_offset_ += before_bytes - input.size();
    if (!status.ok()) return Fail(std::move(status));
  }
  return input_bytes - input.size();
}

Frame FrameDecoder::TakeFrame() {
  WEFT_ASSERT(state_ == State::kFrameReady);
  Frame frame = std::move(frame_);
  frame_ = Frame{};
  state_ = State::kPrefix;
  header_filled_bytes_ = 0;
  header_bytes_expected_ = 0;
  frame_offset_ = stream_offset_;
  WEFT_ASSERT(frame.bulk.size() == frame.header.bulk_bytes);
  return frame;
}

Status FrameDecoder::ConsumeHeader(std::span<const std::byte>& input) {
  if (state_ == State::kPrefix) {
    header_filled_bytes_ += TakeBytes(input, header_bytes_.data() + header_filled_bytes_,
                                      kPrefixBytes - header_filled_bytes_);
    if (header_filled_bytes_ < kPrefixBytes) return Status::Ok();
    WEFT_RETURN_IF_ERROR(CheckPrefix());
    state_ = State::kHeader;
  }
  WEFT_ASSERT(header_bytes_expected_ <= header_bytes_.size());
  header_filled_bytes_ += TakeBytes(input, header_bytes_.data() + header_filled_bytes_,
                                    header_bytes_expected_ - header_filled_bytes_);
  if (header_filled_bytes_ < header_bytes_expected_) return Status::Ok();
  WEFT_RETURN_IF_ERROR(CheckHeader());
  AdvancePastEmptyParts();
  return Status::Ok();
}

Status FrameDecoder::CheckPrefix() {
  FrameHeader header{};
  std::memcpy(&header, header_bytes_.data(), kPrefixBytes);
  if (header.magic != kFrameMagic) {
    return Status::Corruption(
        fmt::format("bad magic {:#010x}, expected {:#010x}", header.magic, kFrameMagic));
  }
  // Checked before the crc: another major version may keep its crc somewhere else.
  if (header.version_major != kVersionMajor) {
    return Status::NotSupported(fmt::format("unknown major version {}.{} (this build speaks {}.x)",
                                            header.version_major, header.version_minor,
                                            kVersionMajor));
  }
  if (header.header_bytes < sizeof(FrameHeader) || header.header_bytes > kHeaderBytesMax) {
    return Status::Corruption(fmt::format("header_bytes {} outside {}..{}", header.header_bytes,
                                          sizeof(FrameHeader), kHeaderBytesMax));
  }
  header_bytes_expected_ = header.header_bytes;
  return Status::Ok();
}

Status FrameDecoder::CheckHeader() {
  FrameHeader& header = frame_.header;
  std::memcpy(&header, header_bytes_.data(), sizeof(header));
  const uint32_t computed_crc =
      ComputeHeaderCrc32c(std::span(header_bytes_).first(header_bytes_expected_));
  if (header.header_crc32c != computed_crc) {
    return Status::Corruption(
        fmt::format("header crc32c mismatch (stored {:#010x}, computed {:#010x})",
                    header.header_crc32c, computed_crc));
  }
  if (header.reserved0 != 0 || header.reserved1 != 0) {
    return Status::Corruption(
        fmt::format("reserved header fields are {:#04x} and {:#010x}, "
                    "expected 0",
                    header.reserved0, header.reserved1));
  }
  const Status fields_status = ValidateFrameFields(frame_.fields());
  if (!fields_status.ok()) return Status::Corruption(fields_status.message());
  // Sizes are checked here, before a byte of the message or bulk data is buffered.
  if (header.message_bytes > limits_.message_bytes_max) {
    return Status::InvalidArgument(fmt::format("message of {} bytes exceeds the limit of {}",
                                               header.message_bytes, limits_.message_bytes_max));
  }
  if (header.bulk_bytes > limits_.bulk_bytes_max) {
    return Status::InvalidArgument(fmt::format("bulk data of {} bytes exceeds the limit of {}",
                                               header.bulk_bytes, limits_.bulk_bytes_max));
  }
  frame_.message.resize(header.message_bytes);
  if (header.bulk_bytes > 0) frame_.bulk = AlignedBuffer(header.bulk_bytes);
  return Status::Ok();
}

void FrameDecoder::AdvancePastEmptyParts() {
  part_filled_bytes_ = 0;
  part_crc32c_ = 0;
  if (state_ == State::kHeader) {
    state_ = State::kMessage;
    if (frame_.header.message_bytes > 0) return;
  }
  if (state_ == State::kMessage) state_ = State::kBulk;
  if (frame_.header.bulk_bytes == 0) state_ = State::kFrameReady;
}

Status FrameDecoder::ConsumeMessage(std::span<const std::byte>& input) {
  const uint32_t message_bytes = frame_.header.message_bytes;
  WEFT_ASSERT(part_filled_bytes_ < message_bytes);
  std::byte* destination = reinterpret_cast<std::byte*>(frame_.message.data());
  const size_t count =
      TakeBytes(input, destination + part_filled_bytes_, message_bytes - part_filled_bytes_);
  part_crc32c_ = Crc32c(destination + part_filled_bytes_, count, part_crc32c_);
  part_filled_bytes_ += count;
  if (part_filled_bytes_ < message_bytes) return Status::Ok();
  if (part_crc32c_ != frame_.header.message_crc32c) {
    return Status::Corruption(
        fmt::format("message crc32c mismatch (stored {:#010x}, computed {:#010x})",
                    frame_.header.message_crc32c, part_crc32c_));
  }
  AdvancePastEmptyParts();
  return Status::Ok();
}

Status FrameDecoder::ConsumeBulk(std::span<const std::byte>& input) {
  const uint32_t bulk_bytes = frame_.header.bulk_bytes;
  WEFT_ASSERT(part_filled_bytes_ < bulk_bytes);
  std::byte* destination = frame_.bulk.data() + part_filled_bytes_;
  const size_t count = TakeBytes(input, destination, bulk_bytes - part_filled_bytes_);
  part_crc32c_ = Crc32c(destination, count, part_crc32c_);
  part_filled_bytes_ += count;
  if (part_filled_bytes_ < bulk_bytes) return Status::Ok();
  if (part_crc32c_ != frame_.header.bulk_crc32c) {
    return Status::Corruption(
        fmt::format("bulk crc32c mismatch (stored {:#010x}, computed {:#010x})",
                    frame_.header.bulk_crc32c, part_crc32c_));
  }
  state_ = State::kFrameReady;
  return Status::Ok();
}

Status FrameDecoder::Fail(Status status) {
  WEFT_ASSERT(!status.ok());
  // The request id is only trustworthy once the header crc has passed.
  const bool header_checked = state_ == State::kMessage || state_ == State::kBulk;
  std::string context = fmt::format("rpc frame at stream offset {}", frame_offset_);
  if (header_checked) {
    context += fmt::format(" ({} {} id {})", DescribeFrameKind(frame_.header.flags),
                           frame_.header.message_type, frame_.header.request_id);
  }
  error_ = status.WithContext(context);
  state_ = State::kDead;
  frame_ = Frame{};
  return error_;
}

}  // namespace weft::rpc
