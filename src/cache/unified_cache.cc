// The unified cache's entries: construction and sizing, the memory pools and their eviction,
// invalidation and fill generations, stats.
#include <algorithm>
#include <cstring>
#include <limits>

#include "base/assert.h"
#include "cache/unified_cache_impl.h"

namespace weft::cache {
namespace {

// The splitmix64 finalizer: spreads neighbouring block numbers over the whole hash range.
uint64_t Mix(uint64_t value) {
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ull;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebull;
  return value ^ (value >> 31);
}

uint64_t HashPair(uint64_t vdisk_id, uint64_t block) { return Mix(Mix(vdisk_id) ^ block); }

// An entry, its unordered_map node (next pointer, cached hash) and bucket slot.
static_assert(sizeof(std::pair<const BlockKey, Entry>) + 3 * sizeof(void*) <= kEntryOverheadBytes);
static_assert(sizeof(SsdSlot) + sizeof(uint32_t) + kEntryOverheadBytes <= kSsdSlotIndexBytes);

uint64_t MemoryCapacityBlocks(uint64_t memory_bytes, uint64_t ssd_index_bytes) {
  WEFT_ASSERT(ssd_index_bytes <= memory_bytes);
  return (memory_bytes - ssd_index_bytes) / (kCacheBlockBytes + kEntryOverheadBytes);
}

uint32_t SsdSlotBudget(const UnifiedCacheOptions& options) {
  if (options.ssd_files == nullptr) return 0;
  // The index may take at most half of the memory budget; slot numbers fit 32 bits.
  const uint64_t slots =
      std::min({options.ssd_bytes / kCacheBlockBytes, options.memory_bytes / 2 / kSsdSlotIndexBytes,
                uint64_t{std::numeric_limits<uint32_t>::max()}});
  return static_cast<uint32_t>(slots);
}

}  // namespace

uint64_t DefaultCacheMemoryBytes(uint64_t physical_memory_bytes) {
  constexpr uint64_t kReservedBytes = 12ull << 30;
  constexpr uint64_t kFloorBytes = 256ull << 20;
  if (physical_memory_bytes <= kReservedBytes) return kFloorBytes;
  // 0.45 = 9/20, exact and without overflow.
  const uint64_t spare_bytes = physical_memory_bytes - kReservedBytes;
  const uint64_t formula_bytes = spare_bytes / 20 * 9 + spare_bytes % 20 * 9 / 20;
  return std::max(kFloorBytes, formula_bytes);
}

size_t BlockKeyHash::operator()(const BlockKey& key) const {
  return HashPair(key.vdisk_id, key.block);
}

UnifiedCache::State::State(UnifiedCacheOptions cache_options)
    : options(std::move(cache_options)), arena(0), generations(kGenerationBuckets, 0) {
  ssd_slot_budget = SsdSlotBudget(options);
  capacity_blocks =
      MemoryCapacityBlocks(options.memory_bytes, uint64_t{ssd_slot_budget} * kSsdSlotIndexBytes);
  single_share_blocks = std::max<uint64_t>(1, capacity_blocks / 4);
  arena.set_capacity_buffers(capacity_blocks);
  // No rehash on the data path: the bucket array is part of the entry overhead estimate.
  entries.reserve(capacity_blocks + ssd_slot_budget);
}

Entry* UnifiedCache::State::Find(const BlockKey& key) {
  auto found = entries.find(key);
  return found == entries.end() ? nullptr : &found->second;
}

TierList& UnifiedCache::State::ListOf(CacheTier tier) {
  switch (tier) {
    case CacheTier::kSingleTouch:
      return single;
    case CacheTier::kMultiTouch:
      return multi;
    case CacheTier::kSsd:
      return ssd;
  }
  WEFT_ASSERT(false);
}

Entry& UnifiedCache::State::Insert(const BlockKey& key, CacheTier tier, const std::byte* data,
                                   uint64_t version) {
  WEFT_ASSERT(tier != CacheTier::kSsd);
  WEFT_ASSERT(memory_blocks() < capacity_blocks);
  auto [position, inserted] = entries.try_emplace(key);
  WEFT_ASSERT(inserted);
  Entry& entry = position->second;
  entry.key = key;
  entry.version = version;
  entry.tier = tier;
  entry.data = arena.Allocate();
  std::memcpy(entry.data, data, kCacheBlockBytes);
  ListOf(tier).PushFront(entry);
  vdisk_entries.try_emplace(key.vdisk_id).first->second.PushFront(entry);
  return entry;
}

void UnifiedCache::State::Erase(Entry& entry) {
  const BlockKey key = entry.key;
  ListOf(entry.tier).Remove(entry);
  auto vdisk = vdisk_entries.find(key.vdisk_id);
  WEFT_ASSERT(vdisk != vdisk_entries.end());
  vdisk->second.Remove(entry);
  if (vdisk->second.empty()) vdisk_entries.erase(vdisk);
  if (entry.tier == CacheTier::kSsd) {
    ReleaseSlot(entry.slot);
  } else {
    arena.Release(entry.data);
  }
  entries.erase(key);
}

bool UnifiedCache::State::ReserveMemoryBlock() {
  if (capacity_blocks == 0) return false;
  while (memory_blocks() >= capacity_blocks) EvictOne();
  return true;
}

void UnifiedCache::State::EvictOne() {
  WEFT_ASSERT(memory_blocks() > 0);
  // Single-touch gives way first once it holds its share (so a scan cannot flush the
  // multi-touch pool), and may use the whole memory while multi-touch is empty.
  if (!single.empty() && (single.size() >= single_share_blocks || multi.empty())) {
    Erase(*single.back());
    ++counters.evictions_single;
    return;
  }
  Demote(*multi.back());
}

uint64_t UnifiedCache::State::EraseRange(uint64_t vdisk_id, uint64_t first_block, uint64_t count) {
  auto vdisk = vdisk_entries.find(vdisk_id);
  if (vdisk == vdisk_entries.end()) return 0;
  uint64_t erased = 0;
  if (count > vdisk->second.size()) {
    // A range larger than what is cached (a trim, a deletion): walk the vDisk's entries. Erasing
    // the last one destroys the list, so read the next link first.
    for (Entry* entry = vdisk->second.front(); entry != nullptr;) {
      Entry* next = VdiskList::Next(*entry);
      if (entry->key.block - first_block < count) {
        Erase(*entry);
        ++erased;
      }
      entry = next;
    }
    return erased;
  }
  for (uint64_t block = first_block; block - first_block < count; ++block) {
    Entry* entry = Find({vdisk_id, block});
    if (entry == nullptr) continue;
    Erase(*entry);
    ++erased;
  }
  return erased;
}

bool UnifiedCache::State::IsStale(const BlockKey& key, uint64_t ticket) const {
  const uint64_t bucket =
      HashPair(key.vdisk_id, key.block >> kGenerationGroupShift) % kGenerationBuckets;
  return ticket < std::max(global_invalidation_floor, generations[bucket]);
}

void UnifiedCache::State::BumpGenerations(uint64_t vdisk_id, uint64_t first_block, uint64_t count) {
  ++invalidation_sequence;
  const uint64_t first_group = first_block >> kGenerationGroupShift;
  const uint64_t last_group = (first_block + count - 1) >> kGenerationGroupShift;
  if (last_group - first_group >= kGenerationBuckets / 4) {
    // Stamping would touch most buckets anyway: fail every older ticket instead.
    global_invalidation_floor = invalidation_sequence;
    return;
  }
  for (uint64_t group = first_group; group <= last_group; ++group) {
    generations[HashPair(vdisk_id, group) % kGenerationBuckets] = invalidation_sequence;
  }
}

UnifiedCache::UnifiedCache(UnifiedCacheOptions options)
    : state_(std::make_unique<State>(std::move(options))) {}

UnifiedCache::~UnifiedCache() {
  WEFT_ASSERT(state_->pending_lookups == 0);
  *state_->alive = false;
  // The lists must be empty before they are destroyed (they do not own the entries).
  while (!state_->entries.empty()) state_->Erase(state_->entries.begin()->second);
}

void UnifiedCache::Invalidate(uint64_t vdisk_id, uint64_t first_block, uint64_t count) {
  if (count == 0) return;
  WEFT_ASSERT(count <= std::numeric_limits<uint64_t>::max() - first_block);
  state_->BumpGenerations(vdisk_id, first_block, count);
  state_->counters.invalidations += state_->EraseRange(vdisk_id, first_block, count);
}

void UnifiedCache::InvalidateVdisk(uint64_t vdisk_id) {
  State& state = *state_;
  state.global_invalidation_floor = ++state.invalidation_sequence;
  state.counters.invalidations +=
      state.EraseRange(vdisk_id, 0, std::numeric_limits<uint64_t>::max());
}

UnifiedCacheStats UnifiedCache::stats() const {
  const State& state = *state_;
  UnifiedCacheStats stats = state.counters;
  stats.single_blocks = state.single.size();
  stats.multi_blocks = state.multi.size();
  stats.ssd_blocks = state.ssd.size();
  stats.memory_capacity_blocks = state.capacity_blocks;
  stats.memory_data_bytes = state.memory_blocks() * kCacheBlockBytes;
  stats.ssd_index_bytes = uint64_t{state.ssd_slot_budget} * kSsdSlotIndexBytes;
  stats.memory_bytes_used =
      state.memory_blocks() * (kCacheBlockBytes + kEntryOverheadBytes) + stats.ssd_index_bytes;
  stats.memory_bytes_max = state.options.memory_bytes;
  stats.ssd_bytes_max = state.ssd_active ? state.slots.size() * kCacheBlockBytes : 0;
  stats.ssd_reads_in_flight = state.ssd_reads_in_flight;
  stats.ssd_writes_in_flight = state.ssd_writes_in_flight;
  return stats;
}

std::vector<CachedBlock> UnifiedCache::Contents(CacheTier tier) const {
  std::vector<CachedBlock> blocks;
  for (Entry* entry = state_->ListOf(tier).front(); entry != nullptr;
       entry = TierList::Next(*entry)) {
    blocks.push_back({entry->key.vdisk_id, entry->key.block});
  }
  return blocks;
}

uint32_t UnifiedCache::pending_lookups() const { return state_->pending_lookups; }

}  // namespace weft::cache
