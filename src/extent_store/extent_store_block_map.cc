// Queries on an egroup's committed block map, answered from the slot rows alone (cache or
// RocksDB) without touching the device: which blocks hold data, and their checksums. Writes
// still in flight are not seen.
#include <fmt/format.h>

#include "extent_store/extent_store_impl.h"

namespace weft::extent_store {

Status ExtentStore::State::VisitCommittedBlocks(
    EgroupId egroup_id, uint64_t offset_bytes, uint64_t length_bytes,
    const std::function<void(uint64_t index, uint32_t physical_block, uint32_t checksum)>& visit) {
  WEFT_ASSERT(egroups.contains(egroup_id));
  const uint64_t first_block = offset_bytes / kChecksumBlockBytes;
  const uint64_t block_count = length_bytes / kChecksumBlockBytes;
  WEFT_ASSERT(first_block + block_count <= format::kBlocksPerEgroup);
  std::optional<format::SlotRows> rows;
  uint32_t rows_slot = format::kSlotsPerEgroup;  // None loaded yet.
  for (uint64_t index = 0; index < block_count; ++index) {
    const uint64_t egroup_block = first_block + index;
    const auto slot = static_cast<uint32_t>(egroup_block / format::kBlocksPerSlot);
    if (slot != rows_slot) {
      WEFT_ASSIGN_OR_RETURN(rows, metadata->GetSlot({egroup_id, slot}));
      rows_slot = slot;
    }
    if (!rows) {
      visit(index, 0, 0);  // A slot never written: neither of its rows exists.
      continue;
    }
    const uint32_t entry = egroup_block % format::kBlocksPerSlot;
    visit(index, rows->layout.entries[entry], rows->checksums.entries[entry]);
  }
  return Status::Ok();
}

Result<std::vector<bool>> ExtentStore::AllocatedBlocks(EgroupId egroup_id, uint64_t offset_bytes,
                                                       uint64_t length_bytes) {
  WEFT_RETURN_IF_ERROR(
      state_->ValidateRange("map", egroup_id, offset_bytes, length_bytes, kEgroupMaxBytes));
  std::vector<bool> allocated(length_bytes / kChecksumBlockBytes, false);
  WEFT_RETURN_IF_ERROR(state_->VisitCommittedBlocks(
      egroup_id, offset_bytes, length_bytes,
      [&allocated](uint64_t index, uint32_t physical_block, uint32_t /*checksum*/) {
        allocated[index] = physical_block != 0;
      }));
  return allocated;
}

Result<std::vector<uint32_t>> ExtentStore::BlockChecksums(EgroupId egroup_id, uint64_t offset_bytes,
                                                          uint64_t length_bytes) {
  WEFT_RETURN_IF_ERROR(
      state_->ValidateRange("checksums", egroup_id, offset_bytes, length_bytes, kEgroupMaxBytes));
  std::vector<uint32_t> checksums(length_bytes / kChecksumBlockBytes, 0);
  WEFT_RETURN_IF_ERROR(state_->VisitCommittedBlocks(
      egroup_id, offset_bytes, length_bytes,
      [&checksums](uint64_t index, uint32_t physical_block, uint32_t checksum) {
        // A trim zeroes both entries; an unwritten block's checksum entry is 0 by the format,
        // but say so here rather than rely on it.
        checksums[index] = physical_block != 0 ? checksum : 0;
      }));
  return checksums;
}

}  // namespace weft::extent_store
