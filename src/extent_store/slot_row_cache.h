// SlotRowCache: the decoded rows (block map + checksums) of recently used egroup slots, so that
// reads and commits skip two RocksDB lookups and two row decodes (the seeds' metadata cache: the
// unified cache later takes over metadata caching across disks).
//
// Coherence: MetadataDb is the only writer of these rows. A committed batch updates the cache
// with exactly the rows it wrote; a failed commit drops them (their state is unknown). Absent
// slots are cached too (as "never written"). Bounded LRU: kCapacityEntries rows (~2 KiB each).
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <unordered_map>

#include "extent_store/metadata_format.h"

namespace weft::extent_store {

class SlotRowCache {
 public:
  static constexpr size_t kCapacityEntries = 16384;  // About 34 MiB.

  // nullptr on a miss; otherwise the cached value (an empty optional: the slot is unwritten).
  const std::optional<format::SlotRows>* Find(format::SlotAddress address);
  void Put(format::SlotAddress address, const std::optional<format::SlotRows>& rows);
  void Erase(format::SlotAddress address);

  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }
  size_t size() const { return index_.size(); }

 private:
  static uint64_t Key(format::SlotAddress address);
  using Entry = std::pair<uint64_t, std::optional<format::SlotRows>>;

  std::list<Entry> entries_;  // Most recently used first.
  std::unordered_map<uint64_t, std::list<Entry>::iterator> index_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace weft::extent_store
