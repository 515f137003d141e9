// The write path: out-of-place writes committed in groups.
//
// Why out of place: overwriting a block in place cannot be made crash-safe with per-block
// checksums (a torn overwrite leaves neither the old nor the new contents, and a checksum error
// for acknowledged data). Writing to new blocks and switching the block map in one synced
// RocksDB batch leaves every block old or new after a crash, and a multi-block write all or
// nothing. The ordering that makes it safe (blockstore.h states the rules):
//   1. data to new blocks + ALLOC records (PersistMetadata) — concurrently;
//   2. one device Flush, submitted after both completed: data and ALLOCs durable;
//   3. one synced RocksDB batch with the new layout and checksum rows of every write in the group;
//   4. Free() the replaced blocks, deferred until no read that saw the old rows still runs;
//   5. complete the writes.
// A crash before 3 leaves the old rows and leaked new blocks, one between 3 and 4 leaked old
// blocks; the next open reclaims both.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "base/crc32c.h"
#include "extent_store/extent_store_impl.h"

namespace weft::extent_store {

namespace {

// The rows one group commit changes, composed in memory in submission order so that several
// writes to one slot in one group stack up as they would one by one.
struct GroupRows {
  std::map<format::SlotAddress, format::SlotRows> slots;
  std::map<EgroupId, ExtentStore::State::EgroupAfterCommit> egroups;  // Each touched egroup.
  std::vector<uint64_t> replaced_blocks;
};

bool ChecksumsMatch(const PendingWrite& write) {
  for (uint32_t index = 0; index < write.block_count(); ++index) {
    const uint32_t checksum =
        Crc32c(write.data.subspan(index * kChecksumBlockBytes, kChecksumBlockBytes));
    if (checksum != write.checksums[index]) return false;
  }
  return true;
}

}  // namespace

void ExtentStore::Write(EgroupId egroup_id, uint64_t offset_bytes, std::span<const std::byte> data,
                        WriteCompletion done, uint64_t replica_version) {
  state_->SubmitWrite(egroup_id, offset_bytes, data, std::move(done), replica_version);
}

Result<std::vector<blockstore::BlockRun>> ExtentStore::State::AllocateBlocks(uint32_t block_count) {
  WEFT_ASSERT(block_count >= 1 && block_count <= kBlocksPerIoMax);
  // One contiguous run keeps the data one device write and later one device read; when free
  // space is fragmented, take whatever runs there are.
  Result<blockstore::BlockRun> run = blockstore.Allocate(block_count);
  if (run.ok()) return std::vector<blockstore::BlockRun>{*run};
  if (!run.status().IsNoSpace()) return run.status();
  return blockstore.AllocateAny(block_count);
}

void ExtentStore::State::SubmitWrite(EgroupId egroup_id, uint64_t offset_bytes,
                                     std::span<const std::byte> data, WriteCompletion done,
                                     uint64_t replica_version) {
  WEFT_ASSERT(done != nullptr);
  Status status = ValidateRange("write", egroup_id, offset_bytes, data.size());
  if (status.ok() && !metadata_failure.ok()) status = metadata_failure;
  if (status.ok() && inflight_writes >= options.max_inflight_writes) {
    status = Status::Busy(
        fmt::format("disk {}: {} writes in flight (the limit)", disk_name, inflight_writes));
  }
  const uint32_t block_count = static_cast<uint32_t>(data.size() / kChecksumBlockBytes);
  if (status.ok() && !space_waiters.empty()) {
    // Writes apply in submission order: nothing may overtake a write waiting for space.
    if (space_waiters.size() < kMaxSpaceWaiters) {
      space_waiters.push_back({egroup_id, offset_bytes, data, std::move(done), 0, replica_version});
      return;
    }
    status = Status::Busy(fmt::format("disk {}: {} writes waiting for free space (the limit)",
                                      disk_name, space_waiters.size()));
  }
  Result<std::vector<blockstore::BlockRun>> runs =
      status.ok() ? AllocateBlocks(block_count) : Result<std::vector<blockstore::BlockRun>>(status);
  if (!runs.ok() && runs.status().IsNoSpace() && space_waiting_allowed && FreesOnTheirWay() &&
      metadata_failure.ok() && space_waiters.size() < kMaxSpaceWaiters) {
    // Blocks freed by earlier overwrites come back once their FREE records are durable: wait
    // for that instead of failing a write the disk will have room for.
    space_waiters.push_back({egroup_id, offset_bytes, data, std::move(done), 0, replica_version});
    return;
  }
  if (!runs.ok()) {
    CompleteLater(std::move(done), runs.status().WithContext(
                                       fmt::format("disk {} egroup {}", disk_name, egroup_id)));
    return;
  }
  auto write = std::make_unique<PendingWrite>();
  write->egroup_id = egroup_id;
  write->offset_bytes = offset_bytes;
  write->replica_version = replica_version;
  write->done = std::move(done);
  write->new_runs = std::move(*runs);
  env::BlockDevice& device = blockstore.device();
  write->data = data;
  if (reinterpret_cast<uintptr_t>(data.data()) % device.alignment_bytes() != 0) {
    write->bounce = device.AllocateBuffer(data.size());
    std::memcpy(write->bounce.data(), data.data(), data.size());
    write->data = std::span<const std::byte>(write->bounce.data(), data.size());
  }
  // Checksums are taken from the bytes that go to the device, before they go.
  write->checksums.resize(block_count);
  for (uint32_t index = 0; index < block_count; ++index) {
    write->checksums[index] =
        Crc32c(write->data.subspan(index * kChecksumBlockBytes, kChecksumBlockBytes));
  }
  ++inflight_writes;
  ++egroups[egroup_id].inflight_writes;
  PendingWrite* pending = write.get();
  write_queue.push_back(std::move(write));

  pending->device_writes_outstanding = static_cast<uint32_t>(pending->new_runs.size());
  uint64_t data_offset_bytes = 0;
  for (const blockstore::BlockRun& run : pending->new_runs) {
    const uint64_t run_bytes = uint64_t{run.block_count} * kChecksumBlockBytes;
    WEFT_ASSERT(run.first_block != 0 && run.end_block() <= device_block_count());
    device.SubmitWrite(blockstore.BlockOffsetBytes(run.first_block),
                       pending->data.subspan(data_offset_bytes, run_bytes),
                       [this, pending](Status written) { OnDataWritten(pending, written); });
    data_offset_bytes += run_bytes;
  }
  WEFT_ASSERT(data_offset_bytes == pending->data.size());
  // The ALLOC records go out now, overlapping the data; the group's Flush makes both durable.
  frees_unpersisted = false;  // This round carries any FREE records pending as well.
  blockstore.PersistMetadata(
      [this, pending](Status persisted) { OnWriteMetadataPersisted(pending, persisted); });
}

void ExtentStore::Trim(EgroupId egroup_id, uint64_t offset_bytes, uint64_t length_bytes,
                       WriteCompletion done, uint64_t replica_version) {
  state_->SubmitTrim(egroup_id, offset_bytes, length_bytes, std::move(done), replica_version);
}

void ExtentStore::State::SubmitTrim(EgroupId egroup_id, uint64_t offset_bytes,
                                    uint64_t length_bytes, WriteCompletion done,
                                    uint64_t replica_version) {
  WEFT_ASSERT(done != nullptr);
  // A trim is a write without data: it needs no blocks, no device write and no ALLOC record, so
  // it is ready at once, and it commits in its place in the queue (after every earlier write to
  // the range, before every later one). The blocks it unmaps are freed like replaced ones.
  Status status = ValidateRange("trim", egroup_id, offset_bytes, length_bytes, kEgroupMaxBytes);
  if (status.ok() && !metadata_failure.ok()) status = metadata_failure;
  if (status.ok() && inflight_writes >= options.max_inflight_writes) {
    status = Status::Busy(
        fmt::format("disk {}: {} writes in flight (the limit)", disk_name, inflight_writes));
  }
  if (status.ok() && !space_waiters.empty()) {
    if (space_waiters.size() < kMaxSpaceWaiters) {
      space_waiters.push_back(
          {egroup_id, offset_bytes, {}, std::move(done), length_bytes, replica_version});
      return;
    }
    status = Status::Busy(fmt::format("disk {}: {} writes waiting for free space (the limit)",
                                      disk_name, space_waiters.size()));
  }
  if (!status.ok()) {
    CompleteLater(std::move(done), std::move(status));
    return;
  }
  auto trim = std::make_unique<PendingWrite>();
  trim->egroup_id = egroup_id;
  trim->offset_bytes = offset_bytes;
  trim->replica_version = replica_version;
  trim->done = std::move(done);
  trim->trim_block_count = static_cast<uint32_t>(length_bytes / kChecksumBlockBytes);
  trim->metadata_persisted = true;  // It has no ALLOC records to wait for.
  WEFT_ASSERT(trim->ready());
  ++inflight_writes;
  ++egroups[egroup_id].inflight_writes;
  write_queue.push_back(std::move(trim));
  TryStartCommit();
}

void ExtentStore::State::OnDataWritten(PendingWrite* write, Status status) {
  WEFT_ASSERT(write->device_writes_outstanding > 0);
  --write->device_writes_outstanding;
  if (!status.ok() && write->status.ok()) {
    write->status =
        status.WithContext(fmt::format("disk {} egroup {} offset {}: data write", disk_name,
                                       write->egroup_id, write->offset_bytes));
  }
  // The device contract: the buffer stays unmodified until the write completes.
  WEFT_DASSERT(write->device_writes_outstanding > 0 || ChecksumsMatch(*write));
  if (write->ready()) TryStartCommit();
}

void ExtentStore::State::OnWriteMetadataPersisted(PendingWrite* write, Status status) {
  WEFT_ASSERT(!write->metadata_persisted);
  write->metadata_persisted = true;
  if (!status.ok() && write->status.ok()) {
    write->status =
        status.WithContext(fmt::format("disk {} egroup {} offset {}: allocation records", disk_name,
                                       write->egroup_id, write->offset_bytes));
  }
  if (write->ready()) TryStartCommit();
}

void ExtentStore::State::TryStartCommit() {
  // While a group is flushing, the next one forms when that flush completes (OnGroupFlushed):
  // waiting gathers more writes into it than starting one per ready write would.
  if (commit_in_progress) return;
  StartGroupFlush();
}

void ExtentStore::State::StartGroupFlush() {
  // The group is the longest prefix of the queue whose I/O is done: a write never commits before
  // one submitted earlier, so overlapping writes land in submission order.
  auto group = std::make_unique<CommitGroupState>();
  while (!write_queue.empty() && write_queue.front()->ready() &&
         group->writes.size() < options.max_group_commit_writes) {
    std::unique_ptr<PendingWrite> write = std::move(write_queue.front());
    write_queue.pop_front();
    if (!write->status.ok()) {
      const Status failure = write->status;
      FailWrite(std::move(write), failure);
    } else if (!metadata_failure.ok()) {
      FailWrite(std::move(write), metadata_failure);
    } else {
      group->writes.push_back(std::move(write));
    }
  }
  if (group->writes.empty()) return;
  WEFT_ASSERT(flushing_groups.size() < 2);
  CommitGroupState* flushing = group.get();
  flushing_groups.push_back(std::move(group));
  commit_in_progress = true;
  // Every write of the group completed before this call, so this flush covers their data, and
  // their ALLOC records, whose PersistMetadata completed too.
  blockstore.Flush(
      [this, flushing](Status flushed) { OnGroupFlushed(flushing, std::move(flushed)); });
}

void ExtentStore::State::OnGroupFlushed(CommitGroupState* group, Status status) {
  WEFT_ASSERT(commit_in_progress);
  WEFT_ASSERT(!group->flushed);
  group->flushed = true;
  group->flush_status = std::move(status);
  ProcessFlushedGroups();
}

void ExtentStore::State::ProcessFlushedGroups() {
  // Groups commit in the order they were formed, one batch at a time; a later group whose flush
  // finished first waits for the earlier one, and every group waits for a batch still running
  // on the commit thread.
  while (!running_commit && !flushing_groups.empty() && flushing_groups.front()->flushed) {
    std::unique_ptr<CommitGroupState> front = std::move(flushing_groups.front());
    flushing_groups.pop_front();
    // Start the next group's flush before this group's RocksDB batch, so that the device
    // flushes while RocksDB syncs its log.
    if (flushing_groups.empty()) StartGroupFlush();
    if (!front->flush_status.ok() || !metadata_failure.ok()) {
      const Status failure =
          !front->flush_status.ok()
              ? front->flush_status.WithContext(fmt::format("disk {}: flush", disk_name))
              : metadata_failure;
      for (std::unique_ptr<PendingWrite>& write : front->writes) {
        FailWrite(std::move(write), failure);
      }
      continue;
    }
    std::unique_ptr<PreparedCommit> prepared = PrepareCommit(std::move(front->writes));
    if (prepared == nullptr) continue;
    // A lone group commits inline: handing it to the thread and back would cost two wake-ups
    // and gain nothing. With more writes behind it, the thread keeps this thread free for them.
    const bool others_waiting = !write_queue.empty() || !flushing_groups.empty();
    if (commit_thread != nullptr && others_waiting) {
      running_commit = std::move(prepared);
      MetadataBatch* batch = running_commit->batch.get();
      commit_thread->Submit(next_commit_ticket++,
                            [this, batch] { return metadata->WriteSynced(*batch); });
      break;
    }
    const Status committed = metadata->WriteSynced(*prepared->batch);
    FinishCommit(std::move(prepared), committed);
  }
  commit_in_progress = !flushing_groups.empty() || running_commit != nullptr;
  TryStartCommit();  // Writes that became ready meanwhile form the next group.
}

size_t ExtentStore::State::CollectCommitResults() {
  if (commit_thread == nullptr) return 0;
  std::vector<std::pair<uint64_t, Status>> results = commit_thread->TakeResults();
  for (auto& [ticket, status] : results) {
    WEFT_ASSERT(running_commit != nullptr);
    WEFT_ASSERT(ticket + 1 == next_commit_ticket);  // One batch at a time, in order.
    FinishCommit(std::move(running_commit), std::move(status));
  }
  if (!results.empty()) ProcessFlushedGroups();
  return results.size();
}

namespace {

// Loads (from RocksDB, or from what the group already composed) the rows of every slot `write`
// touches. Nothing is changed on error.
Status LoadRows(MetadataDb& metadata, const PendingWrite& write, GroupRows& rows) {
  const uint64_t first_block = write.offset_bytes / kChecksumBlockBytes;
  const uint32_t first_slot = static_cast<uint32_t>(first_block / format::kBlocksPerSlot);
  const uint32_t last_slot =
      static_cast<uint32_t>((first_block + write.block_count() - 1) / format::kBlocksPerSlot);
  for (uint32_t slot = first_slot; slot <= last_slot; ++slot) {
    const format::SlotAddress address{write.egroup_id, slot};
    if (rows.slots.contains(address)) continue;
    WEFT_ASSIGN_OR_RETURN(std::optional<format::SlotRows> stored, metadata.GetSlot(address));
    rows.slots[address] = stored ? *stored : format::MakeEmptySlotRows(address);
  }
  return Status::Ok();
}

// Unmaps the trim's blocks; what they pointed at is replaced by nothing.
void ApplyTrim(const PendingWrite& trim, GroupRows& rows, uint32_t& written_block_count) {
  const uint64_t first_block = trim.offset_bytes / kChecksumBlockBytes;
  for (uint32_t index = 0; index < trim.trim_block_count; ++index) {
    const uint64_t egroup_block = first_block + index;
    const format::SlotAddress address{trim.egroup_id,
                                      static_cast<uint32_t>(egroup_block / format::kBlocksPerSlot)};
    format::SlotRows& slot = rows.slots.at(address);
    const uint32_t entry = egroup_block % format::kBlocksPerSlot;
    if (slot.layout.entries[entry] == 0) continue;
    WEFT_ASSERT(written_block_count > 0);
    --written_block_count;
    rows.replaced_blocks.push_back(slot.layout.entries[entry]);
    slot.layout.entries[entry] = 0;
    slot.checksums.entries[entry] = 0;
  }
}

// Points the write's blocks at its new physical blocks; what they pointed at is replaced.
void ApplyWrite(const PendingWrite& write, GroupRows& rows, uint32_t& written_block_count) {
  if (write.is_trim()) {
    ApplyTrim(write, rows, written_block_count);
    return;
  }
  const uint64_t first_block = write.offset_bytes / kChecksumBlockBytes;
  uint32_t index = 0;
  for (const blockstore::BlockRun& run : write.new_runs) {
    for (uint32_t within_run = 0; within_run < run.block_count; ++within_run, ++index) {
      const uint64_t egroup_block = first_block + index;
      const format::SlotAddress address{
          write.egroup_id, static_cast<uint32_t>(egroup_block / format::kBlocksPerSlot)};
      format::SlotRows& slot = rows.slots.at(address);
      const uint32_t entry = egroup_block % format::kBlocksPerSlot;
      const uint64_t physical_block = run.first_block + within_run;
      WEFT_ASSERT(physical_block != 0 && physical_block < kMaxDeviceBlocks);
      if (slot.layout.entries[entry] != 0) {
        rows.replaced_blocks.push_back(slot.layout.entries[entry]);
      } else {
        ++written_block_count;
      }
      slot.layout.entries[entry] = static_cast<uint32_t>(physical_block);
      slot.checksums.entries[entry] = write.checksums[index];
    }
  }
  WEFT_ASSERT(index == write.block_count());
  WEFT_ASSERT(written_block_count <= format::kBlocksPerEgroup);
}

}  // namespace

std::unique_ptr<ExtentStore::State::PreparedCommit> ExtentStore::State::PrepareCommit(
    std::vector<std::unique_ptr<PendingWrite>> group) {
  WEFT_ASSERT(running_commit == nullptr);  // Rows below must be those the last batch left.
  GroupRows rows;
  auto prepared = std::make_unique<PreparedCommit>();
  for (std::unique_ptr<PendingWrite>& write : group) {
    // A row that fails its checks fails only the writes that touch it.
    const Status loaded = LoadRows(*metadata, *write, rows);
    if (!loaded.ok()) {
      FailWrite(std::move(write), loaded);
      continue;
    }
    auto [after, inserted] = rows.egroups.try_emplace(write->egroup_id);
    if (inserted) {
      const LiveEgroup& egroup = egroups.at(write->egroup_id);
      after->second = {egroup.written_block_count, egroup.replica_version};
    }
    ApplyWrite(*write, rows, after->second.written_block_count);
    // Versions only go up here: a write numbered lower than what the replica holds (a retry of
    // an old write, say) must not make the replica look staler than it is.
    after->second.replica_version = std::max(after->second.replica_version, write->replica_version);
    prepared->writes.push_back(std::move(write));
  }
  if (prepared->writes.empty()) return nullptr;
  prepared->batch = std::make_unique<MetadataBatch>(*metadata);
  for (const auto& [address, slot_rows] : rows.slots) prepared->batch->PutSlot(slot_rows);
  // Every touched egroup's row is rewritten, whether its count or its version changed or not:
  // the version must land in this batch, with the block map it describes.
  for (const auto& [egroup_id, after] : rows.egroups) {
    const LiveEgroup& egroup = egroups.at(egroup_id);
    WEFT_ASSERT(after.replica_version >= egroup.replica_version);
    prepared->batch->PutEgroup(format::MakeEgroupRow(egroup_id, after.written_block_count,
                                                     egroup.created_micros, after.replica_version));
  }
  prepared->egroups_after = std::move(rows.egroups);
  prepared->replaced_blocks = std::move(rows.replaced_blocks);
  return prepared;
}

void ExtentStore::State::FinishCommit(std::unique_ptr<PreparedCommit> prepared, Status status) {
  WEFT_ASSERT(prepared != nullptr && prepared->batch != nullptr);
  metadata->ApplyToCache(*prepared->batch, status.ok());
  if (!status.ok()) {
    // Whether the batch reached the log is unknown: keep both the old and the new blocks (a
    // leak the next open reclaims, never a freed block that a row still names).
    metadata_failure = status;
    for (std::unique_ptr<PendingWrite>& write : prepared->writes) {
      FinishWrite(std::move(write), status);
    }
    return;
  }
  ++counters.group_commits;
  for (const auto& [egroup_id, after] : prepared->egroups_after) {
    LiveEgroup& egroup = egroups.at(egroup_id);
    egroup.written_block_count = after.written_block_count;
    egroup.replica_version = after.replica_version;
  }
  DeferFree(std::move(prepared->replaced_blocks));
  for (std::unique_ptr<PendingWrite>& write : prepared->writes) {
    FinishWrite(std::move(write), Status::Ok());
  }
}

void ExtentStore::State::FailWrite(std::unique_ptr<PendingWrite> write, Status status) {
  WEFT_ASSERT(!status.ok());
  WEFT_ASSERT(write->ready());  // No I/O of its own still touches the new blocks.
  // No committed row names the new blocks, so they go straight back.
  for (const blockstore::BlockRun& run : write->new_runs) blockstore.Free(run);
  frees_unpersisted = true;
  FinishWrite(std::move(write), std::move(status));
}

void ExtentStore::State::FinishWrite(std::unique_ptr<PendingWrite> write, Status status) {
  WEFT_ASSERT(inflight_writes > 0);
  --inflight_writes;
  LiveEgroup& egroup = egroups.at(write->egroup_id);
  WEFT_ASSERT(egroup.inflight_writes > 0);
  --egroup.inflight_writes;
  if (status.ok() && write->is_trim()) {
    ++counters.trims;
  } else if (status.ok()) {
    ++counters.writes;
    counters.bytes_written += write->data.size();
  }
  CompleteLater(std::move(write->done), std::move(status));
}

}  // namespace weft::extent_store
