// The unified cache's data path: Lookup, FillTicket, Fill.
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "base/assert.h"
#include "cache/unified_cache_impl.h"

namespace weft::cache {

void UnifiedCache::Lookup(uint64_t vdisk_id, uint64_t first_block, uint32_t count,
                          std::span<std::byte> out, std::function<void(bool all_hit)> done) {
  State& state = *state_;
  WEFT_ASSERT(count > 0);
  WEFT_ASSERT(out.size() == uint64_t{count} * kCacheBlockBytes);
  uint64_t missing = 0;
  std::vector<std::pair<uint32_t, Entry*>> on_ssd;  // Allocates only when the SSD is needed.
  for (uint32_t index = 0; index < count; ++index) {
    Entry* entry = state.Find({vdisk_id, first_block + index});
    if (entry == nullptr) {
      ++missing;
      continue;
    }
    std::byte* destination = out.data() + uint64_t{index} * kCacheBlockBytes;
    switch (entry->tier) {
      case CacheTier::kSingleTouch:
        std::memcpy(destination, entry->data, kCacheBlockBytes);
        state.single.Remove(*entry);
        entry->tier = CacheTier::kMultiTouch;
        state.multi.PushFront(*entry);
        ++state.counters.promotions;
        ++state.counters.hits_memory_single;
        break;
      case CacheTier::kMultiTouch:
        std::memcpy(destination, entry->data, kCacheBlockBytes);
        state.multi.MoveToFront(*entry);
        ++state.counters.hits_memory_multi;
        break;
      case CacheTier::kSsd:
        // A slot whose write is still in flight is not readable yet: a miss.
        if (state.slots[entry->slot].written) {
          on_ssd.emplace_back(index, entry);
        } else {
          ++missing;
        }
        break;
    }
  }
  if (on_ssd.size() > UnifiedCache::kMaxSsdReadsInFlight - state.ssd_reads_in_flight) {
    missing += on_ssd.size();
    on_ssd.clear();
  }
  if (missing > 0) {
    // The caller reads the whole range from below and fills it; SSD reads would be wasted.
    state.counters.misses += missing + on_ssd.size();
    done(false);
    return;
  }
  if (on_ssd.empty()) {
    done(true);
    return;
  }
  auto lookup = std::make_shared<PendingLookup>();
  lookup->out = out;
  lookup->done = std::move(done);
  lookup->reads_left = static_cast<uint32_t>(on_ssd.size());
  ++state.pending_lookups;
  for (auto [index, entry] : on_ssd) state.StartSsdRead(*entry, index, lookup);
}

uint64_t UnifiedCache::FillTicket(uint64_t vdisk_id, uint64_t first_block, uint64_t count) const {
  // One sequence number serves any range (see IsStale); the range is checked, not stored.
  WEFT_ASSERT(count > 0);
  WEFT_ASSERT(count <= std::numeric_limits<uint64_t>::max() - first_block);
  (void)vdisk_id;
  return state_->invalidation_sequence;
}

void UnifiedCache::Fill(uint64_t vdisk_id, uint64_t first_block, std::span<const std::byte> data,
                        uint64_t ticket) {
  State& state = *state_;
  WEFT_ASSERT(!data.empty() && data.size() % kCacheBlockBytes == 0);
  WEFT_ASSERT(ticket <= state.invalidation_sequence);
  const uint64_t count = data.size() / kCacheBlockBytes;
  for (uint64_t index = 0; index < count; ++index) {
    const BlockKey key{vdisk_id, first_block + index};
    const std::byte* source = data.data() + index * kCacheBlockBytes;
    if (state.IsStale(key, ticket)) {
      ++state.counters.fills_dropped_stale;
      continue;
    }
    if (state.capacity_blocks == 0) continue;
    ++state.counters.fills;
    Entry* entry = state.Find(key);
    if (entry != nullptr && entry->tier != CacheTier::kSsd) {
      // Refresh in place; the lookup that missed next to it already touched it.
      std::memcpy(entry->data, source, kCacheBlockBytes);
      entry->version = ++state.next_version;
      continue;
    }
    CacheTier tier = CacheTier::kSingleTouch;
    if (entry != nullptr) {
      // On the SSD (a lookup skipped reading it): the fresh copy goes straight to multi-touch.
      state.Erase(*entry);
      tier = CacheTier::kMultiTouch;
      ++state.counters.promotions_from_ssd;
    }
    const bool reserved = state.ReserveMemoryBlock();
    WEFT_ASSERT(reserved);
    state.Insert(key, tier, source, ++state.next_version);
  }
}

}  // namespace weft::cache
