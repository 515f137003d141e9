#include "env/fault_injecting_device.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "env/memory_device.h"

namespace weft::env {
namespace {

constexpr uint64_t kDeviceBytes = 1 << 20;
constexpr uint64_t kSectorBytes = FaultInjectingDevice::kSectorBytes;
// Enough seeds that every outcome of a crash with a handful of unsynced sectors shows up.
constexpr uint64_t kSeedCount = 200;
// A torn 8-sector write keeps all new sectors with probability 1/256 per seed; 2000 seeds miss
// that outcome with probability below 0.1%.
constexpr uint64_t kTornWriteSeedCount = 2000;

AlignedBuffer Filled(size_t size_bytes, uint8_t value) {
  AlignedBuffer buffer(size_bytes);
  std::memset(buffer.data(), value, size_bytes);
  return buffer;
}

bool AllBytesAre(std::span<const std::byte> bytes, uint8_t value) {
  return std::all_of(bytes.begin(), bytes.end(),
                     [value](std::byte byte) { return byte == std::byte{value}; });
}

// Reads through `device`, failing the test on error.
AlignedBuffer ReadOrFail(BlockDevice& device, uint64_t offset_bytes, size_t length_bytes) {
  AlignedBuffer buffer(length_bytes);
  const Status status = ReadSync(device, offset_bytes, buffer.span());
  EXPECT_TRUE(status.ok()) << status.ToString();
  return buffer;
}

// Records how an asynchronous operation ended.
struct Outcome {
  std::optional<Status> status;
  IoCompletion Callback() {
    return [this](Status result) {
      EXPECT_FALSE(status.has_value()) << "completion ran twice";
      status = std::move(result);
    };
  }
};

void PollUntilIdle(BlockDevice& device) {
  for (int round = 0; round < 1000 && device.inflight_count() > 0; ++round) device.Poll(true);
  ASSERT_EQ(device.inflight_count(), 0u);
}

// Per sector of a 4096-byte write of `new_value` over durable `old_value`: which one survived.
// Returns "o"/"n" per sector, or "?" where a sector holds neither, so a failure shows the layout.
std::string SectorOutcomes(std::span<const std::byte> bytes, uint8_t old_value, uint8_t new_value) {
  std::string outcomes;
  for (size_t offset = 0; offset < bytes.size(); offset += kSectorBytes) {
    const auto sector = bytes.subspan(offset, kSectorBytes);
    outcomes += AllBytesAre(sector, old_value) ? 'o' : AllBytesAre(sector, new_value) ? 'n' : '?';
  }
  return outcomes;
}

TEST(FaultInjectingDeviceTest, ReadsSeeUnflushedWritesAndPassThroughTheInnerDevice) {
  MemoryDevice inner("memory:test", kDeviceBytes);
  FaultInjectingDevice device(inner, /*seed=*/1);
  EXPECT_EQ(device.size_bytes(), kDeviceBytes);
  EXPECT_EQ(device.alignment_bytes(), 512u);
  EXPECT_EQ(device.name(), "memory:test");
  ASSERT_TRUE(WriteSync(device, 4096, Filled(4096, 0x42).span()).ok());
  EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 4096, 4096).span(), 0x42));
  // Unflushed data lives only in the overlay.
  AlignedBuffer raw(4096);
  inner.ReadRaw(4096, raw.span());
  EXPECT_TRUE(AllBytesAre(raw.span(), 0));
  EXPECT_EQ(device.unsynced_sector_count(), 8u);
  ASSERT_TRUE(FlushSync(device).ok());
  EXPECT_EQ(device.unsynced_sector_count(), 0u);
  inner.ReadRaw(4096, raw.span());
  EXPECT_TRUE(AllBytesAre(raw.span(), 0x42));
  EXPECT_EQ(device.write_count(), 1u);
  EXPECT_EQ(device.flush_count(), 1u);
}

TEST(FaultInjectingDeviceTest, FlushedDataSurvivesCrashInBothModes) {
  for (CrashMode mode : {CrashMode::kTearRandomly, CrashMode::kDropUnsynced}) {
    for (uint64_t seed = 0; seed < 20; ++seed) {
      MemoryDevice inner("memory:test", kDeviceBytes);
      FaultInjectingDevice device(inner, seed);
      ASSERT_TRUE(WriteSync(device, 0, Filled(8192, 0x11).span()).ok());
      ASSERT_TRUE(FlushSync(device).ok());
      EXPECT_EQ(device.Crash(mode), 0u);
      device.Revive();
      EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 0, 8192).span(), 0x11))
          << "seed " << seed << " mode " << static_cast<int>(mode);
    }
  }
}

TEST(FaultInjectingDeviceTest, DropUnsyncedLosesCompletedButUnflushedWrites) {
  MemoryDevice inner("memory:test", kDeviceBytes);
  FaultInjectingDevice device(inner, /*seed=*/7);
  ASSERT_TRUE(WriteSync(device, 0, Filled(4096, 0x11).span()).ok());
  ASSERT_TRUE(FlushSync(device).ok());
  ASSERT_TRUE(WriteSync(device, 0, Filled(4096, 0x22).span()).ok());
  ASSERT_TRUE(WriteSync(device, 65536, Filled(512, 0x33).span()).ok());
  EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 0, 4096).span(), 0x22));
  EXPECT_EQ(device.Crash(CrashMode::kDropUnsynced), 9u);
  EXPECT_EQ(device.unsynced_sector_count(), 0u);
  device.Revive();
  EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 0, 4096).span(), 0x11));
  EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 65536, 512).span(), 0));
}

// Runs one torn crash of a completed, unflushed 4096-byte write of 0x22 over durable 0x11 and
// returns the per-sector outcome.
std::string TornWriteOutcome(uint64_t seed, uint32_t inner_alignment_bytes) {
  MemoryDevice inner("memory:test", kDeviceBytes, inner_alignment_bytes);
  FaultInjectingDevice device(inner, seed);
  EXPECT_TRUE(WriteSync(device, 8192, Filled(4096, 0x11).span()).ok());
  EXPECT_TRUE(FlushSync(device).ok());
  EXPECT_TRUE(WriteSync(device, 8192, Filled(4096, 0x22).span()).ok());
  EXPECT_EQ(device.Crash(CrashMode::kTearRandomly), 8u);
  device.Revive();
  // Neighbouring blocks must not be disturbed by the read-modify-write of the inner device.
  EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 4096, 4096).span(), 0)) << "seed " << seed;
  EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 12288, 4096).span(), 0)) << "seed " << seed;
  return SectorOutcomes(ReadOrFail(device, 8192, 4096).span(), 0x11, 0x22);
}

void ExpectTornOutcomesCoverOldNewAndMixed(uint32_t inner_alignment_bytes) {
  bool saw_all_old = false;
  bool saw_all_new = false;
  bool saw_mixed = false;
  for (uint64_t seed = 0; seed < kTornWriteSeedCount; ++seed) {
    const std::string outcome = TornWriteOutcome(seed, inner_alignment_bytes);
    ASSERT_EQ(outcome.find('?'), std::string::npos)
        << "seed " << seed << ": a sector holds neither the old nor the new bytes: " << outcome;
    if (outcome == "oooooooo") {
      saw_all_old = true;
    } else if (outcome == "nnnnnnnn") {
      saw_all_new = true;
    } else {
      saw_mixed = true;
    }
  }
  EXPECT_TRUE(saw_all_old);
  EXPECT_TRUE(saw_all_new);
  EXPECT_TRUE(saw_mixed);
}

TEST(FaultInjectingDeviceTest, TornCrashLeavesEachSectorOldOrNew) {
  ExpectTornOutcomesCoverOldNewAndMixed(/*inner_alignment_bytes=*/512);
}

TEST(FaultInjectingDeviceTest, TornCrashTearsAtSectorGranularityOverFourKilobyteInnerDevice) {
  ExpectTornOutcomesCoverOldNewAndMixed(/*inner_alignment_bytes=*/4096);
}

TEST(FaultInjectingDeviceTest, TornCrashMayKeepAnyUnsyncedVersionNotOnlyTheNewest) {
  bool saw_value[3] = {false, false, false};
  for (uint64_t seed = 0; seed < kSeedCount; ++seed) {
    MemoryDevice inner("memory:test", kDeviceBytes);
    FaultInjectingDevice device(inner, seed);
    ASSERT_TRUE(WriteSync(device, 0, Filled(512, 1).span()).ok());
    ASSERT_TRUE(WriteSync(device, 0, Filled(512, 2).span()).ok());
    EXPECT_EQ(device.Crash(CrashMode::kTearRandomly), 1u);
    device.Revive();
    const AlignedBuffer read = ReadOrFail(device, 0, 512);
    const auto value = static_cast<uint8_t>(read.data()[0]);
    ASSERT_LT(value, 3) << "seed " << seed;
    ASSERT_TRUE(AllBytesAre(read.span(), value)) << "seed " << seed;
    saw_value[value] = true;
  }
  EXPECT_TRUE(saw_value[0]) << "the durable (zero) bytes never survived";
  EXPECT_TRUE(saw_value[1]) << "the older unsynced version never survived";
  EXPECT_TRUE(saw_value[2]) << "the newest unsynced version never survived";
}

// A run mixing writes, reads, a flush and a torn crash; returns everything observable.
std::string ReplayableRun(uint64_t seed) {
  MemoryDevice inner("memory:test", kDeviceBytes);
  FaultInjectingDevice device(inner, seed);
  std::string observed;
  std::vector<AlignedBuffer> data;
  for (uint8_t index = 0; index < 8; ++index) data.push_back(Filled(4096, 0x10 + index));
  for (uint8_t index = 0; index < 8; ++index) {
    device.SubmitWrite(uint64_t{index % 4u} * 4096, data[index].span(),
                       [&observed, index](const Status& status) {
                         observed += status.ok() ? char('a' + index) : '!';
                       });
    if (index == 3) device.SubmitFlush([&observed](const Status&) { observed += 'F'; });
    if (index % 3 == 0) device.Poll(false);
  }
  device.Crash(CrashMode::kTearRandomly);
  PollUntilIdle(device);
  device.Revive();
  observed += '|';
  const AlignedBuffer contents = ReadOrFail(device, 0, 16384);
  for (size_t offset = 0; offset < contents.size(); offset += kSectorBytes) {
    observed += std::to_string(static_cast<int>(contents.data()[offset])) + ",";
  }
  return observed;
}

TEST(FaultInjectingDeviceTest, SameSeedReplaysTheSameRun) {
  std::vector<std::string> runs;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const std::string run = ReplayableRun(seed);
    EXPECT_EQ(ReplayableRun(seed), run) << "seed " << seed << " did not replay";
    runs.push_back(run);
  }
  std::sort(runs.begin(), runs.end());
  EXPECT_GT(std::unique(runs.begin(), runs.end()) - runs.begin(), 1)
      << "every seed gave the same run: the seed is not used";
}

TEST(FaultInjectingDeviceTest, FlushDoesNotCoverWritesCompletedAfterItWasSubmitted) {
  bool saw_write_complete_before_flush_ran = false;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    MemoryDevice inner("memory:test", kDeviceBytes);
    FaultInjectingDevice device(inner, seed);
    ASSERT_TRUE(WriteSync(device, 0, Filled(512, 0xAA).span()).ok());
    // Both writes are in flight when the flush is submitted; only 0xAA had completed.
    const AlignedBuffer overwrite = Filled(512, 0xCC);
    const AlignedBuffer elsewhere = Filled(512, 0xBB);
    std::string order;
    device.SubmitWrite(0, overwrite.span(), [&](const Status& status) {
      EXPECT_TRUE(status.ok());
      order += 'w';
    });
    device.SubmitWrite(4096, elsewhere.span(), [&](const Status& status) {
      EXPECT_TRUE(status.ok());
      order += 'w';
    });
    device.SubmitFlush([&](const Status& status) {
      EXPECT_TRUE(status.ok());
      order += 'F';
    });
    PollUntilIdle(device);
    if (order != "Fww") saw_write_complete_before_flush_ran = true;
    device.Crash(CrashMode::kDropUnsynced);
    device.Revive();
    EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 0, 512).span(), 0xAA)) << "seed " << seed;
    EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 4096, 512).span(), 0)) << "seed " << seed;
  }
  // Otherwise the test never checked the case that matters.
  EXPECT_TRUE(saw_write_complete_before_flush_ran);
}

TEST(FaultInjectingDeviceTest, OperationsInFlightAtCrashOrSubmittedWhileCrashedFail) {
  MemoryDevice inner("memory:test", kDeviceBytes);
  FaultInjectingDevice device(inner, /*seed=*/3);
  ASSERT_TRUE(WriteSync(device, 0, Filled(4096, 0x11).span()).ok());
  ASSERT_TRUE(FlushSync(device).ok());

  const AlignedBuffer data = Filled(4096, 0x22);
  AlignedBuffer read(4096);
  Outcome write, read_outcome, flush;
  device.SubmitWrite(0, data.span(), write.Callback());
  device.SubmitRead(0, read.span(), read_outcome.Callback());
  device.SubmitFlush(flush.Callback());
  EXPECT_EQ(device.Crash(CrashMode::kTearRandomly), 8u);
  EXPECT_TRUE(device.crashed());
  EXPECT_FALSE(write.status.has_value()) << "Crash() must not run completions itself";
  EXPECT_EQ(device.inflight_count(), 3u);
  EXPECT_EQ(device.Poll(false), 3u);
  for (const Outcome* outcome : {&write, &read_outcome, &flush}) {
    ASSERT_TRUE(outcome->status.has_value());
    EXPECT_TRUE(outcome->status->IsIOError()) << outcome->status->ToString();
    EXPECT_EQ(outcome->status->message(), "memory:test: device crashed");
  }

  EXPECT_TRUE(WriteSync(device, 0, data.span()).IsIOError());
  EXPECT_TRUE(ReadSync(device, 0, read.span()).IsIOError());
  EXPECT_TRUE(FlushSync(device).IsIOError());
  EXPECT_TRUE(DiscardSync(device, 0, 4096).IsIOError());
  EXPECT_EQ(device.inflight_count(), 0u);

  device.Revive();
  EXPECT_FALSE(device.crashed());
  const std::string outcome = SectorOutcomes(ReadOrFail(device, 0, 4096).span(), 0x11, 0x22);
  EXPECT_EQ(outcome.find('?'), std::string::npos) << outcome;
  ASSERT_TRUE(WriteSync(device, 0, Filled(4096, 0x33).span()).ok());
  ASSERT_TRUE(FlushSync(device).ok());
  EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 0, 4096).span(), 0x33));
}

TEST(FaultInjectingDeviceTest, CrashInsideACompletionFailsTheRestOfThatPoll) {
  MemoryDevice inner("memory:test", kDeviceBytes);
  FaultInjectingDevice device(inner, /*seed=*/5);
  const AlignedBuffer data = Filled(512, 1);
  int ok_count = 0;
  int crashed_count = 0;
  for (uint64_t index = 0; index < 6; ++index) {
    device.SubmitWrite(index * 512, data.span(), [&](const Status& status) {
      if (status.ok()) {
        ++ok_count;
        if (!device.crashed()) device.Crash(CrashMode::kDropUnsynced);
      } else {
        EXPECT_TRUE(status.IsIOError()) << status.ToString();
        ++crashed_count;
      }
    });
  }
  EXPECT_EQ(device.Poll(false), 6u);
  EXPECT_EQ(ok_count, 1);
  EXPECT_EQ(crashed_count, 5);
}

TEST(FaultInjectingDeviceTest, SyncCallsWorkFromInsideACompletion) {
  MemoryDevice inner("memory:test", kDeviceBytes);
  FaultInjectingDevice device(inner, /*seed=*/9);
  const AlignedBuffer data = Filled(4096, 0x66);
  bool checked = false;
  device.SubmitWrite(0, data.span(), [&](const Status& status) {
    ASSERT_TRUE(status.ok());
    EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 0, 4096).span(), 0x66));
    checked = true;
  });
  PollUntilIdle(device);
  EXPECT_TRUE(checked);
}

TEST(FaultInjectingDeviceTest, CompletionsNeverRunInsideSubmit) {
  MemoryDevice inner("memory:test", kDeviceBytes);
  FaultInjectingDevice device(inner, /*seed=*/2);
  AlignedBuffer buffer(4096);
  device.SetFull(true);
  device.FailRange(0, 4096, FailOperations::kReadsAndWrites);
  Outcome bad, failed, full, flush, discard;
  device.SubmitRead(1, buffer.span(), bad.Callback());
  device.SubmitRead(0, buffer.span(), failed.Callback());
  device.SubmitWrite(8192, buffer.span(), full.Callback());
  device.SubmitFlush(flush.Callback());
  device.SubmitDiscard(8192, 4096, discard.Callback());
  for (const Outcome* outcome : {&bad, &failed, &full, &flush, &discard}) {
    EXPECT_FALSE(outcome->status.has_value());
  }
  EXPECT_EQ(device.inflight_count(), 5u);
  EXPECT_EQ(device.Poll(/*wait=*/true), 5u);
  EXPECT_TRUE(bad.status->IsInvalidArgument()) << bad.status->ToString();
  EXPECT_TRUE(failed.status->IsIOError()) << failed.status->ToString();
  EXPECT_TRUE(full.status->IsNoSpace()) << full.status->ToString();
  EXPECT_TRUE(flush.status->ok()) << flush.status->ToString();
  EXPECT_TRUE(discard.status->ok()) << discard.status->ToString();
  EXPECT_EQ(device.Poll(/*wait=*/true), 0u) << "Poll with nothing in flight must not block";
}

TEST(FaultInjectingDeviceTest, BadRequestsCompleteWithInvalidArgument) {
  MemoryDevice inner("memory:test", kDeviceBytes, /*alignment_bytes=*/4096);
  FaultInjectingDevice device(inner, /*seed=*/4);
  AlignedBuffer buffer(8192);
  EXPECT_TRUE(ReadSync(device, 512, buffer.span().first(4096)).IsInvalidArgument());
  EXPECT_TRUE(WriteSync(device, 0, buffer.span().first(512)).IsInvalidArgument());
  EXPECT_TRUE(WriteSync(device, 0, buffer.span().subspan(512, 4096)).IsInvalidArgument());
  EXPECT_TRUE(WriteSync(device, kDeviceBytes - 4096, buffer.span()).IsInvalidArgument());
  EXPECT_TRUE(DiscardSync(device, kDeviceBytes, 4096).IsInvalidArgument());
  EXPECT_EQ(device.write_count(), 0u);
  EXPECT_EQ(device.unsynced_sector_count(), 0u);
}

TEST(FaultInjectingDeviceTest, FlipBitChangesExactlyOneBitSeenByReads) {
  MemoryDevice inner("memory:test", kDeviceBytes, /*alignment_bytes=*/4096);
  FaultInjectingDevice device(inner, /*seed=*/6);
  const AlignedBuffer original = Filled(8192, 0x5A);
  ASSERT_TRUE(WriteSync(device, 0, original.span()).ok());
  ASSERT_TRUE(FlushSync(device).ok());
  device.FlipBit(5000, 3);
  const AlignedBuffer read = ReadOrFail(device, 0, 8192);
  for (size_t index = 0; index < read.size(); ++index) {
    const std::byte expected = index == 5000 ? std::byte{0x5A ^ 0x08} : std::byte{0x5A};
    ASSERT_EQ(read.data()[index], expected) << "byte " << index;
  }
}

TEST(FaultInjectingDeviceTest, FlipBitCorruptsUnsyncedVersionsAndDurableBytes) {
  MemoryDevice inner("memory:test", kDeviceBytes);
  FaultInjectingDevice device(inner, /*seed=*/8);
  ASSERT_TRUE(WriteSync(device, 0, Filled(512, 0x00).span()).ok());
  ASSERT_TRUE(FlushSync(device).ok());
  ASSERT_TRUE(WriteSync(device, 0, Filled(512, 0x70).span()).ok());
  device.FlipBit(100, 7);
  AlignedBuffer read = ReadOrFail(device, 0, 512);
  EXPECT_EQ(read.data()[100], std::byte{0xF0});
  EXPECT_EQ(read.data()[99], std::byte{0x70});
  device.Crash(CrashMode::kDropUnsynced);
  device.Revive();
  read = ReadOrFail(device, 0, 512);
  EXPECT_EQ(read.data()[100], std::byte{0x80});
  EXPECT_EQ(read.data()[101], std::byte{0x00});
}

TEST(FaultInjectingDeviceTest, FailRangeFailsOnlyOperationsTouchingTheRange) {
  MemoryDevice inner("memory:test", kDeviceBytes);
  FaultInjectingDevice device(inner, /*seed=*/10);
  ASSERT_TRUE(WriteSync(device, 0, Filled(16384, 0x44).span()).ok());
  device.FailRange(8192, 4096, FailOperations::kReads);
  AlignedBuffer buffer(8192);
  const Status inside = ReadSync(device, 8704, buffer.span().first(512));
  EXPECT_TRUE(inside.IsIOError()) << inside.ToString();
  EXPECT_NE(inside.message().find("memory:test"), std::string::npos) << inside.message();
  EXPECT_NE(inside.message().find("EIO"), std::string::npos) << inside.message();
  EXPECT_NE(inside.message().find("8704"), std::string::npos) << inside.message();
  EXPECT_TRUE(ReadSync(device, 4096, buffer.span()).IsIOError()) << "overlaps the range's start";
  EXPECT_TRUE(ReadSync(device, 4096, buffer.span().first(4096)).ok()) << "ends where it starts";
  EXPECT_TRUE(ReadSync(device, 12288, buffer.span().first(4096)).ok()) << "starts where it ends";
  EXPECT_TRUE(WriteSync(device, 8192, Filled(512, 0x55).span()).ok()) << "only reads fail";

  device.FailRange(0, 512, FailOperations::kWrites);
  EXPECT_TRUE(WriteSync(device, 0, Filled(512, 0x66).span()).IsIOError());
  EXPECT_TRUE(DiscardSync(device, 0, 4096).IsIOError());
  EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 0, 512).span(), 0x44)) << "a failed write had effect";

  device.ClearFailures();
  EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 8192, 512).span(), 0x55));
  EXPECT_TRUE(WriteSync(device, 0, Filled(512, 0x66).span()).ok());
}

TEST(FaultInjectingDeviceTest, FullDeviceFailsWritesWithNoSpace) {
  MemoryDevice inner("memory:test", kDeviceBytes);
  FaultInjectingDevice device(inner, /*seed=*/11);
  device.SetFull(true);
  const Status status = WriteSync(device, 0, Filled(4096, 0x77).span());
  EXPECT_TRUE(status.IsNoSpace()) << status.ToString();
  EXPECT_EQ(device.write_count(), 0u);
  EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 0, 4096).span(), 0)) << "a failed write had effect";
  EXPECT_TRUE(FlushSync(device).ok());
  device.SetFull(false);
  EXPECT_TRUE(WriteSync(device, 0, Filled(4096, 0x77).span()).ok());
}

TEST(FaultInjectingDeviceTest, DiscardReadsAsZerosBeforeAndAfterACrash) {
  MemoryDevice inner("memory:test", kDeviceBytes);
  FaultInjectingDevice device(inner, /*seed=*/12);
  ASSERT_TRUE(WriteSync(device, 0, Filled(8192, 0x11).span()).ok());
  ASSERT_TRUE(FlushSync(device).ok());
  ASSERT_TRUE(WriteSync(device, 0, Filled(8192, 0x22).span()).ok());
  ASSERT_TRUE(DiscardSync(device, 4096, 4096).ok());
  EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 4096, 4096).span(), 0));
  EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 0, 4096).span(), 0x22));
  device.Crash(CrashMode::kTearRandomly);
  device.Revive();
  EXPECT_TRUE(AllBytesAre(ReadOrFail(device, 4096, 4096).span(), 0));
}

TEST(FaultInjectingDeviceTest, CompletionOrderIsRandomizedAndReplayable) {
  constexpr int kOperationCount = 8;
  auto completion_order = [](uint64_t seed) {
    MemoryDevice inner("memory:test", kDeviceBytes);
    FaultInjectingDevice device(inner, seed);
    std::vector<int> order;
    for (int index = 0; index < kOperationCount; ++index) {
      device.SubmitFlush([&order, index](const Status& status) {
        EXPECT_TRUE(status.ok());
        order.push_back(index);
      });
    }
    EXPECT_EQ(device.Poll(false), size_t{kOperationCount});
    return order;
  };
  std::vector<int> submission_order(kOperationCount);
  for (int index = 0; index < kOperationCount; ++index) submission_order[index] = index;
  int reordered_count = 0;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const std::vector<int> order = completion_order(seed);
    EXPECT_TRUE(std::is_permutation(order.begin(), order.end(), submission_order.begin()));
    EXPECT_EQ(completion_order(seed), order) << "seed " << seed;
    if (order != submission_order) ++reordered_count;
  }
  EXPECT_GT(reordered_count, 0);
}

}  // namespace
}  // namespace weft::env
