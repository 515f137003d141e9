// libFuzzer harness for the RPC frame codec (src/rpc/): FrameDecoder fed arbitrary streams in
// arbitrary chunks, and FrameEncoder -> FrameDecoder round trips. Built with clang
// (-fsanitize=fuzzer,address,undefined) by fuzz/run-rpc-fuzz; the seed corpus is
// fuzz/corpus/rpc/.
//
// The first input byte picks the target, the second the chunk size; the rest is its input.
// Random bytes almost never pass the header crc, so one target repairs the first header's magic,
// version and crc, letting the fuzzer reach the field, size and payload checks behind them.
// Besides memory errors and undefined behaviour, the harness traps when the decoder breaks its
// contract: a frame above the limits, a consumed count beyond the input, a live decoder after
// an error, or a round trip that changes a byte.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "rpc/frame_decoder.h"
#include "rpc/frame_encoder.h"
#include "rpc/frame_format.h"

namespace weft::rpc {
namespace {

#define FUZZ_CHECK(condition)           \
  do {                                  \
    if (!(condition)) __builtin_trap(); \
  } while (false)

constexpr FrameLimits kLimits{.message_bytes_max = 4096, .bulk_bytes_max = 8192};
constexpr size_t kFramesMax = 64;

// Feeds `stream` in chunks of `chunk_bytes` (at least 1) and returns the frames decoded before
// the end or the first error.
std::vector<Frame> Decode(std::span<const std::byte> stream, size_t chunk_bytes, Status& status) {
  FrameDecoder decoder(kLimits);
  std::vector<Frame> frames;
  status = Status::Ok();
  while (!stream.empty()) {
    auto chunk = stream.first(std::min(chunk_bytes, stream.size()));
    stream = stream.subspan(chunk.size());
    while (!chunk.empty()) {
      auto consumed = decoder.Consume(chunk);
      if (!consumed.ok()) {
        status = consumed.status();
        FUZZ_CHECK(decoder.dead());
        FUZZ_CHECK(!decoder.Consume(chunk).ok());
        return frames;
      }
      FUZZ_CHECK(*consumed <= chunk.size());
      chunk = chunk.subspan(*consumed);
      // Either a frame is complete or the chunk is used up: Consume never stalls.
      FUZZ_CHECK(decoder.has_frame() || chunk.empty());
      if (!decoder.has_frame()) continue;
      Frame frame = decoder.TakeFrame();
      FUZZ_CHECK(frame.message.size() == frame.header.message_bytes);
      FUZZ_CHECK(frame.message.size() <= kLimits.message_bytes_max);
      FUZZ_CHECK(frame.bulk.size() == frame.header.bulk_bytes);
      FUZZ_CHECK(frame.bulk.size() <= kLimits.bulk_bytes_max);
      FUZZ_CHECK(ValidateFrameFields(frame.fields()).ok());
      frames.push_back(std::move(frame));
    }
  }
  return frames;
}

// Makes the first header pass the magic, version and crc checks, so the rest is exercised.
void RepairFirstHeader(std::vector<std::byte>& stream) {
  if (stream.size() < sizeof(FrameHeader)) return;
  FrameHeader header;
  std::memcpy(&header, stream.data(), sizeof(header));
  header.magic = kFrameMagic;
  header.version_major = kVersionMajor;
  header.header_bytes = static_cast<uint16_t>(
      sizeof(FrameHeader) + header.header_bytes % (kHeaderBytesMax - sizeof(FrameHeader) + 1));
  if (stream.size() < header.header_bytes) header.header_bytes = sizeof(FrameHeader);
  std::memcpy(stream.data(), &header, sizeof(header));
  header.header_crc32c = ComputeHeaderCrc32c(std::span(stream).first(header.header_bytes));
  std::memcpy(stream.data(), &header, sizeof(header));
}

// Reads a little-endian integer of sizeof(T) bytes from the front of `input` (zero past its end).
template <typename T>
T Take(std::span<const std::byte>& input) {
  T value = 0;
  const size_t count = std::min(sizeof(T), input.size());
  std::memcpy(&value, input.data(), count);
  input = input.subspan(count);
  return value;
}

// Frames described by the input (fields, then sizes, then their bytes) are encoded, decoded in
// chunks and compared.
void FuzzRoundTrip(std::span<const std::byte> input, size_t chunk_bytes) {
  const FrameEncoder encoder(kLimits);
  std::vector<std::byte> stream;
  std::vector<FrameFields> sent_fields;
  std::vector<std::vector<std::byte>> sent_payloads;
  while (!input.empty() && sent_fields.size() < kFramesMax) {
    FrameFields fields;
    fields.message_type = Take<uint16_t>(input);
    fields.flags = Take<uint8_t>(input);
    fields.request_id = Take<uint64_t>(input);
    fields.timeout_ms = Take<uint8_t>(input) < 128 ? 0 : Take<uint32_t>(input);
    const size_t message_bytes = std::min<size_t>(Take<uint16_t>(input) % 512, input.size());
    const auto message = input.first(message_bytes);
    input = input.subspan(message_bytes);
    const size_t bulk_bytes = std::min<size_t>(Take<uint16_t>(input) % 4096, input.size());
    const auto bulk = input.first(bulk_bytes);
    input = input.subspan(bulk_bytes);
    auto header = encoder.EncodeHeader(fields, message, bulk);
    // The sizes are within the limits, so only the flag and timeout rules can refuse.
    FUZZ_CHECK(header.ok() == ValidateFrameFields(fields).ok());
    if (!header.ok()) continue;
    stream.insert(stream.end(), header->bytes().begin(), header->bytes().end());
    stream.insert(stream.end(), message.begin(), message.end());
    stream.insert(stream.end(), bulk.begin(), bulk.end());
    sent_fields.push_back(fields);
    std::vector<std::byte> payload(message.begin(), message.end());
    payload.insert(payload.end(), bulk.begin(), bulk.end());
    sent_payloads.push_back(std::move(payload));
  }
  Status status;
  const std::vector<Frame> frames = Decode(stream, chunk_bytes, status);
  FUZZ_CHECK(status.ok());
  FUZZ_CHECK(frames.size() == sent_fields.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    const FrameFields received = frames[i].fields();
    FUZZ_CHECK(received.message_type == sent_fields[i].message_type);
    FUZZ_CHECK(received.flags == sent_fields[i].flags);
    FUZZ_CHECK(received.request_id == sent_fields[i].request_id);
    FUZZ_CHECK(received.timeout_ms == sent_fields[i].timeout_ms);
    const std::vector<std::byte>& payload = sent_payloads[i];
    const size_t message_bytes = frames[i].message.size();
    FUZZ_CHECK(message_bytes + frames[i].bulk.size() == payload.size());
    FUZZ_CHECK(std::equal(frames[i].message.begin(), frames[i].message.end(), payload.begin(),
                          [](char left, std::byte right) { return std::byte(left) == right; }));
    FUZZ_CHECK(std::equal(frames[i].bulk.span().begin(), frames[i].bulk.span().end(),
                          payload.begin() + static_cast<ptrdiff_t>(message_bytes)));
  }
}

}  // namespace
}  // namespace weft::rpc

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t chunk_bytes = 1 + data[1] % 64;
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data) + 2, size - 2);
  weft::Status status;
  switch (data[0] % 3) {
    case 0:
      weft::rpc::Decode(input, chunk_bytes, status).clear();
      break;
    case 1: {
      std::vector<std::byte> stream(input.begin(), input.end());
      weft::rpc::RepairFirstHeader(stream);
      weft::rpc::Decode(stream, chunk_bytes, status).clear();
      break;
    }
    default:
      weft::rpc::FuzzRoundTrip(input, chunk_bytes);
      break;
  }
  return 0;
}
