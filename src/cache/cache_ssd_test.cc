// Tests of the unified cache's SSD tier over a MemoryDevice-backed blockstore: opening the file,
// demotion and promotion, SSD LRU eviction, corrupted slots, invalidation during SSD I/O, and a
// seeded random interleaving of fills, lookups, writes and polls checked against a disk model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <list>
#include <map>
#include <random>

#include "blockstore/blockstore.h"
#include "blockstore/blockstore_test_util.h"
#include "blockstore/file_layer.h"
#include "cache/cache_test_util.h"
#include "cache/unified_cache.h"
#include "env/memory_device.h"

namespace weft::cache {
namespace {

using blockstore::testing::FlipRawBit;
using blockstore::testing::FormatAndOpen;
using blockstore::testing::PollUntil;
using testing::BlockBytes;
using testing::FillBlock;
using testing::LookupInline;

constexpr uint64_t kDeviceBytes = 32ull << 20;

// Options with exactly `memory_blocks` in the memory pools and `ssd_slots` SSD slots.
UnifiedCacheOptions SsdOptions(uint64_t memory_blocks, uint64_t ssd_slots,
                               blockstore::FileLayer& files) {
  UnifiedCacheOptions options = testing::MemoryOptions(memory_blocks);
  options.memory_bytes += ssd_slots * kSsdSlotIndexBytes;
  options.ssd_bytes = ssd_slots * kCacheBlockBytes;
  options.ssd_files = &files;
  return options;
}

class CacheSsdTest : public ::testing::Test {
 protected:
  env::MemoryDevice device_{"memory:cache", kDeviceBytes};
  std::unique_ptr<blockstore::Blockstore> blockstore_ = FormatAndOpen(device_);

  std::unique_ptr<UnifiedCache> OpenCache(uint64_t memory_blocks, uint64_t ssd_slots) {
    auto cache =
        std::make_unique<UnifiedCache>(SsdOptions(memory_blocks, ssd_slots, blockstore_->files()));
    bool opened = false;
    cache->Open([&](const Status& status) {
      EXPECT_TRUE(status.ok()) << status.ToString();
      opened = true;
    });
    PollUntil(*blockstore_, opened);
    return cache;
  }

  // Polls until the cache has no SSD I/O in flight.
  void Drain(const UnifiedCache& cache) {
    for (int polls = 0; polls < 10000; ++polls) {
      const UnifiedCacheStats stats = cache.stats();
      if (stats.ssd_reads_in_flight == 0 && stats.ssd_writes_in_flight == 0) return;
      blockstore_->Poll(true);
    }
    FAIL() << "SSD I/O never completed";
  }

  // A lookup that needs the SSD: returns all_hit once it completes.
  bool LookupAsync(UnifiedCache& cache, uint64_t vdisk_id, uint64_t block,
                   std::vector<std::byte>& out) {
    out.assign(kCacheBlockBytes, std::byte{0});
    bool completed = false;
    bool all_hit = false;
    cache.Lookup(vdisk_id, block, 1, out, [&](bool hit) {
      completed = true;
      all_hit = hit;
    });
    EXPECT_FALSE(completed) << "an SSD lookup completes inside Poll";
    PollUntil(*blockstore_, completed);
    return all_hit;
  }

  // Fills the block and hits it once: it lands in multi-touch.
  static void FillAndPromote(UnifiedCache& cache, uint64_t block, uint64_t seed) {
    FillBlock(cache, 1, block, seed);
    std::vector<std::byte> out;
    ASSERT_TRUE(LookupInline(cache, 1, block, 1, out));
  }

  // The device offset of the 4 KiB block holding `bytes` (the SSD tier's slot), or -1.
  int64_t FindOnDevice(const std::vector<std::byte>& bytes) {
    std::vector<std::byte> block(kCacheBlockBytes);
    for (uint64_t offset = 0; offset < kDeviceBytes; offset += kCacheBlockBytes) {
      device_.ReadRaw(offset, block);
      if (block == bytes) return static_cast<int64_t>(offset);
    }
    return -1;
  }
};

TEST_F(CacheSsdTest, OpenCreatesSizesAndReusesTheFile) {
  auto cache = OpenCache(4, 16);
  auto id = blockstore_->files().Lookup("unified-cache");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(blockstore_->files().Stat(*id)->size_bytes, 16 * kCacheBlockBytes);
  UnifiedCacheStats stats = cache->stats();
  EXPECT_EQ(stats.ssd_bytes_max, 16 * kCacheBlockBytes);
  EXPECT_EQ(stats.ssd_index_bytes, 16 * kSsdSlotIndexBytes);
  EXPECT_EQ(stats.memory_capacity_blocks, 4u);
  EXPECT_EQ(stats.memory_bytes_used, stats.ssd_index_bytes);
  cache.reset();

  cache = OpenCache(4, 8);  // Reused and shrunk, then grown.
  EXPECT_EQ(blockstore_->files().Stat(*id)->size_bytes, 8 * kCacheBlockBytes);
  cache.reset();
  cache = OpenCache(4, 32);
  EXPECT_EQ(blockstore_->files().Stat(*id)->size_bytes, 32 * kCacheBlockBytes);
  EXPECT_EQ(blockstore_->files().Lookup("unified-cache").value(), *id);
}

TEST_F(CacheSsdTest, SsdIndexTakesAtMostHalfTheMemory) {
  UnifiedCacheOptions options;
  options.memory_bytes = 1 << 20;
  options.ssd_bytes = 1ull << 30;  // 262144 slots would need 35 MiB of index.
  options.ssd_files = &blockstore_->files();
  UnifiedCache cache(options);
  const UnifiedCacheStats stats = cache.stats();
  EXPECT_EQ(stats.ssd_index_bytes, (512 << 10) / kSsdSlotIndexBytes * kSsdSlotIndexBytes);
  EXPECT_EQ(stats.memory_capacity_blocks,
            ((1 << 20) - stats.ssd_index_bytes) / (kCacheBlockBytes + kEntryOverheadBytes));
}

TEST_F(CacheSsdTest, MultiTouchEvictionGoesToSsdAndAnSsdHitPromotesBack) {
  auto cache = OpenCache(4, 16);
  for (uint64_t block = 0; block < 4; ++block) FillAndPromote(*cache, block, block);
  FillBlock(*cache, 1, 10, 10);  // Multi-touch's LRU (block 0) goes down to the SSD.
  EXPECT_EQ(cache->Contents(CacheTier::kSsd), (std::vector<CachedBlock>{{1, 0}}));
  EXPECT_EQ(cache->stats().evictions_multi_to_ssd, 1u);
  EXPECT_EQ(cache->stats().ssd_writes_in_flight, 1u);
  std::vector<std::byte> out;
  EXPECT_FALSE(LookupInline(*cache, 1, 0, 1, out));  // Not readable while its write runs.
  Drain(*cache);

  ASSERT_TRUE(LookupAsync(*cache, 1, 0, out));
  EXPECT_EQ(out, BlockBytes(0));
  const UnifiedCacheStats stats = cache->stats();
  EXPECT_EQ(stats.hits_ssd, 1u);
  EXPECT_EQ(stats.promotions_from_ssd, 1u);
  EXPECT_EQ(cache->Contents(CacheTier::kMultiTouch),
            (std::vector<CachedBlock>{{1, 0}, {1, 3}, {1, 2}, {1, 1}}));
  // Making room for it evicted single-touch's block 10 (single-touch held its share).
  EXPECT_EQ(stats.evictions_single, 1u);
  EXPECT_TRUE(cache->Contents(CacheTier::kSingleTouch).empty());
  EXPECT_TRUE(cache->Contents(CacheTier::kSsd).empty());
  ASSERT_TRUE(LookupInline(*cache, 1, 0, 1, out));  // Now from memory.
  EXPECT_EQ(out, BlockBytes(0));
}

TEST_F(CacheSsdTest, LookupNeedingTheSsdAndMemoryCompletesOnceWithEveryBlock) {
  auto cache = OpenCache(4, 16);
  for (uint64_t block = 0; block < 4; ++block) FillAndPromote(*cache, block, block + 40);
  FillBlock(*cache, 1, 4, 44);  // Demotes block 0.
  Drain(*cache);
  std::vector<std::byte> out(3 * kCacheBlockBytes);
  int completions = 0;
  bool completed = false;
  bool all_hit = false;
  cache->Lookup(1, 0, 3, out, [&](bool hit) {
    ++completions;
    completed = true;
    all_hit = hit;
  });
  EXPECT_EQ(cache->pending_lookups(), 1u);
  PollUntil(*blockstore_, completed);
  EXPECT_EQ(completions, 1);
  EXPECT_TRUE(all_hit);
  EXPECT_EQ(out, testing::BlocksBytes({40, 41, 42}));
  EXPECT_EQ(cache->pending_lookups(), 0u);
}

TEST_F(CacheSsdTest, SsdEvictsItsLeastRecentlyDemotedBlock) {
  auto cache = OpenCache(2, 4);
  FillAndPromote(*cache, 0, 0);
  FillAndPromote(*cache, 1, 1);
  // Each new promoted block demotes the oldest multi-touch block: 0, 1, 2, ...
  for (uint64_t block = 2; block < 8; ++block) {
    FillAndPromote(*cache, block, block);
    Drain(*cache);
  }
  EXPECT_EQ(cache->Contents(CacheTier::kSsd),
            (std::vector<CachedBlock>{{1, 5}, {1, 4}, {1, 3}, {1, 2}}));
  const UnifiedCacheStats stats = cache->stats();
  EXPECT_EQ(stats.evictions_multi_to_ssd, 6u);
  EXPECT_EQ(stats.evictions_ssd, 2u);
  std::vector<std::byte> out;
  EXPECT_FALSE(LookupInline(*cache, 1, 0, 1, out));
  ASSERT_TRUE(LookupAsync(*cache, 1, 2, out));
  EXPECT_EQ(out, BlockBytes(2));
}

TEST_F(CacheSsdTest, CorruptedSlotReadsAsAMissAndIsDropped) {
  auto cache = OpenCache(2, 4);
  FillAndPromote(*cache, 0, 1234);
  FillAndPromote(*cache, 1, 1);
  FillAndPromote(*cache, 2, 2);  // Demotes block 0.
  Drain(*cache);
  const int64_t offset = FindOnDevice(BlockBytes(1234));
  ASSERT_GE(offset, 0) << "the demoted block is not on the device";
  FlipRawBit(device_, static_cast<uint64_t>(offset) + 100, 3);

  std::vector<std::byte> out;
  EXPECT_FALSE(LookupAsync(*cache, 1, 0, out));
  const UnifiedCacheStats stats = cache->stats();
  EXPECT_EQ(stats.ssd_read_errors, 1u);
  EXPECT_EQ(stats.hits_ssd, 0u);
  EXPECT_TRUE(cache->Contents(CacheTier::kSsd).empty());
  EXPECT_FALSE(LookupInline(*cache, 1, 0, 1, out));
}

TEST_F(CacheSsdTest, InvalidateDuringSsdWriteDropsTheBlockForGood) {
  auto cache = OpenCache(2, 2);
  FillAndPromote(*cache, 0, 0);
  FillAndPromote(*cache, 1, 1);
  FillAndPromote(*cache, 2, 2);  // Demotes block 0: its write is in flight.
  ASSERT_EQ(cache->stats().ssd_writes_in_flight, 1u);
  cache->Invalidate(1, 0, 1);
  EXPECT_TRUE(cache->Contents(CacheTier::kSsd).empty());
  Drain(*cache);
  std::vector<std::byte> out;
  EXPECT_FALSE(LookupInline(*cache, 1, 0, 1, out));
  EXPECT_TRUE(cache->Contents(CacheTier::kSsd).empty());
  // Its slot came back: two more demotions need no SSD eviction.
  FillAndPromote(*cache, 3, 3);
  FillAndPromote(*cache, 4, 4);
  Drain(*cache);
  EXPECT_EQ(cache->stats().evictions_ssd, 0u);
  EXPECT_EQ(cache->Contents(CacheTier::kSsd), (std::vector<CachedBlock>{{1, 2}, {1, 1}}));
}

TEST_F(CacheSsdTest, RefillDuringSsdWriteServesTheNewBytes) {
  auto cache = OpenCache(2, 2);
  FillAndPromote(*cache, 0, 100);
  FillAndPromote(*cache, 1, 1);
  FillAndPromote(*cache, 2, 2);  // Demotes block 0 (bytes 100).
  cache->Invalidate(1, 0, 1);
  FillBlock(*cache, 1, 0, 200);
  Drain(*cache);
  std::vector<std::byte> out;
  ASSERT_TRUE(LookupInline(*cache, 1, 0, 1, out));
  EXPECT_EQ(out, BlockBytes(200));
}

TEST_F(CacheSsdTest, InvalidateDuringSsdReadMakesTheLookupMiss) {
  auto cache = OpenCache(2, 4);
  FillAndPromote(*cache, 0, 0);
  FillAndPromote(*cache, 1, 1);
  FillAndPromote(*cache, 2, 2);  // Demotes block 0.
  Drain(*cache);
  std::vector<std::byte> out(kCacheBlockBytes);
  bool completed = false;
  bool all_hit = true;
  cache->Lookup(1, 0, 1, out, [&](bool hit) {
    completed = true;
    all_hit = hit;
  });
  ASSERT_FALSE(completed);
  cache->Invalidate(1, 0, 1);
  PollUntil(*blockstore_, completed);
  EXPECT_FALSE(all_hit);
  // The read's completion did not bring the block back anywhere.
  EXPECT_FALSE(LookupInline(*cache, 1, 0, 1, out));
  EXPECT_TRUE(cache->Contents(CacheTier::kSsd).empty());
  const UnifiedCacheStats stats = cache->stats();
  EXPECT_EQ(stats.hits_ssd, 0u);
  EXPECT_EQ(stats.promotions_from_ssd, 0u);
}

TEST_F(CacheSsdTest, RefillDuringSsdReadMakesTheLookupMissAndKeepsTheNewBytes) {
  auto cache = OpenCache(2, 4);
  FillAndPromote(*cache, 0, 300);
  FillAndPromote(*cache, 1, 1);
  FillAndPromote(*cache, 2, 2);  // Demotes block 0 (bytes 300).
  Drain(*cache);
  std::vector<std::byte> out(kCacheBlockBytes);
  bool completed = false;
  bool all_hit = true;
  cache->Lookup(1, 0, 1, out, [&](bool hit) {
    completed = true;
    all_hit = hit;
  });
  cache->Invalidate(1, 0, 1);
  FillBlock(*cache, 1, 0, 400);
  PollUntil(*blockstore_, completed);
  EXPECT_FALSE(all_hit);
  ASSERT_TRUE(LookupInline(*cache, 1, 0, 1, out));
  EXPECT_EQ(out, BlockBytes(400));
}

TEST(CacheSsdOpenTest, UnusableSsdTierLeavesTheCacheMemoryOnly) {
  env::MemoryDevice device("memory:big-blocks", kDeviceBytes);
  blockstore::FormatOptions format;
  format.block_size_bytes = 8192;  // The tier needs 4 KiB blocks.
  auto blockstore = FormatAndOpen(device, format);
  ASSERT_NE(blockstore, nullptr);
  UnifiedCache cache(SsdOptions(8, 64, blockstore->files()));
  EXPECT_EQ(cache.stats().memory_capacity_blocks, 8u);
  bool opened = false;
  Status result;
  cache.Open([&](Status status) {
    result = std::move(status);
    opened = true;
  });
  PollUntil(*blockstore, opened);
  EXPECT_TRUE(result.IsInvalidArgument()) << result.ToString();
  EXPECT_TRUE(blockstore->files().Lookup("unified-cache").status().IsNotFound());
  const UnifiedCacheStats stats = cache.stats();
  EXPECT_EQ(stats.ssd_index_bytes, 0u);
  EXPECT_EQ(stats.ssd_bytes_max, 0u);
  // The index's memory went to the memory pools.
  EXPECT_EQ(stats.memory_capacity_blocks,
            (8 * (kCacheBlockBytes + kEntryOverheadBytes) + 64 * kSsdSlotIndexBytes) /
                (kCacheBlockBytes + kEntryOverheadBytes));
  EXPECT_GT(stats.memory_capacity_blocks, 8u);
  for (uint64_t block = 0; block < 12; ++block) {
    FillBlock(cache, 1, block, block);
    std::vector<std::byte> out;
    ASSERT_TRUE(LookupInline(cache, 1, block, 1, out));
  }
  EXPECT_EQ(cache.stats().evictions_multi, 12 - stats.memory_capacity_blocks);
  EXPECT_EQ(cache.stats().evictions_multi_to_ssd, 0u);
}

// The coherence property under random interleavings: the test keeps a disk (each block's
// current version; a write changes it and invalidates), reads from it with tickets and fills
// late, and checks that every lookup that hits returns the disk's bytes as of the lookup call.
class CoherenceChecker {
 public:
  static constexpr uint64_t kBlocks = 64;    // Four fill-generation groups per vDisk.
  static constexpr uint64_t kHotBlocks = 4;  // One per group: ranges from 0, 16, 32, 48.

  CoherenceChecker(UnifiedCache& cache, blockstore::Blockstore& blockstore, uint64_t seed)
      : cache_(cache), blockstore_(blockstore), random_(seed) {}

  void Run(int steps) {
    for (int step = 0; step < steps; ++step) Step();
    for (int polls = 0; polls < 10000 && !AllDone(); ++polls) blockstore_.Poll(true);
    ASSERT_TRUE(AllDone()) << "lookups never completed";
    while (!reads_.empty()) DeliverFill(0);
    for (int polls = 0; polls < 10000 && !AllDone(); ++polls) blockstore_.Poll(true);
  }

  uint64_t lookups_hit() const { return lookups_hit_; }

 private:
  struct PendingRead {  // A miss being read from the disk: data as of the ticket.
    uint64_t vdisk_id, first_block, ticket;
    std::vector<std::byte> data;
  };
  struct PendingLookup {
    std::vector<std::byte> out, expected;
    bool completed = false;
  };

  uint64_t Uniform(uint64_t bound) { return random_() % bound; }
  std::vector<std::byte> DiskBytes(uint64_t vdisk_id, uint64_t block) {
    return BlockBytes(vdisk_id * 1'000'000 + block * 1000 + versions_[{vdisk_id, block}]);
  }
  std::vector<std::byte> DiskRange(uint64_t vdisk_id, uint64_t first_block, uint64_t count) {
    std::vector<std::byte> bytes;
    for (uint64_t block = first_block; block < first_block + count; ++block) {
      const std::vector<std::byte> one = DiskBytes(vdisk_id, block);
      bytes.insert(bytes.end(), one.begin(), one.end());
    }
    return bytes;
  }
  bool AllDone() const {
    for (const PendingLookup& lookup : lookups_) {
      if (!lookup.completed) return false;
    }
    const UnifiedCacheStats stats = cache_.stats();
    return stats.ssd_reads_in_flight == 0 && stats.ssd_writes_in_flight == 0;
  }

  void DeliverFill(size_t index) {
    PendingRead read = std::move(reads_[index]);
    reads_.erase(reads_.begin() + static_cast<ptrdiff_t>(index));
    cache_.Fill(read.vdisk_id, read.first_block, read.data, read.ticket);
  }

  void Step() {
    const uint64_t vdisk_id = 1 + Uniform(2);
    // Skewed towards a hot set, so that blocks get hit twice and reach multi-touch and the SSD;
    // spread over the fill-generation groups so that writes do not drop every fill.
    const uint64_t first_block =
        Uniform(10) < 7 ? Uniform(kHotBlocks) * (kBlocks / kHotBlocks) : Uniform(kBlocks);
    const uint64_t count = 1 + Uniform(std::min<uint64_t>(3, kBlocks - first_block));
    const uint64_t choice = Uniform(100);
    if (choice < 10) {
      StartRead(vdisk_id, first_block, count);
    } else if (choice < 35 && !reads_.empty()) {
      DeliverFill(Uniform(reads_.size()));
    } else if (choice < 65) {
      Lookup(vdisk_id, first_block, count);
    } else if (choice < 71) {  // A write: the disk changes and the cache is told.
      for (uint64_t block = first_block; block < first_block + count; ++block) {
        ++versions_[{vdisk_id, block}];
      }
      cache_.Invalidate(vdisk_id, first_block, count);
    } else if (choice < 72 && Uniform(4) == 0) {
      for (uint64_t block = 0; block < kBlocks; ++block) ++versions_[{vdisk_id, block}];
      cache_.InvalidateVdisk(vdisk_id);
    } else {
      blockstore_.Poll(false);
    }
  }

  // A read of the disk after a miss: ticket first, then the data as of now, filled now (two
  // times in three; possibly from inside a lookup's completion) or by a later step.
  void StartRead(uint64_t vdisk_id, uint64_t first_block, uint64_t count) {
    const uint64_t ticket = cache_.FillTicket(vdisk_id, first_block, count);
    reads_.push_back({vdisk_id, first_block, ticket, DiskRange(vdisk_id, first_block, count)});
    if (Uniform(3) > 0) DeliverFill(reads_.size() - 1);
  }

  void Lookup(uint64_t vdisk_id, uint64_t first_block, uint64_t count) {
    PendingLookup& lookup = lookups_.emplace_back();
    lookup.out.resize(count * kCacheBlockBytes);
    lookup.expected = DiskRange(vdisk_id, first_block, count);
    // Blocks read from the SSD must also be current when the lookup completes (the cache fails
    // a lookup whose SSD block was invalidated while being read).
    std::vector<uint64_t> on_ssd;
    for (const CachedBlock& cached : cache_.Contents(CacheTier::kSsd)) {
      if (cached.vdisk_id == vdisk_id && cached.block - first_block < count) {
        on_ssd.push_back(cached.block);
      }
    }
    cache_.Lookup(vdisk_id, first_block, static_cast<uint32_t>(count), lookup.out,
                  [this, &lookup, vdisk_id, first_block, count, on_ssd](bool all_hit) {
                    ASSERT_FALSE(lookup.completed) << "a lookup completed twice";
                    lookup.completed = true;
                    if (!all_hit) return StartRead(vdisk_id, first_block, count);
                    ++lookups_hit_;
                    EXPECT_TRUE(lookup.out == lookup.expected)
                        << "stale data from vdisk " << vdisk_id << " block " << first_block;
                    for (uint64_t block : on_ssd) {
                      const uint64_t offset = (block - first_block) * kCacheBlockBytes;
                      EXPECT_TRUE(std::equal(lookup.out.begin() + offset,
                                             lookup.out.begin() + offset + kCacheBlockBytes,
                                             DiskBytes(vdisk_id, block).begin()))
                          << "SSD block " << block << " of vdisk " << vdisk_id
                          << " changed while it was read";
                    }
                  });
  }

  UnifiedCache& cache_;
  blockstore::Blockstore& blockstore_;
  std::mt19937_64 random_;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> versions_;
  std::vector<PendingRead> reads_;
  std::list<PendingLookup> lookups_;  // Stable addresses: the cache writes into `out`.
  uint64_t lookups_hit_ = 0;
};

TEST(CacheCoherenceTest, RandomInterleavingsNeverReturnStaleData) {
  // WEFT_SEED=N replays one seed.
  const char* seed_variable = std::getenv("WEFT_SEED");
  const uint64_t first_seed =
      seed_variable != nullptr ? std::strtoull(seed_variable, nullptr, 10) : 1;
  const uint64_t seed_count = seed_variable != nullptr ? 1 : 40;
  UnifiedCacheStats totals;
  for (uint64_t seed = first_seed; seed < first_seed + seed_count; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed << " (replay: WEFT_SEED=" << seed << ")");
    env::MemoryDevice device("memory:coherence", 8ull << 20);
    auto blockstore = FormatAndOpen(device);
    ASSERT_NE(blockstore, nullptr);
    UnifiedCache cache(SsdOptions(8, 12, blockstore->files()));
    bool opened = false;
    cache.Open([&](const Status& status) {
      ASSERT_TRUE(status.ok()) << status.ToString();
      opened = true;
    });
    PollUntil(*blockstore, opened);
    CoherenceChecker checker(cache, *blockstore, seed);
    checker.Run(3000);
    if (::testing::Test::HasFailure()) return;
    const UnifiedCacheStats stats = cache.stats();
    totals.hits_ssd += stats.hits_ssd;
    totals.evictions_ssd += stats.evictions_ssd;
    totals.fills_dropped_stale += stats.fills_dropped_stale;
    totals.misses += stats.misses;
    EXPECT_GT(checker.lookups_hit(), 0u);
  }
  // The runs reached the paths they are meant to check.
  if (seed_count > 1) {
    EXPECT_GT(totals.hits_ssd, 0u);
    EXPECT_GT(totals.evictions_ssd, 0u);
    EXPECT_GT(totals.fills_dropped_stale, 0u);
  }
}

}  // namespace
}  // namespace weft::cache
