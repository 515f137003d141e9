#include "vdisk/node_disks.h"

#include "base/assert.h"

namespace weft::vdisk {

uint64_t NodeDisk::free_bytes() const {
  WEFT_ASSERT(store != nullptr);
  const extent_store::ExtentStoreStats stats = store->stats();
  return stats.blockstore.free_blocks * extent_store::kChecksumBlockBytes;
}

NodeDisk* ChooseDiskForNewEgroup(std::vector<NodeDisk>& disks) {
  NodeDisk* best = nullptr;
  uint64_t best_free_bytes = 0;
  for (NodeDisk& disk : disks) {
    const uint64_t free_bytes = disk.free_bytes();
    if (best == nullptr || free_bytes > best_free_bytes) {
      best = &disk;
      best_free_bytes = free_bytes;
    }
  }
  return best;
}

}  // namespace weft::vdisk
