#include "extent_store/slot_row_cache.h"

#include "base/assert.h"

namespace weft::extent_store {

uint64_t SlotRowCache::Key(format::SlotAddress address) {
  // Four slots per egroup: the slot fits in the low two bits.
  WEFT_ASSERT(address.slot < format::kSlotsPerEgroup);
  WEFT_ASSERT(address.egroup_id < (uint64_t{1} << 62));
  return address.egroup_id << 2 | address.slot;
}

const std::optional<format::SlotRows>* SlotRowCache::Find(format::SlotAddress address) {
  auto found = index_.find(Key(address));
  if (found == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  entries_.splice(entries_.begin(), entries_, found->second);
  return &found->second->second;
}

void SlotRowCache::Put(format::SlotAddress address, const std::optional<format::SlotRows>& rows) {
  const uint64_t key = Key(address);
  auto found = index_.find(key);
  if (found != index_.end()) {
    found->second->second = rows;
    entries_.splice(entries_.begin(), entries_, found->second);
    return;
  }
  entries_.emplace_front(key, rows);
  index_.emplace(key, entries_.begin());
  if (index_.size() > kCapacityEntries) {
    index_.erase(entries_.back().first);
    entries_.pop_back();
  }
  WEFT_ASSERT(index_.size() == entries_.size());
}

void SlotRowCache::Erase(format::SlotAddress address) {
  auto found = index_.find(Key(address));
  if (found == index_.end()) return;
  entries_.erase(found->second);
  index_.erase(found);
}

}  // namespace weft::extent_store
