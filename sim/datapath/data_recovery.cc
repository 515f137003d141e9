// The owner's repairs of its copies: a failed egroup replica is replaced by a copy on another
// live node; failed OpLog peers are replaced by new ones in the vDisk row; the metadata rows are
// changed by compare-and-set (a timed-out one is read back before it is retried).
#include <fmt/ranges.h>

#include <algorithm>

#include "base/assert.h"
#include "sim/datapath/data_world.h"
#include "sim/datapath/data_world_internal.h"

namespace weft::sim::datapath {

namespace {

inline constexpr NodeId kNoNode = ~NodeId{0};

}  // namespace

void DataWorld::ReplaceReplica(NodeId node, uint32_t egroup, NodeId failed,
                               std::function<void()> then) {
  Owner& owner = *nodes_[node].owner;
  const uint64_t generation = owner.generation;
  auto retry_later = [this, node, generation, then] {
    AtNode(node, kRetryTicks, [this, node, generation, then] {
      if (Owns(node, generation)) then();
    });
  };
  const std::vector<NodeId>& listed = owner.egroups[egroup].row.replicas;
  std::vector<NodeId> candidates;
  for (NodeId live : LiveNodes(node)) {
    if (std::find(listed.begin(), listed.end(), live) == listed.end()) candidates.push_back(live);
  }
  std::vector<NodeId> sources;
  for (NodeId replica : listed) {
    if (replica != failed) sources.push_back(replica);
  }
  if (LiveCount(node) < options_.rf || candidates.empty() || sources.empty()) {
    retry_later();
    return;
  }
  const NodeId target = candidates[random_.Uniform(0, candidates.size() - 1)];
  const NodeId source = sources[random_.Uniform(0, sources.size() - 1)];
  Trace("n{}: egroup {} replica n{} failed; copying from n{} to n{}", node, egroup, failed, source,
        target);
  Message read_all{.kind = MessageKind::kEgroupReadAll, .egroup = egroup};
  Request(
      node, source, read_all,
      [this, node, generation, egroup, target, failed, then, retry_later](const Message* answer) {
        if (!Owns(node, generation)) return;
        const uint64_t committed = nodes_[node].owner->egroups[egroup].committed_version;
        const bool usable =
            answer != nullptr && answer->present && answer->replica.version >= committed &&
            std::none_of(answer->replica.rotten.begin(), answer->replica.rotten.end(),
                         [](bool rotten) { return rotten; });
        if (!usable) {
          retry_later();
          return;
        }
        InstallAndList(node, egroup, target, answer->replica, failed,
                       [this, then, retry_later](bool ok) {
                         if (!ok) {
                           retry_later();
                           return;
                         }
                         report_.replica_replacements++;
                         then();
                       });
      });
}

void DataWorld::InstallAndList(NodeId node, uint32_t egroup, NodeId target,
                               const EgroupReplica& replica, NodeId replaced,
                               std::function<void(bool)> then) {
  Owner& owner = *nodes_[node].owner;
  const uint64_t generation = owner.generation;
  Message install{.kind = MessageKind::kEgroupInstall,
                  .epoch = owner.epoch,
                  .egroup = egroup,
                  .replica = replica};
  Request(node, target, install,
          [this, node, generation, egroup, target, replaced, then](const Message* answer) {
            if (!Owns(node, generation)) return;
            if (answer != nullptr && answer->answer == ReplicaAnswer::kStaleEpoch) {
              DropOwner(node, "a copy target refused its epoch");
              return;
            }
            if (answer == nullptr || answer->answer != ReplicaAnswer::kOk) {
              then(false);
              return;
            }
            Owner& owner = *nodes_[node].owner;
            EgroupRow row = owner.egroups[egroup].row;
            auto it = std::find(row.replicas.begin(), row.replicas.end(), replaced);
            if (it != row.replicas.end()) {
              *it = target;
            } else {
              row.replicas.push_back(target);
            }
            row.owner_epoch = owner.epoch;
            CasEgroup(node, generation, egroup, row, [this, node, then](bool ok) {
              if (!ok) {
                DropOwner(node, "an egroup row changed under it");
                return;
              }
              then(true);
            });
          });
}

void DataWorld::ChoosePeers(NodeId node, uint64_t generation) {
  if (!Owns(node, generation)) return;
  Owner& owner = *nodes_[node].owner;
  std::vector<NodeId> others;
  for (NodeId live : LiveNodes(node)) {
    if (live != node) others.push_back(live);
  }
  if (others.size() + 1 < options_.rf || Fenced(node)) {
    AtNode(node, kRetryTicks, [this, node, generation] { ChoosePeers(node, generation); });
    return;
  }
  VdiskRow row = owner.row;
  row.oplog_peers.clear();
  while (row.oplog_peers.size() + 1 < options_.rf) {
    const size_t pick = random_.Uniform(0, others.size() - 1);
    row.oplog_peers.push_back(others[pick]);
    others.erase(others.begin() + static_cast<std::ptrdiff_t>(pick));
  }
  // The new peers hold nothing older: everything before next_seq is in the extent store.
  row.oplog_epoch = owner.epoch;
  row.oplog_start_seq = owner.next_seq;
  CasVdisk(node, generation, row, [this, node](bool ok) {
    if (!ok) {
      DropOwner(node, "the vDisk row changed under it");
      return;
    }
    StartServing(node);
  });
}

void DataWorld::StartServing(NodeId node) {
  Owner& owner = *nodes_[node].owner;
  const uint64_t generation = owner.generation;
  if (Fenced(node)) {
    AtNode(node, kHeartbeatTicks, [this, node, generation] {
      if (Owns(node, generation)) StartServing(node);
    });
    return;
  }
  Trace("n{} serves epoch {} with peers {}", node, owner.epoch,
        fmt::join(owner.row.oplog_peers, ","));
  owner.phase = Phase::kServing;
  std::vector<ClientReplyFn> acks = std::move(owner.acks_after_recovery);
  owner.acks_after_recovery.clear();
  std::deque<Message> queued = std::move(owner.queued);
  owner.queued.clear();
  for (ClientReplyFn& ack : acks) ack(ClientStatus::kOk, 0);
  for (const Message& request : queued) {
    if (!Owns(node, generation)) return;
    HandleClient(node, request);
  }
}

void DataWorld::CasVdisk(NodeId node, uint64_t generation, const VdiskRow& row,
                         std::function<void(bool)> done) {
  if (!Owns(node, generation)) return;
  const uint64_t expected = nodes_[node].owner->row_version;
  Message cas{.kind = MessageKind::kMetaCasVdisk, .version = expected, .vdisk = row};
  Request(node, kControl, cas,
          [this, node, generation, row, expected, done](const Message* answer) {
            if (!Owns(node, generation)) return;
            Owner& owner = *nodes_[node].owner;
            if (answer != nullptr) {
              if (answer->ok) {
                owner.row = row;
                owner.row_version = answer->version;
              }
              done(answer->ok);
              return;
            }
            // Timed out: it may have been applied. Read the row back.
            Message read{.kind = MessageKind::kMetaReadVdisk};
            Request(node, kControl, read,
                    [this, node, generation, row, expected, done](const Message* current) {
                      if (!Owns(node, generation)) return;
                      Owner& owner = *nodes_[node].owner;
                      if (current == nullptr || current->version == expected) {
                        AtNode(node, kRetryTicks, [this, node, generation, row, done] {
                          CasVdisk(node, generation, row, done);
                        });
                      } else if (current->vdisk == row) {
                        owner.row = row;
                        owner.row_version = current->version;
                        done(true);
                      } else {
                        done(false);
                      }
                    });
          });
}

void DataWorld::CasEgroup(NodeId node, uint64_t generation, uint32_t egroup, const EgroupRow& row,
                          std::function<void(bool)> done) {
  if (!Owns(node, generation)) return;
  const uint64_t expected = nodes_[node].owner->egroups[egroup].row_version;
  Message cas{.kind = MessageKind::kMetaCasEgroup,
              .version = expected,
              .egroup = egroup,
              .egroup_row = row};
  Request(node, kControl, cas,
          [this, node, generation, egroup, row, expected, done](const Message* answer) {
            if (!Owns(node, generation)) return;
            EgroupState& state = nodes_[node].owner->egroups[egroup];
            if (answer != nullptr) {
              if (answer->ok) {
                state.row = row;
                state.row_version = answer->version;
              }
              done(answer->ok);
              return;
            }
            Message read{.kind = MessageKind::kMetaReadEgroup, .egroup = egroup};
            Request(node, kControl, read,
                    [this, node, generation, egroup, row, expected, done](const Message* current) {
                      if (!Owns(node, generation)) return;
                      EgroupState& state = nodes_[node].owner->egroups[egroup];
                      if (current == nullptr || current->version == expected) {
                        AtNode(node, kRetryTicks, [this, node, generation, egroup, row, done] {
                          CasEgroup(node, generation, egroup, row, done);
                        });
                      } else if (current->egroup_row == row) {
                        state.row = row;
                        state.row_version = current->version;
                        done(true);
                      } else {
                        done(false);
                      }
                    });
          });
}

}  // namespace weft::sim::datapath
