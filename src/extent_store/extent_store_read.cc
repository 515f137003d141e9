// The read path: look the blocks up in RocksDB (the rows are authoritative), read physically
// contiguous blocks with one device read each straight into the caller's buffer, and verify
// every block's crc32c after the read.
//
// A read takes a sequence number when it looks its blocks up. A commit that replaces blocks
// takes a later one, and its frees wait until every read with an earlier number has finished,
// so a read never sees a block that was freed and reused under it.
#include <fmt/format.h>

#include <cstring>

#include "base/crc32c.h"
#include "extent_store/extent_store_impl.h"

namespace weft::extent_store {

void ExtentStore::Read(EgroupId egroup_id, uint64_t offset_bytes, std::span<std::byte> buffer,
                       ReadCompletion done) {
  state_->SubmitRead(egroup_id, offset_bytes, buffer, std::move(done));
}

void ExtentStore::State::SubmitRead(EgroupId egroup_id, uint64_t offset_bytes,
                                    std::span<std::byte> buffer, ReadCompletion done) {
  WEFT_ASSERT(done != nullptr);
  Status status = ValidateRange("read", egroup_id, offset_bytes, buffer.size());
  if (status.ok() && reinterpret_cast<uintptr_t>(buffer.data()) % kIoAlignmentBytes != 0) {
    status = Status::InvalidArgument(
        fmt::format("disk {} egroup {}: read buffer at {} is not {}-byte aligned", disk_name,
                    egroup_id, static_cast<const void*>(buffer.data()), kIoAlignmentBytes));
  }
  if (status.ok() && inflight_reads.size() >= kMaxInflightReads) {
    status = Status::Busy(
        fmt::format("disk {}: {} reads in flight (the limit)", disk_name, inflight_reads.size()));
  }
  if (!status.ok()) {
    CompleteLater(std::move(done), std::move(status));
    return;
  }
  auto read = std::make_unique<PendingRead>();
  read->sequence = next_sequence++;
  read->egroup_id = egroup_id;
  read->offset_bytes = offset_bytes;
  read->buffer = buffer;
  read->done = std::move(done);
  status = LookUpBlocks(*read);
  if (!status.ok()) {
    CompleteLater(std::move(read->done), std::move(status));
    return;
  }
  const std::vector<ContiguousStretch> stretches = FindContiguousStretches(read->physical_blocks);
  if (stretches.empty()) {  // Nothing written here: all zeros, already filled in.
    FinishRead(std::move(read));
    return;
  }
  read->device_reads_outstanding = static_cast<uint32_t>(stretches.size());
  const uint64_t sequence = read->sequence;
  PendingRead& pending = *read;
  inflight_reads.emplace(sequence, std::move(read));
  for (const ContiguousStretch& stretch : stretches) {
    WEFT_ASSERT(stretch.block_count <= kBlocksPerIoMax);
    blockstore.device().SubmitRead(
        blockstore.BlockOffsetBytes(stretch.first_block),
        pending.buffer.subspan(uint64_t{stretch.first_index} * kChecksumBlockBytes,
                               uint64_t{stretch.block_count} * kChecksumBlockBytes),
        [this, sequence](Status read_status) { OnDeviceRead(sequence, std::move(read_status)); });
  }
}

Status ExtentStore::State::LookUpBlocks(PendingRead& read) {
  const uint64_t first_block = read.offset_bytes / kChecksumBlockBytes;
  const uint32_t block_count = static_cast<uint32_t>(read.buffer.size() / kChecksumBlockBytes);
  read.physical_blocks.assign(block_count, 0);
  read.expected_checksums.assign(block_count, 0);
  std::optional<format::SlotRows> rows;
  uint32_t rows_slot = format::kSlotsPerEgroup;  // None loaded yet.
  for (uint32_t index = 0; index < block_count; ++index) {
    const uint64_t egroup_block = first_block + index;
    const uint32_t slot = static_cast<uint32_t>(egroup_block / format::kBlocksPerSlot);
    if (slot != rows_slot) {
      WEFT_ASSIGN_OR_RETURN(rows, metadata->GetSlot({read.egroup_id, slot}));
      rows_slot = slot;
    }
    const uint32_t entry = egroup_block % format::kBlocksPerSlot;
    const uint32_t physical_block = rows ? rows->layout.entries[entry] : 0;
    if (physical_block == 0) {
      std::memset(read.buffer.data() + uint64_t{index} * kChecksumBlockBytes, 0,
                  kChecksumBlockBytes);
      continue;
    }
    // A row with a valid crc naming a block outside the device would mean a bug that wrote it;
    // refuse it rather than read somewhere arbitrary.
    if (physical_block >= device_block_count()) {
      return Status::Corruption(
          fmt::format("disk {} egroup {} offset {}: layout names block {}, "
                      "beyond the device's {} blocks",
                      disk_name, read.egroup_id, egroup_block * kChecksumBlockBytes, physical_block,
                      device_block_count()));
    }
    read.physical_blocks[index] = physical_block;
    read.expected_checksums[index] = rows->checksums.entries[entry];
  }
  return Status::Ok();
}

void ExtentStore::State::OnDeviceRead(uint64_t sequence, Status status) {
  auto found = inflight_reads.find(sequence);
  WEFT_ASSERT(found != inflight_reads.end());
  PendingRead& read = *found->second;
  WEFT_ASSERT(read.device_reads_outstanding > 0);
  --read.device_reads_outstanding;
  if (!status.ok() && read.status.ok()) {
    read.status = status.WithContext(fmt::format("disk {} egroup {} offset {}: read", disk_name,
                                                 read.egroup_id, read.offset_bytes));
  }
  if (read.device_reads_outstanding > 0) return;
  std::unique_ptr<PendingRead> finished = std::move(found->second);
  inflight_reads.erase(found);
  FinishRead(std::move(finished));
  ReleaseDeferredFrees();  // This read may have been the one holding frees back.
}

Status ExtentStore::State::VerifyReadChecksums(const PendingRead& read) {
  Status first_mismatch;
  for (uint32_t index = 0; index < read.physical_blocks.size(); ++index) {
    if (read.physical_blocks[index] == 0) continue;
    const uint32_t found =
        Crc32c(read.buffer.subspan(uint64_t{index} * kChecksumBlockBytes, kChecksumBlockBytes));
    const uint32_t expected = read.expected_checksums[index];
    if (found == expected) continue;
    ++counters.checksum_errors;
    if (first_mismatch.ok()) {
      first_mismatch = Status::Corruption(fmt::format(
          "disk {} egroup {} offset {}: checksum mismatch (expected {:#010x}, found {:#010x})",
          disk_name, read.egroup_id, read.offset_bytes + uint64_t{index} * kChecksumBlockBytes,
          expected, found));
    }
  }
  return first_mismatch;
}

void ExtentStore::State::FinishRead(std::unique_ptr<PendingRead> read) {
  WEFT_ASSERT(read->device_reads_outstanding == 0);
  Status status = read->status;
  if (status.ok()) status = VerifyReadChecksums(*read);
  if (status.ok()) {
    ++counters.reads;
    counters.bytes_read += read->buffer.size();
  }
  CompleteLater(std::move(read->done), std::move(status));
}

}  // namespace weft::extent_store
