// The unified cache's state, shared by its files: unified_cache.cc (entries, pools, eviction,
// invalidation), cache_lookup.cc (Lookup, Fill) and ssd_tier.cc (slots, demotion, SSD I/O).
#pragma once

#include <memory>
#include <unordered_map>
#include <vector>

#include "cache/buffer_arena.h"
#include "cache/intrusive_list.h"
#include "cache/unified_cache.h"

namespace weft::cache {

struct BlockKey {
  uint64_t vdisk_id = 0;
  uint64_t block = 0;
  friend bool operator==(const BlockKey&, const BlockKey&) = default;
};

struct BlockKeyHash {
  size_t operator()(const BlockKey& key) const;
};

struct Entry {
  BlockKey key;
  // Unique per accepted fill (kept across tier moves): an SSD read in flight checks it to learn
  // whether its block was invalidated or refilled meanwhile.
  uint64_t version = 0;
  std::byte* data = nullptr;  // Memory tiers: an arena buffer.
  uint32_t slot = 0;          // SSD tier.
  CacheTier tier = CacheTier::kSingleTouch;
  ListLink<Entry> tier_link;
  ListLink<Entry> vdisk_link;
};

using TierList = IntrusiveList<Entry, &Entry::tier_link>;
using VdiskList = IntrusiveList<Entry, &Entry::vdisk_link>;

struct SsdSlot {
  uint32_t crc = 0;      // Of the block last written to the slot.
  uint16_t pins = 0;     // Reads and writes in flight; a pinned slot is never reused.
  bool owned = false;    // An SSD-tier entry points at it.
  bool written = false;  // Its write completed: readable.
};

// A Lookup waiting for SSD reads.
struct PendingLookup {
  std::span<std::byte> out;
  std::function<void(bool all_hit)> done;
  uint32_t reads_left = 0;
  bool all_hit = true;
};

struct UnifiedCache::State {
  explicit State(UnifiedCacheOptions cache_options);

  // unified_cache.cc
  Entry* Find(const BlockKey& key);
  TierList& ListOf(CacheTier tier);
  const TierList& ListOf(CacheTier tier) const { return const_cast<State*>(this)->ListOf(tier); }
  // A new memory entry at the front of `tier` holding a copy of `data`; room must be made.
  Entry& Insert(const BlockKey& key, CacheTier tier, const std::byte* data, uint64_t version);
  // Removes the entry from its lists and the map, returning its buffer or slot.
  void Erase(Entry& entry);
  uint64_t memory_blocks() const { return single.size() + multi.size(); }
  // Evicts until one more memory block fits (false: the memory pools have no capacity).
  bool ReserveMemoryBlock();
  void EvictOne();
  uint64_t EraseRange(uint64_t vdisk_id, uint64_t first_block, uint64_t count);
  bool IsStale(const BlockKey& key, uint64_t ticket) const;
  void BumpGenerations(uint64_t vdisk_id, uint64_t first_block, uint64_t count);

  // ssd_tier.cc
  void OpenSsd(const env::IoCompletion& done);
  void FinishOpenSsd(const Status& status, const env::IoCompletion& done);
  // Moves a multi-touch entry to the SSD tier, or out of the cache when it cannot.
  void Demote(Entry& entry);
  // A free slot, or the slot of the least recently demoted unpinned entry (evicting it).
  bool TakeSlot(uint32_t& slot);
  void ReleaseSlot(uint32_t slot);
  void Unpin(uint32_t slot);
  void FinishSsdWrite(const Status& status, const BlockKey& key, uint64_t version, uint32_t slot);
  void StartSsdRead(Entry& entry, uint32_t index, const std::shared_ptr<PendingLookup>& lookup);
  void FinishSsdRead(bool read_ok, const BlockKey& key, uint64_t version, uint32_t slot,
                     const std::byte* data, uint32_t index, PendingLookup& lookup);

  UnifiedCacheOptions options;
  UnifiedCacheStats counters;  // The event counters; gauges are computed by stats().
  uint64_t capacity_blocks = 0;
  uint64_t single_share_blocks = 0;  // Single-touch keeps at most this when multi-touch has data.
  BufferArena arena;
  std::unordered_map<BlockKey, Entry, BlockKeyHash> entries;
  std::unordered_map<uint64_t, VdiskList> vdisk_entries;
  TierList single;
  TierList multi;
  TierList ssd;  // Most recently demoted first.
  uint64_t next_version = 0;

  // Fill tickets: Invalidate bumps `invalidation_sequence` and stamps the hashed buckets of the
  // blocks it covers (16-block groups); a fill with ticket T drops a block whose bucket, or the
  // global floor (huge ranges, vDisk deletion), is newer than T.
  static constexpr uint64_t kGenerationBuckets = 1 << 16;
  static constexpr uint64_t kGenerationGroupShift = 4;
  std::vector<uint64_t> generations;
  uint64_t invalidation_sequence = 0;
  uint64_t global_invalidation_floor = 0;

  // SSD tier (active once Open succeeded).
  bool ssd_active = false;
  bool opened = false;
  uint32_t ssd_slot_budget = 0;  // Slots the index charge was reserved for.
  blockstore::FileId ssd_file = 0;
  std::vector<SsdSlot> slots;
  std::vector<uint32_t> free_slots;
  uint32_t ssd_reads_in_flight = 0;
  uint32_t ssd_writes_in_flight = 0;
  uint32_t pending_lookups = 0;
  // Completions of SSD I/O check this: the cache may be gone when they run.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
};

}  // namespace weft::cache
