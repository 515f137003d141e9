// Model-based property test of the memory pools (rapidcheck): random fills, lookups and
// invalidations against a reference model of two LRU lists with the promotion rule, the
// single-touch share and the capacity. After every step the pools hold the same blocks in the
// same order, the counters agree, and a lookup returns the bytes of the last fill.
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <list>
#include <map>

#include "cache/cache_test_util.h"
#include "cache/unified_cache.h"

namespace weft::cache {
namespace {

using testing::BlocksBytes;
using testing::MemoryOptions;

using Key = std::pair<uint64_t, uint64_t>;  // (vdisk, block)

struct Model {
  uint64_t capacity_blocks = 0;
  uint64_t single_share_blocks = 0;
  std::list<Key> single;  // Most recently used first.
  std::list<Key> multi;
  std::map<Key, uint64_t> seeds;  // The data seed of every cached block.
  UnifiedCacheStats counters;

  static bool Erase(std::list<Key>& list, const Key& key) {
    auto found = std::find(list.begin(), list.end(), key);
    if (found == list.end()) return false;
    list.erase(found);
    return true;
  }

  void EvictOne() {
    if (!single.empty() && (single.size() >= single_share_blocks || multi.empty())) {
      seeds.erase(single.back());
      single.pop_back();
      ++counters.evictions_single;
    } else {
      seeds.erase(multi.back());
      multi.pop_back();
      ++counters.evictions_multi;
    }
  }

  void Fill(const Key& key, uint64_t seed) {
    if (capacity_blocks == 0) return;
    ++counters.fills;
    if (seeds.contains(key)) {
      seeds[key] = seed;
      return;
    }
    while (single.size() + multi.size() >= capacity_blocks) EvictOne();
    single.push_front(key);
    seeds[key] = seed;
  }

  // Returns whether the block is cached, touching it like the cache does.
  bool Touch(const Key& key) {
    if (Erase(single, key)) {
      multi.push_front(key);
      ++counters.promotions;
      ++counters.hits_memory_single;
      return true;
    }
    if (Erase(multi, key)) {
      multi.push_front(key);
      ++counters.hits_memory_multi;
      return true;
    }
    ++counters.misses;
    return false;
  }

  void Invalidate(uint64_t vdisk, uint64_t first, uint64_t count) {
    for (uint64_t block = first; block < first + count; ++block) {
      const Key key{vdisk, block};
      if (!seeds.contains(key)) continue;
      seeds.erase(key);
      if (!Erase(single, key)) Erase(multi, key);
      ++counters.invalidations;
    }
  }
};

std::vector<CachedBlock> ToBlocks(const std::list<Key>& list) {
  std::vector<CachedBlock> blocks;
  for (const auto& [vdisk, block] : list) blocks.push_back({vdisk, block});
  return blocks;
}

void CheckAgainstModel(const UnifiedCache& cache, const Model& model) {
  RC_ASSERT(cache.Contents(CacheTier::kSingleTouch) == ToBlocks(model.single));
  RC_ASSERT(cache.Contents(CacheTier::kMultiTouch) == ToBlocks(model.multi));
  const UnifiedCacheStats stats = cache.stats();
  const UnifiedCacheStats& expected = model.counters;
  RC_ASSERT(stats.hits_memory_single == expected.hits_memory_single);
  RC_ASSERT(stats.hits_memory_multi == expected.hits_memory_multi);
  RC_ASSERT(stats.misses == expected.misses);
  RC_ASSERT(stats.fills == expected.fills);
  RC_ASSERT(stats.promotions == expected.promotions);
  RC_ASSERT(stats.evictions_single == expected.evictions_single);
  RC_ASSERT(stats.evictions_multi == expected.evictions_multi);
  RC_ASSERT(stats.invalidations == expected.invalidations);
  RC_ASSERT(stats.fills_dropped_stale == 0u);
  RC_ASSERT(stats.single_blocks == model.single.size());
  RC_ASSERT(stats.multi_blocks == model.multi.size());
  RC_ASSERT(stats.memory_data_bytes == (model.single.size() + model.multi.size()) * 4096);
}

enum class Step { kFill, kLookup, kInvalidate, kInvalidateVdisk };

constexpr uint64_t kBlocksPerVdisk = 24;

TEST(UnifiedCacheModelTest, MemoryPoolsMatchTwoLruListsModel) {
  const bool passed = rc::check([] {
    Model model;
    model.capacity_blocks = *rc::gen::inRange<uint64_t>(0, 13);
    model.single_share_blocks = std::max<uint64_t>(1, model.capacity_blocks / 4);
    UnifiedCache cache(MemoryOptions(model.capacity_blocks));
    RC_ASSERT(cache.stats().memory_capacity_blocks == model.capacity_blocks);
    const auto steps = *rc::gen::container<std::vector<Step>>(
        rc::gen::weightedElement<Step>({{5, Step::kFill},
                                        {6, Step::kLookup},
                                        {2, Step::kInvalidate},
                                        {1, Step::kInvalidateVdisk}}));
    uint64_t next_seed = 0;
    for (Step step : steps) {
      const uint64_t vdisk = *rc::gen::inRange<uint64_t>(1, 3);
      const uint64_t first = *rc::gen::inRange<uint64_t>(0, kBlocksPerVdisk);
      const uint64_t count = std::min(*rc::gen::inRange<uint64_t>(1, 5), kBlocksPerVdisk - first);
      switch (step) {
        case Step::kFill: {
          std::vector<uint64_t> seeds;
          for (uint64_t index = 0; index < count; ++index) {
            seeds.push_back(next_seed);
            model.Fill({vdisk, first + index}, next_seed++);
          }
          cache.Fill(vdisk, first, BlocksBytes(seeds), cache.FillTicket(vdisk, first, count));
          break;
        }
        case Step::kLookup: {
          // What the lookup must return: the seeds of the last fills, read before the touches.
          std::vector<uint64_t> seeds;
          bool all_cached = true;
          for (uint64_t index = 0; index < count; ++index) {
            const Key key{vdisk, first + index};
            all_cached = all_cached && model.seeds.contains(key);
            seeds.push_back(model.seeds.contains(key) ? model.seeds[key] : 0);
          }
          for (uint64_t index = 0; index < count; ++index) model.Touch({vdisk, first + index});
          std::vector<std::byte> out;
          const bool hit =
              testing::LookupInline(cache, vdisk, first, static_cast<uint32_t>(count), out);
          RC_ASSERT(hit == all_cached);
          if (hit) RC_ASSERT(out == BlocksBytes(seeds));
          break;
        }
        case Step::kInvalidate:
          model.Invalidate(vdisk, first, count);
          cache.Invalidate(vdisk, first, count);
          break;
        case Step::kInvalidateVdisk:
          model.Invalidate(vdisk, 0, kBlocksPerVdisk);
          cache.InvalidateVdisk(vdisk);
          break;
      }
      CheckAgainstModel(cache, model);
    }
  });
  EXPECT_TRUE(passed);
}

}  // namespace
}  // namespace weft::cache
