// A node's data service: what it answers to an owner's (or a successor's) requests. Each check of
// the owner epoch happens on receipt and again when the disk commits, so a fence that arrives
// while a write waits for the disk wins.
#include "base/assert.h"
#include "sim/datapath/data_world.h"
#include "sim/datapath/data_world_internal.h"

namespace weft::sim::datapath {

void DataWorld::HandleNodeRequest(NodeId node, const Message& message) {
  switch (message.kind) {
    case MessageKind::kOplogAppend:
      ServeOplogAppend(node, message);
      return;
    case MessageKind::kEgroupWrite:
    case MessageKind::kEgroupInstall:
    case MessageKind::kEgroupRepair:
      ServeEgroupWrite(node, message);
      return;
    case MessageKind::kEgroupReadAll:
      ServeEgroupReadAll(node, message);
      return;
    case MessageKind::kEgroupRead:
      ServeEgroupRead(node, message);
      return;
    case MessageKind::kFence:
      if (nodes_[node].store.ObserveEpoch(message.epoch) != ReplicaAnswer::kOk) {
        report_.stale_epoch_refusals++;
      }
      return;
    case MessageKind::kClientWrite:
    case MessageKind::kClientRead:
      HandleClient(node, message);
      return;
    default:
      WEFT_ASSERT(false);
  }
}

void DataWorld::ServeOplogAppend(NodeId node, const Message& message) {
  NodeStore& store = nodes_[node].store;
  if (store.ObserveEpoch(message.epoch) != ReplicaAnswer::kOk) {
    report_.stale_epoch_refusals++;
    Reply(message, Message{.answer = ReplicaAnswer::kStaleEpoch});
    return;
  }
  WEFT_ASSERT(RecordCrc(message.record) == message.record.crc);
  store.oplog.Trim(message.epoch, message.seq);
  store.oplog.Append(message.record);
  DiskWrite(node, [this, node, message] {
    NodeStore& store = nodes_[node].store;
    store.oplog.Synced(message.record.epoch, message.record.seq);
    // Durable now; an owner fenced meanwhile must not count it (the successor may have replayed).
    const ReplicaAnswer answer = store.check_epochs && message.epoch < store.epoch_seen
                                     ? ReplicaAnswer::kStaleEpoch
                                     : ReplicaAnswer::kOk;
    Reply(message, Message{.answer = answer});
  });
}

void DataWorld::ServeEgroupWrite(NodeId node, const Message& message) {
  if (nodes_[node].store.ObserveEpoch(message.epoch) != ReplicaAnswer::kOk) {
    report_.stale_epoch_refusals++;
    if (message.kind != MessageKind::kEgroupRepair) {
      Reply(message, Message{.answer = ReplicaAnswer::kStaleEpoch});
    }
    return;
  }
  DiskWrite(node, [this, node, message] {
    NodeStore& store = nodes_[node].store;
    ReplicaAnswer answer = ReplicaAnswer::kOk;
    switch (message.kind) {
      case MessageKind::kEgroupWrite:
        answer = store.CommitWrite(message.epoch, message.egroup, message.version, message.block,
                                   message.value, message.seq);
        break;
      case MessageKind::kEgroupInstall:
        answer = store.CommitInstall(message.epoch, message.egroup, message.replica);
        break;
      case MessageKind::kEgroupRepair:
        answer = store.CommitRepair(message.epoch, message.egroup, message.version, message.block,
                                    message.value);
        return;  // Repairs are not answered.
      default:
        WEFT_ASSERT(false);
    }
    if (answer == ReplicaAnswer::kStaleEpoch) report_.stale_epoch_refusals++;
    Reply(message, Message{.answer = answer});
  });
}

void DataWorld::ServeEgroupReadAll(NodeId node, const Message& message) {
  if (message.epoch != 0 && nodes_[node].store.ObserveEpoch(message.epoch) != ReplicaAnswer::kOk) {
    report_.stale_epoch_refusals++;
    Reply(message, Message{.answer = ReplicaAnswer::kStaleEpoch});
    return;
  }
  // Behind the writes already accepted (the disk queue is in order): a successor reading the
  // versions after its fence sees every write the fence let through.
  DiskWrite(node, [this, node, message] {
    const NodeStore& store = nodes_[node].store;
    Message reply;
    auto it = store.egroups.find(message.egroup);
    reply.present = it != store.egroups.end();
    if (reply.present) reply.replica = it->second;
    Reply(message, reply);
  });
}

void DataWorld::ServeEgroupRead(NodeId node, const Message& message) {
  const NodeStore& store = nodes_[node].store;
  Message reply;
  auto it = store.egroups.find(message.egroup);
  reply.present = it != store.egroups.end();
  if (reply.present) {
    reply.version = it->second.version;
    reply.value = it->second.values[message.block];
    reply.rotten = it->second.rotten[message.block];
  }
  Reply(message, reply);
}

}  // namespace weft::sim::datapath
