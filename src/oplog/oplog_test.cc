#include "oplog/oplog.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <random>

#include "oplog/oplog_test_util.h"

namespace weft::oplog {
namespace {

using format::RecordKind;
using namespace testing;  // NOLINT(google-build-using-namespace): the shared harness.

TEST(OpLogTest, AppendsAreServedByTheIndexAndReplayedAfterReopen) {
  Harness harness(1);
  std::unique_ptr<OpLog> log;
  ASSERT_TRUE(OpenLog(harness, log).ok());
  int acked = 0;
  for (uint64_t i = 0; i < 20; ++i) {
    const auto data = Pattern(i + 1, i * 1000, 4096);
    log->Append(RecordKind::kData, i * 1000, 4096, data, [&](Status status) {
      EXPECT_TRUE(status.ok()) << status.ToString();
      ++acked;
    });
  }
  log->Append(RecordKind::kZeroUnmap, 5000, 3000, {}, [&](Status status) {
    EXPECT_TRUE(status.ok());
    ++acked;
  });
  // Visible at once, before the records are durable.
  EXPECT_EQ(ReadIndex(*log, 19000, 4096), Pattern(20, 19000, 4096));
  harness.RunUntil([&] { return acked == 21; });
  ASSERT_EQ(acked, 21);
  // Group commit: 21 appends issued together share few batches.
  EXPECT_LT(log->stats().batches_written, 5u);
  const auto before = ReadIndex(*log, 0, 24000);
  EXPECT_EQ(std::vector<std::byte>(before.begin() + 5000, before.begin() + 8000),
            std::vector<std::byte>(3000, std::byte{0}));
  harness.CrashAndReopen(log, env::CrashMode::kDropUnsynced);
  ASSERT_TRUE(OpenLog(harness, log).ok());
  EXPECT_EQ(log->stats().records_replayed, 21u);
  EXPECT_EQ(ReadIndex(*log, 0, 24000), before);
}

TEST(OpLogTest, DrainedRecordsAreNeverReplayed) {
  Harness harness(2);
  std::unique_ptr<OpLog> log;
  ASSERT_TRUE(OpenLog(harness, log).ok());
  int acked = 0;
  for (uint64_t i = 0; i < 8; ++i) {
    log->Append(RecordKind::kData, i * 4096, 4096, Pattern(i + 1, i * 4096, 4096),
                [&](Status status) { acked += status.ok(); });
  }
  harness.RunUntil([&] { return acked == 8; });
  auto batch = log->NextDrainBatch(5 * 4096);
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->records, 5u);
  EXPECT_EQ(batch->pieces.size(), 5u);
  EXPECT_FALSE(log->NextDrainBatch(1 << 20).has_value());  // One drain at a time.
  std::optional<Status> drained;
  log->FinishDrain(batch->max_seq, [&](Status status) { drained = status; });
  // Until the watermark is durable the drained bytes stay in the index: writes over them must
  // still go to the OpLog, or a replay would put these records over them.
  EXPECT_TRUE(log->index().Overlaps(0, 4096));
  harness.RunSome(1);
  if (!drained.has_value()) {
    EXPECT_TRUE(log->index().Overlaps(0, 4096));
  }
  harness.RunUntil([&] { return drained.has_value(); });
  ASSERT_TRUE(drained->ok());
  EXPECT_FALSE(log->index().Overlaps(0, 5 * 4096));
  EXPECT_TRUE(log->index().Overlaps(5 * 4096, 3 * 4096));
  harness.CrashAndReopen(log, env::CrashMode::kDropUnsynced);
  ASSERT_TRUE(OpenLog(harness, log).ok());
  EXPECT_EQ(log->stats().records_replayed, 3u);
  EXPECT_FALSE(log->index().Overlaps(0, 5 * 4096));
  EXPECT_EQ(ReadIndex(*log, 5 * 4096, 4096), Pattern(6, 5 * 4096, 4096));
}

TEST(OpLogTest, FullLogWaitsForTheDrainAndLosesNothing) {
  Harness harness(3);
  std::unique_ptr<OpLog> log;
  ASSERT_TRUE(OpenLog(harness, log, /*segments=*/2).ok());
  // 6 MiB of 256 KiB records through a 4 MiB log: appends must wait for drains.
  constexpr uint64_t kRecord = 256 * 1024;
  int acked = 0;
  std::map<uint64_t, std::vector<std::byte>> extent_store;  // offset -> bytes drained there.
  for (uint64_t i = 0; i < 24; ++i) {
    log->Append(RecordKind::kData, (i % 6) * kRecord, kRecord, Pattern(i + 1, 0, kRecord),
                [&](Status status) { acked += status.ok(); });
  }
  while (acked < 24) {
    harness.RunSome(10);
    if (auto batch = log->NextDrainBatch(1 << 20)) {
      for (const IndexPiece& piece : batch->pieces) {
        extent_store[piece.offset_bytes].assign(piece.bytes().begin(), piece.bytes().end());
      }
      bool finished = false;
      log->FinishDrain(batch->max_seq, [&](Status status) {
        EXPECT_TRUE(status.ok()) << status.ToString();
        finished = true;
      });
      harness.RunUntil([&] { return finished; });
      ASSERT_TRUE(finished);
    }
  }
  EXPECT_GT(log->stats().space_waits, 0u);
  // The newest data of each slot: in the index, or drained.
  for (uint64_t slot = 0; slot < 6; ++slot) {
    const uint64_t newest_seq = 18 + slot + 1;
    auto bytes = ReadIndex(*log, slot * kRecord, kRecord);
    if (!log->index().Overlaps(slot * kRecord, kRecord)) bytes = extent_store.at(slot * kRecord);
    EXPECT_EQ(bytes, Pattern(newest_seq, 0, kRecord)) << "slot " << slot;
  }
}

TEST(OpLogTest, AppendsWaitingForSpaceCanBeFailedAndTheLogStillReplays) {
  Harness harness(4);
  std::unique_ptr<OpLog> log;
  ASSERT_TRUE(OpenLog(harness, log, /*segments=*/2).ok());
  constexpr uint64_t kRecord = 512 * 1024;
  int acked = 0;
  int failed_for_space = 0;
  for (uint64_t i = 0; i < 16; ++i) {
    log->Append(RecordKind::kData, i * kRecord, kRecord, Pattern(i + 1, i * kRecord, kRecord),
                [&](Status status) {
                  if (status.ok()) ++acked;
                  if (status.code() == StatusCode::kNoSpace) ++failed_for_space;
                });
  }
  harness.RunUntil([&] { return acked + failed_for_space == 16; });  // Stalls: no drain.
  ASSERT_LT(acked, 16);
  EXPECT_GT(log->stats().space_waits, 0u);
  log->FailAppendsWaitingForSpace(Status::NoSpace("test: the extent store is full"));
  harness.RunUntil([&] { return acked + failed_for_space == 16; });
  ASSERT_EQ(acked + failed_for_space, 16);
  EXPECT_GT(failed_for_space, 0);
  // A later append still works once space is freed, leaving a gap in the seqs on disk.
  auto batch = log->NextDrainBatch(64ull << 20);
  ASSERT_TRUE(batch.has_value());
  bool drained = false;
  log->FinishDrain(batch->max_seq, [&](Status status) { drained = status.ok(); });
  harness.RunUntil([&] { return drained; });
  ASSERT_TRUE(drained);
  bool last = false;
  log->Append(RecordKind::kData, 0, 4096, Pattern(99, 0, 4096),
              [&](Status status) { last = status.ok(); });
  harness.RunUntil([&] { return last; });
  ASSERT_TRUE(last);
  harness.CrashAndReopen(log, env::CrashMode::kDropUnsynced);
  ASSERT_TRUE(OpenLog(harness, log, 2).ok());
  EXPECT_EQ(log->stats().records_replayed, 1u);
  EXPECT_EQ(ReadIndex(*log, 0, 4096), Pattern(99, 0, 4096));
}

// The seeded crash loop on the OpLog path: random appends (data, unmap, zero-fill), drains
// into a model extent store, and a crash at a random point (during an append batch, a drain's
// watermark, a segment creation). After recovery every acknowledged record reads back: each
// byte holds the newest acknowledged record covering it, or something newer that was in flight.
TEST(OpLogCrashTest, EveryAcknowledgedRecordSurvivesAnyCrash) {
  constexpr uint64_t kSpaceBytes = 256 * 1024;
  for (uint64_t seed = 1; seed <= 1000; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Harness harness(seed, 32ull << 20);
    std::mt19937_64 random(seed);
    std::unique_ptr<OpLog> log;
    ASSERT_TRUE(OpenLog(harness, log, 2).ok());
    struct Written {
      uint64_t seq, offset, length;
      RecordKind kind;
      bool acked = false;
    };
    std::vector<std::shared_ptr<Written>> written;
    std::vector<std::byte> extent_store(kSpaceBytes, std::byte{0});
    uint64_t seq = 0;
    const int steps = 5 + static_cast<int>(random() % 60);
    bool drain_in_flight = false;
    for (int step = 0; step < steps; ++step) {
      const uint64_t choice = random() % 10;
      if (choice < 7) {
        const uint64_t offset = random() % kSpaceBytes;
        const uint64_t length =
            1 + random() % std::min<uint64_t>(kSpaceBytes - offset, random() % 3 ? 9000 : 200000);
        const RecordKind kind = choice < 5   ? RecordKind::kData
                                : choice < 6 ? RecordKind::kZeroUnmap
                                             : RecordKind::kZeroFill;
        auto record = std::make_shared<Written>(Written{++seq, offset, length, kind});
        written.push_back(record);
        const auto data =
            kind == RecordKind::kData ? Pattern(seq, offset, length) : std::vector<std::byte>{};
        log->Append(kind, offset, length, data, [record](Status status) {
          if (status.ok()) record->acked = true;
        });
      } else if (!drain_in_flight) {
        if (auto batch = log->NextDrainBatch(random() % 2 ? 64 * 1024 : 1 << 20)) {
          for (const IndexPiece& piece : batch->pieces) {
            if (piece.kind == RangeKind::kData) {
              std::copy(piece.bytes().begin(), piece.bytes().end(),
                        extent_store.begin() + piece.offset_bytes);
            } else {
              std::fill_n(extent_store.begin() + piece.offset_bytes, piece.length_bytes,
                          std::byte{0});
            }
          }
          drain_in_flight = true;
          log->FinishDrain(batch->max_seq, [&drain_in_flight](Status) { drain_in_flight = false; });
        }
      }
      harness.RunSome(static_cast<int>(random() % 6));
    }
    harness.CrashAndReopen(
        log, random() % 2 ? env::CrashMode::kTearRandomly : env::CrashMode::kDropUnsynced);
    Status reopened = OpenLog(harness, log, 2);
    ASSERT_TRUE(reopened.ok()) << reopened.ToString();
    std::vector<std::byte> visible = extent_store;
    log->index().Overlay(0, visible);
    for (uint64_t position = 0; position < kSpaceBytes; ++position) {
      // The newest acknowledged record over this byte, and what may legally replace it.
      const Written* newest_acked = nullptr;
      for (const auto& record : written) {
        if (record->acked && position >= record->offset &&
            position < record->offset + record->length) {
          newest_acked = record.get();
        }
      }
      auto value_of = [position](const Written& record) {
        return record.kind == RecordKind::kData ? std::byte(PatternByte(record.seq, position))
                                                : std::byte{0};
      };
      bool explained = newest_acked ? visible[position] == value_of(*newest_acked)
                                    : visible[position] == std::byte{0};
      for (const auto& record : written) {
        if (explained) break;
        if (!record->acked && (!newest_acked || record->seq > newest_acked->seq) &&
            position >= record->offset && position < record->offset + record->length) {
          explained = visible[position] == value_of(*record);
        }
      }
      ASSERT_TRUE(explained) << "byte " << position << " reads "
                             << static_cast<int>(visible[position]) << "; newest acked seq "
                             << (newest_acked ? newest_acked->seq : 0);
    }
  }
}

}  // namespace
}  // namespace weft::oplog
