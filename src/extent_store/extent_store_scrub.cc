// Scrub: re-read every written block and verify its checksum, and let RocksDB verify its own
// files. Reports, never repairs (repair needs another replica, which is the layer above's job).
//
// It runs synchronously, one extent slot (up to 1 MiB) at a time, and holds a reader sequence
// for its whole run, so blocks that commits replace meanwhile are not freed under it.
#include <fmt/format.h>

#include "base/crc32c.h"
#include "extent_store/extent_store_impl.h"

namespace weft::extent_store {

ScrubReport ExtentStore::Scrub() { return state_->Scrub(); }

ScrubReport ExtentStore::State::Scrub() {
  WEFT_ASSERT(!scrub_sequence.has_value());  // Not reentrant: a completion must not call Scrub.
  scrub_sequence = next_sequence++;
  ScrubReport report;
  AlignedBuffer buffer = blockstore.device().AllocateBuffer(kExtentBytes);
  WEFT_ASSERT(buffer.size() >= kExtentBytes);
  Status scanned = metadata->ForEachEgroup(
      [&report](EgroupId egroup_id, const Result<format::EgroupRow>& row) -> Status {
        ++report.egroups_checked;
        if (!row.ok()) report.bad_blocks.push_back({egroup_id, 0, row.status().ToString()});
        return Status::Ok();
      });
  if (scanned.ok()) {
    scanned = metadata->ForEachSlot(
        [&](format::SlotAddress address, const Result<format::SlotRows>& rows) -> Status {
          ScrubSlot(address, rows, buffer.span().first(kExtentBytes), report);
          return Status::Ok();
        });
  }
  report.metadata_status = scanned.ok() ? metadata->VerifyChecksum() : scanned;
  scrub_sequence.reset();
  ReleaseDeferredFrees();
  return report;
}

void ExtentStore::State::ScrubSlot(format::SlotAddress address,
                                   const Result<format::SlotRows>& rows,
                                   std::span<std::byte> buffer, ScrubReport& report) {
  const uint64_t slot_offset_bytes = uint64_t{address.slot} * kExtentBytes;
  if (!rows.ok()) {
    report.bad_blocks.push_back({address.egroup_id, slot_offset_bytes, rows.status().ToString()});
    return;
  }
  std::vector<ContiguousStretch> stretches = FindContiguousStretches(rows->layout.entries);
  std::vector<Status> read_statuses(stretches.size());
  uint32_t outstanding = 0;
  for (size_t index = 0; index < stretches.size(); ++index) {
    const ContiguousStretch& stretch = stretches[index];
    if (stretch.first_block + stretch.block_count > device_block_count()) {
      read_statuses[index] =
          Status::Corruption(fmt::format("layout names block {}, beyond the device's {} blocks",
                                         stretch.first_block, device_block_count()));
      continue;
    }
    ++outstanding;
    blockstore.device().SubmitRead(
        blockstore.BlockOffsetBytes(stretch.first_block),
        buffer.subspan(uint64_t{stretch.first_index} * kChecksumBlockBytes,
                       uint64_t{stretch.block_count} * kChecksumBlockBytes),
        [&read_statuses, &outstanding, index](Status status) {
          read_statuses[index] = std::move(status);
          --outstanding;
        });
  }
  // Other completions (writes, reads) run here too; theirs go to ready_completions.
  while (outstanding > 0) blockstore.Poll(/*wait=*/true);

  for (size_t index = 0; index < stretches.size(); ++index) {
    const ContiguousStretch& stretch = stretches[index];
    for (uint32_t entry = stretch.first_index; entry < stretch.first_index + stretch.block_count;
         ++entry) {
      ++report.blocks_checked;
      const uint64_t offset_bytes = slot_offset_bytes + uint64_t{entry} * kChecksumBlockBytes;
      if (!read_statuses[index].ok()) {
        report.bad_blocks.push_back(
            {address.egroup_id, offset_bytes, "read failed: " + read_statuses[index].ToString()});
        continue;
      }
      const uint32_t expected = rows->checksums.entries[entry];
      const uint32_t found =
          Crc32c(buffer.subspan(uint64_t{entry} * kChecksumBlockBytes, kChecksumBlockBytes));
      if (found == expected) continue;
      ++counters.checksum_errors;
      report.bad_blocks.push_back(
          {address.egroup_id, offset_bytes,
           fmt::format("checksum mismatch (expected {:#010x}, found {:#010x})", expected, found)});
    }
  }
}

}  // namespace weft::extent_store
