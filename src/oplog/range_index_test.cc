// Tests of the OpLog range index: unit tests of each way an insert or erase clips and splits older
// pieces, then a rapidcheck property test against a byte-array model of a small address space.
#include "oplog/range_index.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <limits>
#include <string>
#include <tuple>

namespace weft::oplog {
namespace {

// A record buffer whose byte i is (first + i) mod 256, so any byte names its place in the buffer.
std::shared_ptr<const RecordData> MakeData(size_t size_bytes, uint8_t first) {
  auto data = std::make_shared<RecordData>();
  data->buffer = AlignedBuffer(size_bytes);
  std::span<std::byte> bytes = data->buffer.span();
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = std::byte(uint8_t(first + i));
  return data;
}

// (offset, length, seq, data_offset) of each piece, for compact expectations.
using Shape = std::tuple<uint64_t, uint64_t, uint64_t, uint64_t>;
std::vector<Shape> Shapes(const std::vector<IndexPiece>& pieces) {
  std::vector<Shape> shapes;
  for (const IndexPiece& piece : pieces) {
    shapes.emplace_back(piece.offset_bytes, piece.length_bytes, piece.seq, piece.data_offset);
  }
  return shapes;
}

std::vector<Shape> All(const RangeIndex& index) {
  index.CheckInvariants();
  return Shapes(index.Lookup(0, std::numeric_limits<uint64_t>::max()));
}

TEST(RangeIndexTest, EmptyIndex) {
  RangeIndex index;
  EXPECT_TRUE(index.empty());
  EXPECT_EQ(index.min_seq(), 0u);
  EXPECT_EQ(index.live_bytes(), 0u);
  EXPECT_FALSE(index.Overlaps(0, 1 << 20));
  EXPECT_TRUE(index.Lookup(0, 1 << 20).empty());
  EXPECT_TRUE(index.PiecesUpTo(100).empty());
  index.EraseUpTo(100);
  index.EraseRange(0, 100);
  index.CheckInvariants();
}

TEST(RangeIndexTest, InsertInsideSplitsOlderInThree) {
  RangeIndex index;
  index.Insert(100, 100, 1, RangeKind::kData, MakeData(300, 0), 50);
  index.Insert(140, 20, 2, RangeKind::kData, MakeData(20, 0));
  EXPECT_EQ(All(index), (std::vector<Shape>{{100, 40, 1, 50}, {140, 20, 2, 0}, {160, 40, 1, 110}}));
  EXPECT_EQ(index.live_bytes(), 100u);
  EXPECT_EQ(index.piece_count(), 3u);
  // The right part's bytes start where the record's byte 160 was: buffer byte 50 + 60.
  const auto pieces = index.Lookup(160, 1);
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].bytes()[0], std::byte(110));
}

TEST(RangeIndexTest, InsertOverLeftEdgeClipsOlderFront) {
  RangeIndex index;
  index.Insert(100, 100, 1, RangeKind::kData, MakeData(100, 0));
  index.Insert(50, 100, 2, RangeKind::kZeroFill);
  EXPECT_EQ(All(index), (std::vector<Shape>{{50, 100, 2, 0}, {150, 50, 1, 50}}));
  EXPECT_EQ(index.live_bytes(), 150u);
  EXPECT_EQ(index.Lookup(150, 50)[0].bytes()[0], std::byte(50));
}

TEST(RangeIndexTest, InsertOverRightEdgeClipsOlderBack) {
  RangeIndex index;
  index.Insert(100, 100, 1, RangeKind::kData, MakeData(100, 0));
  index.Insert(150, 100, 2, RangeKind::kZeroUnmap);
  EXPECT_EQ(All(index), (std::vector<Shape>{{100, 50, 1, 0}, {150, 100, 2, 0}}));
  EXPECT_EQ(index.live_bytes(), 150u);
  EXPECT_EQ(index.min_seq(), 1u);
}

TEST(RangeIndexTest, ExactCoverReplaces) {
  RangeIndex index;
  index.Insert(100, 100, 1, RangeKind::kData, MakeData(100, 0));
  index.Insert(100, 100, 2, RangeKind::kData, MakeData(100, 7));
  EXPECT_EQ(All(index), (std::vector<Shape>{{100, 100, 2, 0}}));
  EXPECT_EQ(index.min_seq(), 2u);
  EXPECT_EQ(index.live_bytes(), 100u);
}

TEST(RangeIndexTest, InsertCoveringSeveralClipsEdgesAndDropsInterior) {
  RangeIndex index;
  index.Insert(0, 100, 1, RangeKind::kData, MakeData(100, 0));
  index.Insert(200, 50, 2, RangeKind::kZeroUnmap);
  index.Insert(250, 50, 3, RangeKind::kData, MakeData(50, 0));
  index.Insert(400, 100, 4, RangeKind::kData, MakeData(100, 0));
  index.Insert(50, 400, 5, RangeKind::kData, MakeData(400, 0));
  EXPECT_EQ(All(index), (std::vector<Shape>{{0, 50, 1, 0}, {50, 400, 5, 0}, {450, 50, 4, 50}}));
  EXPECT_EQ(index.live_bytes(), 500u);
  EXPECT_EQ(index.min_seq(), 1u);
  // Records 2 and 3 are gone entirely, so a drain up to 3 only moves what is left of record 1.
  EXPECT_EQ(Shapes(index.PiecesUpTo(3)), (std::vector<Shape>{{0, 50, 1, 0}}));
}

TEST(RangeIndexTest, AdjacentRecordsAreNotMerged) {
  RangeIndex index;
  const auto data = MakeData(200, 0);
  index.Insert(0, 100, 1, RangeKind::kData, data, 0);
  index.Insert(100, 100, 2, RangeKind::kData, data, 100);
  EXPECT_EQ(All(index), (std::vector<Shape>{{0, 100, 1, 0}, {100, 100, 2, 100}}));
  EXPECT_FALSE(index.Overlaps(200, 10));  // Half-open: the byte at 200 is not covered.
  EXPECT_TRUE(index.Overlaps(199, 10));
}

TEST(RangeIndexTest, LookupClipsPiecesAndShiftsDataOffset) {
  RangeIndex index;
  index.Insert(1000, 100, 1, RangeKind::kData, MakeData(116, 0), 16);
  index.Insert(1200, 100, 2, RangeKind::kZeroFill);
  const auto pieces = index.Lookup(1050, 200);
  EXPECT_EQ(Shapes(pieces), (std::vector<Shape>{{1050, 50, 1, 66}, {1200, 50, 2, 0}}));
  ASSERT_EQ(pieces[0].bytes().size(), 50u);
  EXPECT_EQ(pieces[0].bytes()[0], std::byte(66));
  EXPECT_EQ(pieces[0].bytes()[49], std::byte(115));
  EXPECT_EQ(pieces[1].kind, RangeKind::kZeroFill);
  EXPECT_TRUE(pieces[1].bytes().empty());
  EXPECT_TRUE(index.Lookup(1100, 100).empty());  // The gap between them.
  EXPECT_FALSE(index.Overlaps(1100, 100));
}

TEST(RangeIndexTest, OverlayCopiesDataZeroesZeroKindsAndLeavesGaps) {
  RangeIndex index;
  index.Insert(10, 10, 1, RangeKind::kData, MakeData(10, 1));
  index.Insert(30, 5, 2, RangeKind::kZeroUnmap);
  index.Insert(35, 5, 3, RangeKind::kZeroFill);
  std::vector<std::byte> buffer(40, std::byte(0xee));
  EXPECT_EQ(index.Overlay(5, buffer), 10u + 10u);
  for (size_t i = 0; i < buffer.size(); ++i) {
    const uint64_t offset = 5 + i;
    std::byte expected{0xee};
    if (offset >= 10 && offset < 20) expected = std::byte(uint8_t(1 + offset - 10));
    if (offset >= 30 && offset < 40) expected = std::byte(0);
    EXPECT_EQ(buffer[i], expected) << "offset " << offset;
  }
}

TEST(RangeIndexTest, EraseRangeSplitsAndClips) {
  RangeIndex index;
  index.Insert(0, 100, 1, RangeKind::kData, MakeData(100, 0));
  index.Insert(100, 100, 2, RangeKind::kZeroFill);
  index.EraseRange(40, 20);
  EXPECT_EQ(All(index), (std::vector<Shape>{{0, 40, 1, 0}, {60, 40, 1, 60}, {100, 100, 2, 0}}));
  index.EraseRange(80, 40);
  EXPECT_EQ(All(index), (std::vector<Shape>{{0, 40, 1, 0}, {60, 20, 1, 60}, {120, 80, 2, 0}}));
  EXPECT_EQ(index.live_bytes(), 140u);
  index.EraseRange(120, 1000);
  EXPECT_EQ(index.min_seq(), 1u);
  index.EraseRange(0, 1000);
  EXPECT_TRUE(index.empty());
  EXPECT_EQ(index.min_seq(), 0u);
  EXPECT_EQ(index.live_bytes(), 0u);
}

TEST(RangeIndexTest, DrainKeepsNewerPiecesOfSplitRecords) {
  RangeIndex index;
  index.Insert(0, 300, 1, RangeKind::kData, MakeData(300, 0));
  index.Insert(100, 50, 2, RangeKind::kZeroUnmap);
  index.Insert(250, 100, 3, RangeKind::kData, MakeData(100, 0));
  EXPECT_EQ(Shapes(index.PiecesUpTo(1)), (std::vector<Shape>{{0, 100, 1, 0}, {150, 100, 1, 150}}));
  EXPECT_EQ(Shapes(index.PiecesUpTo(2)),
            (std::vector<Shape>{{0, 100, 1, 0}, {100, 50, 2, 0}, {150, 100, 1, 150}}));
  index.EraseUpTo(1);
  EXPECT_EQ(All(index), (std::vector<Shape>{{100, 50, 2, 0}, {250, 100, 3, 0}}));
  EXPECT_EQ(index.min_seq(), 2u);
  EXPECT_EQ(index.live_bytes(), 150u);
  index.EraseUpTo(3);
  EXPECT_TRUE(index.empty());
  EXPECT_EQ(index.last_seq(), 3u);
}

TEST(RangeIndexTest, PiecesOutliveTheirEntries) {
  RangeIndex index;
  index.Insert(0, 10, 1, RangeKind::kData, MakeData(10, 42));
  const auto pieces = index.PiecesUpTo(1);
  index.EraseUpTo(1);
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].bytes()[9], std::byte(51));
}

TEST(RangeIndexTest, OffsetsNearTheTopOfTheAddressSpace) {
  constexpr uint64_t kTop = std::numeric_limits<uint64_t>::max();
  RangeIndex index;
  index.Insert(kTop - 100, 100, 1, RangeKind::kZeroFill);
  index.Insert(kTop - 60, 20, 2, RangeKind::kZeroUnmap);
  EXPECT_EQ(All(index), (std::vector<Shape>{
                            {kTop - 100, 40, 1, 0}, {kTop - 60, 20, 2, 0}, {kTop - 40, 40, 1, 0}}));
  EXPECT_TRUE(index.Overlaps(kTop - 1, 1));
  EXPECT_FALSE(index.Overlaps(0, kTop - 100));
}

TEST(RangeIndexDeathTest, SeqMustIncrease) {
  RangeIndex index;
  index.Insert(0, 10, 5, RangeKind::kZeroFill);
  EXPECT_DEATH(index.Insert(100, 10, 5, RangeKind::kZeroFill), "seq > last_seq_");
}

TEST(RangeIndexDeathTest, DataMustCoverTheRange) {
  RangeIndex index;
  EXPECT_DEATH(index.Insert(0, 10, 1, RangeKind::kData, MakeData(10, 0), 1), "data_offset");
  EXPECT_DEATH(index.Insert(0, 10, 1, RangeKind::kData), "data != nullptr");
}

// ---- Property test ----------------------------------------------------------------------------

// 64 KiB of address space: small, so that inserts and erases collide all the time.
constexpr uint64_t kSpaceBytes = 64 * 1024;

struct ModelByte {
  uint64_t seq = 0;  // 0: not in the index.
  RangeKind kind = RangeKind::kData;
  std::byte value{0};
};

struct Model {
  std::vector<ModelByte> bytes = std::vector<ModelByte>(kSpaceBytes);
  uint64_t last_seq = 0;

  // Whether the byte at `offset` is in the index with seq <= max_seq (outside the space: never).
  const ModelByte* Visible(uint64_t offset, uint64_t max_seq) const {
    if (offset >= kSpaceBytes) return nullptr;
    const ModelByte& byte = bytes[offset];
    return byte.seq != 0 && byte.seq <= max_seq ? &byte : nullptr;
  }
};

// Fails the case when a per-byte check fails. Per-byte checks avoid RC_ASSERT, whose expression
// capture on every byte of 128 KiB per step would dominate the test's runtime.
void ExpectByte(bool ok, const char* what, uint64_t offset) {
  if (!ok) RC_FAIL(std::string(what) + " at offset " + std::to_string(offset));
}

// Checks that `pieces` are exactly the model's bytes with seq <= max_seq in [begin, end): in
// order, non-overlapping, inside the range, with the right record, kind and content.
void CheckPieces(const std::vector<IndexPiece>& pieces, uint64_t begin, uint64_t end,
                 const Model& model, uint64_t max_seq) {
  uint64_t cursor = begin;
  for (const IndexPiece& piece : pieces) {
    RC_ASSERT(piece.length_bytes > 0u);
    RC_ASSERT(piece.offset_bytes >= cursor);
    RC_ASSERT(piece.end_bytes() <= end);
    for (; cursor < piece.offset_bytes; ++cursor) {
      ExpectByte(model.Visible(cursor, max_seq) == nullptr, "gap over a model byte", cursor);
    }
    const std::span<const std::byte> data = piece.bytes();
    RC_ASSERT(data.size() == (piece.kind == RangeKind::kData ? piece.length_bytes : 0u));
    for (; cursor < piece.end_bytes(); ++cursor) {
      const ModelByte* byte = model.Visible(cursor, max_seq);
      ExpectByte(byte != nullptr, "piece over a model gap", cursor);
      ExpectByte(byte->seq == piece.seq, "wrong seq", cursor);
      ExpectByte(byte->kind == piece.kind, "wrong kind", cursor);
      if (piece.kind == RangeKind::kData) {
        ExpectByte(data[cursor - piece.offset_bytes] == byte->value, "wrong data", cursor);
      }
    }
  }
  for (; cursor < end; ++cursor) {
    ExpectByte(model.Visible(cursor, max_seq) == nullptr, "gap over a model byte", cursor);
  }
}

// The whole index against the model: contents, byte count, piece count, smallest seq.
void CheckAgainstModel(const RangeIndex& index, const Model& model) {
  index.CheckInvariants();
  const auto pieces = index.Lookup(0, kSpaceBytes * 2);
  CheckPieces(pieces, 0, kSpaceBytes * 2, model, model.last_seq);
  uint64_t live_bytes = 0;
  size_t runs = 0;
  uint64_t min_seq = 0;
  for (uint64_t offset = 0; offset < kSpaceBytes; ++offset) {
    const uint64_t seq = model.bytes[offset].seq;
    if (seq == 0) continue;
    ++live_bytes;
    if (offset == 0 || model.bytes[offset - 1].seq != seq) ++runs;
    if (min_seq == 0 || seq < min_seq) min_seq = seq;
  }
  RC_ASSERT(index.live_bytes() == live_bytes);
  // Each piece is one maximal run of one record: nothing is merged, nothing split needlessly.
  RC_ASSERT(index.piece_count() == runs);
  RC_ASSERT(pieces.size() == runs);
  RC_ASSERT(index.min_seq() == min_seq);
  RC_ASSERT(index.empty() == (live_bytes == 0));
}

// A range to query or erase; it may reach past the model's space, which must read as a gap.
std::pair<uint64_t, uint64_t> GenerateRange() {
  const uint64_t offset = *rc::gen::inRange<uint64_t>(0, kSpaceBytes + 256);
  const uint64_t length = *rc::gen::weightedOneOf<uint64_t>({
      {4, rc::gen::inRange<uint64_t>(0, 65)},
      {3, rc::gen::inRange<uint64_t>(0, 4097)},
      {1, rc::gen::inRange<uint64_t>(0, kSpaceBytes + 1)},
  });
  return {offset, length};
}

void StepInsert(RangeIndex& index, Model& model) {
  const uint64_t offset = *rc::gen::inRange<uint64_t>(0, kSpaceBytes);
  const uint64_t length_max = *rc::gen::element<uint64_t>(64, 4096, kSpaceBytes / 2);
  const uint64_t length =
      std::min(*rc::gen::inRange<uint64_t>(1, length_max + 1), kSpaceBytes - offset);
  const uint64_t seq = model.last_seq + *rc::gen::inRange<uint64_t>(1, 4);
  const auto kind =
      *rc::gen::element(RangeKind::kData, RangeKind::kZeroUnmap, RangeKind::kZeroFill);
  std::shared_ptr<const RecordData> data;
  uint64_t data_offset = 0;
  if (kind == RangeKind::kData) {
    // Distinct content per record, behind a header-like prefix to exercise data_offset.
    data_offset = *rc::gen::inRange<uint64_t>(0, 64);
    data = MakeData(data_offset + length + *rc::gen::inRange<uint64_t>(0, 16), uint8_t(seq * 37));
  }
  index.Insert(offset, length, seq, kind, data, data_offset);
  for (uint64_t i = 0; i < length; ++i) {
    const std::byte value = data ? data->bytes()[data_offset + i] : std::byte(0);
    model.bytes[offset + i] = ModelByte{seq, kind, value};
  }
  model.last_seq = seq;
}

void StepOverlay(const RangeIndex& index, const Model& model) {
  const auto [offset, length] = GenerateRange();
  constexpr std::byte kUntouched{0xa5};
  std::vector<std::byte> buffer(length, kUntouched);
  uint64_t covered_bytes = 0;
  const uint64_t copied_bytes = index.Overlay(offset, buffer);
  for (uint64_t i = 0; i < length; ++i) {
    const ModelByte* byte = model.Visible(offset + i, model.last_seq);
    covered_bytes += byte != nullptr;
    ExpectByte(buffer[i] == (byte != nullptr ? byte->value : kUntouched), "overlay", offset + i);
  }
  RC_ASSERT(copied_bytes == covered_bytes);
  RC_ASSERT(index.Overlaps(offset, length) == (covered_bytes > 0));
}

void EraseFromModel(Model& model, uint64_t max_seq) {
  for (ModelByte& byte : model.bytes) {
    if (byte.seq <= max_seq) byte.seq = 0;
  }
}

enum class Step { kInsert, kLookup, kOverlay, kEraseUpTo, kEraseRange, kDrain };

TEST(RangeIndexPropertyTest, MatchesByteModel) {
  const bool passed = rc::check([] {
    RangeIndex index;
    Model model;
    const auto steps = *rc::gen::container<std::vector<Step>>(
        rc::gen::weightedElement<Step>({{8, Step::kInsert},
                                        {2, Step::kLookup},
                                        {2, Step::kOverlay},
                                        {1, Step::kEraseUpTo},
                                        {1, Step::kEraseRange},
                                        {1, Step::kDrain}}));
    for (Step step : steps) {
      switch (step) {
        case Step::kInsert:
          StepInsert(index, model);
          break;
        case Step::kLookup: {
          const auto [offset, length] = GenerateRange();
          CheckPieces(index.Lookup(offset, length), offset, offset + length, model, model.last_seq);
          break;
        }
        case Step::kOverlay:
          StepOverlay(index, model);
          break;
        case Step::kEraseUpTo: {
          const uint64_t max_seq = *rc::gen::inRange<uint64_t>(0, model.last_seq + 1);
          index.EraseUpTo(max_seq);
          EraseFromModel(model, max_seq);
          break;
        }
        case Step::kEraseRange: {
          const auto [offset, length] = GenerateRange();
          index.EraseRange(offset, length);
          for (uint64_t i = offset; i < std::min(offset + length, kSpaceBytes); ++i) {
            model.bytes[i].seq = 0;
          }
          break;
        }
        case Step::kDrain: {
          // What a drain up to max_seq moves must be exactly the visible bytes of those records.
          const uint64_t max_seq = *rc::gen::inRange<uint64_t>(0, model.last_seq + 1);
          CheckPieces(index.PiecesUpTo(max_seq), 0, kSpaceBytes * 2, model, max_seq);
          index.EraseUpTo(max_seq);
          EraseFromModel(model, max_seq);
          break;
        }
      }
      CheckAgainstModel(index, model);
    }
  });
  EXPECT_TRUE(passed);
}

}  // namespace
}  // namespace weft::oplog
