// The disks of this node as the vDisk layer sees them: each one an ExtentStore (with its
// Blockstore under it), named by the blockstore's uuid. Owned by the daemon; the vDisk layer
// keeps pointers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "extent_store/extent_store.h"

namespace weft::vdisk {

struct NodeDisk {
  std::string uuid;  // The blockstore's superblock uuid: what egroup rows name.
  std::string path;
  extent_store::ExtentStore* store = nullptr;

  uint64_t free_bytes() const;
};

// Where a new egroup goes: the disk with the most free bytes (ties: the first), so egroups
// spread across disks by free space. nullptr when `disks` is empty.
NodeDisk* ChooseDiskForNewEgroup(std::vector<NodeDisk>& disks);

}  // namespace weft::vdisk
