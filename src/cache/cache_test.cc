// Unit tests of the unified cache's memory pools: sizing, promotion, the single-touch share,
// fill tickets and invalidation.
#include <gtest/gtest.h>

#include "cache/cache_test_util.h"
#include "cache/unified_cache.h"

namespace weft::cache {
namespace {

using testing::BlockBytes;
using testing::BlocksBytes;
using testing::FillBlock;
using testing::LookupInline;
using testing::MemoryOptions;

constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kMiB = 1ull << 20;

TEST(DefaultCacheMemoryBytesTest, SeedsFormulaAboveTheReserve) {
  EXPECT_EQ(DefaultCacheMemoryBytes(32 * kGiB), 9 * kGiB);  // The seeds' own example.
  EXPECT_EQ(DefaultCacheMemoryBytes(512 * kGiB), 225 * kGiB);
  // Exact 0.45, rounded down, for sizes that are not multiples of 20.
  const uint64_t spare_bytes = 100 * kGiB + 7;
  const auto expected = static_cast<uint64_t>((unsigned __int128){spare_bytes} * 9 / 20);
  EXPECT_EQ(DefaultCacheMemoryBytes(12 * kGiB + spare_bytes), expected);
}

TEST(DefaultCacheMemoryBytesTest, FlooredAt256MiB) {
  EXPECT_EQ(DefaultCacheMemoryBytes(0), 256 * kMiB);
  EXPECT_EQ(DefaultCacheMemoryBytes(4 * kGiB), 256 * kMiB);
  EXPECT_EQ(DefaultCacheMemoryBytes(12 * kGiB), 256 * kMiB);
  EXPECT_EQ(DefaultCacheMemoryBytes(12 * kGiB + 500 * kMiB), 256 * kMiB);  // 225 MiB by formula.
  EXPECT_EQ(DefaultCacheMemoryBytes(12 * kGiB + 600 * kMiB), 270 * kMiB);
}

TEST(UnifiedCacheTest, FillThenHitsPromoteToMultiTouch) {
  UnifiedCache cache(MemoryOptions(8));
  std::vector<std::byte> out;
  EXPECT_FALSE(LookupInline(cache, 1, 10, 1, out));
  FillBlock(cache, 1, 10, 100);
  EXPECT_EQ(cache.Contents(CacheTier::kSingleTouch), (std::vector<CachedBlock>{{1, 10}}));

  ASSERT_TRUE(LookupInline(cache, 1, 10, 1, out));
  EXPECT_EQ(out, BlockBytes(100));
  EXPECT_TRUE(cache.Contents(CacheTier::kSingleTouch).empty());
  EXPECT_EQ(cache.Contents(CacheTier::kMultiTouch), (std::vector<CachedBlock>{{1, 10}}));
  ASSERT_TRUE(LookupInline(cache, 1, 10, 1, out));
  EXPECT_EQ(out, BlockBytes(100));

  const UnifiedCacheStats stats = cache.stats();
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.hits_memory_single, 1u);
  EXPECT_EQ(stats.hits_memory_multi, 1u);
  EXPECT_EQ(stats.promotions, 1u);
  EXPECT_EQ(stats.fills, 1u);
  EXPECT_EQ(stats.multi_blocks, 1u);
  EXPECT_EQ(stats.memory_capacity_blocks, 8u);
  EXPECT_EQ(stats.memory_data_bytes, kCacheBlockBytes);
  EXPECT_EQ(stats.memory_bytes_used, kCacheBlockBytes + kEntryOverheadBytes);
  EXPECT_EQ(stats.memory_bytes_max, 8 * (kCacheBlockBytes + kEntryOverheadBytes));
}

TEST(UnifiedCacheTest, MultiBlockLookupFailsOnAnyMissButCountsEveryBlock) {
  UnifiedCache cache(MemoryOptions(8));
  const uint64_t ticket = cache.FillTicket(3, 0, 3);
  cache.Fill(3, 0, BlocksBytes({7, 8, 9}), ticket);
  std::vector<std::byte> out;
  ASSERT_TRUE(LookupInline(cache, 3, 0, 3, out));
  EXPECT_EQ(out, BlocksBytes({7, 8, 9}));
  EXPECT_FALSE(LookupInline(cache, 3, 1, 3, out));  // Block 3 was never filled.
  const UnifiedCacheStats stats = cache.stats();
  EXPECT_EQ(stats.hits_memory_single, 3u);
  EXPECT_EQ(stats.hits_memory_multi, 2u);
  EXPECT_EQ(stats.misses, 1u);
}

TEST(UnifiedCacheTest, RefillReplacesTheBytesInPlace) {
  UnifiedCache cache(MemoryOptions(8));
  FillBlock(cache, 1, 0, 1);
  FillBlock(cache, 1, 1, 2);
  FillBlock(cache, 1, 0, 3);
  std::vector<std::byte> out;
  ASSERT_TRUE(LookupInline(cache, 1, 0, 1, out));
  EXPECT_EQ(out, BlockBytes(3));
  EXPECT_EQ(cache.stats().fills, 3u);
}

TEST(UnifiedCacheTest, SingleTouchFillsIdleMemoryButAScanCannotFlushMultiTouch) {
  UnifiedCache cache(MemoryOptions(8));  // Single-touch share: 2 blocks.
  std::vector<std::byte> out;
  for (uint64_t block = 0; block < 8; ++block) FillBlock(cache, 1, block, block);
  EXPECT_EQ(cache.Contents(CacheTier::kSingleTouch).size(), 8u);  // Multi-touch is empty.
  for (uint64_t block = 0; block < 6; ++block) ASSERT_TRUE(LookupInline(cache, 1, block, 1, out));
  // A scan of 100 blocks now only cycles through single-touch's two blocks.
  for (uint64_t block = 100; block < 200; ++block) FillBlock(cache, 1, block, block);
  const std::vector<CachedBlock> multi = cache.Contents(CacheTier::kMultiTouch);
  EXPECT_EQ(multi, (std::vector<CachedBlock>{{1, 5}, {1, 4}, {1, 3}, {1, 2}, {1, 1}, {1, 0}}));
  EXPECT_EQ(cache.Contents(CacheTier::kSingleTouch),
            (std::vector<CachedBlock>{{1, 199}, {1, 198}}));
  EXPECT_EQ(cache.stats().evictions_single, 100u);
  EXPECT_EQ(cache.stats().evictions_multi, 0u);
}

TEST(UnifiedCacheTest, MultiTouchGivesWayWhileSingleTouchIsBelowItsShare) {
  UnifiedCache cache(MemoryOptions(8));  // Single-touch share: 2 blocks.
  std::vector<std::byte> out;
  for (uint64_t block = 0; block < 8; ++block) FillBlock(cache, 1, block, block);
  for (uint64_t block = 0; block < 7; ++block) ASSERT_TRUE(LookupInline(cache, 1, block, 1, out));
  FillBlock(cache, 1, 50, 50);  // Single-touch holds 1 < 2: multi-touch's LRU (block 0) goes.
  EXPECT_EQ(cache.stats().evictions_multi, 1u);
  EXPECT_FALSE(LookupInline(cache, 1, 0, 1, out));
  FillBlock(cache, 1, 51, 51);  // Single-touch holds its share: its own LRU (block 7) goes.
  EXPECT_EQ(cache.stats().evictions_multi, 1u);
  EXPECT_EQ(cache.stats().evictions_single, 1u);
  EXPECT_EQ(cache.Contents(CacheTier::kSingleTouch), (std::vector<CachedBlock>{{1, 51}, {1, 50}}));
  EXPECT_EQ(cache.Contents(CacheTier::kMultiTouch).size(), 6u);
}

TEST(UnifiedCacheTest, FillWithATicketOlderThanAnInvalidationIsDropped) {
  UnifiedCache cache(MemoryOptions(8));
  // The fill race: a read misses (ticket), a write invalidates, the read's old data arrives.
  const uint64_t stale_ticket = cache.FillTicket(1, 0, 2);
  cache.Invalidate(1, 1, 1);
  cache.Fill(1, 0, BlocksBytes({10, 11}), stale_ticket);
  std::vector<std::byte> out;
  EXPECT_FALSE(LookupInline(cache, 1, 1, 1, out));
  // Block 0 shares block 1's generation bucket (16-block groups): a false positive, dropped too.
  EXPECT_FALSE(LookupInline(cache, 1, 0, 1, out));
  EXPECT_EQ(cache.stats().fills_dropped_stale, 2u);
  // A ticket taken after the invalidation is good.
  const uint64_t fresh_ticket = cache.FillTicket(1, 0, 2);
  cache.Fill(1, 0, BlocksBytes({20, 21}), fresh_ticket);
  ASSERT_TRUE(LookupInline(cache, 1, 0, 2, out));
  EXPECT_EQ(out, BlocksBytes({20, 21}));
}

TEST(UnifiedCacheTest, StaleTicketOnlyDropsInvalidatedBuckets) {
  UnifiedCache cache(MemoryOptions(8));
  const uint64_t ticket = cache.FillTicket(1, 0, 1);
  cache.Invalidate(1, 0, 1);
  cache.Fill(1, 1000, BlockBytes(5), ticket);  // Another group of the same vDisk.
  cache.Fill(2, 0, BlockBytes(6), ticket);     // The same block of another vDisk.
  std::vector<std::byte> out;
  EXPECT_TRUE(LookupInline(cache, 1, 1000, 1, out));
  EXPECT_TRUE(LookupInline(cache, 2, 0, 1, out));
  EXPECT_EQ(cache.stats().fills_dropped_stale, 0u);
}

TEST(UnifiedCacheTest, InvalidateDropsExactlyTheRange) {
  UnifiedCache cache(MemoryOptions(16));
  for (uint64_t block = 0; block < 8; ++block) FillBlock(cache, 1, block, block);
  FillBlock(cache, 2, 3, 33);
  cache.Invalidate(1, 2, 3);
  std::vector<std::byte> out;
  for (uint64_t block = 0; block < 8; ++block) {
    EXPECT_EQ(LookupInline(cache, 1, block, 1, out), block < 2 || block >= 5) << block;
  }
  EXPECT_TRUE(LookupInline(cache, 2, 3, 1, out));
  EXPECT_EQ(cache.stats().invalidations, 3u);
}

TEST(UnifiedCacheTest, HugeInvalidateWalksTheCachedEntriesOnly) {
  UnifiedCache cache(MemoryOptions(16));
  const uint64_t far_block = 1ull << 40;
  FillBlock(cache, 1, 5, 1);
  FillBlock(cache, 1, far_block, 2);
  FillBlock(cache, 1, far_block + (1ull << 30), 3);
  FillBlock(cache, 2, 5, 4);
  const uint64_t ticket = cache.FillTicket(2, 9, 1);
  // 2^30 blocks (a 4 TiB trim): this would not finish if it looped over the range.
  cache.Invalidate(1, far_block, 1ull << 30);
  std::vector<std::byte> out;
  EXPECT_TRUE(LookupInline(cache, 1, 5, 1, out));
  EXPECT_FALSE(LookupInline(cache, 1, far_block, 1, out));
  EXPECT_TRUE(LookupInline(cache, 1, far_block + (1ull << 30), 1, out));
  EXPECT_TRUE(LookupInline(cache, 2, 5, 1, out));
  // Too wide to stamp bucket by bucket: every older ticket fails, on any vDisk.
  cache.Fill(2, 9, BlockBytes(9), ticket);
  EXPECT_EQ(cache.stats().fills_dropped_stale, 1u);
}

TEST(UnifiedCacheTest, InvalidateVdiskDropsThatVdiskAndItsPendingFills) {
  UnifiedCache cache(MemoryOptions(16));
  for (uint64_t block = 0; block < 4; ++block) {
    FillBlock(cache, 1, block, block);
    FillBlock(cache, 2, block, block + 10);
  }
  const uint64_t ticket = cache.FillTicket(1, 100, 1);
  cache.InvalidateVdisk(1);
  cache.Fill(1, 100, BlockBytes(1), ticket);
  std::vector<std::byte> out;
  EXPECT_FALSE(LookupInline(cache, 1, 100, 1, out));
  for (uint64_t block = 0; block < 4; ++block) {
    EXPECT_FALSE(LookupInline(cache, 1, block, 1, out));
    ASSERT_TRUE(LookupInline(cache, 2, block, 1, out));
    EXPECT_EQ(out, BlockBytes(block + 10));
  }
  EXPECT_EQ(cache.stats().invalidations, 4u);
}

TEST(UnifiedCacheTest, TooLittleMemoryMeansNoCache) {
  UnifiedCacheOptions options;
  options.memory_bytes = kCacheBlockBytes;  // Less than one block with its entry.
  UnifiedCache cache(options);
  FillBlock(cache, 1, 0, 1);
  std::vector<std::byte> out;
  EXPECT_FALSE(LookupInline(cache, 1, 0, 1, out));
  EXPECT_EQ(cache.stats().memory_capacity_blocks, 0u);
  bool opened = false;
  cache.Open([&](const Status& status) {
    EXPECT_TRUE(status.ok()) << status.ToString();
    opened = true;
  });
  EXPECT_TRUE(opened);  // No SSD tier configured: inline.
}

}  // namespace
}  // namespace weft::cache
