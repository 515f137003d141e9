#include "blockstore/blockstore.h"

#include <gtest/gtest.h>

#include <cstring>

#include "base/aligned_buffer.h"
#include "blockstore/blockstore_format.h"
#include "blockstore/blockstore_test_util.h"
#include "env/fault_injecting_device.h"
#include "env/memory_device.h"

namespace weft::blockstore {
namespace {

using testing::FormatAndOpen;
using testing::PersistAndFlush;

constexpr uint64_t kDeviceBytes = 64ull << 20;

TEST(BlockstoreTest, FormatOpenReportsGeometry) {
  env::MemoryDevice device("memory:disk0", kDeviceBytes);
  auto blockstore = FormatAndOpen(device);
  ASSERT_NE(blockstore, nullptr);
  EXPECT_EQ(blockstore->block_size_bytes(), 4096u);
  EXPECT_EQ(blockstore->block_count(), kDeviceBytes / 4096);
  EXPECT_EQ(blockstore->max_run_blocks(), 1024u);
  const BlockstoreStats stats = blockstore->stats();
  EXPECT_EQ(stats.free_blocks, stats.data_blocks);
  EXPECT_GT(stats.data_blocks, stats.total_blocks * 9 / 10);
  EXPECT_FALSE(blockstore->uuid().IsNil());
}

TEST(BlockstoreTest, JournalLengthScalesWithTheDevice) {
  const std::pair<uint64_t, uint32_t> cases[] = {
      {8ull << 20, 64}, {64ull << 20, 256}, {1ull << 30, 4096}, {64ull << 30, 8192}};
  for (const auto& [device_bytes, journal_blocks] : cases) {
    env::MemoryDevice device("memory:sized", device_bytes);  // Sparse: big sizes cost nothing.
    auto blockstore = FormatAndOpen(device);
    ASSERT_NE(blockstore, nullptr);
    EXPECT_EQ(blockstore->stats().journal_blocks, journal_blocks) << device_bytes;
  }
  env::MemoryDevice device("memory:explicit", 64ull << 20);
  FormatOptions options;
  options.journal_blocks = 100;
  auto blockstore = FormatAndOpen(device, options);
  ASSERT_NE(blockstore, nullptr);
  EXPECT_EQ(blockstore->stats().journal_blocks, 100u);
}

TEST(BlockstoreTest, AllocationsSurviveReopenOnlyOncePersisted) {
  env::MemoryDevice device("memory:disk0", kDeviceBytes);
  auto blockstore = FormatAndOpen(device);
  ASSERT_NE(blockstore, nullptr);
  auto durable = blockstore->Allocate(1024);
  ASSERT_TRUE(durable.ok()) << durable.status().ToString();
  ASSERT_TRUE(PersistAndFlush(*blockstore).ok());
  auto volatile_run = blockstore->Allocate(10);
  ASSERT_TRUE(volatile_run.ok());
  const uint64_t free_before = blockstore->free_block_count();
  blockstore.reset();  // No Close(): the second allocation was never persisted.

  auto reopened = Blockstore::Open(device);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_TRUE((*reopened)->IsAllocated(durable->first_block));
  EXPECT_TRUE((*reopened)->IsAllocated(durable->end_block() - 1));
  EXPECT_FALSE((*reopened)->IsAllocated(volatile_run->first_block));
  EXPECT_EQ((*reopened)->free_block_count(), free_before + 10);
}

TEST(BlockstoreTest, FreedBlocksAreNotReusedUntilTheFreeIsDurable) {
  env::MemoryDevice device("memory:disk0", kDeviceBytes);
  auto blockstore = FormatAndOpen(device);
  ASSERT_NE(blockstore, nullptr);
  const uint64_t data_blocks = blockstore->stats().data_blocks;
  // Fill the device completely, then free one run.
  std::vector<BlockRun> runs;
  while (blockstore->free_block_count() > 0) {
    auto run = blockstore->AllocateAny(std::min<uint64_t>(blockstore->free_block_count(), 1024));
    ASSERT_TRUE(run.ok()) << run.status().ToString();
    runs.insert(runs.end(), run->begin(), run->end());
  }
  ASSERT_TRUE(PersistAndFlush(*blockstore).ok());
  auto full = blockstore->Allocate(1);
  ASSERT_TRUE(full.status().IsNoSpace()) << full.status().ToString();
  blockstore->Free(runs.front());
  EXPECT_EQ(blockstore->stats().quarantined_blocks, runs.front().block_count);
  EXPECT_TRUE(blockstore->Allocate(1).status().IsNoSpace());
  ASSERT_TRUE(PersistAndFlush(*blockstore).ok());
  EXPECT_EQ(blockstore->stats().quarantined_blocks, 0u);
  auto reused = blockstore->Allocate(1);
  ASSERT_TRUE(reused.ok()) << reused.status().ToString();
  EXPECT_EQ(blockstore->free_block_count(), runs.front().block_count - 1);
  EXPECT_EQ(data_blocks, blockstore->stats().data_blocks);
}

TEST(BlockstoreTest, ManyRoundsCheckpointAndReplay) {
  // A tiny journal forces many checkpoints; the state must survive each reopen exactly.
  env::MemoryDevice device("memory:disk0", kDeviceBytes);
  FormatOptions options;
  options.journal_blocks = 4;
  auto blockstore = FormatAndOpen(device, options);
  ASSERT_NE(blockstore, nullptr);
  std::vector<BlockRun> live;
  for (int round = 0; round < 200; ++round) {
    auto run = blockstore->Allocate(1 + round % 7);
    ASSERT_TRUE(run.ok());
    live.push_back(*run);
    if (round % 3 == 0) {
      blockstore->Free(live.front());
      live.erase(live.begin());
    }
    ASSERT_TRUE(PersistAndFlush(*blockstore).ok());
  }
  EXPECT_GT(blockstore->stats().checkpoints_written, 10u);
  const uint64_t free_blocks = blockstore->free_block_count();
  blockstore.reset();
  auto reopened = Blockstore::Open(device);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ((*reopened)->free_block_count(), free_blocks);
  for (const BlockRun& run : live) {
    for (uint64_t block = run.first_block; block < run.end_block(); ++block) {
      ASSERT_TRUE((*reopened)->IsAllocated(block));
    }
  }
}

TEST(BlockstoreTest, ReclaimUnreferencedFreesLeaks) {
  env::MemoryDevice device("memory:disk0", kDeviceBytes);
  auto blockstore = FormatAndOpen(device);
  ASSERT_NE(blockstore, nullptr);
  const uint64_t free_at_start = blockstore->free_block_count();
  auto kept = blockstore->Allocate(8);
  auto leaked = blockstore->Allocate(16);
  ASSERT_TRUE(kept.ok() && leaked.ok());
  ASSERT_TRUE(PersistAndFlush(*blockstore).ok());
  auto reclaimed = blockstore->ReclaimUnreferenced(
      [&](uint64_t block) { return block >= kept->first_block && block < kept->end_block(); });
  ASSERT_TRUE(reclaimed.ok()) << reclaimed.status().ToString();
  EXPECT_EQ(*reclaimed, 16u);
  EXPECT_EQ(blockstore->free_block_count(), free_at_start - 8);
  EXPECT_EQ(blockstore->stats().leaked_blocks_reclaimed, 16u);
}

TEST(BlockstoreTest, FullDeviceIsACleanNoSpaceError) {
  env::MemoryDevice device("memory:disk0", 8ull << 20);
  auto blockstore = FormatAndOpen(device);
  ASSERT_NE(blockstore, nullptr);
  const uint64_t free_blocks = blockstore->free_block_count();
  auto too_many = blockstore->AllocateAny(free_blocks + 1);
  ASSERT_TRUE(too_many.status().IsNoSpace()) << too_many.status().ToString();
  EXPECT_EQ(blockstore->free_block_count(), free_blocks);  // Nothing allocated on failure.
  auto all = blockstore->AllocateAny(free_blocks);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(blockstore->free_block_count(), 0u);
  EXPECT_TRUE(blockstore->Allocate(1).status().IsNoSpace());
}

TEST(BlockstoreTest, BadArgumentsAreRejected) {
  env::MemoryDevice device("memory:disk0", kDeviceBytes);
  FormatOptions options;
  options.block_size_bytes = 3000;
  EXPECT_TRUE(Blockstore::Format(device, options).IsInvalidArgument());
  options.block_size_bytes = 2048;
  EXPECT_TRUE(Blockstore::Format(device, options).IsInvalidArgument());
  options.block_size_bytes = 128 * 1024;
  EXPECT_TRUE(Blockstore::Format(device, options).IsInvalidArgument());
  env::MemoryDevice tiny("memory:tiny", 256 * 1024);
  EXPECT_TRUE(Blockstore::Format(tiny, {}).IsInvalidArgument());

  auto blockstore = FormatAndOpen(device);
  ASSERT_NE(blockstore, nullptr);
  EXPECT_TRUE(blockstore->Allocate(0).status().IsInvalidArgument());
  EXPECT_TRUE(blockstore->Allocate(1025).status().IsInvalidArgument());
  EXPECT_TRUE(blockstore->AllocateAny(0).status().IsInvalidArgument());
}

TEST(BlockstoreTest, LargerBlockSizesWork) {
  env::MemoryDevice device("memory:disk0", kDeviceBytes);
  FormatOptions options;
  options.block_size_bytes = 65536;
  auto blockstore = FormatAndOpen(device, options);
  ASSERT_NE(blockstore, nullptr);
  EXPECT_EQ(blockstore->max_run_blocks(), 64u);
  auto run = blockstore->Allocate(64);
  ASSERT_TRUE(run.ok());
  ASSERT_TRUE(blockstore->Close().ok());
  blockstore.reset();
  auto reopened = Blockstore::Open(device);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_TRUE((*reopened)->IsAllocated(run->first_block));
}

// ---- Refusing bad devices ----

TEST(BlockstoreOpenTest, ForeignDeviceIsRefused) {
  env::MemoryDevice device("memory:foreign", kDeviceBytes);
  AlignedBuffer junk(1 << 20);
  for (size_t i = 0; i < junk.size(); ++i) junk.data()[i] = std::byte(i * 131 + 7);
  device.WriteRaw(0, junk.span());
  auto opened = Blockstore::Open(device);
  ASSERT_FALSE(opened.ok());
  EXPECT_TRUE(opened.status().IsInvalidArgument()) << opened.status().ToString();
  EXPECT_NE(opened.status().message().find("not a weft blockstore"), std::string::npos);

  env::MemoryDevice empty("memory:empty", kDeviceBytes);
  EXPECT_TRUE(Blockstore::Open(empty).status().IsInvalidArgument());
}

TEST(BlockstoreOpenTest, TruncatedDeviceIsRefused) {
  env::MemoryDevice device("memory:disk0", kDeviceBytes);
  ASSERT_TRUE(Blockstore::Format(device, {}).ok());
  device.Resize(kDeviceBytes / 2);
  auto opened = Blockstore::Open(device);
  ASSERT_FALSE(opened.ok());
  EXPECT_TRUE(opened.status().IsCorruption()) << opened.status().ToString();
  EXPECT_NE(opened.status().message().find("truncated"), std::string::npos);

  env::MemoryDevice short_device("memory:short",
                                 32 * 1024);  // Shorter than the second copy's offset.
  EXPECT_FALSE(Blockstore::Open(short_device).ok());
}

TEST(BlockstoreOpenTest, OneCorruptSuperblockIsRepairedBothAreRefused) {
  env::MemoryDevice device("memory:disk0", kDeviceBytes);
  ASSERT_TRUE(Blockstore::Format(device, {}).ok());
  testing::FlipRawBit(device, 40, 3);  // Inside copy 0's block size field.
  {
    auto opened = Blockstore::Open(device);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  }
  // The repair rewrote copy 0: corrupting copy 1 alone is survivable again.
  testing::FlipRawBit(device, format::kSecondSuperblockOffsetBytes + 100, 0);
  ASSERT_TRUE(Blockstore::Open(device).ok());
  testing::FlipRawBit(device, 40, 3);
  testing::FlipRawBit(device, format::kSecondSuperblockOffsetBytes + 40, 3);
  auto opened = Blockstore::Open(device);
  ASSERT_FALSE(opened.ok());
  EXPECT_TRUE(opened.status().IsCorruption()) << opened.status().ToString();
}

TEST(BlockstoreOpenTest, CorruptCheckpointFallsBackOrIsRefused) {
  env::MemoryDevice device("memory:disk0", kDeviceBytes);
  auto blockstore = FormatAndOpen(device);
  ASSERT_NE(blockstore, nullptr);
  auto run = blockstore->Allocate(100);
  ASSERT_TRUE(run.ok());
  ASSERT_TRUE(blockstore->Close().ok());
  blockstore.reset();
  // Reopen writes a checkpoint into the other area; damage both areas' headers.
  auto reopened = Blockstore::Open(device);
  ASSERT_TRUE(reopened.ok());
  EXPECT_TRUE((*reopened)->IsAllocated(run->first_block));
  reopened->reset();
  format::Superblock superblock;
  AlignedBuffer block(4096);
  device.ReadRaw(0, block.span());
  std::memcpy(&superblock, block.data(), sizeof(superblock));
  testing::FlipRawBit(device, superblock.checkpoint_first_block[0] * 4096 + 20, 1);
  testing::FlipRawBit(device, superblock.checkpoint_first_block[1] * 4096 + 20, 1);
  auto refused = Blockstore::Open(device);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().IsCorruption()) << refused.status().ToString();
}

// ---- Crashes ----

TEST(BlockstoreCrashTest, TornJournalNeverLosesDurableOrResurrectsVolatileState) {
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    env::MemoryDevice memory("memory:disk0", 16ull << 20);
    env::FaultInjectingDevice device(memory, seed);
    FormatOptions options;
    options.journal_blocks = 8;
    auto blockstore = FormatAndOpen(device, options);
    ASSERT_NE(blockstore, nullptr);
    std::mt19937_64 random(seed);
    std::vector<BlockRun> durable;
    // Several durable rounds, then volatile changes in flight when the crash hits.
    const int rounds = 1 + static_cast<int>(random() % 20);
    for (int round = 0; round < rounds; ++round) {
      auto run = blockstore->Allocate(1 + random() % 64);
      ASSERT_TRUE(run.ok());
      durable.push_back(*run);
      if (random() % 3 == 0 && durable.size() > 1) {
        blockstore->Free(durable.front());
        durable.erase(durable.begin());
      }
      ASSERT_TRUE(PersistAndFlush(*blockstore).ok());
    }
    std::vector<BlockRun> volatile_runs;
    for (int i = 0; i < 5; ++i) {
      auto run = blockstore->Allocate(1 + random() % 32);
      ASSERT_TRUE(run.ok());
      volatile_runs.push_back(*run);
    }
    bool persisted = false;
    blockstore->PersistMetadata([&](Status) { persisted = true; });
    if (random() % 2 == 0) blockstore->Poll(false);
    device.Crash();
    while (!persisted) blockstore->Poll(true);
    blockstore.reset();
    device.Revive();
    auto reopened = Blockstore::Open(device);
    ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
    for (const BlockRun& run : durable) {
      for (uint64_t block = run.first_block; block < run.end_block(); ++block) {
        ASSERT_TRUE((*reopened)->IsAllocated(block));
      }
    }
    // Each unflushed allocation is either wholly there or wholly gone (one record, one page).
    for (const BlockRun& run : volatile_runs) {
      const bool first = (*reopened)->IsAllocated(run.first_block);
      for (uint64_t block = run.first_block; block < run.end_block(); ++block) {
        ASSERT_EQ((*reopened)->IsAllocated(block), first);
      }
    }
    // Accounting is exact after replay.
    const BlockstoreStats stats = (*reopened)->stats();
    uint64_t used = 0;
    for (uint64_t block = stats.total_blocks - stats.data_blocks; block < stats.total_blocks;
         ++block) {
      used += (*reopened)->IsAllocated(block) ? 1 : 0;
    }
    ASSERT_EQ(stats.free_blocks + used, stats.data_blocks);
  }
}

}  // namespace
}  // namespace weft::blockstore
