#include "oplog/oplog_format.h"

#include <gtest/gtest.h>

#include <cstring>

namespace weft::oplog::format {
namespace {

std::vector<std::byte> Bytes(size_t length, uint8_t seed) {
  std::vector<std::byte> bytes(length);
  for (size_t i = 0; i < length; ++i) bytes[i] = std::byte(static_cast<uint8_t>(seed + i * 3));
  return bytes;
}

// Two batches at the front of a segment buffer; returns the buffer.
std::vector<std::byte> TwoBatches(uint64_t first_batch_seq) {
  const auto a = Bytes(5000, 1);
  const auto b = Bytes(100, 2);
  std::vector<RecordView> first = {{10, RecordKind::kData, 4096, 5000, 0, a},
                                   {11, RecordKind::kZeroUnmap, 0, 8192, 0, {}}};
  std::vector<RecordView> second = {{12, RecordKind::kData, 77, 100, 0, b}};
  std::vector<std::byte> segment(64 * 1024, std::byte{0});
  const uint64_t first_bytes = BatchBytes(2, 5000);
  EncodeBatch({7, 3, first_batch_seq, 9}, first, std::span(segment).first(first_bytes));
  EncodeBatch({7, 3, first_batch_seq + 1, 9}, second,
              std::span(segment).subspan(first_bytes, BatchBytes(1, 100)));
  return segment;
}

TEST(OpLogFormatTest, BatchesRoundTrip) {
  const auto segment = TwoBatches(40);
  auto parsed = ParseSegment(segment, 7, 3);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0].info.batch_seq, 40u);
  EXPECT_EQ((*parsed)[0].info.drained_seq, 9u);
  ASSERT_EQ((*parsed)[0].records.size(), 2u);
  EXPECT_EQ((*parsed)[0].records[0].vdisk_offset_bytes, 4096u);
  const auto a = Bytes(5000, 1);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), (*parsed)[0].records[0].data.begin()));
  EXPECT_EQ((*parsed)[0].records[1].kind, RecordKind::kZeroUnmap);
  EXPECT_EQ((*parsed)[1].records[0].seq, 12u);
  EXPECT_EQ((*parsed)[1].offset_bytes, BatchBytes(2, 5000));
}

TEST(OpLogFormatTest, TornOrForeignBatchesEndTheScan) {
  // A torn sector in the second batch: only the first one counts.
  auto torn = TwoBatches(40);
  torn[BatchBytes(2, 5000) + 100] ^= std::byte{1};
  auto parsed = ParseSegment(torn, 7, 3);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->size(), 1u);
  // A torn payload of the first batch: nothing.
  auto torn_first = TwoBatches(40);
  torn_first[3000] ^= std::byte{1};
  parsed = ParseSegment(torn_first, 7, 3);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->empty());
  // Another vDisk's or another segment's bytes: nothing.
  EXPECT_TRUE(ParseSegment(TwoBatches(40), 8, 3)->empty());
  EXPECT_TRUE(ParseSegment(TwoBatches(40), 7, 4)->empty());
  // A stale batch after the chain (lower batch_seq) ends it.
  auto stale = TwoBatches(40);
  std::vector<std::byte> old(4096);
  EncodeBatch({7, 3, 5, 0}, {}, old);
  std::memcpy(stale.data() + BatchBytes(2, 5000), old.data(), old.size());
  parsed = ParseSegment(stale, 7, 3);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->size(), 1u);
  // All zeros (a fresh segment): nothing, no error.
  EXPECT_TRUE(ParseSegment(std::vector<std::byte>(8192), 7, 3)->empty());
}

TEST(OpLogFormatTest, SegmentNames) {
  const std::string name = SegmentFileName(0xabc, 17);
  EXPECT_EQ(name, "oplog.0000000000000abc.00000011");
  uint64_t number = 0;
  EXPECT_TRUE(ParseSegmentFileName(name, 0xabc, &number));
  EXPECT_EQ(number, 17u);
  EXPECT_FALSE(ParseSegmentFileName(name, 0xabd, &number));
  EXPECT_FALSE(ParseSegmentFileName("oplog.0000000000000abc.0000001g", 0xabc, &number));
  EXPECT_FALSE(ParseSegmentFileName("unified-cache", 0xabc, &number));
}

}  // namespace
}  // namespace weft::oplog::format
