// UnifiedCache: weft's read cache (the seeds' Unified Cache), 4 KiB-granular, keyed by logical
// address (vdisk id, block index = vDisk byte offset / 4096). It sits on the read path below the
// OpLog: the vDisk controller looks blocks up here before the block map and the extent store,
// fills the cache on read misses and invalidates it on every mutation. docs/cache.md.
//
// Tiers: a block enters the single-touch memory pool on a fill; a hit there promotes it to the
// multi-touch memory pool, where hits move it to the most recently used end. Evictions from
// single-touch leave the cache; evictions from multi-touch go down to the SSD tier (a
// preallocated blockstore file of 4 KiB slots, indexed in memory only) when one is configured.
// An SSD hit reads the slot back, checks its crc32c and promotes the block into multi-touch.
//
// Coherence: a Lookup never returns data older than the latest Fill accepted before the call,
// nor data of a block invalidated since that Fill. Fills race with writes (a read misses, a
// write invalidates, the read's old data arrives): FillTicket() before the miss is read, Fill()
// with that ticket, and Fill drops every block invalidated since the ticket was taken.
//
// Threading: one owner thread (the reactor of the blockstore holding the SSD tier); SSD
// completions run inside that Blockstore's Poll(). No method is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "blockstore/file_layer.h"

namespace weft::cache {

inline constexpr uint64_t kCacheBlockBytes = 4096;
// What one cached block's bookkeeping costs in memory besides its 4096 data bytes (the entry,
// its hash-map node and bucket); an estimate, checked against sizeof at compile time.
inline constexpr uint64_t kEntryOverheadBytes = 128;
// In-memory index cost of one SSD slot: an entry plus the slot's own state and free-list cell.
inline constexpr uint64_t kSsdSlotIndexBytes = kEntryOverheadBytes + 12;

// The seeds' sizing rule, (physical memory - 12 GiB) * 0.45, floored at 256 MiB: the 12 GiB
// reserve is the seeds' CVM services, which weftd does not have, so small nodes (test VMs,
// 8-16 GiB hosts) would otherwise get no cache at all.
uint64_t DefaultCacheMemoryBytes(uint64_t physical_memory_bytes);

struct UnifiedCacheOptions {
  // The one memory knob: block data and entry overhead of both memory pools, plus the SSD tier's
  // index (charged up front, at most half of this; a larger ssd_bytes is cut to fit).
  uint64_t memory_bytes = 256ull << 20;
  uint64_t ssd_bytes = 0;  // 0 or no ssd_files: no SSD tier. Rounded down to 4096.
  blockstore::FileLayer* ssd_files = nullptr;  // Needs a blockstore of 4096-byte blocks.
  std::string ssd_file_name = "unified-cache";
};

struct UnifiedCacheStats {
  // Per block looked up: a hit in one tier or a miss.
  uint64_t hits_memory_single = 0;
  uint64_t hits_memory_multi = 0;
  uint64_t hits_ssd = 0;
  uint64_t misses = 0;
  uint64_t fills = 0;                // Blocks accepted by Fill (inserted or refreshed).
  uint64_t fills_dropped_stale = 0;  // Blocks Fill dropped: invalidated since the ticket.
  uint64_t promotions = 0;           // Single-touch to multi-touch.
  uint64_t promotions_from_ssd = 0;  // SSD to multi-touch (by a hit or a refreshing Fill).
  uint64_t evictions_single = 0;     // Out of the cache.
  uint64_t evictions_multi_to_ssd = 0;
  uint64_t evictions_multi = 0;  // Out of the cache (no SSD tier, no slot, or too many writes).
  uint64_t evictions_ssd = 0;    // SSD slots reused for newer blocks.
  uint64_t invalidations = 0;    // Cached blocks dropped by Invalidate / InvalidateVdisk.
  uint64_t ssd_read_errors = 0;  // Failed or crc-mismatched slot reads (served as misses).
  uint64_t ssd_write_errors = 0;
  uint64_t single_blocks = 0;
  uint64_t multi_blocks = 0;
  uint64_t ssd_blocks = 0;
  uint64_t memory_capacity_blocks = 0;  // Both memory pools together.
  uint64_t memory_data_bytes = 0;       // (single_blocks + multi_blocks) * 4096.
  uint64_t memory_bytes_used = 0;       // Data + entry overhead + the SSD index charge.
  uint64_t memory_bytes_max = 0;
  uint64_t ssd_index_bytes = 0;  // Reserved for the SSD index (0 if none or it failed to open).
  uint64_t ssd_bytes_max = 0;    // Size of the open SSD tier.
  uint64_t ssd_reads_in_flight = 0;
  uint64_t ssd_writes_in_flight = 0;
};

enum class CacheTier : uint8_t { kSingleTouch, kMultiTouch, kSsd };

struct CachedBlock {
  uint64_t vdisk_id = 0;
  uint64_t block = 0;
  friend bool operator==(const CachedBlock&, const CachedBlock&) = default;
};

class UnifiedCache {
 public:
  // Limits on SSD I/O in flight: lookups that would need more reads miss, demotions that would
  // need more writes drop the block.
  static constexpr uint32_t kMaxSsdReadsInFlight = 1024;
  static constexpr uint32_t kMaxSsdWritesInFlight = 256;

  // The memory pools work at once; the SSD tier only after Open().
  explicit UnifiedCache(UnifiedCacheOptions options);
  // SSD I/O still in flight completes harmlessly after this; Lookups must not be pending.
  ~UnifiedCache();
  UnifiedCache(const UnifiedCache&) = delete;
  UnifiedCache& operator=(const UnifiedCache&) = delete;

  // Opens the SSD tier when configured: reuses the file or creates it, sizes it (Preallocate or
  // Truncate), writes slot 0 once as a probe and syncs; its old contents are ignored (the index
  // is in memory only). `done` runs inside the blockstore's Poll(), or inline with OK when no
  // SSD tier is configured. On an error the cache stays memory-only, and the memory the index
  // would have taken goes to the memory pools. Call once.
  void Open(const env::IoCompletion& done);

  // Looks up blocks [first_block, first_block + count) into `out` (count * 4096 bytes, valid
  // until `done` runs). done(true) only when every block was cached and copied; done(false)
  // when any was not (out's contents are then unspecified). Blocks found in memory count as
  // hits and are touched (promoted) either way; blocks on the SSD are read only when nothing
  // else is missing, else they count as misses. `done` runs inline, before Lookup returns,
  // unless SSD reads are needed; then it runs inside the blockstore's Poll(). A block
  // invalidated or refilled while its SSD read is in flight makes the lookup return false.
  void Lookup(uint64_t vdisk_id, uint64_t first_block, uint32_t count, std::span<std::byte> out,
              std::function<void(bool all_hit)> done);

  // Take before reading a miss from below; pass to Fill. The range is what the read covers (the
  // ticket itself is the cache's invalidation sequence number, valid for any range).
  uint64_t FillTicket(uint64_t vdisk_id, uint64_t first_block, uint64_t count) const;
  // Inserts data.size() / 4096 blocks read from below (into single-touch, or refreshes blocks
  // already cached), except blocks invalidated since `ticket` (false positives: blocks that
  // share a generation bucket with an invalidated one are dropped too). `data` is copied.
  void Fill(uint64_t vdisk_id, uint64_t first_block, std::span<const std::byte> data,
            uint64_t ticket);
  // Drops the blocks from every tier, including SSD reads and writes in flight for them, and
  // makes fills with older tickets drop them. Cost: min(count, blocks cached for the vdisk).
  void Invalidate(uint64_t vdisk_id, uint64_t first_block, uint64_t count);
  void InvalidateVdisk(uint64_t vdisk_id);  // Deletion or shrink; drops all older tickets' fills.

  UnifiedCacheStats stats() const;
  // For tests and debugging: one tier's blocks, most recently used first.
  std::vector<CachedBlock> Contents(CacheTier tier) const;
  uint32_t pending_lookups() const;

  struct State;  // unified_cache_impl.h.

 private:
  std::unique_ptr<State> state_;
};

}  // namespace weft::cache
