// The block map: creating a vBlock's mapping on its first write, egroups and their slots,
// loading both at open, and destroying them when the vDisk is deleted or shrunk.
//
// Ordering without cross-row transactions (docs/ondisk/vdisk_metadata.md): a row is written only
// after what it points to exists. An egroup row is written before the egroup is created in its
// disk's extent store (a crash in between leaves a row for an egroup the store lacks: Load
// creates it, empty); a block-map row is written after its egroup exists and before any data
// goes to its slot (a crash in between leaves a mapping to an unwritten slot: zeros, and the
// write was never acknowledged). Deletion goes the other way: block-map rows, then egroups.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <bit>

#include "vdisk/vdisk_controller.h"
#include "vdisk/vdisk_controller_impl.h"

namespace weft::vdisk {

namespace {
constexpr uint32_t kScanBatchRows = 1000;
constexpr uint32_t kAllSlotsMask = (1u << kSlotsPerEgroup) - 1;
}  // namespace

void VdiskController::CreateMapping(uint64_t vblock) {
  ReserveSlot([this, vblock](Result<Extent> extent) {
    if (!extent.ok()) return OnMappingCreated(vblock, extent.status());
    records::VblockMapping mapping;
    mapping.set_format_version(1);
    mapping.set_egroup_id(extent->egroup_id);
    mapping.set_slot(extent->slot);
    context_.metadata->CompareAndSet(BlockMapKey(id(), vblock), 0, Encode(mapping),
                                     [this, vblock, extent = *extent](Result<uint64_t> set) {
                                       // On failure the slot stays reserved: the row may have
                                       // reached the store (an unknown outcome), and two vBlocks
                                       // must never share a slot.
                                       if (set.ok()) block_map_[vblock] = extent;
                                       OnMappingCreated(vblock, set.status());
                                     });
  });
}

void VdiskController::OnMappingCreated(uint64_t vblock, Status status) {
  VblockQueue& queue = queues_.at(vblock);
  WEFT_ASSERT(queue.mapping);
  queue.mapping = false;
  if (!status.ok()) {
    const Status failure = status.WithContext(
        fmt::format("vdisk {} vblock {}: creating its block-map entry", record_.name(), vblock));
    spdlog::warn("{}", failure.ToString());
    std::deque<std::unique_ptr<Piece>> waiting = std::move(queue.waiting);
    queue.waiting.clear();
    MaybeForgetQueue(vblock);
    for (std::unique_ptr<Piece>& piece : waiting) FinishPiece(*piece->operation, failure);
    return;
  }
  Pump(vblock);
}

void VdiskController::ReserveSlot(std::function<void(Result<Extent>)> done) {
  slot_waiters_.push_back(std::move(done));
  ServeSlotWaiters(Status::Ok());
}

void VdiskController::ServeSlotWaiters(Status status) {
  while (!slot_waiters_.empty()) {
    if (!status.ok()) {
      std::function<void(Result<Extent>)> waiter = std::move(slot_waiters_.front());
      slot_waiters_.pop_front();
      waiter(status);
      continue;
    }
    if (open_egroup_ == 0) {
      if (!creating_egroup_) CreateEgroup();
      return;
    }
    EgroupState& egroup = egroups_.at(open_egroup_);
    WEFT_ASSERT(egroup.used_slots_mask != kAllSlotsMask);
    const auto slot = static_cast<uint32_t>(std::countr_one(egroup.used_slots_mask));
    WEFT_ASSERT(slot < kSlotsPerEgroup);
    egroup.used_slots_mask |= 1u << slot;
    const Extent extent{open_egroup_, slot};
    if (egroup.used_slots_mask == kAllSlotsMask) open_egroup_ = 0;
    std::function<void(Result<Extent>)> waiter = std::move(slot_waiters_.front());
    slot_waiters_.pop_front();
    waiter(extent);
  }
}

void VdiskController::CreateEgroup() {
  WEFT_ASSERT(!creating_egroup_);
  creating_egroup_ = true;
  context_.egroup_ids->Allocate(
      [this](Result<uint64_t> egroup_id) { OnEgroupIdAllocated(std::move(egroup_id)); });
}

void VdiskController::OnEgroupIdAllocated(Result<uint64_t> egroup_id) {
  auto fail = [this](Status status) {
    creating_egroup_ = false;
    ServeSlotWaiters(status.WithContext(fmt::format("vdisk {}: new egroup", record_.name())));
  };
  if (!egroup_id.ok()) return fail(egroup_id.status());
  if (replicated()) return CreateReplicatedEgroup(*egroup_id, 0);
  NodeDisk* disk = ChooseDiskForNewEgroup(*context_.disks);
  if (disk == nullptr) return fail(Status::NoSpace("this node has no disks"));
  records::Egroup record;
  record.set_format_version(1);
  record.set_egroup_id(*egroup_id);
  record.set_vdisk_id(id());
  record.set_disk_uuid(disk->uuid);
  context_.metadata->CompareAndSet(EgroupKey(id(), *egroup_id), 0, Encode(record),
                                   [this, fail, disk, id = *egroup_id](Result<uint64_t> set) {
                                     if (!set.ok()) return fail(set.status());
                                     const Status created = disk->store->CreateEgroup(id);
                                     if (!created.ok()) return fail(created);
                                     EgroupState state;
                                     state.disk = disk;
                                     state.row_version = *set;
                                     egroups_[id] = std::move(state);
                                     open_egroup_ = id;
                                     creating_egroup_ = false;
                                     ServeSlotWaiters(Status::Ok());
                                   });
}

// ---- Load ----

void VdiskController::Load(Completion done) {
  WEFT_ASSERT(done != nullptr);
  WEFT_ASSERT(egroups_.empty() && block_map_.empty());
  LoadEgroups("", [this, done = std::move(done)](Status status) mutable {
    if (!status.ok()) return done(status);
    LoadBlockMap("", [this, done = std::move(done)](Status loaded) {
      if (loaded.ok()) {
        // Reuse a partly used egroup for the next new vBlocks.
        for (const auto& [egroup_id, egroup] : egroups_) {
          if (egroup.used_slots_mask != kAllSlotsMask) open_egroup_ = egroup_id;
        }
      }
      // The OpLog replays into its index before the vDisk serves any I/O.
      if (!loaded.ok() || oplog_state_ != OplogState::kClosed) return done(loaded);
      OpenOplog([this, done](Status opened) {
        done(opened.ok() ? opened
                         : opened.WithContext(
                               fmt::format("vdisk {}: replaying its oplog", record_.name())));
      });
    });
  });
}

void VdiskController::LoadEgroups(std::string start_after, Completion done) {
  context_.metadata->Scan(
      EgroupPrefix(id()), std::move(start_after), kScanBatchRows,
      [this, done = std::move(done)](Result<std::vector<metadata::Row>> rows) mutable {
        if (!rows.ok()) return done(rows.status());
        for (const metadata::Row& row : *rows) {
          const Status added = AddLoadedEgroup(row);
          if (!added.ok()) return done(added);
        }
        if (rows->size() < kScanBatchRows) return done(Status::Ok());
        LoadEgroups(rows->back().key, std::move(done));
      });
}

Status VdiskController::AddLoadedEgroup(const metadata::Row& row) {
  records::Egroup record;
  WEFT_RETURN_IF_ERROR(Decode(row.key, row.value, record));
  if (record.vdisk_id() != id() || record.egroup_id() == 0) {
    return Status::Corruption(fmt::format("metadata row {}: names vdisk {} egroup {}", row.key,
                                          record.vdisk_id(), record.egroup_id()));
  }
  if (!record.replicas().empty()) {
    // A replicated egroup: the local replica, if the row lists one, must be here; a replica
    // that is missing is stale (the takeover's reconciliation drops it from the row).
    EgroupState state;
    const uint32_t local = context_.peers != nullptr ? context_.peers->local_node_id() : 0;
    for (const records::EgroupReplica& replica : record.replicas()) {
      state.replicas.push_back({replica.node_id(), replica.disk_uuid()});
      if (replica.node_id() != local) continue;
      for (NodeDisk& candidate : *context_.disks) {
        if (candidate.uuid == replica.disk_uuid() &&
            candidate.store->GetEgroup(record.egroup_id()).ok()) {
          state.disk = &candidate;
        }
      }
    }
    if (state.disk != nullptr) {
      Result<uint64_t> version = state.disk->store->ReplicaVersion(record.egroup_id());
      if (version.ok()) state.replica_version = state.committed_version = *version;
    } else {
      state.version_known = false;
    }
    state.row_version = row.version;
    egroups_[record.egroup_id()] = std::move(state);
    return Status::Ok();
  }
  NodeDisk* disk = nullptr;
  for (NodeDisk& candidate : *context_.disks) {
    if (candidate.uuid == record.disk_uuid()) disk = &candidate;
  }
  if (disk == nullptr) {
    return Status::NotFound(fmt::format(
        "vdisk {} egroup {} is on disk {}, which this node does not have (was a --disk left "
        "out?)",
        record_.name(), record.egroup_id(), record.disk_uuid()));
  }
  Result<extent_store::EgroupInfo> info = disk->store->GetEgroup(record.egroup_id());
  if (!info.ok()) {
    // The row was written and the node stopped before the egroup was created: nothing can
    // have been written to it, so create it empty.
    if (!info.status().IsNotFound()) return info.status();
    WEFT_RETURN_IF_ERROR(disk->store->CreateEgroup(record.egroup_id()));
  }
  EgroupState state;
  state.disk = disk;
  state.row_version = row.version;
  egroups_[record.egroup_id()] = std::move(state);
  return Status::Ok();
}

void VdiskController::LoadBlockMap(std::string start_after, Completion done) {
  context_.metadata->Scan(
      BlockMapPrefix(id()), std::move(start_after), kScanBatchRows,
      [this, done = std::move(done)](Result<std::vector<metadata::Row>> rows) mutable {
        if (!rows.ok()) return done(rows.status());
        for (const metadata::Row& row : *rows) {
          const Status added = AddLoadedMapping(row);
          if (!added.ok()) return done(added);
        }
        if (rows->size() < kScanBatchRows) return done(Status::Ok());
        LoadBlockMap(rows->back().key, std::move(done));
      });
}

Status VdiskController::AddLoadedMapping(const metadata::Row& row) {
  records::VblockMapping mapping;
  WEFT_RETURN_IF_ERROR(Decode(row.key, row.value, mapping));
  WEFT_ASSIGN_OR_RETURN(const uint64_t vblock, ParseKeySuffix(row.key));
  const auto egroup = egroups_.find(mapping.egroup_id());
  if (egroup == egroups_.end()) {
    return Status::Corruption(fmt::format("metadata row {}: names egroup {}, which vdisk {} lacks",
                                          row.key, mapping.egroup_id(), record_.name()));
  }
  const uint32_t slot_bit = 1u << mapping.slot();
  if ((egroup->second.used_slots_mask & slot_bit) != 0) {
    return Status::Corruption(fmt::format("metadata row {}: egroup {} slot {} is mapped twice",
                                          row.key, mapping.egroup_id(), mapping.slot()));
  }
  egroup->second.used_slots_mask |= slot_bit;
  block_map_[vblock] = Extent{mapping.egroup_id(), mapping.slot()};
  return Status::Ok();
}

// ---- Resize and destroy ----

void VdiskController::Resize(records::Vdisk updated_record, Completion done) {
  WEFT_ASSERT(updated_record.id() == id());
  const uint64_t old_size_bytes = size_bytes();
  record_ = std::move(updated_record);
  if (size_bytes() >= old_size_bytes) {
    CompleteLater(std::move(done), Status::Ok());
    return;
  }
  const uint64_t new_size_bytes = size_bytes();
  if (oplog_state_ == OplogState::kOpen &&
      oplog_->index().Overlaps(new_size_bytes, old_size_bytes - new_size_bytes)) {
    // OpLog data past the new end: zero records over it first (ordered after that data, so a
    // replay or a drain cannot bring it back), then free the extents.
    Dispatch(
        kUnmap, new_size_bytes, old_size_bytes - new_size_bytes, {},
        [this, alive = alive_, new_size_bytes, done = std::move(done)](Status status) mutable {
          if (!*alive) return;
          if (!status.ok()) return done(status);
          TrimBeyond(new_size_bytes, std::move(done));
        },
        /*to_oplog=*/false, /*direct_parts=*/false);
    return;
  }
  TrimBeyond(new_size_bytes, std::move(done));
}

void VdiskController::TrimBeyond(uint64_t new_size_bytes, Completion done) {
  // Only mapped vBlocks hold anything to free; visit those, not the whole old address space.
  std::vector<uint64_t> vblocks;
  for (const auto& [vblock, extent] : block_map_) {
    if ((vblock + 1) * kVblockBytes > new_size_bytes) vblocks.push_back(vblock);
  }
  if (vblocks.empty()) {
    CompleteLater(std::move(done), Status::Ok());
    return;
  }
  struct Countdown {
    size_t outstanding = 0;
    Status status;
    Completion done;
  };
  auto countdown = std::make_shared<Countdown>();
  countdown->outstanding = vblocks.size();
  countdown->done = std::move(done);
  for (uint64_t vblock : vblocks) {
    const uint64_t start = std::max(new_size_bytes, vblock * kVblockBytes);
    Mutate(
        kUnmap, start, (vblock + 1) * kVblockBytes - start, {},
        [countdown](Status status) {
          if (!status.ok() && countdown->status.ok()) countdown->status = status;
          if (--countdown->outstanding == 0) countdown->done(countdown->status);
        },
        /*check_range=*/false);
  }
}

void VdiskController::DestroyData(Completion done) {
  WEFT_ASSERT(inflight_operations_ == 0);
  // The drain stops first; the OpLog's files go before the block map, so that no replay can
  // bring back data of a vDisk whose extents are gone.
  Quiesce([this, alive = alive_, done = std::move(done)](Status status) mutable {
    if (!*alive) return;
    if (status.ok() && oplog_ != nullptr) status = oplog_->DestroyFiles();
    if (!status.ok()) return done(status);
    if (context_.io.cache != nullptr) context_.io.cache->InvalidateVdisk(id());
    DestroyExtents(std::move(done));
  });
}

void VdiskController::DestroyExtents(Completion done) {
  DestroyBlockMapRows([this, done = std::move(done)](Status status) mutable {
    if (!status.ok()) return done(status);
    block_map_.clear();
    DestroyNextEgroup(std::move(done));
  });
}

void VdiskController::DestroyBlockMapRows(Completion done) {
  // Rows are deleted a batch at a time, then the prefix is scanned again until it is empty.
  context_.metadata->Scan(
      BlockMapPrefix(id()), "", kScanBatchRows,
      [this, done = std::move(done)](Result<std::vector<metadata::Row>> rows) mutable {
        if (!rows.ok()) return done(rows.status());
        if (rows->empty()) return done(Status::Ok());
        auto countdown = std::make_shared<std::pair<size_t, Status>>(rows->size(), Status::Ok());
        auto shared_done = std::make_shared<Completion>(std::move(done));
        for (const metadata::Row& row : *rows) {
          context_.metadata->CompareAndDelete(row.key, row.version,
                                              [this, countdown, shared_done](Status status) {
                                                if (!status.ok() && countdown->second.ok())
                                                  countdown->second = status;
                                                if (--countdown->first > 0) return;
                                                if (!countdown->second.ok())
                                                  return (*shared_done)(countdown->second);
                                                DestroyBlockMapRows(std::move(*shared_done));
                                              });
        }
      });
}

void VdiskController::DestroyNextEgroup(Completion done) {
  if (egroups_.empty()) return done(Status::Ok());
  const uint64_t egroup_id = egroups_.begin()->first;
  const EgroupState& egroup = egroups_.begin()->second;
  if (egroup.disk != nullptr) {
    const Status deleted = egroup.disk->store->DeleteEgroup(egroup_id);
    if (!deleted.ok() && !deleted.IsNotFound()) return done(deleted);
  }
  if (context_.peers != nullptr) {
    // Remote replicas: best effort (a node that is down keeps an unlisted replica, which is
    // never served; the background scan collects it).
    for (const Replica& replica : egroup.replicas) {
      if (replica.node_id == context_.peers->local_node_id()) continue;
      context_.peers->EgroupDelete(replica.node_id, egroup_id, [](Status) {});
    }
  }
  context_.metadata->Get(EgroupKey(id(), egroup_id), [this, egroup_id, done = std::move(done)](
                                                         Result<metadata::Row> row) mutable {
    if (!row.ok() && !row.status().IsNotFound()) return done(row.status());
    auto next = [this, egroup_id, done = std::move(done)](Status status) mutable {
      if (!status.ok()) return done(status);
      egroups_.erase(egroup_id);
      if (open_egroup_ == egroup_id) open_egroup_ = 0;
      DestroyNextEgroup(std::move(done));
    };
    if (!row.ok()) return next(Status::Ok());
    context_.metadata->CompareAndDelete(row->key, row->version, std::move(next));
  });
}

}  // namespace weft::vdisk
