// The replicated data path of the vDisk controller (docs/protocol/replication.md): egroup
// writes and reads on every replica, replica replacement, repair and localization, the
// replicated OpLog, and the takeover's reconciliation of replica versions.
//
// A vDisk with replication_factor 1 (or a node without peers) takes the single-replica paths at
// the top of each function, which are the extent-store calls the controller always made.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "base/crc32c.h"
#include "vdisk/vdisk_controller.h"
#include "vdisk/vdisk_controller_impl.h"

namespace weft::vdisk {

namespace {

// Attempts of one egroup write (each after replacing the replicas that failed the previous).
constexpr uint32_t kEgroupMutateAttemptsMax = 4;
constexpr uint32_t kCreateAttemptsMax = 4;
constexpr uint64_t kCopyChunkBytes = extent_store::kMaxIoBytes;

bool IsStaleEpoch(const Status& status) {
  return status.IsAborted() && status.message().find("stale epoch") != std::string::npos;
}

// Whether no live holder among `holders` shares this node's fault domain.
bool LocalDomainFree(const PeerIo& peers, const std::vector<uint32_t>& holders) {
  const std::string domain = peers.local_fault_domain();
  if (domain.empty()) return true;  // Its own domain.
  for (const PeerNode& peer : peers.LivePeers()) {
    const bool holder = std::find(holders.begin(), holders.end(), peer.node_id) != holders.end();
    if (holder && peer.fault_domain == domain) return false;
  }
  return true;
}

bool AllZero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace

struct VdiskController::EgroupMutation {
  uint64_t egroup_id = 0;
  uint64_t order = 0;  // Submission order within the controller.
  uint64_t offset_bytes = 0;
  uint64_t length_bytes = 0;
  std::span<const std::byte> data;  // Empty: a trim.
  Completion done;
  uint32_t attempt = 0;
};

records::Egroup VdiskController::EgroupRecord(uint64_t egroup_id) const {
  const EgroupState& egroup = egroups_.at(egroup_id);
  records::Egroup record;
  record.set_format_version(1);
  record.set_egroup_id(egroup_id);
  record.set_vdisk_id(id());
  if (egroup.disk != nullptr) record.set_disk_uuid(egroup.disk->uuid);
  for (const Replica& replica : egroup.replicas) {
    records::EgroupReplica* entry = record.add_replicas();
    entry->set_node_id(replica.node_id);
    entry->set_disk_uuid(replica.disk_uuid);
  }
  return record;
}

Result<std::vector<uint32_t>> VdiskController::ChooseNodes(uint32_t count,
                                                           const std::vector<uint32_t>& holders,
                                                           bool local_holds,
                                                           uint64_t spread) const {
  WEFT_ASSERT(context_.peers != nullptr);
  const std::vector<PeerNode> live = context_.peers->LivePeers();
  std::set<std::string> taken_domains;
  if (local_holds && !context_.peers->local_fault_domain().empty()) {
    taken_domains.insert(context_.peers->local_fault_domain());
  }
  for (const PeerNode& peer : live) {
    const bool holder = std::find(holders.begin(), holders.end(), peer.node_id) != holders.end();
    if (holder && !peer.fault_domain.empty()) taken_domains.insert(peer.fault_domain);
  }
  std::vector<PeerNode> candidates;
  for (const PeerNode& peer : live) {
    if (peer.node_id == context_.peers->local_node_id()) continue;
    if (std::find(holders.begin(), holders.end(), peer.node_id) != holders.end()) continue;
    if (!peer.fault_domain.empty() && taken_domains.contains(peer.fault_domain)) continue;
    candidates.push_back(peer);
  }
  // Nodes with the most free space first; among nodes within 10% of each other, a rotation by
  // `spread` (the egroup or vDisk id), so that copies spread over the cluster.
  std::sort(candidates.begin(), candidates.end(),
            [](const PeerNode& a, const PeerNode& b) { return a.node_id < b.node_id; });
  if (!candidates.empty()) {
    std::rotate(candidates.begin(), candidates.begin() + spread % candidates.size(),
                candidates.end());
  }
  std::stable_sort(candidates.begin(), candidates.end(), [](const PeerNode& a, const PeerNode& b) {
    return a.free_bytes / 10 * 9 > b.free_bytes;
  });
  std::vector<uint32_t> chosen;
  for (const PeerNode& candidate : candidates) {
    if (chosen.size() == count) break;
    if (!candidate.fault_domain.empty()) {
      if (taken_domains.contains(candidate.fault_domain)) continue;  // Two in one domain.
      taken_domains.insert(candidate.fault_domain);
    }
    chosen.push_back(candidate.node_id);
  }
  if (chosen.size() < count) {
    return Status::Unavailable(fmt::format(
        "vdisk {}: {} more cop{} needed on other nodes (and fault domains), {} live node{} "
        "to hold them",
        record_.name(), count, count == 1 ? "y" : "ies", chosen.size(),
        chosen.size() == 1 ? "" : "s"));
  }
  WEFT_ASSERT(chosen.size() == count);
  return chosen;
}

// ---- Egroup writes ----

void VdiskController::EgroupMutate(uint64_t egroup_id, uint64_t offset_bytes, uint64_t length_bytes,
                                   std::span<const std::byte> data, Completion done) {
  EgroupState& egroup = egroups_.at(egroup_id);
  if (!replicated()) {
    WEFT_ASSERT(egroup.disk != nullptr);
    if (data.empty()) {
      egroup.disk->store->Trim(egroup_id, offset_bytes, length_bytes, std::move(done));
    } else {
      WEFT_ASSERT(data.size() == length_bytes);
      egroup.disk->store->Write(egroup_id, offset_bytes, data, std::move(done));
    }
    return;
  }
  auto mutation = std::make_shared<EgroupMutation>();
  mutation->egroup_id = egroup_id;
  mutation->order = next_egroup_mutation_++;
  mutation->offset_bytes = offset_bytes;
  mutation->length_bytes = length_bytes;
  mutation->data = data;
  mutation->done = std::move(done);
  SubmitEgroupMutation(std::move(mutation));
}

void VdiskController::SubmitEgroupMutation(std::shared_ptr<EgroupMutation> mutation) {
  EgroupState& egroup = egroups_.at(mutation->egroup_id);
  if (fenced_ || !context_.peers->may_acknowledge()) {
    CompleteLater(std::move(mutation->done),
                  Status::Unavailable(fmt::format(
                      "vdisk {}: this node {} (no writes are acknowledged)", record_.name(),
                      fenced_ ? "no longer owns the vdisk" : "is fenced from the cluster")));
    return;
  }
  if (!egroup.version_known && !egroup.changing && egroup.inflight_writes == 0) {
    LearnReplicaVersion(mutation->egroup_id);
  }
  if (egroup.changing || !egroup.failed_nodes.empty() || egroup.replicas.empty()) {
    if (egroup.replicas.empty()) {
      CompleteLater(std::move(mutation->done),
                    Status::Unavailable(fmt::format("vdisk {}: egroup {} has no replica left",
                                                    record_.name(), mutation->egroup_id)));
      return;
    }
    const uint64_t order = mutation->order;
    egroup.waiting.emplace(order, [this, mutation] { SubmitEgroupMutation(mutation); });
    return;
  }
  const uint64_t version = ++egroup.replica_version;
  ++egroup.inflight_writes;
  struct FanOut {
    size_t remaining = 0;
    Status local_status;
    Status remote_status;
    std::vector<uint32_t> failed;
  };
  auto fan = std::make_shared<FanOut>();
  fan->remaining = egroup.replicas.size();
  const uint32_t local = context_.peers->local_node_id();
  auto one_done = [this, alive = alive_, fan, mutation, version, local](uint32_t node,
                                                                        Status status) {
    if (!*alive) return;
    if (!status.ok()) {
      if (node == local) {
        fan->local_status = status;
      } else {
        if (IsStaleEpoch(status)) fenced_ = true;
        fan->failed.push_back(node);
        if (fan->remote_status.ok()) fan->remote_status = status;
      }
    }
    if (--fan->remaining > 0) return;
    EgroupState& state = egroups_.at(mutation->egroup_id);
    WEFT_ASSERT(state.inflight_writes > 0);
    --state.inflight_writes;
    if (fan->local_status.ok() && fan->failed.empty()) {
      state.committed_version = std::max(state.committed_version, version);
      mutation->done(Status::Ok());
    } else if (!fan->local_status.ok() || fenced_ ||
               mutation->attempt + 1 >= kEgroupMutateAttemptsMax) {
      Status failure = !fan->local_status.ok() ? fan->local_status : fan->remote_status;
      mutation->done(
          failure.WithContext(fmt::format("vdisk {}: egroup {} write (attempt {})", record_.name(),
                                          mutation->egroup_id, mutation->attempt + 1)));
    } else {
      spdlog::warn("vdisk {}: egroup {} replica on node {} failed a write: {}; replacing it",
                   record_.name(), mutation->egroup_id, fan->failed.front(),
                   fan->remote_status.ToString());
      for (uint32_t node : fan->failed) {
        if (std::find(state.failed_nodes.begin(), state.failed_nodes.end(), node) ==
            state.failed_nodes.end()) {
          state.failed_nodes.push_back(node);
        }
      }
      ++mutation->attempt;
      state.waiting.emplace(mutation->order, [this, mutation] { SubmitEgroupMutation(mutation); });
    }
    StartReplicaChanges(mutation->egroup_id);
  };
  const EgroupTarget target{mutation->egroup_id, id(), record_.owner_epoch()};
  for (const Replica& replica : egroup.replicas) {
    const uint32_t node = replica.node_id;
    auto replica_done = [one_done, node](Status status) { one_done(node, std::move(status)); };
    if (node == local) {
      WEFT_ASSERT(egroup.disk != nullptr);
      if (mutation->data.empty()) {
        egroup.disk->store->Trim(mutation->egroup_id, mutation->offset_bytes,
                                 mutation->length_bytes, std::move(replica_done), version);
      } else {
        egroup.disk->store->Write(mutation->egroup_id, mutation->offset_bytes, mutation->data,
                                  std::move(replica_done), version);
      }
    } else if (mutation->data.empty()) {
      context_.peers->EgroupTrim(node, target, version, mutation->offset_bytes,
                                 mutation->length_bytes, std::move(replica_done));
    } else {
      context_.peers->EgroupWrite(node, target, version, mutation->offset_bytes, mutation->data,
                                  std::move(replica_done));
    }
  }
}

void VdiskController::LearnReplicaVersion(uint64_t egroup_id) {
  EgroupState& egroup = egroups_.at(egroup_id);
  WEFT_ASSERT(!egroup.changing && egroup.inflight_writes == 0);
  egroup.changing = true;  // Holds writes until the version is known.
  struct Probe {
    size_t outstanding = 0;
    uint64_t newest = 0;
    size_t answered = 0;
    AlignedBuffer block{kBlockBytes};
  };
  auto probe = std::make_shared<Probe>();
  const uint32_t local = context_.peers->local_node_id();
  std::vector<uint32_t> nodes;
  for (const Replica& replica : egroup.replicas) {
    if (replica.node_id != local) nodes.push_back(replica.node_id);
  }
  probe->outstanding = nodes.size();
  auto finish = [this, alive = alive_, egroup_id, probe]() {
    if (!*alive) return;
    EgroupState& state = egroups_.at(egroup_id);
    state.changing = false;
    // With no replica answering, the writes go ahead and fail on those replicas (there is no
    // copy to number them against); asking again for each would only spin.
    state.version_known = true;
    state.replica_version = std::max(state.replica_version, probe->newest);
    state.committed_version = std::max(state.committed_version, probe->newest);
    StartReplicaChanges(egroup_id);  // Resumes the held writes.
  };
  if (nodes.empty()) {
    egroup.version_known = true;
    return context_.executor([this, alive = alive_, egroup_id] {
      if (!*alive) return;
      egroups_.at(egroup_id).changing = false;
      ResumeEgroupWrites(egroup_id);
    });
  }
  for (uint32_t node : nodes) {
    // A one-block read answers with the replica's version (and verifies that block).
    context_.peers->EgroupRead(node, egroup_id, 0, probe->block.span().first(kBlockBytes),
                               [probe, finish](Result<EgroupReadReply> reply) {
                                 if (reply.ok()) {
                                   ++probe->answered;
                                   probe->newest = std::max(probe->newest, reply->replica_version);
                                 }
                                 if (--probe->outstanding == 0) finish();
                               });
  }
}

void VdiskController::ResumeEgroupWrites(uint64_t egroup_id) {
  EgroupState& egroup = egroups_.at(egroup_id);
  std::map<uint64_t, std::function<void()>> waiting = std::move(egroup.waiting);
  egroup.waiting.clear();
  for (auto& [order, resume] : waiting) resume();
}

void VdiskController::StartReplicaChanges(uint64_t egroup_id) {
  EgroupState& egroup = egroups_.at(egroup_id);
  if (egroup.changing || egroup.inflight_writes > 0) return;  // Called again when they end.
  if (egroup.failed_nodes.empty()) {
    if (!egroup.waiting.empty()) ResumeEgroupWrites(egroup_id);
    return;
  }
  const uint32_t failed = egroup.failed_nodes.front();
  ChangeReplica(egroup_id, failed, 0, [this, alive = alive_, egroup_id, failed](Status status) {
    if (!*alive) return;
    EgroupState& state = egroups_.at(egroup_id);
    std::erase(state.failed_nodes, failed);
    if (status.ok()) ++counters_.replica_replacements;
    if (!status.ok()) {
      // No copy could be made (too few live nodes): the held writes fail rather than being
      // acknowledged with fewer copies. The failed replica stays listed: it may come back.
      spdlog::error("vdisk {}: egroup {}: replacing the replica on node {}: {}", record_.name(),
                    egroup_id, failed, status.ToString());
      state.failed_nodes.clear();
      std::map<uint64_t, std::function<void()>> waiting = std::move(state.waiting);
      state.waiting.clear();
      for (auto& [order, resume] : waiting) resume();  // Each retries or gives up.
      return;
    }
    StartReplicaChanges(egroup_id);
  });
}

void VdiskController::ChangeReplica(uint64_t egroup_id, uint32_t remove_node, uint32_t add_node,
                                    Completion done) {
  EgroupState& egroup = egroups_.at(egroup_id);
  WEFT_ASSERT(!egroup.changing && egroup.inflight_writes == 0);
  const uint32_t local = context_.peers->local_node_id();
  if (add_node == 0) {
    // The remaining holders; the removed node is not chosen again (its domain is free).
    std::vector<uint32_t> holders;
    bool local_holds = false;
    for (const Replica& replica : egroup.replicas) {
      if (replica.node_id == remove_node) continue;
      if (replica.node_id == local) local_holds = true;
      holders.push_back(replica.node_id);
    }
    holders.push_back(remove_node);
    if (!local_holds && remove_node != local && LocalDomainFree(*context_.peers, holders)) {
      // This node holds no replica (a new owner after a takeover): the copy comes here, where
      // the vDisk is served (data locality), and no other node need be free.
      add_node = local;
    } else {
      Result<std::vector<uint32_t>> chosen = ChooseNodes(1, holders, local_holds, egroup_id);
      if (!chosen.ok()) return CompleteLater(std::move(done), chosen.status());
      add_node = chosen->front();
    }
  }
  uint32_t source = 0;
  for (const Replica& replica : egroup.replicas) {
    if (replica.node_id == remove_node || replica.node_id == add_node) continue;
    if (source == 0 || replica.node_id == local) source = replica.node_id;
  }
  if (source == 0) {
    return CompleteLater(std::move(done), Status::Unavailable(fmt::format(
                                              "vdisk {}: egroup {}: no good replica to copy from",
                                              record_.name(), egroup_id)));
  }
  egroup.changing = true;
  auto finish = [this, alive = alive_, egroup_id, done = std::move(done)](Status status) {
    if (!*alive) return;
    egroups_.at(egroup_id).changing = false;
    done(std::move(status));
  };
  const EgroupTarget target{egroup_id, id(), record_.owner_epoch()};
  auto created = [this, alive = alive_, egroup_id, remove_node, add_node, source,
                  finish](Result<std::string> disk_uuid) mutable {
    if (!*alive) return;
    if (!disk_uuid.ok()) return finish(disk_uuid.status());
    CopyEgroup(egroup_id, source, add_node, *disk_uuid,
               [this, alive, egroup_id, remove_node, add_node, disk_uuid = *disk_uuid,
                finish](Status copied) mutable {
                 if (!*alive) return;
                 if (!copied.ok()) return finish(copied);
                 EgroupState& state = egroups_.at(egroup_id);
                 std::vector<Replica> replicas = state.replicas;
                 std::erase_if(replicas, [remove_node](const Replica& replica) {
                   return replica.node_id == remove_node;
                 });
                 replicas.push_back({add_node, disk_uuid});
                 const std::vector<Replica> before = state.replicas;
                 NodeDisk* const disk_before = state.disk;
                 state.replicas = replicas;
                 if (add_node == context_.peers->local_node_id()) {
                   for (NodeDisk& disk : *context_.disks) {
                     if (disk.uuid == disk_uuid) state.disk = &disk;
                   }
                 }
                 if (remove_node == context_.peers->local_node_id()) state.disk = nullptr;
                 const std::string value = Encode(EgroupRecord(egroup_id));
                 state.replicas = before;
                 state.disk = disk_before;
                 context_.metadata->CompareAndSet(
                     EgroupKey(id(), egroup_id), state.row_version, value,
                     [this, alive, egroup_id, remove_node, add_node, replicas, disk_uuid,
                      finish](Result<uint64_t> set) mutable {
                       if (!*alive) return;
                       if (!set.ok()) return finish(set.status());
                       EgroupState& changed = egroups_.at(egroup_id);
                       changed.row_version = *set;
                       changed.replicas = replicas;
                       const uint32_t self = context_.peers->local_node_id();
                       if (add_node == self) {
                         for (NodeDisk& disk : *context_.disks) {
                           if (disk.uuid == disk_uuid) changed.disk = &disk;
                         }
                       }
                       if (remove_node == self) changed.disk = nullptr;
                       spdlog::info("vdisk {}: egroup {} replica moved from node {} to node {}",
                                    record_.name(), egroup_id, remove_node, add_node);
                       // The old copy goes (best effort: a dead node deletes it when it notices).
                       if (remove_node == self) {
                         // Never: the local replica is only dropped by reconciliation.
                       } else {
                         context_.peers->EgroupDelete(remove_node, egroup_id, [](Status) {});
                       }
                       finish(Status::Ok());
                     });
               });
  };
  if (add_node == local) {
    NodeDisk* disk = ChooseDiskForNewEgroup(*context_.disks);
    if (disk == nullptr) return created(Status::NoSpace("this node has no disks"));
    // An old copy here (unlisted: never served) goes first: the copy skips the source's holes.
    for (NodeDisk& candidate : *context_.disks) {
      if (!candidate.store->GetEgroup(egroup_id).ok()) continue;
      if (Status removed = candidate.store->DeleteEgroup(egroup_id); !removed.ok()) {
        return created(removed.WithContext("replacing an old local replica"));
      }
    }
    Status made = disk->store->CreateEgroup(egroup_id, egroup.replica_version);
    if (!made.ok()) return created(made);
    context_.executor([created, uuid = disk->uuid]() mutable { created(uuid); });
    return;
  }
  context_.peers->EgroupCreate(add_node, target, egroup.replica_version, std::move(created));
}

void VdiskController::CopyEgroup(uint64_t egroup_id, uint32_t source_node, uint32_t target_node,
                                 std::string target_disk, Completion done) {
  struct Copy {
    uint64_t offset_bytes = 0;
    AlignedBuffer buffer{kCopyChunkBytes};
  };
  auto copy = std::make_shared<Copy>();
  auto step = std::make_shared<std::function<void()>>();
  const uint32_t local = context_.peers->local_node_id();
  // Each chunk: read from the source, skip it if it holds only zeros, write it to the target.
  *step = [this, alive = alive_, copy, step, egroup_id, source_node, target_node, local,
           done = std::move(done)]() {
    if (!*alive) return;
    if (copy->offset_bytes >= extent_store::kEgroupMaxBytes) {
      // Breaks the cycle of the shared function holding itself; `done` is copied out first, as
      // it dies with the function.
      Completion finish = done;
      *step = nullptr;
      return finish(Status::Ok());
    }
    const std::span<std::byte> chunk = copy->buffer.span().first(kCopyChunkBytes);
    auto write_chunk = [this, alive, copy, step, egroup_id, target_node, local, done](Status read) {
      if (!*alive) return;
      if (!read.ok()) {
        *step = nullptr;
        return done(read.WithContext(fmt::format("copying egroup {}", egroup_id)));
      }
      const uint64_t offset = copy->offset_bytes;
      copy->offset_bytes += kCopyChunkBytes;
      const std::span<const std::byte> bytes = copy->buffer.span().first(kCopyChunkBytes);
      if (AllZero(bytes)) return context_.executor([step] { (*step)(); });
      EgroupState& egroup = egroups_.at(egroup_id);
      auto written = [step, done](Status status) {
        if (!status.ok()) {
          done(status);
          *step = nullptr;
          return;
        }
        (*step)();
      };
      if (target_node == local) {
        NodeDisk* target = nullptr;
        for (NodeDisk& disk : *context_.disks) {
          if (disk.store->GetEgroup(egroup_id).ok()) target = &disk;
        }
        if (target == nullptr) return written(Status::NotFound("the new local replica vanished"));
        target->store->Write(egroup_id, offset, bytes, std::move(written), egroup.replica_version);
      } else {
        context_.peers->EgroupWrite(target_node, {egroup_id, id(), record_.owner_epoch()},
                                    egroup.replica_version, offset, bytes, std::move(written));
      }
    };
    if (source_node == local) {
      EgroupState& egroup = egroups_.at(egroup_id);
      WEFT_ASSERT(egroup.disk != nullptr);
      egroup.disk->store->Read(egroup_id, copy->offset_bytes, chunk, std::move(write_chunk));
    } else {
      context_.peers->EgroupRead(
          source_node, egroup_id, copy->offset_bytes, chunk,
          [write_chunk](Result<EgroupReadReply> reply) { write_chunk(reply.status()); });
    }
  };
  (void)target_disk;
  (*step)();
}

// ---- Egroup reads ----

void VdiskController::EgroupRead(uint64_t egroup_id, uint64_t offset_bytes,
                                 std::span<std::byte> buffer, Completion done) {
  EgroupState& egroup = egroups_.at(egroup_id);
  if (!replicated()) {
    WEFT_ASSERT(egroup.disk != nullptr);
    egroup.disk->store->Read(egroup_id, offset_bytes, buffer, std::move(done));
    return;
  }
  const uint32_t local = context_.peers->local_node_id();
  std::vector<uint32_t> nodes;
  if (egroup.disk != nullptr) nodes.push_back(local);
  for (const Replica& replica : egroup.replicas) {
    if (replica.node_id != local) nodes.push_back(replica.node_id);
  }
  if (nodes.empty()) {
    return CompleteLater(std::move(done),
                         Status::Unavailable(fmt::format("vdisk {}: egroup {} has no replica",
                                                         record_.name(), egroup_id)));
  }
  const bool remote = nodes.front() != local;
  ++(remote ? counters_.reads_remote : counters_.reads_local);
  ReadFromReplicas(
      egroup_id, offset_bytes, buffer, std::move(nodes),
      [this, alive = alive_, egroup_id, remote, done = std::move(done)](Status status) {
        done(status);
        if (*alive && status.ok() && remote) Localize(egroup_id);
      });
}

void VdiskController::ReadFromReplicas(uint64_t egroup_id, uint64_t offset_bytes,
                                       std::span<std::byte> buffer, std::vector<uint32_t> nodes,
                                       Completion done) {
  struct Attempt {
    std::vector<uint32_t> nodes;
    size_t next = 0;
    std::vector<uint32_t> bad;  // Replicas that answered with a checksum mismatch or stale.
    Status first_error;
    uint64_t version_at_start = 0;
  };
  auto attempt = std::make_shared<Attempt>();
  attempt->nodes = std::move(nodes);
  attempt->version_at_start = egroups_.at(egroup_id).replica_version;
  auto step = std::make_shared<std::function<void()>>();
  const uint32_t local = context_.peers->local_node_id();
  *step = [this, alive = alive_, attempt, step, egroup_id, offset_bytes, buffer, local,
           done = std::move(done)]() {
    if (!*alive) return;
    if (attempt->next >= attempt->nodes.size()) {
      Completion finish = done;  // Outlives the function it belongs to.
      *step = nullptr;
      return finish(attempt->first_error);
    }
    const uint32_t node = attempt->nodes[attempt->next++];
    auto answered = [this, alive, attempt, step, egroup_id, offset_bytes, buffer, node, done](
                        Status status, uint64_t replica_version) {
      if (!*alive) return;
      EgroupState& egroup = egroups_.at(egroup_id);
      if (status.ok() && replica_version != 0 && replica_version < egroup.committed_version) {
        status = Status::Corruption(
            fmt::format("node {}: egroup {} replica at version {}, behind version {} (stale)", node,
                        egroup_id, replica_version, egroup.committed_version));
        ++counters_.stale_replicas_dropped;
      }
      if (status.ok() && replica_version > egroup.committed_version &&
          egroup.inflight_writes == 0 && !egroup.changing) {
        // A version this controller did not know: it holds no local replica, so Load could not
        // read one. Later writes and copies (localization) number on from it.
        egroup.replica_version = std::max(egroup.replica_version, replica_version);
        egroup.committed_version = replica_version;
      }
      if (!status.ok()) {
        if (attempt->first_error.ok()) attempt->first_error = status;
        if (status.code() == StatusCode::kCorruption) attempt->bad.push_back(node);
        spdlog::warn("vdisk {}: egroup {} read at {} from node {}: {}; trying another replica",
                     record_.name(), egroup_id, offset_bytes, node, status.ToString());
        return (*step)();
      }
      // Served. Rewrite the bad replicas' blocks with these bytes, unless a write to the egroup
      // started meanwhile (the repair would then race it; the next read repairs instead).
      if (egroup.replica_version == attempt->version_at_start && egroup.inflight_writes == 0 &&
          !egroup.changing) {
        for (uint32_t bad : attempt->bad) RepairReplica(egroup_id, bad, offset_bytes, buffer);
      }
      *step = nullptr;
      done(Status::Ok());
    };
    if (node == local) {
      EgroupState& egroup = egroups_.at(egroup_id);
      if (egroup.disk == nullptr) return answered(Status::NotFound("no local replica"), 0);
      egroup.disk->store->Read(egroup_id, offset_bytes, buffer,
                               [answered](Status status) { answered(std::move(status), 0); });
      return;
    }
    context_.peers->EgroupRead(node, egroup_id, offset_bytes, buffer,
                               [answered](Result<EgroupReadReply> reply) {
                                 if (!reply.ok()) return answered(reply.status(), 0);
                                 answered(Status::Ok(), reply->replica_version);
                               });
  };
  (*step)();
}

void VdiskController::RepairReplica(uint64_t egroup_id, uint32_t node_id, uint64_t offset_bytes,
                                    std::span<const std::byte> good) {
  auto copy = std::make_shared<AlignedBuffer>(good.size());
  std::memcpy(copy->data(), good.data(), good.size());
  const std::span<const std::byte> bytes = copy->span().first(good.size());
  auto repaired = [this, alive = alive_, copy, egroup_id, node_id, offset_bytes](Status status) {
    if (!*alive) return;
    if (status.ok()) {
      ++counters_.replica_repairs;
      spdlog::info("vdisk {}: egroup {} replica on node {} repaired at [{}, +{})", record_.name(),
                   egroup_id, node_id, offset_bytes, copy->size());
    } else {
      spdlog::warn("vdisk {}: egroup {} replica on node {}: repair failed: {}", record_.name(),
                   egroup_id, node_id, status.ToString());
    }
  };
  EgroupState& egroup = egroups_.at(egroup_id);
  if (node_id == context_.peers->local_node_id()) {
    if (egroup.disk == nullptr) return;
    // Version 0: the replica's version stays (the bytes are those of its current version).
    egroup.disk->store->Write(egroup_id, offset_bytes, bytes, std::move(repaired), 0);
    return;
  }
  context_.peers->EgroupWrite(node_id, {egroup_id, id(), record_.owner_epoch()},
                              egroup.committed_version, offset_bytes, bytes, std::move(repaired));
}

void VdiskController::Localize(uint64_t egroup_id) {
  EgroupState& egroup = egroups_.at(egroup_id);
  if (egroup.disk != nullptr || egroup.changing || egroup.localizing ||
      egroup.inflight_writes > 0 || !egroup.failed_nodes.empty() || egroup.replicas.empty() ||
      fenced_ || !context_.peers->may_acknowledge()) {
    return;
  }
  // The copy replaces the replica on the node with the most... the last listed (any remote one
  // will do: each holds the same bytes at the same version).
  const uint32_t remove_node = egroup.replicas.back().node_id;
  egroup.localizing = true;
  ChangeReplica(egroup_id, remove_node, context_.peers->local_node_id(),
                [this, alive = alive_, egroup_id](Status status) {
                  if (!*alive) return;
                  EgroupState& state = egroups_.at(egroup_id);
                  state.localizing = false;
                  if (status.ok()) {
                    ++counters_.egroups_localized;
                  } else {
                    spdlog::warn("vdisk {}: localizing egroup {}: {}", record_.name(), egroup_id,
                                 status.ToString());
                  }
                  StartReplicaChanges(egroup_id);
                });
}

Result<std::vector<bool>> VdiskController::EgroupAllocatedBlocks(uint64_t egroup_id,
                                                                 uint64_t offset_bytes,
                                                                 uint64_t length_bytes) {
  EgroupState& egroup = egroups_.at(egroup_id);
  if (egroup.disk != nullptr) {
    return egroup.disk->store->AllocatedBlocks(egroup_id, offset_bytes, length_bytes);
  }
  // No local replica: report every block as data (always a correct answer for block status;
  // a hole reported as data only costs the client a read of zeros).
  return std::vector<bool>(length_bytes / kBlockBytes, true);
}

// ---- New egroups ----

void VdiskController::CreateReplicatedEgroup(uint64_t egroup_id, uint32_t attempt) {
  auto fail = [this](Status status) {
    creating_egroup_ = false;
    ServeSlotWaiters(status.WithContext(fmt::format("vdisk {}: new egroup", record_.name())));
  };
  NodeDisk* disk = ChooseDiskForNewEgroup(*context_.disks);
  if (disk == nullptr) return fail(Status::NoSpace("this node has no disks"));
  Result<std::vector<uint32_t>> others =
      ChooseNodes(replication_factor_ - 1, {}, /*local_holds=*/true, egroup_id + attempt);
  if (!others.ok()) return fail(others.status());
  struct Creation {
    size_t remaining = 0;
    std::vector<Replica> replicas;
    Status status;
  };
  auto creation = std::make_shared<Creation>();
  creation->remaining = others->size();
  creation->replicas.push_back({context_.peers->local_node_id(), disk->uuid});
  const EgroupTarget target{egroup_id, id(), record_.owner_epoch()};
  for (uint32_t node : *others) {
    context_.peers->EgroupCreate(node, target, 0,
                                 [this, alive = alive_, creation, node, disk, egroup_id, attempt,
                                  fail](Result<std::string> disk_uuid) {
                                   if (!*alive) return;
                                   if (disk_uuid.ok()) {
                                     creation->replicas.push_back({node, *disk_uuid});
                                   } else if (creation->status.ok()) {
                                     creation->status = disk_uuid.status();
                                   }
                                   if (--creation->remaining > 0) return;
                                   if (!creation->status.ok()) {
                                     // Another replica set (the rotation moves on); the replicas
                                     // made are orphans the background scan collects.
                                     if (attempt + 1 < kCreateAttemptsMax)
                                       return CreateReplicatedEgroup(egroup_id, attempt + 1);
                                     return fail(creation->status);
                                   }
                                   const Status created = disk->store->CreateEgroup(egroup_id);
                                   if (!created.ok()) return fail(created);
                                   EgroupState& egroup = egroups_[egroup_id];
                                   egroup.disk = disk;
                                   egroup.replicas = creation->replicas;
                                   context_.metadata->CompareAndSet(
                                       EgroupKey(id(), egroup_id), 0,
                                       Encode(EgroupRecord(egroup_id)),
                                       [this, alive, egroup_id, fail](Result<uint64_t> set) {
                                         if (!*alive) return;
                                         if (!set.ok()) {
                                           egroups_.erase(egroup_id);
                                           return fail(set.status());
                                         }
                                         egroups_.at(egroup_id).row_version = *set;
                                         open_egroup_ = egroup_id;
                                         creating_egroup_ = false;
                                         ServeSlotWaiters(Status::Ok());
                                       });
                                 });
  }
}

// ---- Takeover ----

void VdiskController::ReconcileEgroups(Completion done) {
  std::vector<uint64_t> ids;
  for (const auto& [egroup_id, egroup] : egroups_) {
    if (!egroup.replicas.empty()) ids.push_back(egroup_id);
  }
  auto remaining = std::make_shared<std::vector<uint64_t>>(std::move(ids));
  auto step = std::make_shared<std::function<void()>>();
  *step = [this, alive = alive_, remaining, step, done = std::move(done)]() {
    if (!*alive) return;
    if (remaining->empty()) {
      Completion finish = done;  // Outlives the function it belongs to.
      *step = nullptr;
      return finish(Status::Ok());
    }
    const uint64_t egroup_id = remaining->back();
    remaining->pop_back();
    EgroupState& egroup = egroups_.at(egroup_id);
    struct Versions {
      size_t outstanding = 0;
      std::map<uint32_t, Result<uint64_t>> by_node;
      AlignedBuffer probe{kBlockBytes};
    };
    auto versions = std::make_shared<Versions>();
    versions->outstanding = egroup.replicas.size();
    const uint32_t local = context_.peers->local_node_id();
    auto collected = [this, alive, versions, step, egroup_id, done]() {
      if (!*alive || --versions->outstanding > 0) return;
      EgroupState& state = egroups_.at(egroup_id);
      uint64_t newest = 0;
      for (const auto& [node, version] : versions->by_node) {
        if (version.ok()) newest = std::max(newest, *version);
      }
      std::vector<Replica> keep;
      for (const Replica& replica : state.replicas) {
        const Result<uint64_t>& version = versions->by_node.at(replica.node_id);
        // Unreachable replicas stay listed (they may be up to date); the next write replaces
        // them. Missing or older ones are stale.
        const bool stale = version.ok() ? *version < newest
                                        : version.status().IsNotFound() ||
                                              version.status().code() == StatusCode::kCorruption;
        if (stale) {
          spdlog::warn("vdisk {}: egroup {} replica on node {} is stale ({}); dropped",
                       record_.name(), egroup_id, replica.node_id,
                       version.ok() ? fmt::format("version {} < {}", *version, newest)
                                    : version.status().ToString());
          ++counters_.stale_replicas_dropped;
        } else {
          keep.push_back(replica);
        }
      }
      state.replica_version = std::max(state.replica_version, newest);
      state.committed_version = std::max(state.committed_version, newest);
      state.version_known = true;
      if (keep.size() == state.replicas.size() || keep.empty()) return (*step)();
      const std::vector<Replica> before = state.replicas;
      NodeDisk* const disk_before = state.disk;
      state.replicas = keep;
      const bool local_kept = std::any_of(keep.begin(), keep.end(), [this](const Replica& r) {
        return r.node_id == context_.peers->local_node_id();
      });
      if (!local_kept) state.disk = nullptr;
      const std::string value = Encode(EgroupRecord(egroup_id));
      if (disk_before != nullptr && !local_kept) {
        (void)disk_before->store->DeleteEgroup(egroup_id);  // Stale: never to be served.
      }
      (void)before;
      context_.metadata->CompareAndSet(EgroupKey(id(), egroup_id), state.row_version, value,
                                       [this, alive, step, egroup_id, done](Result<uint64_t> set) {
                                         if (!*alive) return;
                                         if (!set.ok()) {
                                           *step = nullptr;
                                           return done(set.status());
                                         }
                                         egroups_.at(egroup_id).row_version = *set;
                                         (*step)();
                                       });
    };
    for (const Replica& replica : egroup.replicas) {
      const uint32_t node = replica.node_id;
      if (node == local) {
        versions->by_node.emplace(
            node, egroup.disk != nullptr ? egroup.disk->store->ReplicaVersion(egroup_id)
                                         : Result<uint64_t>(Status::NotFound("no local replica")));
        context_.executor(collected);
        continue;
      }
      context_.peers->EgroupRead(node, egroup_id, 0, versions->probe.span().first(kBlockBytes),
                                 [versions, node, collected](Result<EgroupReadReply> reply) {
                                   versions->by_node.emplace(
                                       node, reply.ok() ? Result<uint64_t>(reply->replica_version)
                                                        : Result<uint64_t>(reply.status()));
                                   collected();
                                 });
    }
  };
  (*step)();
}

void VdiskController::RecoverAfterTakeover(Completion done) {
  WEFT_ASSERT(replicated());
  ReconcileEgroups([this, alive = alive_, done = std::move(done)](Status status) mutable {
    if (!*alive) return;
    if (!status.ok()) return done(status.WithContext("reconciling egroup replicas"));
    if (oplog_state_ != OplogState::kOpen) {
      // No OpLog (--no-oplog): the peers are only the row's record of them.
      return done(Status::Ok());
    }
    // Drains everything replayed, then writes a new peer set to the row (the old peers hold
    // records of the old epoch: they start over when the new owner writes to them).
    repeer_waiters_.emplace_back(0, [this, alive, done = std::move(done)](Status status) mutable {
      if (*alive && status.code() == StatusCode::kUnavailable) {
        // Too few live nodes for a full peer set: serve what is here (reads, and the recovered
        // OpLog from its index); writes fail until enough nodes are back (OnMembersChanged).
        spdlog::warn("vdisk {}: serving without a full set of copies: {}", record_.name(),
                     status.ToString());
        return done(Status::Ok());
      }
      done(std::move(status));
    });
    StartRepeer();
  });
}

void VdiskController::OnMembersChanged(const std::vector<uint32_t>& live_nodes) {
  if (!replicated() || oplog_state_ != OplogState::kOpen || repeering_) return;
  bool peers_ok = static_cast<uint32_t>(record_.oplog_peers_size()) + 1 >= replication_factor_;
  for (uint32_t peer : record_.oplog_peers()) {
    if (!std::binary_search(live_nodes.begin(), live_nodes.end(), peer)) peers_ok = false;
  }
  // A peer is gone (or the set is short): drain and choose a full set now, not at the next
  // write, so the OpLog is back at RF copies while the vDisk is idle.
  if (!peers_ok) StartRepeer();
}

// ---- The replicated OpLog ----

void VdiskController::AppendToOplog(int kind, uint64_t offset_bytes, uint64_t length_bytes,
                                    std::span<const std::byte> data, Completion done) {
  const auto record_kind = static_cast<oplog::format::RecordKind>(kind);
  if (!replicated()) {
    (void)oplog_->Append(record_kind, offset_bytes, length_bytes, data, std::move(done));
    return;
  }
  if (fenced_ || !context_.peers->may_acknowledge()) {
    return CompleteLater(std::move(done),
                         Status::Unavailable(fmt::format(
                             "vdisk {}: this node {} (no writes are acknowledged)", record_.name(),
                             fenced_ ? "no longer owns the vdisk" : "is fenced from the cluster")));
  }
  if (static_cast<uint32_t>(record_.oplog_peers_size()) + 1 < replication_factor_) {
    // Fewer peers than RF copies need (a takeover found too few live nodes): never acknowledge
    // with fewer copies; try for a full peer set again.
    StartRepeer();
    return CompleteLater(std::move(done),
                         Status::Unavailable(fmt::format(
                             "vdisk {}: {} oplog cop{} of {} reachable: not enough live nodes",
                             record_.name(), record_.oplog_peers_size() + 1,
                             record_.oplog_peers_size() == 0 ? "y" : "ies", replication_factor_)));
  }
  struct Join {
    size_t remaining = 0;
    Status local_status;
    Status peer_status;
    uint64_t seq = 0;
    Completion done;
  };
  auto join = std::make_shared<Join>();
  join->remaining = 1 + record_.oplog_peers_size();
  join->done = std::move(done);
  auto one_done = [this, alive = alive_, join](bool local, Status status) {
    if (!*alive) return;
    if (!status.ok()) {
      if (local) {
        join->local_status = status;
      } else {
        if (IsStaleEpoch(status)) fenced_ = true;
        if (join->peer_status.ok()) join->peer_status = status;
      }
    }
    if (--join->remaining > 0) {
      if (local && repeering_) MaybeFinishRepeer();
      return;
    }
    if (!join->local_status.ok()) return join->done(join->local_status);
    if (join->peer_status.ok()) return join->done(Status::Ok());
    if (fenced_) return join->done(join->peer_status);
    // A peer failed: the record is durable here only. It reaches RF copies by draining into
    // the (replicated) extent store; the write is acknowledged then (StartRepeer).
    spdlog::warn(
        "vdisk {}: oplog record {} not replicated: {}; draining the oplog and choosing "
        "new peers",
        record_.name(), join->seq, join->peer_status.ToString());
    repeer_waiters_.emplace_back(join->seq, std::move(join->done));
    StartRepeer();
  };
  const uint64_t seq = oplog_->Append(record_kind, offset_bytes, length_bytes, data,
                                      [one_done](Status status) { one_done(true, status); });
  join->seq = seq;
  if (seq == 0) {
    // The log has failed: `done` gets its failure; nothing to replicate.
    join->remaining -= record_.oplog_peers_size();
    return;
  }
  OplogRecordHeader header;
  header.vdisk_id = id();
  header.owner_epoch = record_.owner_epoch();
  header.seq = seq;
  header.kind = static_cast<uint32_t>(record_kind);
  header.offset_bytes = offset_bytes;
  header.length_bytes = length_bytes;
  header.data_crc32c = data.empty() ? 0 : Crc32c(data);
  header.drained_seq = oplog_->stats().drained_seq;
  for (uint32_t peer : record_.oplog_peers()) {
    ++counters_.oplog_peer_appends;
    context_.peers->OplogAppend(
        peer, header, data,
        [this, alive = alive_, one_done, peer, drained = header.drained_seq](Status status) {
          // The peer trims up to the piggybacked watermark before it appends.
          if (*alive && status.ok()) {
            uint64_t& trimmed = peer_trimmed_seq_[peer];
            trimmed = std::max(trimmed, drained);
          }
          one_done(false, status);
        });
  }
}

void VdiskController::StartRepeer() {
  if (!repeering_) {
    repeering_ = true;
    ++counters_.oplog_repeers;
  }
  MaybeDrain();
  MaybeFinishRepeer();
}

void VdiskController::MaybeFinishRepeer() {
  if (!repeering_ || repeer_committing_) return;
  auto finish = [this](Status status) {
    std::vector<std::pair<uint64_t, Completion>> waiters = std::move(repeer_waiters_);
    repeer_waiters_.clear();
    repeering_ = false;
    repeer_committing_ = false;
    for (auto& [seq, waiter] : waiters) {
      waiter(status.ok() ? status
                         : status.WithContext(
                               fmt::format("vdisk {}: oplog record {}", record_.name(), seq)));
    }
    std::deque<std::function<void()>> held = std::move(repeer_queue_);
    repeer_queue_.clear();
    for (auto& resume : held) resume();
    if (!status.ok()) RunBypassWaiters(status);  // Else they run once the new peers trim.
  };
  if (fenced_) {
    // Another node owns the vDisk: the held writes fail (never acknowledged here).
    return finish(Status::Unavailable(
        fmt::format("vdisk {}: this node no longer owns the vdisk", record_.name())));
  }
  Result<std::vector<uint32_t>> peers = ChooseNodes(
      replication_factor_ - 1, {}, /*local_holds=*/true, id() + counters_.oplog_repeers);
  if (!peers.ok()) {
    // Too few live nodes for RF copies: the writes fail now (not acknowledged) rather than
    // waiting for nodes that may not come back; the OpLog keeps draining what it holds.
    return finish(peers.status());
  }
  if (drain_active_) return;  // Called again when the round ends.
  if (oplog_->has_undrained() || oplog_->appends_pending() > 0) {
    MaybeDrain();
    return;
  }
  // Every record is in the extent store, on RF replicas: new peers need no history.
  repeer_committing_ = true;
  std::vector<uint32_t> chosen = *peers;
  UpdateVdiskRow(
      [chosen](records::Vdisk& record) {
        record.clear_oplog_peers();
        for (uint32_t node : chosen) record.add_oplog_peers(node);
      },
      [this, alive = alive_, chosen, finish](Status status) {
        if (!*alive) return;
        if (status.ok()) {
          spdlog::info("vdisk {}: new oplog peers: {}", record_.name(), fmt::join(chosen, ","));
        }
        finish(std::move(status));
        if (*alive) TrimPeerOplogs();  // Until they acknowledge a watermark, nothing bypasses.
      });
}

void VdiskController::TrimPeerOplogs() {
  if (!replicated() || oplog_ == nullptr) return;
  const uint64_t drained = oplog_->stats().drained_seq;
  for (uint32_t peer : record_.oplog_peers()) {
    context_.peers->OplogTrim(peer, id(), record_.owner_epoch(), drained,
                              [this, alive = alive_, peer, drained](Status status) {
                                if (!*alive) return;
                                if (!status.ok()) {
                                  // The peer is gone or refuses: a new peer set.
                                  if (!bypass_waiters_.empty() && !fenced_) StartRepeer();
                                  return;
                                }
                                uint64_t& trimmed = peer_trimmed_seq_[peer];
                                trimmed = std::max(trimmed, drained);
                                if (MayBypassOplog()) RunBypassWaiters(Status::Ok());
                              });
  }
}

void VdiskController::WhenBypassAllowed(std::function<void(Status)> run) {
  if (fenced_) {
    return CompleteLater([run = std::move(run)](Status status) { run(std::move(status)); },
                         Status::Unavailable(fmt::format(
                             "vdisk {}: this node no longer owns the vdisk", record_.name())));
  }
  ++inflight_operations_;  // Held operations count as in flight (Quiesce, deletion).
  bypass_waiters_.push_back([this, run = std::move(run)](Status status) {
    --inflight_operations_;
    run(std::move(status));
  });
  if (bypass_waiters_.size() == 1) TrimPeerOplogs();
}

void VdiskController::RunBypassWaiters(const Status& status) {
  std::deque<std::function<void(Status)>> waiters = std::move(bypass_waiters_);
  bypass_waiters_.clear();
  for (auto& waiter : waiters) waiter(status);
}

bool VdiskController::MayBypassOplog() const {
  if (!replicated() || oplog_ == nullptr) return true;
  const uint64_t drained = oplog_->stats().drained_seq;
  for (uint32_t peer : record_.oplog_peers()) {
    const auto trimmed = peer_trimmed_seq_.find(peer);
    // Unknown: 0 (a fresh log has nothing to trim; after a restart the next trim tells).
    if ((trimmed == peer_trimmed_seq_.end() ? 0 : trimmed->second) < drained) return false;
  }
  return true;
}

void VdiskController::UpdateVdiskRow(std::function<void(records::Vdisk&)> change, Completion done) {
  const std::string key = VdiskKey(record_.name());
  context_.metadata->Get(key, [this, alive = alive_, key, change = std::move(change),
                               done = std::move(done)](Result<metadata::Row> row) mutable {
    if (!*alive) return;
    if (!row.ok()) return done(row.status());
    records::Vdisk current;
    if (Status decoded = Decode(key, row->value, current); !decoded.ok()) return done(decoded);
    if (current.id() != id() || current.owner_node() != context_.peers->local_node_id() ||
        current.owner_epoch() != record_.owner_epoch()) {
      fenced_ = true;
      return done(Status::Aborted(fmt::format(
          "stale epoch: vdisk {} is now owned by node {} at epoch {} (this node: epoch {})",
          record_.name(), current.owner_node(), current.owner_epoch(), record_.owner_epoch())));
    }
    change(current);
    const std::string value = Encode(current);
    context_.metadata->CompareAndSet(
        key, row->version, value,
        [this, alive, current, done = std::move(done)](Result<uint64_t> set) {
          if (!*alive) return;
          if (!set.ok()) return done(set.status());
          record_ = current;
          set_row_version(*set);
          done(Status::Ok());
        });
  });
}

}  // namespace weft::vdisk
