// Ownership and takeover (docs/protocol/replication.md): when the owner's session is gone, the
// lowest-id live OpLog peer bumps the owner epoch in the vDisk row, fences, reconciles the egroup
// replicas' versions, replays its OpLog copy, drains it, chooses new peers and serves. A node the
// row still names that lost its owner state (a restart, a lost session) takes its vDisk back the
// same way: it is an OpLog copy too.
#include <fmt/ranges.h>

#include <algorithm>
#include <memory>

#include "base/assert.h"
#include "sim/datapath/data_world.h"
#include "sim/datapath/data_world_internal.h"

namespace weft::sim::datapath {

void DataWorld::ConsiderTakeover(NodeId node) {
  AtNode(node, kRoleCheckTicks, [this, node] { ConsiderTakeover(node); });
  Node& state = nodes_[node];
  if (state.owner != nullptr || state.takeover_running || Fenced(node)) return;
  state.takeover_running = true;
  Message read{.kind = MessageKind::kMetaReadVdisk};
  Request(node, kControl, read, [this, node](const Message* answer) {
    Node& state = nodes_[node];
    state.takeover_running = false;
    if (answer == nullptr || state.owner != nullptr || Fenced(node)) return;
    const VdiskRow& row = answer->vdisk;
    const uint64_t live = state.session.live_mask;
    bool successor = row.owner == node;
    if (!successor && ((live >> row.owner) & 1) == 0) {
      // The lowest-id live OpLog peer: it holds every acknowledged record.
      for (NodeId peer : row.oplog_peers) {
        if ((live >> peer) & 1) {
          successor = peer == node;
          break;
        }
      }
    }
    if (successor) StartTakeover(node, row, answer->version);
  });
}

void DataWorld::StartTakeover(NodeId node, const VdiskRow& row, uint64_t row_version) {
  auto owner = std::make_unique<Owner>();
  owner->generation = next_generation_++;
  owner->phase = Phase::kTakeover;
  owner->epoch = row.epoch + 1;
  owner->row = row;
  owner->row_version = row_version;
  owner->egroups.resize(options_.egroups);
  const uint64_t generation = owner->generation;
  const uint64_t epoch = owner->epoch;
  nodes_[node].owner = std::move(owner);
  VdiskRow next = row;
  next.owner = node;
  next.epoch = epoch;
  Trace("n{} takes over from n{}: epoch {}", node, row.owner, epoch);
  CasVdisk(node, generation, next, [this, node, generation, epoch, row](bool ok) {
    if (!ok) {
      DropOwner(node, "lost the takeover race");
      return;
    }
    report_.takeovers++;
    // Fence: first itself (its OpLog copy takes no more records of the old owner), then the
    // other peers. The egroup replicas are fenced by the reconciliation's reads.
    const ReplicaAnswer self = nodes_[node].store.ObserveEpoch(epoch);
    WEFT_ASSERT(self == ReplicaAnswer::kOk);
    for (NodeId peer : row.oplog_peers) {
      if (peer != node)
        Send(Message{.kind = MessageKind::kFence, .from = node, .to = peer, .epoch = epoch});
    }
    Reconcile(node, generation, 0);
  });
}

void DataWorld::Reconcile(NodeId node, uint64_t generation, uint32_t egroup) {
  if (!Owns(node, generation)) return;
  if (egroup == options_.egroups) {
    Replay(node, generation);
    return;
  }
  auto retry = [this, node, generation, egroup] {
    AtNode(node, kRetryTicks,
           [this, node, generation, egroup] { Reconcile(node, generation, egroup); });
  };
  Message read{.kind = MessageKind::kMetaReadEgroup, .egroup = egroup};
  Request(node, kControl, read, [this, node, generation, egroup, retry](const Message* row) {
    if (!Owns(node, generation)) return;
    if (row == nullptr) {
      Trace("n{}: reading egroup {}'s row timed out", node, egroup);
      retry();
      return;
    }
    Owner& owner = *nodes_[node].owner;
    owner.egroups[egroup].row = row->egroup_row;
    owner.egroups[egroup].row_version = row->version;
    struct Gather {
      size_t waiting = 0;
      std::vector<std::pair<NodeId, Message>> answers;
    };
    auto gather = std::make_shared<Gather>();
    gather->waiting = row->egroup_row.replicas.size();
    for (NodeId replica : row->egroup_row.replicas) {
      Message read_all{.kind = MessageKind::kEgroupReadAll, .epoch = owner.epoch, .egroup = egroup};
      Request(node, replica, read_all,
              [this, node, generation, egroup, retry, gather, replica](const Message* answer) {
                if (answer != nullptr) gather->answers.emplace_back(replica, *answer);
                if (--gather->waiting != 0 || !Owns(node, generation)) return;
                Owner& owner = *nodes_[node].owner;
                uint64_t version_max = 0;
                bool any = false;
                for (const auto& [from, candidate] : gather->answers) {
                  if (candidate.answer == ReplicaAnswer::kStaleEpoch) {
                    DropOwner(node, "a replica has seen a newer owner");
                    return;
                  }
                  if (!candidate.present) continue;
                  version_max = std::max(version_max, candidate.replica.version);
                  any = true;
                }
                // Replicas below the highest version (and those that did not answer) are stale.
                EgroupRow kept{.owner_epoch = owner.epoch};
                const EgroupReplica* newest = nullptr;
                for (const auto& [from, candidate] : gather->answers) {
                  if (!candidate.present || candidate.replica.version != version_max) continue;
                  kept.replicas.push_back(from);
                  if (newest == nullptr) newest = &candidate.replica;
                }
                // The copy for new replicas: a newest one, each rotten block taken from a copy
                // holding the same write (a newest one, or an older one the write reached).
                EgroupReplica clean = newest != nullptr ? *newest : EgroupReplica{};
                std::array<bool, kBlocksPerEgroup> have{};
                for (uint32_t i = 0; i < kBlocksPerEgroup && newest != nullptr; i++) {
                  for (const auto& [from, candidate] : gather->answers) {
                    const EgroupReplica& replica = candidate.replica;
                    if (have[i] || !candidate.present || replica.rotten[i]) continue;
                    if (replica.stamps[i] != newest->stamps[i]) continue;
                    clean.values[i] = replica.values[i];
                    clean.rotten[i] = false;
                    have[i] = true;
                  }
                }
                const bool complete =
                    std::all_of(have.begin(), have.end(), [](bool block) { return block; });
                // A live replica that did not answer may hold the newest version: ask again.
                for (NodeId listed : owner.egroups[egroup].row.replicas) {
                  const bool answered =
                      std::any_of(gather->answers.begin(), gather->answers.end(),
                                  [&](const auto& answer) { return answer.first == listed; });
                  if (!answered && ((nodes_[node].session.live_mask >> listed) & 1) != 0) {
                    retry();
                    return;
                  }
                }
                if (!any || !complete) {
                  Trace("n{}: egroup {} has no complete copy among {} answers; retrying", node,
                        egroup, gather->answers.size());
                  retry();
                  return;
                }
                owner.egroups[egroup].committed_version = version_max;
                Trace("n{}: egroup {} reconciled at version {} on {}", node, egroup, version_max,
                      fmt::join(kept.replicas, ","));
                RestoreReplicas(node, generation, egroup, clean, kept);
              });
    }
  });
}

void DataWorld::RestoreReplicas(NodeId node, uint64_t generation, uint32_t egroup,
                                const EgroupReplica& clean, EgroupRow kept) {
  if (!Owns(node, generation)) return;
  if (kept.replicas.size() >= options_.rf) {
    // One change of the row, to a full set: it never lists fewer than RF copies.
    CasEgroup(node, generation, egroup, kept, [this, node, generation, egroup](bool ok) {
      if (!ok) {
        AtNode(node, kRetryTicks,
               [this, node, generation, egroup] { Reconcile(node, generation, egroup); });
        return;
      }
      Reconcile(node, generation, egroup + 1);
    });
    return;
  }
  std::vector<NodeId> candidates;
  for (NodeId live : LiveNodes(node)) {
    if (std::find(kept.replicas.begin(), kept.replicas.end(), live) == kept.replicas.end()) {
      candidates.push_back(live);
    }
  }
  auto again = [this, node, generation, egroup, clean, kept] {
    AtNode(node, kRetryTicks, [this, node, generation, egroup, clean, kept] {
      RestoreReplicas(node, generation, egroup, clean, kept);
    });
  };
  if (candidates.empty()) {
    Trace("n{}: no live node for a copy of egroup {}", node, egroup);
    again();
    return;
  }
  const NodeId target = candidates[random_.Uniform(0, candidates.size() - 1)];
  Message install{.kind = MessageKind::kEgroupInstall,
                  .epoch = nodes_[node].owner->epoch,
                  .egroup = egroup,
                  .replica = clean};
  Request(node, target, install,
          [this, node, generation, egroup, clean, kept, target, again](const Message* answer) {
            if (!Owns(node, generation)) return;
            if (answer == nullptr || answer->answer != ReplicaAnswer::kOk) {
              again();
              return;
            }
            EgroupRow more = kept;
            more.replicas.push_back(target);
            report_.replica_replacements++;
            RestoreReplicas(node, generation, egroup, clean, more);
          });
}

void DataWorld::Replay(NodeId node, uint64_t generation) {
  // Behind the appends already accepted: every record the fence let through is durable first.
  DiskWrite(node, [this, node, generation] {
    if (!Owns(node, generation)) return;
    Owner& owner = *nodes_[node].owner;
    const std::vector<OplogRecord> records =
        nodes_[node].store.oplog.Replay(owner.row.oplog_epoch, owner.row.oplog_start_seq);
    for (const OplogRecord& record : records) owner.undrained[record.seq] = record;
    owner.next_seq =
        std::max(owner.row.oplog_start_seq, records.empty() ? uint64_t{1} : records.back().seq + 1);
    Trace("n{} replays {} OpLog records of epoch {}", node, records.size(), owner.row.oplog_epoch);
    if (owner.undrained.empty()) {
      ChoosePeers(node, generation);
    } else {
      KickDrain(node);
    }
  });
}

}  // namespace weft::sim::datapath
