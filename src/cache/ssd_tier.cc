// The unified cache's SSD tier: one preallocated blockstore file of 4 KiB slots, indexed in
// memory only. Multi-touch evictions are written to a slot (demotion); a hit reads the slot back,
// checks its crc32c and promotes the block into multi-touch memory.
//
// Coherence: a slot with I/O in flight is pinned and never reused, so a completion always refers
// to the bytes it was started for. A completion acts only if its block's entry still carries the
// version it was started with; Invalidate and Fill replace or drop the entry, so an invalidated
// block's completion never brings it back.
#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "base/assert.h"
#include "base/crc32c.h"
#include "cache/unified_cache_impl.h"
#include "spdlog/spdlog.h"

namespace weft::cache {
namespace {

// How far up from the SSD tier's LRU end a demotion looks for a slot that is not pinned.
constexpr int kVictimScanMax = 8;

using Block = std::array<std::byte, kCacheBlockBytes>;

}  // namespace

void UnifiedCache::Open(const env::IoCompletion& done) { state_->OpenSsd(done); }

void UnifiedCache::State::OpenSsd(const env::IoCompletion& done) {
  WEFT_ASSERT(!opened);
  opened = true;
  if (ssd_slot_budget == 0) {
    if (options.ssd_files != nullptr && options.ssd_bytes > 0) {
      spdlog::warn("unified cache: {} bytes of memory leave no room for an SSD tier's index",
                   options.memory_bytes);
    }
    done(Status::Ok());
    return;
  }
  blockstore::FileLayer& files = *options.ssd_files;
  Result<blockstore::FileId> file = files.Lookup(options.ssd_file_name);
  if (!file.ok() && file.status().IsNotFound()) file = files.Create(options.ssd_file_name);
  if (!file.ok()) return FinishOpenSsd(file.status(), done);
  ssd_file = *file;
  Result<blockstore::FileInfo> info = files.Stat(ssd_file);
  if (!info.ok()) return FinishOpenSsd(info.status(), done);
  const uint64_t size_bytes = uint64_t{ssd_slot_budget} * kCacheBlockBytes;
  // The old contents are never trusted (the index is in memory only), so reuse them as they are.
  Status sized = Status::Ok();
  if (info->size_bytes > size_bytes) sized = files.Truncate(ssd_file, size_bytes);
  if (info->size_bytes < size_bytes) sized = files.Preallocate(ssd_file, size_bytes);
  if (!sized.ok()) return FinishOpenSsd(sized, done);
  // One write proves the tier usable (a blockstore with blocks larger than 4 KiB refuses it)
  // before any demotion depends on it; the sync makes the file's size durable.
  const Block zeros{};
  files.Write(ssd_file, 0, zeros, [this, alive = alive, done](const Status& written) {
    if (!*alive) return;
    if (!written.ok()) return FinishOpenSsd(written, done);
    options.ssd_files->Sync(ssd_file, [this, alive, done](const Status& synced) {
      if (*alive) FinishOpenSsd(synced, done);
    });
  });
}

void UnifiedCache::State::FinishOpenSsd(const Status& status, const env::IoCompletion& done) {
  if (!status.ok()) {
    spdlog::warn("unified cache: SSD tier '{}' unusable, running memory-only: {}",
                 options.ssd_file_name, status.ToString());
    // Give back the disk space (a later start creates the file again) and the memory reserved
    // for the index, which goes to the memory pools (they only grow).
    if (options.ssd_files != nullptr)
      options.ssd_files->Delete(options.ssd_file_name).IgnoreError();
    ssd_slot_budget = 0;
    capacity_blocks = options.memory_bytes / (kCacheBlockBytes + kEntryOverheadBytes);
    single_share_blocks = std::max<uint64_t>(1, capacity_blocks / 4);
    arena.set_capacity_buffers(capacity_blocks);
    done(status.WithContext("unified cache SSD tier"));
    return;
  }
  slots.assign(ssd_slot_budget, SsdSlot{});
  free_slots.clear();
  free_slots.reserve(ssd_slot_budget);
  for (uint32_t slot = ssd_slot_budget; slot > 0; --slot) free_slots.push_back(slot - 1);
  ssd_active = true;
  done(Status::Ok());
}

void UnifiedCache::State::Demote(Entry& entry) {
  WEFT_ASSERT(entry.tier == CacheTier::kMultiTouch);
  uint32_t slot = 0;
  if (!ssd_active || ssd_writes_in_flight >= UnifiedCache::kMaxSsdWritesInFlight ||
      !TakeSlot(slot)) {
    Erase(entry);
    ++counters.evictions_multi;
    return;
  }
  SsdSlot& target = slots[slot];
  WEFT_ASSERT(!target.owned && target.pins == 0);
  std::byte* data = entry.data;
  target = SsdSlot{.crc = Crc32c(data, kCacheBlockBytes), .pins = 1, .owned = true};
  // The entry moves first: a completion (even an inline one) must find it on the SSD tier.
  multi.Remove(entry);
  entry.tier = CacheTier::kSsd;
  entry.slot = slot;
  entry.data = nullptr;
  ssd.PushFront(entry);
  ++ssd_writes_in_flight;
  ++counters.evictions_multi_to_ssd;
  const BlockKey key = entry.key;
  const uint64_t version = entry.version;
  // Write copies the bytes, so the buffer goes back to the arena right away.
  options.ssd_files->Write(ssd_file, uint64_t{slot} * kCacheBlockBytes,
                           std::span<const std::byte>(data, kCacheBlockBytes),
                           [this, alive = alive, key, version, slot](const Status& status) {
                             if (*alive) FinishSsdWrite(status, key, version, slot);
                           });
  arena.Release(data);
}

bool UnifiedCache::State::TakeSlot(uint32_t& slot) {
  if (free_slots.empty()) {
    Entry* victim = ssd.back();
    for (int scanned = 0; victim != nullptr && slots[victim->slot].pins > 0; ++scanned) {
      if (scanned + 1 >= kVictimScanMax) return false;
      victim = TierList::Previous(*victim);
    }
    if (victim == nullptr) return false;
    const uint32_t victim_slot = victim->slot;
    Erase(*victim);  // Its slot is unpinned: back on the free list.
    ++counters.evictions_ssd;
    WEFT_ASSERT(!free_slots.empty() && free_slots.back() == victim_slot);
  }
  slot = free_slots.back();
  free_slots.pop_back();
  return true;
}

void UnifiedCache::State::ReleaseSlot(uint32_t slot) {
  SsdSlot& released = slots[slot];
  WEFT_ASSERT(released.owned);
  released.owned = false;
  if (released.pins == 0) free_slots.push_back(slot);
}

void UnifiedCache::State::Unpin(uint32_t slot) {
  SsdSlot& unpinned = slots[slot];
  WEFT_ASSERT(unpinned.pins > 0);
  --unpinned.pins;
  if (unpinned.pins == 0 && !unpinned.owned) free_slots.push_back(slot);
}

void UnifiedCache::State::FinishSsdWrite(const Status& status, const BlockKey& key,
                                         uint64_t version, uint32_t slot) {
  WEFT_ASSERT(ssd_writes_in_flight > 0);
  --ssd_writes_in_flight;
  Entry* entry = Find(key);
  // A pinned slot is never reused, so the slot is still this entry's unless it was dropped.
  const bool current = entry != nullptr && entry->tier == CacheTier::kSsd && entry->slot == slot;
  WEFT_ASSERT(current == slots[slot].owned);
  WEFT_ASSERT(!current || entry->version == version);
  if (status.ok()) {
    slots[slot].written = current;
  } else {
    ++counters.ssd_write_errors;
    if (current) Erase(*entry);
  }
  Unpin(slot);
}

void UnifiedCache::State::StartSsdRead(Entry& entry, uint32_t index,
                                       const std::shared_ptr<PendingLookup>& lookup) {
  WEFT_ASSERT(entry.tier == CacheTier::kSsd);
  SsdSlot& slot = slots[entry.slot];
  WEFT_ASSERT(slot.owned && slot.written);
  ++slot.pins;
  ++ssd_reads_in_flight;
  // The staging block belongs to the completion: the file layer copies into it even when the
  // cache is gone by then. The crc is taken now: the pinned slot keeps these bytes.
  auto staging = std::make_shared<Block>();
  options.ssd_files->Read(
      ssd_file, uint64_t{entry.slot} * kCacheBlockBytes, *staging,
      [this, alive = alive, key = entry.key, version = entry.version, slot_index = entry.slot,
       crc = slot.crc, staging, index, lookup](const Status& status, uint64_t bytes_read) {
        if (!*alive) return;
        const bool read_ok = status.ok() && bytes_read == kCacheBlockBytes &&
                             Crc32c(staging->data(), kCacheBlockBytes) == crc;
        FinishSsdRead(read_ok, key, version, slot_index, staging->data(), index, *lookup);
      });
}

void UnifiedCache::State::FinishSsdRead(bool read_ok, const BlockKey& key, uint64_t version,
                                        uint32_t slot, const std::byte* data, uint32_t index,
                                        PendingLookup& lookup) {
  WEFT_ASSERT(ssd_reads_in_flight > 0);
  --ssd_reads_in_flight;
  Unpin(slot);
  Entry* entry = Find(key);
  // The same version means no Invalidate or Fill touched the block since the lookup started.
  const bool current = entry != nullptr && entry->version == version;
  bool hit = false;
  if (!read_ok) {
    ++counters.ssd_read_errors;
    if (current && entry->tier == CacheTier::kSsd) Erase(*entry);  // Never trust that slot.
  } else if (current) {
    hit = true;
    std::memcpy(lookup.out.data() + uint64_t{index} * kCacheBlockBytes, data, kCacheBlockBytes);
    ++counters.hits_ssd;
    if (entry->tier == CacheTier::kSsd) {
      // Back into multi-touch memory (another lookup's read may have done it already).
      Erase(*entry);
      ++counters.promotions_from_ssd;
      if (ReserveMemoryBlock()) Insert(key, CacheTier::kMultiTouch, data, version);
    }
  }
  if (!hit) ++counters.misses;
  lookup.all_hit = lookup.all_hit && hit;
  WEFT_ASSERT(lookup.reads_left > 0);
  if (--lookup.reads_left > 0) return;
  WEFT_ASSERT(pending_lookups > 0);
  --pending_lookups;
  auto done = std::move(lookup.done);
  done(lookup.all_hit);
}

}  // namespace weft::cache
