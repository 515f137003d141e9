// ExtentStore: open (header check, load, orphan reclaim), egroup creation and deletion, deferred
// frees and Poll. The write path is in extent_store_write.cc, reads in extent_store_read.cc,
// scrub in extent_store_scrub.cc; the shared state is declared in extent_store_impl.h.
#include "extent_store/extent_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "extent_store/extent_store_impl.h"

namespace weft::extent_store {

// ---- Open ----

Result<std::unique_ptr<ExtentStore>> ExtentStore::Open(blockstore::Blockstore& blockstore,
                                                       const ExtentStoreOptions& options) {
  if (blockstore.block_size_bytes() != kChecksumBlockBytes) {
    return Status::InvalidArgument(
        fmt::format("extent store needs a blockstore with {}-byte blocks, not {}",
                    kChecksumBlockBytes, blockstore.block_size_bytes()));
  }
  if (blockstore.block_count() > kMaxDeviceBlocks) {
    return Status::InvalidArgument(
        fmt::format("extent store supports at most {} blocks per disk, the blockstore has {}",
                    kMaxDeviceBlocks, blockstore.block_count()));
  }
  if (options.max_inflight_writes == 0 || options.max_group_commit_writes == 0) {
    return Status::InvalidArgument("extent store: write limits must be at least 1");
  }
  std::string disk_name =
      options.disk_name.empty() ? blockstore.device().name() : options.disk_name;
  WEFT_ASSIGN_OR_RETURN(std::unique_ptr<MetadataDb> metadata,
                        MetadataDb::Open(options.metadata_path, options.metadata_env, disk_name));
  auto state =
      std::make_unique<State>(blockstore, options, std::move(disk_name), std::move(metadata));
  WEFT_RETURN_IF_ERROR(state->CheckHeader());
  WEFT_RETURN_IF_ERROR(state->LoadEgroups());
  WEFT_RETURN_IF_ERROR(state->LoadLayoutAndReclaim());
  if (options.commit_thread) {
    state->commit_thread = std::make_unique<CommitThread>(blockstore.device());
  }
  return std::unique_ptr<ExtentStore>(new ExtentStore(std::move(state)));
}

ExtentStore::ExtentStore(std::unique_ptr<State> state) : state_(std::move(state)) {}

ExtentStore::~ExtentStore() {
  State& state = *state_;
  // Errors included: after a device crash every operation completes with IOError, so this ends.
  for (;;) {
    state.MaybeStartMetadataSync(/*idle=*/true);
    if (state.Idle()) break;
    const size_t ran = Poll(/*wait=*/true);
    // Something must be in flight while not idle, or a completion was lost.
    WEFT_ASSERT(ran > 0 || state.blockstore.device().inflight_count() > 0);
  }
  WEFT_ASSERT(state.write_queue.empty());
  WEFT_ASSERT(state.inflight_reads.empty());
}

Status ExtentStore::State::CheckHeader() {
  WEFT_ASSIGN_OR_RETURN(std::optional<format::HeaderRow> header, metadata->GetHeader());
  if (!header) {
    // A fresh database. Rows without a header mean the header row was lost: refuse rather than
    // adopt rows that may belong to another blockstore.
    WEFT_ASSIGN_OR_RETURN(bool empty, metadata->HasNoRows());
    if (!empty) {
      return Status::Corruption(
          fmt::format("disk {}: metadata at {} has egroup rows but no header row", disk_name,
                      metadata->path()));
    }
    return metadata->PutHeader(format::MakeHeaderRow(blockstore.uuid(), kChecksumBlockBytes));
  }
  Uuid stored_uuid;
  std::memcpy(stored_uuid.bytes.data(), header->blockstore_uuid, stored_uuid.bytes.size());
  if (stored_uuid != blockstore.uuid()) {
    return Status::InvalidArgument(fmt::format("metadata at {} belongs to blockstore {}, not {}",
                                               metadata->path(), stored_uuid.ToString(),
                                               blockstore.uuid().ToString()));
  }
  if (header->block_size_bytes != kChecksumBlockBytes) {
    return Status::Corruption(fmt::format("disk {}: metadata at {} records a block size of {}",
                                          disk_name, metadata->path(), header->block_size_bytes));
  }
  return Status::Ok();
}

Status ExtentStore::State::LoadEgroups() {
  return metadata->ForEachEgroup(
      [this](EgroupId egroup_id, const Result<format::EgroupRow>& row) -> Status {
        if (!row.ok()) return row.status();
        if (egroups.size() >= kMaxEgroups) {
          return Status::Corruption(
              fmt::format("disk {}: more than {} egroups", disk_name, kMaxEgroups));
        }
        egroups[egroup_id] =
            LiveEgroup{row->created_micros, row->written_block_count, 0, row->replica_version};
        return Status::Ok();
      });
}

Status ExtentStore::State::CheckReferencedBlock(format::SlotAddress address, uint32_t entry,
                                                uint64_t block,
                                                const std::vector<bool>& referenced) const {
  const auto problem = [&](std::string what) {
    return Status::Corruption(fmt::format(
        "disk {} egroup {} offset {}: layout names block {}, {}", disk_name, address.egroup_id,
        address.slot * kExtentBytes + entry * kChecksumBlockBytes, block, what));
  };
  if (block >= device_block_count()) {
    return problem(fmt::format("beyond the device's {} blocks", device_block_count()));
  }
  if (!blockstore.IsAllocated(block)) return problem("which the blockstore has free");
  if (referenced[block]) return problem("which another layout entry also names");
  return Status::Ok();
}

Status ExtentStore::State::LoadLayoutAndReclaim() {
  // Every block a layout row names must be allocated in the blockstore, and only once; what is
  // allocated and named by no row was leaked by a crash and goes back to the free pool.
  std::vector<bool> referenced(device_block_count(), false);
  std::map<EgroupId, uint32_t> written_counts;
  WEFT_RETURN_IF_ERROR(metadata->ForEachSlot(
      [&](format::SlotAddress address, const Result<format::SlotRows>& rows) -> Status {
        if (!rows.ok()) return rows.status();
        if (!egroups.contains(address.egroup_id)) {
          return Status::Corruption(
              fmt::format("disk {} egroup {} slot {}: layout row of an "
                          "egroup that does not exist",
                          disk_name, address.egroup_id, address.slot));
        }
        for (uint32_t entry = 0; entry < format::kBlocksPerSlot; ++entry) {
          const uint64_t block = rows->layout.entries[entry];
          if (block == 0) continue;
          WEFT_RETURN_IF_ERROR(CheckReferencedBlock(address, entry, block, referenced));
          referenced[block] = true;
          ++written_counts[address.egroup_id];
        }
        return Status::Ok();
      }));
  for (const auto& [egroup_id, egroup] : egroups) {
    const uint32_t counted = written_counts.contains(egroup_id) ? written_counts[egroup_id] : 0;
    if (counted != egroup.written_block_count) {
      return Status::Corruption(
          fmt::format("disk {} egroup {}: egroup row counts {} written blocks, its layout rows {}",
                      disk_name, egroup_id, egroup.written_block_count, counted));
    }
  }
  WEFT_ASSIGN_OR_RETURN(
      uint64_t reclaimed,
      blockstore.ReclaimUnreferenced([&referenced](uint64_t block) { return referenced[block]; }));
  counters.orphan_blocks_reclaimed = reclaimed;
  if (reclaimed > 0) {
    spdlog::info("extent store: disk {}: reclaimed {} orphan blocks", disk_name, reclaimed);
  }
  return Status::Ok();
}

// ---- Egroups ----

Status ExtentStore::CreateEgroup(EgroupId egroup_id, uint64_t replica_version) {
  State& state = *state_;
  if (!state.metadata_failure.ok()) return state.metadata_failure;
  if (state.egroups.contains(egroup_id)) {
    return Status::AlreadyExists(
        fmt::format("disk {} egroup {} already exists", state.disk_name, egroup_id));
  }
  if (state.egroups.size() >= kMaxEgroups) {
    return Status::NoSpace(
        fmt::format("disk {}: egroup limit of {} reached", state.disk_name, kMaxEgroups));
  }
  const uint64_t created_micros = state.metadata->NowMicros();
  MetadataBatch batch(*state.metadata);
  batch.PutEgroup(format::MakeEgroupRow(egroup_id, 0, created_micros, replica_version));
  const Status committed = state.metadata->Commit(batch);
  if (!committed.ok()) {
    state.metadata_failure = committed;
    return committed;
  }
  state.egroups[egroup_id] = LiveEgroup{created_micros, 0, 0, replica_version};
  return Status::Ok();
}

Status ExtentStore::DeleteEgroup(EgroupId egroup_id) {
  State& state = *state_;
  if (!state.metadata_failure.ok()) return state.metadata_failure;
  auto egroup = state.egroups.find(egroup_id);
  if (egroup == state.egroups.end()) {
    return Status::NotFound(
        fmt::format("disk {} egroup {} does not exist", state.disk_name, egroup_id));
  }
  if (egroup->second.inflight_writes > 0) {
    return Status::Busy(fmt::format("disk {} egroup {}: {} writes in flight", state.disk_name,
                                    egroup_id, egroup->second.inflight_writes));
  }
  std::vector<uint64_t> blocks;
  for (uint32_t slot = 0; slot < format::kSlotsPerEgroup; ++slot) {
    WEFT_ASSIGN_OR_RETURN(std::optional<format::SlotRows> rows,
                          state.metadata->GetSlot({egroup_id, slot}));
    if (!rows) continue;
    for (const uint32_t block : rows->layout.entries) {
      if (block != 0) blocks.push_back(block);
    }
  }
  if (blocks.size() != egroup->second.written_block_count) {
    return Status::Corruption(
        fmt::format("disk {} egroup {}: layout rows name {} blocks, the egroup row counts {}",
                    state.disk_name, egroup_id, blocks.size(), egroup->second.written_block_count));
  }
  MetadataBatch batch(*state.metadata);
  batch.DeleteEgroup(egroup_id);
  const Status committed = state.metadata->Commit(batch);
  if (!committed.ok()) {
    state.metadata_failure = committed;
    return committed;
  }
  state.egroups.erase(egroup);
  // The removal is durable; reads that looked the blocks up before it may still be running.
  state.DeferFree(std::move(blocks));
  return Status::Ok();
}

namespace {

EgroupInfo InfoOf(EgroupId egroup_id, const LiveEgroup& egroup) {
  return {egroup_id, uint64_t{egroup.written_block_count} * kChecksumBlockBytes,
          egroup.replica_version};
}

}  // namespace

std::vector<EgroupInfo> ExtentStore::ListEgroups() const {
  std::vector<EgroupInfo> list;
  list.reserve(state_->egroups.size());
  for (const auto& [egroup_id, egroup] : state_->egroups) list.push_back(InfoOf(egroup_id, egroup));
  return list;
}

Result<EgroupInfo> ExtentStore::GetEgroup(EgroupId egroup_id) const {
  const auto found = state_->egroups.find(egroup_id);
  if (found == state_->egroups.end()) {
    return Status::NotFound(
        fmt::format("disk {} egroup {} does not exist", state_->disk_name, egroup_id));
  }
  return InfoOf(egroup_id, found->second);
}

Result<uint64_t> ExtentStore::ReplicaVersion(EgroupId egroup_id) const {
  WEFT_ASSIGN_OR_RETURN(EgroupInfo info, GetEgroup(egroup_id));
  return info.replica_version;
}

Status ExtentStore::SetReplicaVersion(EgroupId egroup_id, uint64_t replica_version) {
  State& state = *state_;
  if (!state.metadata_failure.ok()) return state.metadata_failure;
  auto egroup = state.egroups.find(egroup_id);
  if (egroup == state.egroups.end()) {
    return Status::NotFound(
        fmt::format("disk {} egroup {} does not exist", state.disk_name, egroup_id));
  }
  // A write in flight carries its own version, and its batch is prepared from the version
  // committed before it: setting one now could be undone by it, or undo it.
  if (egroup->second.inflight_writes > 0 || state.HasWaitingWrites(egroup_id)) {
    return Status::Busy(
        fmt::format("disk {} egroup {}: writes in flight, the replica version "
                    "cannot be set",
                    state.disk_name, egroup_id));
  }
  MetadataBatch batch(*state.metadata);
  batch.PutEgroup(format::MakeEgroupRow(egroup_id, egroup->second.written_block_count,
                                        egroup->second.created_micros, replica_version));
  const Status committed = state.metadata->Commit(batch);
  if (!committed.ok()) {
    state.metadata_failure = committed;
    return committed;
  }
  egroup->second.replica_version = replica_version;
  return Status::Ok();
}

ExtentStoreStats ExtentStore::stats() const {
  ExtentStoreStats stats = state_->counters;
  stats.egroups = state_->egroups.size();
  stats.blockstore = state_->blockstore.stats();
  stats.metadata_cache_hits = state_->metadata->slot_cache().hits();
  stats.metadata_cache_misses = state_->metadata->slot_cache().misses();
  return stats;
}

// ---- Completions and polling ----

void ExtentStore::State::CompleteLater(std::function<void(Status)> done, Status status) {
  WEFT_ASSERT(done != nullptr);
  ready_completions.emplace_back(std::move(done), std::move(status));
}

size_t ExtentStore::State::RunReadyCompletions() {
  // Only those ready now: completions that submit more work have theirs run by the next Poll.
  std::deque<std::pair<std::function<void(Status)>, Status>> batch;
  batch.swap(ready_completions);
  for (auto& [done, status] : batch) done(std::move(status));
  return batch.size();
}

size_t ExtentStore::Poll(bool wait) {
  State& state = *state_;
  size_t ran = state.RunReadyCompletions() + state.CollectCommitResults();
  // About to block with nothing of our own in flight: a good moment to persist FREE records.
  // Doing it while writes stream in would put an extra page write and flush in their way.
  const bool idle = ran == 0 && state.write_queue.empty() && !state.commit_in_progress;
  state.MaybeStartMetadataSync(idle);
  if (wait && ran == 0 && state.running_commit != nullptr) {
    // Waiting on the commit thread as well as on the device: its Wake() ends the wait. A wake
    // left over from earlier may end one wait early, hence the loop: Poll(true) returns 0 only
    // when there is nothing left to wait for.
    while (ran == 0 && state.running_commit != nullptr) {
      ran += state.blockstore.PollUntilWoken();
      ran += state.CollectCommitResults();
    }
  } else {
    ran += state.blockstore.Poll(wait && ran == 0);
  }
  // Completions that became ready in there run at the start of the next Poll (which then does
  // not block), not here: a crash can then fall between a commit and its acknowledgement, which
  // the crash loop needs to show that such writes are all-or-nothing too.
  return ran;
}

bool ExtentStore::State::Idle() const {
  return inflight_writes == 0 && write_queue.empty() && !commit_in_progress &&
         inflight_reads.empty() && !metadata_sync_in_progress && ready_completions.empty() &&
         space_waiters.empty() && running_commit == nullptr;
}

bool ExtentStore::State::HasWaitingWrites(EgroupId egroup_id) const {
  WEFT_ASSERT(space_waiters.size() <= kMaxSpaceWaiters);  // Bounds the scan.
  return std::any_of(
      space_waiters.begin(), space_waiters.end(),
      [egroup_id](const SpaceWaiter& waiter) { return waiter.egroup_id == egroup_id; });
}

// ---- Deferred frees ----

uint64_t ExtentStore::State::OldestReaderSequence() const {
  uint64_t oldest = std::numeric_limits<uint64_t>::max();
  if (!inflight_reads.empty()) oldest = inflight_reads.begin()->first;
  if (scrub_sequence) oldest = std::min(oldest, *scrub_sequence);
  return oldest;
}

void ExtentStore::State::DeferFree(std::vector<uint64_t> blocks) {
  if (blocks.empty()) return;
  // Reads that start from now on see the new rows; older ones hold these blocks back.
  const uint64_t commit_sequence = next_sequence++;
  WEFT_ASSERT(deferred_frees.empty() || deferred_frees.back().commit_sequence < commit_sequence);
  deferred_frees.push_back({commit_sequence, std::move(blocks)});
  ReleaseDeferredFrees();
}

void ExtentStore::State::ReleaseDeferredFrees() {
  const uint64_t oldest_reader = OldestReaderSequence();
  while (!deferred_frees.empty() && deferred_frees.front().commit_sequence < oldest_reader) {
    FreeBlocks(std::move(deferred_frees.front().blocks));
    deferred_frees.pop_front();
  }
}

void ExtentStore::State::FreeBlocks(std::vector<uint64_t> blocks) {
  std::sort(blocks.begin(), blocks.end());
  size_t index = 0;
  while (index < blocks.size()) {
    size_t end = index + 1;
    while (end < blocks.size() && blocks[end] == blocks[end - 1] + 1 &&
           end - index < blockstore.max_run_blocks()) {
      ++end;
    }
    // A block listed twice would be a double free: two rows named it, or one commit replaced it
    // twice.
    WEFT_ASSERT(end == blocks.size() || blocks[end] != blocks[end - 1]);
    const blockstore::BlockRun run{blocks[index], static_cast<uint32_t>(end - index)};
    WEFT_ASSERT(blockstore.IsAllocated(run.first_block));
    blockstore.Free(run);
    frees_unpersisted = true;
    index = end;
  }
}

bool ExtentStore::State::FreesOnTheirWay() const {
  return frees_unpersisted || metadata_sync_in_progress || !deferred_frees.empty() ||
         blockstore.stats().quarantined_blocks > 0;
}

void ExtentStore::State::MaybeStartMetadataSync(bool idle) {
  // FREE records normally ride along with the next write's PersistMetadata and group Flush.
  // They are persisted on their own when nothing else is going on, when writes wait for the
  // space, or when free space is low (under 1/8 of the disk).
  if (metadata_sync_in_progress || commit_in_progress) return;
  const blockstore::BlockstoreStats stats = blockstore.stats();
  // Writes waiting for space also need quarantined blocks whose FREE records are written but
  // not yet flushed.
  const bool waiters_need_flush = !space_waiters.empty() && stats.quarantined_blocks > 0;
  if (!frees_unpersisted && !waiters_need_flush) return;
  const bool low_space = stats.free_blocks < stats.data_blocks / 8;
  if (!idle && space_waiters.empty() && !low_space) return;
  frees_unpersisted = false;
  metadata_sync_in_progress = true;
  blockstore.PersistMetadata([this](Status persisted) {
    if (!persisted.ok()) {
      // The FREE records stay unwritten: the blocks are leaked until the next open reclaims
      // them, which is safe. Waiting writes fail rather than wait for space that cannot come.
      metadata_sync_in_progress = false;
      RetrySpaceWaiters(/*may_wait_again=*/false);
      return;
    }
    blockstore.Flush([this](Status flushed) {
      // Same as above: an unflushed FREE is a leak, not a hazard.
      metadata_sync_in_progress = false;
      RetrySpaceWaiters(/*may_wait_again=*/flushed.ok());
    });
  });
}

void ExtentStore::State::RetrySpaceWaiters(bool may_wait_again) {
  // Each retry either allocates, waits again (more frees still on their way), or fails NoSpace.
  std::deque<SpaceWaiter> waiters = std::move(space_waiters);
  space_waiters.clear();
  space_waiting_allowed = may_wait_again;
  for (SpaceWaiter& waiter : waiters) {
    if (waiter.trim_length_bytes > 0) {
      SubmitTrim(waiter.egroup_id, waiter.offset_bytes, waiter.trim_length_bytes,
                 std::move(waiter.done), waiter.replica_version);
    } else {
      SubmitWrite(waiter.egroup_id, waiter.offset_bytes, waiter.data, std::move(waiter.done),
                  waiter.replica_version);
    }
  }
  space_waiting_allowed = true;
}

// ---- Shared helpers ----

Status ExtentStore::State::ValidateRange(std::string_view operation, EgroupId egroup_id,
                                         uint64_t offset_bytes, uint64_t length_bytes,
                                         uint64_t length_bytes_max) const {
  const auto invalid = [&](std::string_view why) {
    return Status::InvalidArgument(fmt::format("disk {} egroup {}: {} at offset {} length {}: {}",
                                               disk_name, egroup_id, operation, offset_bytes,
                                               length_bytes, why));
  };
  if (offset_bytes % kChecksumBlockBytes != 0) return invalid("offset is not a multiple of 4 KiB");
  if (length_bytes % kChecksumBlockBytes != 0) return invalid("length is not a multiple of 4 KiB");
  if (length_bytes == 0) return invalid("length is zero");
  if (length_bytes > length_bytes_max) {
    return invalid(fmt::format("length is over {} KiB", length_bytes_max / 1024));
  }
  if (offset_bytes > kEgroupMaxBytes || length_bytes > kEgroupMaxBytes - offset_bytes) {
    return invalid("range ends beyond the egroup's 4 MiB");
  }
  if (!egroups.contains(egroup_id)) {
    return Status::NotFound(fmt::format("disk {} egroup {} does not exist", disk_name, egroup_id));
  }
  return Status::Ok();
}

std::vector<ContiguousStretch> FindContiguousStretches(std::span<const uint32_t> physical_blocks) {
  std::vector<ContiguousStretch> stretches;
  for (uint32_t index = 0; index < physical_blocks.size(); ++index) {
    const uint64_t block = physical_blocks[index];
    if (block == 0) continue;
    if (!stretches.empty()) {
      ContiguousStretch& last = stretches.back();
      if (last.first_index + last.block_count == index &&
          last.first_block + last.block_count == block) {
        ++last.block_count;
        continue;
      }
    }
    stretches.push_back({index, 1, block});
  }
  return stretches;
}

}  // namespace weft::extent_store
