#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "base/crc32c.h"
#include "rpc/frame_decoder.h"
#include "rpc/frame_encoder.h"
#include "rpc/frame_format.h"

namespace weft::rpc {
namespace {

using Bytes = std::vector<std::byte>;

// What a test sends: the fields and both payloads.
struct SentFrame {
  FrameFields fields;
  std::string message;
  Bytes bulk;
};

std::span<const std::byte> AsBytes(const std::string& text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

Bytes PatternBytes(size_t size_bytes, uint32_t seed) {
  Bytes bytes(size_bytes);
  for (size_t i = 0; i < size_bytes; ++i) bytes[i] = std::byte((i * 131 + seed * 7) & 0xFF);
  return bytes;
}

void AppendFrame(Bytes& stream, const SentFrame& sent,
                 const FrameEncoder& encoder = FrameEncoder()) {
  auto header = encoder.EncodeHeader(sent.fields, AsBytes(sent.message), sent.bulk);
  ASSERT_TRUE(header.ok()) << header.status().ToString();
  const auto header_bytes = header->bytes();
  stream.insert(stream.end(), header_bytes.begin(), header_bytes.end());
  const auto message = AsBytes(sent.message);
  stream.insert(stream.end(), message.begin(), message.end());
  stream.insert(stream.end(), sent.bulk.begin(), sent.bulk.end());
}

// Feeds `stream` in chunks that end at `cuts` (ascending offsets), collecting every frame.
// Returns the decoder's error if it died.
Status DecodeChunks(FrameDecoder& decoder, std::span<const std::byte> stream,
                    const std::vector<size_t>& cuts, std::vector<Frame>& frames) {
  size_t start = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(stream.size());
  for (const size_t end : ends) {
    auto chunk = stream.subspan(start, end - start);
    start = end;
    while (!chunk.empty()) {
      auto consumed = decoder.Consume(chunk);
      if (!consumed.ok()) return consumed.status();
      chunk = chunk.subspan(*consumed);
      if (decoder.has_frame()) frames.push_back(decoder.TakeFrame());
    }
  }
  return Status::Ok();
}

void ExpectSame(const SentFrame& sent, const Frame& received) {
  EXPECT_EQ(received.header.message_type, sent.fields.message_type);
  EXPECT_EQ(received.header.flags, sent.fields.flags);
  EXPECT_EQ(received.header.request_id, sent.fields.request_id);
  EXPECT_EQ(received.header.timeout_ms, sent.fields.timeout_ms);
  EXPECT_EQ(received.message, sent.message);
  ASSERT_EQ(received.bulk.size(), sent.bulk.size());
  EXPECT_TRUE(std::equal(sent.bulk.begin(), sent.bulk.end(), received.bulk.span().begin()));
}

// Three frames covering the empty cases: empty bulk, empty message, both empty.
std::vector<SentFrame> MixedFrames() {
  return {
      {{7, kFlagRequest, 1, 2500}, "get row vdisk/1", {}},
      {{8, kFlagResponse, 1, 0}, "", PatternBytes(300, 1)},
      {{9, kFlagCancel, 2, 0}, "", {}},
      {{10, kFlagResponse | kFlagError, 3, 0}, "NotFound: no such row", PatternBytes(17, 2)},
  };
}

TEST(RpcFrameTest, HeaderLayoutIsTheDocumentedOne) {
  EXPECT_EQ(offsetof(FrameHeader, magic), 0u);
  EXPECT_EQ(offsetof(FrameHeader, version_major), 4u);
  EXPECT_EQ(offsetof(FrameHeader, header_bytes), 6u);
  EXPECT_EQ(offsetof(FrameHeader, message_type), 8u);
  EXPECT_EQ(offsetof(FrameHeader, flags), 10u);
  EXPECT_EQ(offsetof(FrameHeader, timeout_ms), 12u);
  EXPECT_EQ(offsetof(FrameHeader, request_id), 16u);
  EXPECT_EQ(offsetof(FrameHeader, message_bytes), 24u);
  EXPECT_EQ(offsetof(FrameHeader, bulk_bytes), 28u);
  EXPECT_EQ(offsetof(FrameHeader, message_crc32c), 32u);
  EXPECT_EQ(offsetof(FrameHeader, bulk_crc32c), 36u);
  EXPECT_EQ(offsetof(FrameHeader, reserved1), 40u);
  // The magic reads "WRPC" in a dump.
  Bytes stream;
  AppendFrame(stream, {{1, kFlagRequest, 1, 0}, "", {}});
  EXPECT_EQ(std::memcmp(stream.data(), "WRPC", 4), 0);
  EXPECT_EQ(stream.size(), sizeof(FrameHeader));
}

TEST(RpcFrameTest, RoundTripsAtEverySplitPoint) {
  Bytes stream;
  const auto sent = MixedFrames();
  for (const auto& frame : sent) AppendFrame(stream, frame);
  for (size_t split = 0; split <= stream.size(); ++split) {
    FrameDecoder decoder;
    std::vector<Frame> frames;
    ASSERT_TRUE(DecodeChunks(decoder, stream, {split}, frames).ok()) << "split " << split;
    ASSERT_EQ(frames.size(), sent.size()) << "split " << split;
    for (size_t i = 0; i < sent.size(); ++i) ExpectSame(sent[i], frames[i]);
    EXPECT_EQ(decoder.stream_offset(), stream.size());
  }
}

TEST(RpcFrameTest, RoundTripsOneByteAtATime) {
  Bytes stream;
  const auto sent = MixedFrames();
  for (const auto& frame : sent) AppendFrame(stream, frame);
  std::vector<size_t> cuts;
  for (size_t offset = 1; offset < stream.size(); ++offset) cuts.push_back(offset);
  FrameDecoder decoder;
  std::vector<Frame> frames;
  ASSERT_TRUE(DecodeChunks(decoder, stream, cuts, frames).ok());
  ASSERT_EQ(frames.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) ExpectSame(sent[i], frames[i]);
}

TEST(RpcFrameTest, ManyFramesBackToBackInOneChunk) {
  Bytes stream;
  std::vector<SentFrame> sent;
  for (uint64_t id = 1; id <= 1000; ++id) {
    sent.push_back({{static_cast<uint16_t>(id % 5), kFlagRequest, id, static_cast<uint32_t>(id)},
                    std::string(id % 13, 'm'),
                    PatternBytes(id % 29, static_cast<uint32_t>(id))});
    AppendFrame(stream, sent.back());
  }
  FrameDecoder decoder;
  std::vector<Frame> frames;
  ASSERT_TRUE(DecodeChunks(decoder, stream, {}, frames).ok());
  ASSERT_EQ(frames.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) ExpectSame(sent[i], frames[i]);
}

TEST(RpcFrameTest, ConsumeStopsAtTheEndOfEachFrame) {
  Bytes stream;
  AppendFrame(stream, {{1, kFlagRequest, 1, 0}, "a", {}});
  const size_t first_bytes = stream.size();
  AppendFrame(stream, {{1, kFlagRequest, 2, 0}, "b", {}});
  FrameDecoder decoder;
  auto consumed = decoder.Consume(stream);
  ASSERT_TRUE(consumed.ok());
  EXPECT_EQ(*consumed, first_bytes);
  ASSERT_TRUE(decoder.has_frame());
  EXPECT_EQ(decoder.TakeFrame().header.request_id, 1u);
  EXPECT_FALSE(decoder.has_frame());
}

TEST(RpcFrameTest, RandomFramesAndChunkingRoundTrip) {
  const bool passed = rc::check("frames survive any chunking", [] {
    const auto count = *rc::gen::inRange<size_t>(1, 8);
    std::vector<SentFrame> sent;
    Bytes stream;
    for (size_t i = 0; i < count; ++i) {
      SentFrame frame;
      const uint8_t kind = *rc::gen::element<uint8_t>(kFlagRequest, kFlagResponse,
                                                      kFlagResponse | kFlagError, kFlagCancel);
      frame.fields = {*rc::gen::arbitrary<uint16_t>(), kind, *rc::gen::arbitrary<uint64_t>(),
                      kind == kFlagRequest ? *rc::gen::arbitrary<uint32_t>() : 0u};
      frame.message = *rc::gen::container<std::string>(*rc::gen::inRange<size_t>(0, 200),
                                                       rc::gen::arbitrary<char>());
      frame.bulk = PatternBytes(*rc::gen::inRange<size_t>(0, 5000), *rc::gen::arbitrary<uint8_t>());
      AppendFrame(stream, frame);
      sent.push_back(std::move(frame));
    }
    auto cuts =
        *rc::gen::container<std::vector<size_t>>(rc::gen::inRange<size_t>(0, stream.size()));
    std::sort(cuts.begin(), cuts.end());
    FrameDecoder decoder;
    std::vector<Frame> frames;
    RC_ASSERT(DecodeChunks(decoder, stream, cuts, frames).ok());
    RC_ASSERT(frames.size() == sent.size());
    for (size_t i = 0; i < sent.size(); ++i) {
      RC_ASSERT(frames[i].header.request_id == sent[i].fields.request_id);
      RC_ASSERT(frames[i].header.flags == sent[i].fields.flags);
      RC_ASSERT(frames[i].header.timeout_ms == sent[i].fields.timeout_ms);
      RC_ASSERT(frames[i].header.message_type == sent[i].fields.message_type);
      RC_ASSERT(frames[i].message == sent[i].message);
      RC_ASSERT(frames[i].bulk.size() == sent[i].bulk.size());
      RC_ASSERT(std::equal(sent[i].bulk.begin(), sent[i].bulk.end(), frames[i].bulk.data()));
    }
  });
  EXPECT_TRUE(passed);
}

TEST(RpcFrameTest, EncoderRefusesOversizedPartsAndBadFields) {
  const FrameEncoder encoder({.message_bytes_max = 10, .bulk_bytes_max = 20});
  const Bytes eleven(11);
  const Bytes twenty_one(21);
  auto message = encoder.EncodeHeader({1, kFlagRequest, 1, 0}, eleven, {});
  ASSERT_FALSE(message.ok());
  EXPECT_TRUE(message.status().IsInvalidArgument());
  EXPECT_NE(message.status().message().find("message of 11 bytes"), std::string::npos);
  auto bulk = encoder.EncodeHeader({1, kFlagRequest, 1, 0}, {}, twenty_one);
  ASSERT_FALSE(bulk.ok());
  EXPECT_NE(bulk.status().message().find("bulk data of 21 bytes"), std::string::npos);
  EXPECT_TRUE(encoder.EncodeHeader({1, kFlagRequest, 1, 0}, Bytes(10), Bytes(20)).ok());
  EXPECT_FALSE(encoder.EncodeHeader({1, 0, 1, 0}, {}, {}).ok());
  EXPECT_FALSE(encoder.EncodeHeader({1, kFlagRequest | kFlagCancel, 1, 0}, {}, {}).ok());
  EXPECT_FALSE(encoder.EncodeHeader({1, kFlagRequest | kFlagError, 1, 0}, {}, {}).ok());
  EXPECT_FALSE(encoder.EncodeHeader({1, kFlagResponse, 1, 5}, {}, {}).ok());
  EXPECT_FALSE(encoder.EncodeHeader({1, kFlagRequest | 0x10, 1, 0}, {}, {}).ok());
}

// Decodes `stream` whole and returns the error it must produce.
Status DecodeError(std::span<const std::byte> stream, FrameLimits limits = {}) {
  FrameDecoder decoder(limits);
  std::vector<Frame> frames;
  Status status = DecodeChunks(decoder, stream, {}, frames);
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(decoder.dead());
  return status;
}

void ExpectError(const Status& status, StatusCode code, std::string_view text) {
  EXPECT_EQ(status.code(), code) << status.ToString();
  EXPECT_NE(status.message().find(text), std::string::npos) << status.ToString();
}

// A valid frame's bytes, changed by `mutate` on its header, with the header crc recomputed.
Bytes MutatedFrame(const std::function<void(FrameHeader&)>& mutate) {
  Bytes stream;
  AppendFrame(stream, {{3, kFlagRequest, 42, 1000}, "message", PatternBytes(64, 3)});
  FrameHeader header;
  std::memcpy(&header, stream.data(), sizeof(header));
  mutate(header);
  std::memcpy(stream.data(), &header, sizeof(header));
  header.header_crc32c = ComputeHeaderCrc32c(std::span(stream).first(sizeof(header)));
  std::memcpy(stream.data(), &header, sizeof(header));
  return stream;
}

TEST(RpcFrameTest, EachCorruptHeaderFieldGetsItsError) {
  using H = FrameHeader;
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.magic = 0x50545448; })),
              StatusCode::kCorruption, "bad magic 0x50545448");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.version_major = 2; })),
              StatusCode::kNotSupported, "unknown major version 2.0");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.version_major = 0; })),
              StatusCode::kNotSupported, "unknown major version 0.0");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.header_bytes = 47; })), StatusCode::kCorruption,
              "header_bytes 47 outside 48..256");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.header_bytes = 257; })),
              StatusCode::kCorruption, "header_bytes 257");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.reserved0 = 1; })), StatusCode::kCorruption,
              "reserved header fields");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.reserved1 = 1; })), StatusCode::kCorruption,
              "reserved header fields");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.flags = kFlagRequest | 0x80; })),
              StatusCode::kCorruption, "unknown flag bits");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.flags = 0; })), StatusCode::kCorruption,
              "expected exactly one");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.flags = kFlagRequest | kFlagResponse; })),
              StatusCode::kCorruption, "expected exactly one");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.flags = kFlagCancel | kFlagError; })),
              StatusCode::kCorruption, "only valid on a response");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.flags = kFlagResponse; })),
              StatusCode::kCorruption, "response carries timeout_ms 1000");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.message_crc32c ^= 1; })),
              StatusCode::kCorruption, "message crc32c mismatch");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.bulk_crc32c ^= 1; })), StatusCode::kCorruption,
              "bulk crc32c mismatch");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.message_bytes = 0xFFFFFFFF; })),
              StatusCode::kInvalidArgument, "message of 4294967295 bytes exceeds the limit");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.bulk_bytes = 0xFFFFFFFF; })),
              StatusCode::kInvalidArgument, "bulk data of 4294967295 bytes exceeds the limit");
  // Lengths that disagree with the payload show up as a crc mismatch of the part.
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.message_bytes -= 1; })),
              StatusCode::kCorruption, "message crc32c mismatch");
  ExpectError(DecodeError(MutatedFrame([](H& h) { h.bulk_bytes -= 1; })), StatusCode::kCorruption,
              "bulk crc32c mismatch");
  // MutatedFrame recomputes the header crc, so this one damages the crc field by hand.
  Bytes bad_crc = MutatedFrame([](H&) {});
  bad_crc[offsetof(FrameHeader, header_crc32c)] ^= std::byte{0x01};
  ExpectError(DecodeError(bad_crc), StatusCode::kCorruption, "header crc32c mismatch");
}

TEST(RpcFrameTest, EveryHeaderBitFlipIsCaught) {
  Bytes original;
  AppendFrame(original, {{3, kFlagRequest, 42, 1000}, "message", PatternBytes(64, 3)});
  for (size_t bit = 0; bit < sizeof(FrameHeader) * 8; ++bit) {
    Bytes stream = original;
    stream[bit / 8] ^= std::byte(1 << (bit % 8));
    const size_t offset = bit / 8;
    if (offset == 6 || offset == 7) {
      // header_bytes: out of range is refused at once; a larger value in range makes the
      // decoder take payload bytes as header, then fail the header crc, or wait for more.
      FrameDecoder decoder;
      std::vector<Frame> frames;
      const Status status = DecodeChunks(decoder, stream, {}, frames);
      SCOPED_TRACE(::testing::Message() << "bit " << bit << ": " << status.ToString());
      EXPECT_TRUE(frames.empty());
      if (status.ok()) continue;
      EXPECT_TRUE(status.IsCorruption());
      const bool named = status.message().find("header_bytes") != std::string::npos ||
                         status.message().find("header crc32c") != std::string::npos;
      EXPECT_TRUE(named);
      continue;
    }
    const Status status = DecodeError(stream);
    SCOPED_TRACE(::testing::Message() << "bit " << bit << ": " << status.ToString());
    if (offset < 4) {
      ExpectError(status, StatusCode::kCorruption, "bad magic");
    } else if (offset == 4) {
      ExpectError(status, StatusCode::kNotSupported, "unknown major version");
    } else {
      ExpectError(status, StatusCode::kCorruption, "header crc32c mismatch");
    }
  }
}

TEST(RpcFrameTest, PayloadCorruptionNamesThePart) {
  Bytes stream;
  AppendFrame(stream, {{3, kFlagResponse, 42, 0}, "message", PatternBytes(64, 3)});
  Bytes message_flipped = stream;
  message_flipped[sizeof(FrameHeader) + 2] ^= std::byte{0x10};
  const Status message = DecodeError(message_flipped);
  ExpectError(message, StatusCode::kCorruption, "message crc32c mismatch");
  // The header had passed its crc, so the error names the frame.
  ExpectError(message, StatusCode::kCorruption, "response 3 id 42");
  Bytes bulk_flipped = stream;
  bulk_flipped.back() ^= std::byte{0x01};
  ExpectError(DecodeError(bulk_flipped), StatusCode::kCorruption, "bulk crc32c mismatch");
}

TEST(RpcFrameTest, OversizedPartsAreRefusedBeforeTheirBytesArrive) {
  const FrameLimits sender_limits{.message_bytes_max = 1u << 20, .bulk_bytes_max = 1u << 20};
  const FrameLimits receiver_limits{.message_bytes_max = 100, .bulk_bytes_max = 1000};
  const FrameEncoder encoder(sender_limits);
  for (const bool big_message : {true, false}) {
    const Bytes message(big_message ? 101 : 100);
    const Bytes bulk(big_message ? 0 : 1001);
    auto header = encoder.EncodeHeader({1, kFlagRequest, 5, 0}, message, bulk);
    ASSERT_TRUE(header.ok());
    // Only the header is fed: the decoder must refuse without waiting for the payload.
    FrameDecoder decoder(receiver_limits);
    auto consumed = decoder.Consume(header->bytes());
    ASSERT_FALSE(consumed.ok());
    ExpectError(consumed.status(), StatusCode::kInvalidArgument,
                big_message ? "message of 101 bytes exceeds the limit of 100"
                            : "bulk data of 1001 bytes exceeds the limit of 1000");
    EXPECT_TRUE(decoder.dead());
  }
}

TEST(RpcFrameTest, ADeadDecoderKeepsItsError) {
  Bytes garbage(64, std::byte{'G'});
  FrameDecoder decoder;
  auto first = decoder.Consume(garbage);
  ASSERT_FALSE(first.ok());
  ExpectError(first.status(), StatusCode::kCorruption, "rpc frame at stream offset 0");
  Bytes good;
  AppendFrame(good, {{1, kFlagRequest, 1, 0}, "", {}});
  auto second = decoder.Consume(good);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(), first.status().message());
  EXPECT_EQ(decoder.error().message(), first.status().message());
}

TEST(RpcFrameTest, ErrorsNameTheOffsetOfTheBadFrame) {
  Bytes stream;
  AppendFrame(stream, {{1, kFlagRequest, 1, 0}, "ok", {}});
  const size_t good_bytes = stream.size();
  stream.resize(stream.size() + sizeof(FrameHeader), std::byte{0});
  ExpectError(DecodeError(stream), StatusCode::kCorruption,
              "rpc frame at stream offset " + std::to_string(good_bytes));
}

TEST(RpcFrameTest, ANewerMinorVersionWithALongerHeaderDecodes) {
  // A 1.1 peer appends 16 bytes of fields this build does not know; they are skipped.
  const std::string message = "hello";
  const Bytes bulk = PatternBytes(40, 9);
  auto encoded = FrameEncoder().EncodeHeader({4, kFlagRequest, 9, 30}, AsBytes(message), bulk);
  ASSERT_TRUE(encoded.ok());
  Bytes stream(encoded->bytes().begin(), encoded->bytes().end());
  stream.resize(sizeof(FrameHeader) + 16, std::byte{0xAB});
  FrameHeader header;
  std::memcpy(&header, stream.data(), sizeof(header));
  header.version_minor = 1;
  header.header_bytes = sizeof(FrameHeader) + 16;
  std::memcpy(stream.data(), &header, sizeof(header));
  header.header_crc32c = ComputeHeaderCrc32c(stream);
  std::memcpy(stream.data(), &header, sizeof(header));
  const auto message_bytes = AsBytes(message);
  stream.insert(stream.end(), message_bytes.begin(), message_bytes.end());
  stream.insert(stream.end(), bulk.begin(), bulk.end());

  for (size_t split = 0; split <= stream.size(); ++split) {
    FrameDecoder decoder;
    std::vector<Frame> frames;
    ASSERT_TRUE(DecodeChunks(decoder, stream, {split}, frames).ok());
    ASSERT_EQ(frames.size(), 1u);
    ExpectSame({{4, kFlagRequest, 9, 30}, message, bulk}, frames[0]);
    EXPECT_EQ(frames[0].header.version_minor, 1);
  }
}

// Random bytes, random chunking, and mutated valid streams: the decoder may accept frames or
// fail, but never crashes, never buffers beyond its limits, and stays dead after failing.
TEST(RpcFrameTest, GarbageStreamsNeverCrash) {
  constexpr uint32_t kSeed = 20261122;
  constexpr int kIterations = 20000;
  std::mt19937_64 random(kSeed);
  const FrameLimits limits{.message_bytes_max = 4096, .bulk_bytes_max = 8192};
  Bytes valid;
  for (const auto& frame : MixedFrames()) AppendFrame(valid, frame);
  int failures = 0;
  for (int iteration = 0; iteration < kIterations; ++iteration) {
    SCOPED_TRACE(::testing::Message() << "seed " << kSeed << " iteration " << iteration);
    Bytes stream;
    if (iteration % 2 == 0) {
      stream.resize(random() % 2048);
      for (auto& byte : stream) byte = std::byte(random() & 0xFF);
      // Sometimes a plausible prefix, so that the deeper checks see random bytes too.
      if (stream.size() >= 8 && iteration % 4 == 0) {
        std::memcpy(stream.data(), valid.data(), 8);
      }
    } else {
      stream = valid;
      const int flips = 1 + static_cast<int>(random() % 4);
      for (int flip = 0; flip < flips; ++flip) {
        stream[random() % stream.size()] ^= std::byte(1 << (random() % 8));
      }
    }
    std::vector<size_t> cuts;
    for (size_t offset = 0; offset < stream.size(); offset += 1 + random() % 64) {
      cuts.push_back(offset);
    }
    FrameDecoder decoder(limits);
    std::vector<Frame> frames;
    const Status status = DecodeChunks(decoder, stream, cuts, frames);
    for (const Frame& frame : frames) {
      EXPECT_LE(frame.message.size(), limits.message_bytes_max);
      EXPECT_LE(frame.bulk.size(), limits.bulk_bytes_max);
    }
    if (!status.ok()) {
      ++failures;
      EXPECT_TRUE(decoder.dead());
      EXPECT_FALSE(decoder.Consume(valid).ok());
    }
  }
  // Almost every stream is bad; a test whose decoder accepted them all would be broken.
  EXPECT_GT(failures, kIterations * 9 / 10);
}

}  // namespace
}  // namespace weft::rpc
