// Helpers shared by the unified cache's tests.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "cache/unified_cache.h"

namespace weft::cache::testing {

// Options whose memory pools hold exactly `capacity_blocks` blocks.
inline UnifiedCacheOptions MemoryOptions(uint64_t capacity_blocks) {
  UnifiedCacheOptions options;
  options.memory_bytes = capacity_blocks * (kCacheBlockBytes + kEntryOverheadBytes);
  return options;
}

// 4096 bytes that differ for every seed (each 8-byte word is a hash of the seed and its index).
inline std::vector<std::byte> BlockBytes(uint64_t seed) {
  std::vector<std::byte> bytes(kCacheBlockBytes);
  for (uint64_t word = 0; word < kCacheBlockBytes / 8; ++word) {
    uint64_t value = (seed + 1) * 0x9e3779b97f4a7c15ull + word * 0xbf58476d1ce4e5b9ull;
    value ^= value >> 29;
    std::memcpy(bytes.data() + word * 8, &value, 8);
  }
  return bytes;
}

// Blocks seeds[0], seeds[1], ... back to back.
inline std::vector<std::byte> BlocksBytes(const std::vector<uint64_t>& seeds) {
  std::vector<std::byte> bytes;
  for (uint64_t seed : seeds) {
    const std::vector<std::byte> block = BlockBytes(seed);
    bytes.insert(bytes.end(), block.begin(), block.end());
  }
  return bytes;
}

// A lookup that must complete inline (no SSD read needed). Returns all_hit.
inline bool LookupInline(UnifiedCache& cache, uint64_t vdisk_id, uint64_t first_block,
                         uint32_t count, std::vector<std::byte>& out) {
  out.assign(uint64_t{count} * kCacheBlockBytes, std::byte{0});
  bool completed = false;
  bool all_hit = false;
  cache.Lookup(vdisk_id, first_block, count, out, [&](bool hit) {
    completed = true;
    all_hit = hit;
  });
  EXPECT_TRUE(completed) << "a memory-only lookup must complete inline";
  return completed && all_hit;
}

// Fills one block with BlockBytes(seed) under a fresh ticket.
inline void FillBlock(UnifiedCache& cache, uint64_t vdisk_id, uint64_t block, uint64_t seed) {
  const uint64_t ticket = cache.FillTicket(vdisk_id, block, 1);
  cache.Fill(vdisk_id, block, BlockBytes(seed), ticket);
}

}  // namespace weft::cache::testing
