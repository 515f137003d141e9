// The replica side of the OpLog (issue 7): Append's seqs, AppendReplica with the owner's seqs,
// MarkDrained, and what a peer replays when it takes a dead owner's vDisk over.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <random>

#include "base/crc32c.h"
#include "oplog/oplog.h"
#include "oplog/oplog_test_util.h"

namespace weft::oplog {
namespace {

using format::RecordKind;
using namespace testing;  // NOLINT(google-build-using-namespace): the shared harness.

constexpr uint64_t kSlotBytes = 1 << 20;  // Replica records in these tests never overlap.

uint32_t CrcOf(const std::vector<std::byte>& data) { return data.empty() ? 0 : Crc32c(data); }

// Appends the owner's record `seq` (data at slot `seq`) and returns where its status will land.
std::shared_ptr<std::optional<Status>> AppendReplicaData(OpLog& log, uint64_t seq,
                                                         uint64_t length_bytes) {
  auto result = std::make_shared<std::optional<Status>>();
  const auto data = Pattern(seq, seq * kSlotBytes, length_bytes);
  log.AppendReplica(seq, RecordKind::kData, seq * kSlotBytes, length_bytes, data, CrcOf(data),
                    [result](Status status) { *result = status; });
  return result;
}

Status Wait(Harness& harness, const std::shared_ptr<std::optional<Status>>& result) {
  harness.RunUntil([&] { return result->has_value(); });
  return result->value_or(Status::IOError("never completed"));
}

Status MarkDrainedAndWait(Harness& harness, OpLog& log, uint64_t drained_seq) {
  auto result = std::make_shared<std::optional<Status>>();
  log.MarkDrained(drained_seq, [result](Status status) { *result = status; });
  return Wait(harness, result);
}

// seq -> (offset, kind, length) of every piece in the index: with non-overlapping records, the
// records the index holds.
std::map<uint64_t, IndexPiece> PiecesBySeq(const OpLog& log) {
  std::map<uint64_t, IndexPiece> pieces;
  for (IndexPiece& piece : log.index().PiecesUpTo(UINT64_MAX)) {
    EXPECT_FALSE(pieces.contains(piece.seq)) << "seq " << piece.seq << " in two pieces";
    pieces[piece.seq] = std::move(piece);
  }
  return pieces;
}

TEST(OpLogReplicaTest, AppendReturnsTheSeqItAssigns) {
  Harness harness(11);
  std::unique_ptr<OpLog> log;
  ASSERT_TRUE(OpenLog(harness, log).ok());
  EXPECT_EQ(log->last_seq(), 0u);
  int acked = 0;
  for (uint64_t expected = 1; expected <= 5; ++expected) {
    const uint64_t seq = log->Append(RecordKind::kData, expected * 4096, 4096,
                                     Pattern(expected, expected * 4096, 4096),
                                     [&](Status status) { acked += status.ok(); });
    EXPECT_EQ(seq, expected);
    EXPECT_EQ(log->last_seq(), expected);
    EXPECT_EQ(PiecesBySeq(*log).at(seq).offset_bytes, expected * 4096);
  }
  harness.RunUntil([&] { return acked == 5; });
  ASSERT_EQ(acked, 5);
  // A failed log assigns no seq.
  harness.device().FailRange(0, 64ull << 20, env::FailOperations::kWrites);
  std::optional<Status> failed;
  EXPECT_EQ(log->Append(RecordKind::kZeroUnmap, 0, 4096, {}, [&](Status s) { failed = s; }), 6u);
  harness.RunUntil([&] { return failed.has_value(); });
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->code(), StatusCode::kIOError);
  std::optional<Status> refused;
  EXPECT_EQ(log->Append(RecordKind::kZeroUnmap, 0, 4096, {}, [&](Status s) { refused = s; }), 0u);
  harness.RunUntil([&] { return refused.has_value(); });
  EXPECT_EQ(refused->code(), StatusCode::kIOError);
  harness.device().ClearFailures();
}

TEST(OpLogReplicaTest, ReplicaSeqsMustIncreaseAndAppendContinuesAfterThem) {
  Harness harness(12);
  std::unique_ptr<OpLog> log;
  ASSERT_TRUE(OpenLog(harness, log).ok());
  ASSERT_TRUE(Wait(harness, AppendReplicaData(*log, 5, 4096)).ok());
  EXPECT_EQ(log->last_seq(), 5u);
  for (uint64_t stale : {5u, 3u}) {
    Status refused = Wait(harness, AppendReplicaData(*log, stale, 100));
    EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(refused.message(), "oplog replica: seq " + std::to_string(stale) + " not after 5");
  }
  // Nothing changed: the refused records are not in the index and no seq moved.
  EXPECT_EQ(log->last_seq(), 5u);
  EXPECT_EQ(PiecesBySeq(*log).size(), 1u);
  EXPECT_FALSE(log->index().Overlaps(3 * kSlotBytes, 100));
  // Malformed records are refused too, as Corruption: InvalidArgument means a seq out of order.
  const auto data = Pattern(6, 0, 100);
  auto refuse = [&](RecordKind kind, uint64_t length, std::span<const std::byte> bytes) {
    std::optional<Status> result;
    log->AppendReplica(6, kind, 0, length, bytes, bytes.empty() ? 0 : Crc32c(bytes),
                       [&](Status status) { result = status; });
    harness.RunUntil([&] { return result.has_value(); });
    return result.value_or(Status::Ok()).code();
  };
  EXPECT_EQ(refuse(RecordKind::kData, 0, {}), StatusCode::kCorruption);
  EXPECT_EQ(refuse(RecordKind::kData, 200, data), StatusCode::kCorruption);
  EXPECT_EQ(refuse(RecordKind::kZeroUnmap, 100, data), StatusCode::kCorruption);
  EXPECT_EQ(refuse(static_cast<RecordKind>(9), 100, {}), StatusCode::kCorruption);
  EXPECT_EQ(refuse(RecordKind::kZeroFill, kRecordBytesMax + 1, {}), StatusCode::kCorruption);
  EXPECT_EQ(log->last_seq(), 5u);
  // A gap, a zero record, then the log's own appends continue above the highest seq.
  ASSERT_TRUE(Wait(harness, AppendReplicaData(*log, 9, 4096)).ok());
  std::optional<Status> zero;
  log->AppendReplica(10, RecordKind::kZeroFill, 10 * kSlotBytes, 8192, {}, 0,
                     [&](Status status) { zero = status; });
  int acked = 0;
  EXPECT_EQ(log->Append(RecordKind::kData, 11 * kSlotBytes, 512, Pattern(11, 11 * kSlotBytes, 512),
                        [&](Status status) { acked += status.ok(); }),
            11u);
  harness.RunUntil([&] { return acked == 1 && zero.has_value(); });
  EXPECT_TRUE(zero.value_or(Status::IOError("")).ok());
  EXPECT_EQ(acked, 1);
  Status after = Wait(harness, AppendReplicaData(*log, 11, 100));
  EXPECT_EQ(after.message(), "oplog replica: seq 11 not after 11");
  const auto pieces = PiecesBySeq(*log);
  ASSERT_EQ(pieces.size(), 4u);
  EXPECT_EQ(pieces.at(10).kind, RangeKind::kZeroFill);
  EXPECT_EQ(ReadIndex(*log, 9 * kSlotBytes, 4096), Pattern(9, 9 * kSlotBytes, 4096));
}

TEST(OpLogReplicaTest, DataCrcMismatchIsRefusedBeforeAnythingChanges) {
  Harness harness(13);
  std::unique_ptr<OpLog> log;
  ASSERT_TRUE(OpenLog(harness, log).ok());
  auto data = Pattern(4, 0, 4096);
  const uint32_t crc = Crc32c(data);
  data[100] ^= std::byte{1};  // Damaged on the way from the owner.
  std::optional<Status> result;
  log->AppendReplica(4, RecordKind::kData, 0, 4096, data, crc, [&](Status s) { result = s; });
  harness.RunUntil([&] { return result.has_value(); });
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->code(), StatusCode::kCorruption) << result->ToString();
  result.reset();
  log->AppendReplica(4, RecordKind::kZeroUnmap, 0, 4096, {}, 7, [&](Status s) { result = s; });
  harness.RunUntil([&] { return result.has_value(); });
  EXPECT_EQ(result.value_or(Status::Ok()).code(), StatusCode::kCorruption);
  EXPECT_EQ(log->last_seq(), 0u);
  EXPECT_FALSE(log->index().Overlaps(0, 4096));
  EXPECT_EQ(log->stats().records_appended, 0u);
  // The same seq with the owner's bytes is accepted: the refusals left no trace.
  data[100] ^= std::byte{1};
  result.reset();
  log->AppendReplica(4, RecordKind::kData, 0, 4096, data, crc, [&](Status s) { result = s; });
  harness.RunUntil([&] { return result.has_value(); });
  EXPECT_TRUE(result.value_or(Status::IOError("")).ok());
  harness.CrashAndReopen(log, env::CrashMode::kDropUnsynced);
  ASSERT_TRUE(OpenLog(harness, log).ok());
  EXPECT_EQ(ReadIndex(*log, 0, 4096), data);
}

TEST(OpLogReplicaTest, ReopenReplaysExactlyTheRecordsAboveTheWatermarkWithTheirSeqs) {
  Harness harness(14);
  std::unique_ptr<OpLog> log;
  ASSERT_TRUE(OpenLog(harness, log).ok());
  // Issued together, so that group commit meets the gaps (a batch's seqs are consecutive).
  const std::vector<uint64_t> seqs = {3, 4, 5, 9, 10, 20, 21, 40};
  std::vector<std::shared_ptr<std::optional<Status>>> results;
  for (uint64_t seq : seqs) results.push_back(AppendReplicaData(*log, seq, 1000 + seq));
  for (const auto& result : results) ASSERT_TRUE(Wait(harness, result).ok());
  EXPECT_LT(log->stats().batches_written, seqs.size());
  ASSERT_TRUE(MarkDrainedAndWait(harness, *log, 9).ok());
  EXPECT_EQ(log->drained_seq(), 9u);
  EXPECT_EQ(PiecesBySeq(*log).size(), 4u);  // 10, 20, 21, 40.
  EXPECT_EQ(log->stats().records_undrained, 4u);
  harness.CrashAndReopen(log, env::CrashMode::kDropUnsynced);
  ASSERT_TRUE(OpenLog(harness, log).ok());
  EXPECT_EQ(log->stats().records_replayed, 4u);
  EXPECT_EQ(log->drained_seq(), 9u);
  EXPECT_EQ(log->last_seq(), 40u);
  const auto pieces = PiecesBySeq(*log);
  std::vector<uint64_t> replayed;
  for (const auto& [seq, piece] : pieces) {
    replayed.push_back(seq);
    EXPECT_EQ(piece.offset_bytes, seq * kSlotBytes);
    EXPECT_EQ(ReadIndex(*log, seq * kSlotBytes, 1000 + seq),
              Pattern(seq, seq * kSlotBytes, 1000 + seq));
  }
  EXPECT_EQ(replayed, (std::vector<uint64_t>{10, 20, 21, 40}));
  // The taken-over log appends on above the owner's last seq, and that survives too.
  std::optional<Status> appended;
  EXPECT_EQ(log->Append(RecordKind::kData, 41 * kSlotBytes, 300, Pattern(41, 41 * kSlotBytes, 300),
                        [&](Status status) { appended = status; }),
            41u);
  harness.RunUntil([&] { return appended.has_value(); });
  ASSERT_TRUE(appended.value_or(Status::IOError("")).ok());
  harness.CrashAndReopen(log, env::CrashMode::kDropUnsynced);
  ASSERT_TRUE(OpenLog(harness, log).ok());
  EXPECT_EQ(log->stats().records_replayed, 5u);
  EXPECT_EQ(PiecesBySeq(*log).rbegin()->first, 41u);
  EXPECT_EQ(log->last_seq(), 41u);
}

TEST(OpLogReplicaTest, MarkDrainedFreesSegmentsAndSurvivesReopen) {
  Harness harness(15);
  std::unique_ptr<OpLog> log;
  ASSERT_TRUE(OpenLog(harness, log, /*segments=*/2).ok());
  // 6 MiB of 256 KiB records through a 4 MiB log: only MarkDrained can make room.
  constexpr uint64_t kRecord = 256 * 1024;
  std::vector<std::shared_ptr<std::optional<Status>>> results;
  for (uint64_t i = 0; i < 24; ++i) results.push_back(AppendReplicaData(*log, 2 * i + 1, kRecord));
  harness.RunUntil([&] { return false; });  // Until it stalls for space.
  size_t acked = 0;
  while (acked < results.size() && results[acked]->has_value()) {
    ASSERT_TRUE(results[acked]->value().ok());
    ++acked;
  }
  ASSERT_LT(acked, results.size());
  ASSERT_GT(acked, 0u);
  EXPECT_GT(log->stats().space_waits, 0u);
  EXPECT_EQ(log->stats().segments_in_use, 2u);
  // The owner has drained everything acknowledged so far: that frees a segment, and the rest go.
  while (acked < results.size()) {
    const uint64_t drained = 2 * acked - 1;
    ASSERT_TRUE(MarkDrainedAndWait(harness, *log, drained).ok());
    EXPECT_GE(log->drained_seq(), drained);
    EXPECT_FALSE(log->index().Overlaps(0, (drained + 1) * kSlotBytes));
    harness.RunUntil([&] { return results.back()->has_value(); });
    const size_t before = acked;
    while (acked < results.size() && results[acked]->has_value()) {
      ASSERT_TRUE(results[acked]->value().ok());
      ++acked;
    }
    ASSERT_GT(acked, before);
  }
  // Drain all but the last three, then reopen: only those three are replayed.
  ASSERT_TRUE(MarkDrainedAndWait(harness, *log, 2 * 21).ok());
  EXPECT_EQ(log->drained_seq(), 42u);
  EXPECT_EQ(log->stats().segments_in_use, 1u);
  EXPECT_EQ(log->stats().records_undrained, 3u);
  harness.CrashAndReopen(log, env::CrashMode::kDropUnsynced);
  ASSERT_TRUE(OpenLog(harness, log, 2).ok());
  EXPECT_EQ(log->drained_seq(), 42u);
  EXPECT_EQ(log->stats().records_replayed, 3u);
  std::vector<uint64_t> replayed;
  for (const auto& [seq, piece] : PiecesBySeq(*log)) replayed.push_back(seq);
  EXPECT_EQ(replayed, (std::vector<uint64_t>{43, 45, 47}));
  EXPECT_EQ(ReadIndex(*log, 47 * kSlotBytes, kRecord), Pattern(47, 47 * kSlotBytes, kRecord));
}

// The owner may have drained records this peer still has queued behind a full log: the
// watermark-only batch passes them, and once written they are drained already, not undrained.
TEST(OpLogReplicaTest, MarkDrainedMayCoverRecordsStillQueued) {
  Harness harness(17);
  std::unique_ptr<OpLog> log;
  ASSERT_TRUE(OpenLog(harness, log, /*segments=*/2).ok());
  constexpr uint64_t kRecord = 512 * 1024;
  std::vector<std::shared_ptr<std::optional<Status>>> results;
  for (uint64_t seq = 1; seq <= 12; ++seq) results.push_back(AppendReplicaData(*log, seq, kRecord));
  harness.RunUntil([&] { return false; });  // Until it stalls for space.
  ASSERT_FALSE(results.back()->has_value());
  EXPECT_GT(log->appends_pending(), 0u);
  ASSERT_TRUE(MarkDrainedAndWait(harness, *log, 12).ok());
  EXPECT_EQ(log->drained_seq(), 12u);
  harness.RunUntil([&] { return results.back()->has_value(); });
  for (const auto& result : results) ASSERT_TRUE(result->value_or(Status::IOError("")).ok());
  EXPECT_FALSE(log->has_undrained());
  EXPECT_EQ(log->stats().records_undrained, 0u);
  EXPECT_EQ(log->undrained_bytes(), 0u);
  EXPECT_FALSE(log->NextDrainBatch(64ull << 20).has_value());
  // The records written after the watermark are not replayed either.
  harness.CrashAndReopen(log, env::CrashMode::kDropUnsynced);
  ASSERT_TRUE(OpenLog(harness, log, 2).ok());
  EXPECT_EQ(log->stats().records_replayed, 0u);
  EXPECT_EQ(log->last_seq(), 12u);
  ASSERT_TRUE(Wait(harness, AppendReplicaData(*log, 13, 4096)).ok());
  auto batch = log->NextDrainBatch(1 << 20);
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->max_seq, 13u);
  log->AbortDrain();
}

TEST(OpLogReplicaTest, MarkDrainedWatermarkRules) {
  Harness harness(16);
  std::unique_ptr<OpLog> log;
  ASSERT_TRUE(OpenLog(harness, log).ok());
  for (uint64_t seq = 1; seq <= 6; ++seq) {
    ASSERT_TRUE(Wait(harness, AppendReplicaData(*log, seq, 4096)).ok());
  }
  // Two in a row: the lower one completes with the higher one's write.
  std::optional<Status> first, second;
  log->MarkDrained(3, [&](Status status) { first = status; });
  log->MarkDrained(2, [&](Status status) { second = status; });
  harness.RunUntil([&] { return first.has_value() && second.has_value(); });
  EXPECT_TRUE(first.value_or(Status::IOError("")).ok());
  EXPECT_TRUE(second.value_or(Status::IOError("")).ok());
  EXPECT_EQ(log->drained_seq(), 3u);
  // At or below the durable watermark: OK, through the executor, and nothing is written.
  const uint64_t batches = log->stats().batches_written;
  std::optional<Status> again;
  log->MarkDrained(3, [&](Status status) { again = status; });
  EXPECT_FALSE(again.has_value());
  harness.RunUntil([&] { return again.has_value(); });
  EXPECT_TRUE(again.value_or(Status::IOError("")).ok());
  EXPECT_EQ(log->stats().batches_written, batches);
  // A NextDrainBatch drain running: Busy.
  auto batch = log->NextDrainBatch(4096);
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->max_seq, 4u);
  std::optional<Status> busy;
  log->MarkDrained(5, [&](Status status) { busy = status; });
  harness.RunUntil([&] { return busy.has_value(); });
  EXPECT_EQ(busy.value_or(Status::Ok()).code(), StatusCode::kBusy);
  log->AbortDrain();
  // While a MarkDrained is being written, NextDrainBatch hands out nothing.
  std::optional<Status> clamped;
  log->MarkDrained(1000, [&](Status status) { clamped = status; });
  EXPECT_FALSE(log->NextDrainBatch(1 << 20).has_value());
  harness.RunUntil([&] { return clamped.has_value(); });
  EXPECT_TRUE(clamped.value_or(Status::IOError("")).ok());
  EXPECT_EQ(log->drained_seq(), 6u);  // Clamped to the last seq.
  EXPECT_FALSE(log->has_undrained());
  EXPECT_EQ(log->index().piece_count(), 0u);
  EXPECT_FALSE(log->NextDrainBatch(1 << 20).has_value());
  // Appends continue above the watermark.
  ASSERT_TRUE(Wait(harness, AppendReplicaData(*log, 7, 4096)).ok());
  EXPECT_EQ(log->stats().records_undrained, 1u);
}

// The seeded crash loop on the replica path: the owner's records arrive with gaps (and some
// stale ones, refused), MarkDrained follows the owner's drain, and a crash (torn or dropped
// unsynced writes) hits at a random point. After recovery the log holds exactly: every
// acknowledged record above the recovered watermark, whole and with its seq, plus possibly
// unacknowledged ones — whole, never torn — and nothing at or below the watermark.
TEST(OpLogReplicaCrashTest, EveryAcknowledgedReplicaRecordIsReplayed) {
  // What the seeds covered, so that a change to the workload cannot quietly test nothing.
  uint64_t acked_checked = 0, unacked_replayed = 0, watermarks_acked = 0, runs_waiting = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " (run with --gtest_filter=*Replica*)");
    Harness harness(seed, 32ull << 20);
    std::mt19937_64 random(seed);
    std::unique_ptr<OpLog> log;
    ASSERT_TRUE(OpenLog(harness, log, 2).ok());
    struct Sent {
      RecordKind kind;
      uint64_t length;
      std::optional<Status> result;
    };
    std::map<uint64_t, std::shared_ptr<Sent>> sent;  // Accepted or pending, by seq.
    uint64_t owner_seq = 0;
    uint64_t watermark_acked = 0;
    uint64_t watermark_asked = 0;
    const int steps = 5 + static_cast<int>(random() % 120);
    for (int step = 0; step < steps; ++step) {
      const uint64_t choice = random() % 10;
      if (choice < 8) {
        owner_seq += random() % 4 ? 1 : 1 + random() % 5;  // Gaps: records the peer never saw.
        const uint64_t seq = choice == 0 && owner_seq > 3 ? owner_seq - 2 : owner_seq;  // Stale.
        const RecordKind kind = choice == 5   ? RecordKind::kZeroUnmap
                                : choice == 6 ? RecordKind::kZeroFill
                                              : RecordKind::kData;
        const uint64_t length = 1 + random() % (random() % 3 ? 9000 : 500000);
        const auto data = kind == RecordKind::kData ? Pattern(seq, seq * kSlotBytes, length)
                                                    : std::vector<std::byte>{};
        auto record = std::make_shared<Sent>(Sent{kind, length, std::nullopt});
        const bool stale = seq <= log->last_seq();
        if (!stale) sent[seq] = record;
        log->AppendReplica(seq, kind, seq * kSlotBytes, length, data, CrcOf(data),
                           [record](Status status) { record->result = status; });
      } else if (!sent.empty() && random() % 2 == 0) {
        // The owner drains some prefix of what it has (maybe past what this peer got).
        const uint64_t drained = random() % (owner_seq + 3);
        watermark_asked = std::max(watermark_asked, std::min(drained, log->last_seq()));
        log->MarkDrained(drained, [&watermark_acked, &log](Status status) {
          if (status.ok()) watermark_acked = std::max(watermark_acked, log->drained_seq());
        });
      }
      harness.RunSome(static_cast<int>(random() % 6));
    }
    runs_waiting += log->stats().space_waits > 0;
    watermarks_acked += watermark_acked > 0;
    uint64_t last_acked = 0;
    for (const auto& [seq, record] : sent) {
      if (record->result.has_value() && record->result->ok()) last_acked = seq;
    }
    harness.CrashAndReopen(
        log, random() % 2 ? env::CrashMode::kTearRandomly : env::CrashMode::kDropUnsynced);
    Status reopened = OpenLog(harness, log, 2);
    ASSERT_TRUE(reopened.ok()) << reopened.ToString();
    const uint64_t watermark = log->drained_seq();
    EXPECT_GE(watermark, watermark_acked);
    EXPECT_LE(watermark, watermark_asked);
    EXPECT_GE(log->last_seq(), last_acked);
    const auto pieces = PiecesBySeq(*log);
    EXPECT_EQ(pieces.size(), log->stats().records_replayed);
    for (const auto& [seq, record] : sent) {
      const bool acked = record->result.has_value() && record->result->ok();
      if (seq <= watermark) continue;
      if (acked) {
        EXPECT_TRUE(pieces.contains(seq)) << "acknowledged seq " << seq << " lost";
        ++acked_checked;
      } else {
        unacked_replayed += pieces.contains(seq);
      }
    }
    for (const auto& [seq, piece] : pieces) {
      ASSERT_GT(seq, watermark);
      ASSERT_TRUE(sent.contains(seq)) << "seq " << seq << " was never accepted";
      const Sent& record = *sent.at(seq);
      EXPECT_EQ(piece.offset_bytes, seq * kSlotBytes);
      EXPECT_EQ(piece.length_bytes, record.length) << "seq " << seq;
      if (record.kind == RecordKind::kData) {
        EXPECT_EQ(ReadIndex(*log, seq * kSlotBytes, record.length),
                  Pattern(seq, seq * kSlotBytes, record.length))
            << "seq " << seq;
      } else {
        EXPECT_EQ(piece.kind, record.kind == RecordKind::kZeroUnmap ? RangeKind::kZeroUnmap
                                                                    : RangeKind::kZeroFill);
      }
    }
    // The taken-over log drains (it may be full) and goes on above everything it holds.
    std::optional<Status> drained;
    log->MarkDrained(UINT64_MAX, [&](Status status) { drained = status; });
    harness.RunUntil([&] { return drained.has_value(); });
    EXPECT_TRUE(drained.value_or(Status::IOError("")).ok());
    EXPECT_EQ(log->drained_seq(), log->last_seq());
    EXPECT_EQ(log->index().piece_count(), 0u);
    std::optional<Status> appended;
    const uint64_t next =
        log->Append(RecordKind::kZeroUnmap, 0, 4096, {}, [&](Status status) { appended = status; });
    EXPECT_GT(next, std::max(last_acked, watermark));
    harness.RunUntil([&] { return appended.has_value(); });
    EXPECT_TRUE(appended.value_or(Status::IOError("")).ok());
  }
  EXPECT_GT(acked_checked, 1000u);
  EXPECT_GT(unacked_replayed, 10u);
  EXPECT_GT(watermarks_acked, 50u);
  EXPECT_GT(runs_waiting, 10u);
  std::printf(
      "replica crash loop: %lu acknowledged records checked, %lu unacknowledged ones "
      "replayed, %lu runs with a durable MarkDrained, %lu that waited for space\n",
      acked_checked, unacked_replayed, watermarks_acked, runs_waiting);
}

}  // namespace
}  // namespace weft::oplog
