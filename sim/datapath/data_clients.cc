// The run: clients, healing, the final reads and the final checks.
#include <fmt/format.h>

#include <algorithm>

#include "base/assert.h"
#include "sim/datapath/data_world.h"
#include "sim/datapath/data_world_internal.h"

namespace weft::sim::datapath {

void DataWorld::ClientNext(Client& client) {
  WEFT_ASSERT(!client.busy);
  if (client.operations_left == 0) return;
  client.operations_left--;
  client.busy = true;
  client.operation = BlockOperation{.id = NextTime(), .client = client.id};
  BlockOperation& operation = client.operation;
  const uint32_t blocks = options_.egroups * kBlocksPerEgroup;
  if (client.final_reader) {
    operation.block = static_cast<uint32_t>(blocks - 1 - client.operations_left);
  } else {
    operation.block = static_cast<uint32_t>(random_.Uniform(0, blocks - 1));
    operation.is_write = random_.Chance(1, 2);
    operation.value = (uint64_t{client.id} + 1) * 1'000'000 + ++client.counter;
  }
  operation.invoke_time = NextTime();
  client.deadline_tick = now_ + kClientTimeoutTicks;
  At(client.deadline_tick, [this, id = client.id, op = operation.id] { ClientTimeout(id, op); });
  ClientSend(client);
}

void DataWorld::ClientSend(Client& client) {
  // Clients find the owner in the vDisk row (a linearizable read of the metadata ring).
  const NodeId target = metadata_.vdisk().owner;
  client.request_id = NextTime();
  const BlockOperation& operation = client.operation;
  Message message{.kind = operation.is_write ? MessageKind::kClientWrite : MessageKind::kClientRead,
                  .from = kClientBase + client.id,
                  .to = target,
                  .request_id = client.request_id,
                  .value = operation.value,
                  .block = operation.block};
  Trace("client {} op {} {} b{} {} -> n{}", client.id, operation.id,
        operation.is_write ? "write" : "read", operation.block, operation.value, target);
  Send(message);
}

void DataWorld::OnClientReply(const Message& message) {
  Client& client = clients_.at(message.to - kClientBase);
  if (!client.busy || message.request_id != client.request_id) return;
  BlockOperation& operation = client.operation;
  Trace("client {} op {} answer {} value {}", client.id, operation.id,
        static_cast<int>(message.client_status), message.value);
  switch (message.client_status) {
    case ClientStatus::kOk:
      if (!operation.is_write) operation.value = message.value;
      operation.response_time = NextTime();
      history_.push_back(operation);
      (operation.is_write ? report_.writes_ok : report_.reads_ok)++;
      FinishOperation(client, true);
      return;
    case ClientStatus::kNotOwner:
      // Nothing was done: ask the row again and resend, until the operation's deadline.
      At(now_ + 5, [this, id = client.id, request = client.request_id] {
        Client& again = clients_[id];
        if (again.busy && again.request_id == request) ClientSend(again);
      });
      return;
    case ClientStatus::kUnavailable:
      // Refused before anything was written: the write never takes effect.
      report_.writes_unavailable++;
      FinishOperation(client, false);
      return;
    case ClientStatus::kError:
      report_.reads_failed++;
      FinishOperation(client, false);
      return;
  }
}

void DataWorld::ClientTimeout(uint32_t client_id, uint64_t operation_id) {
  Client& client = clients_[client_id];
  if (!client.busy || client.operation.id != operation_id) return;
  if (client.operation.is_write) {
    client.operation.response_time = kNoResponse;
    history_.push_back(client.operation);
    report_.writes_unknown++;
  } else {
    report_.reads_failed++;
  }
  Trace("client {} op {} timed out", client_id, operation_id);
  FinishOperation(client, false);
}

void DataWorld::FinishOperation(Client& client, bool recorded) {
  client.busy = false;
  client.request_id = 0;
  if (client.final_reader && !recorded) client.operations_left++;  // Retry the same block.
  At(now_ + random_.Uniform(0, 10), [this, id = client.id] {
    if (!clients_[id].busy) ClientNext(clients_[id]);
  });
}

bool DataWorld::Settled() const {
  for (const Client& client : clients_) {
    if (client.busy || client.operations_left != 0) return false;
  }
  for (const Node& node : nodes_) {
    if (!node.up) return false;
  }
  const Owner* owner = nodes_[metadata_.vdisk().owner].owner.get();
  return owner != nullptr && owner->phase == Phase::kServing && owner->inflight.empty() &&
         owner->undrained.empty() && !owner->draining && owner->epoch == metadata_.vdisk().epoch;
}

std::string DataWorld::CheckReplicas() const {
  const Owner* owner = nodes_[metadata_.vdisk().owner].owner.get();
  WEFT_ASSERT(owner != nullptr);
  std::map<uint32_t, uint64_t> final_values;
  for (const BlockOperation& operation : history_) {
    if (operation.client == clients_.size() - 1 && !operation.is_write) {
      final_values[operation.block] = operation.value;
    }
  }
  for (uint32_t egroup = 0; egroup < options_.egroups; egroup++) {
    const EgroupRow& row = metadata_.egroup(egroup);
    std::vector<NodeId> listed = row.replicas;
    std::sort(listed.begin(), listed.end());
    if (listed.size() != options_.rf ||
        std::adjacent_find(listed.begin(), listed.end()) != listed.end()) {
      return fmt::format("egroup {} lists {} replicas (distinct ones expected: {})", egroup,
                         row.replicas.size(), options_.rf);
    }
    for (NodeId node : row.replicas) {
      auto it = nodes_[node].store.egroups.find(egroup);
      if (it == nodes_[node].store.egroups.end()) {
        return fmt::format("egroup {} lists n{}, which holds no replica", egroup, node);
      }
      const EgroupReplica& replica = it->second;
      if (replica.version != owner->egroups[egroup].committed_version) {
        return fmt::format("egroup {} lists n{} at version {}, the owner's is {}", egroup, node,
                           replica.version, owner->egroups[egroup].committed_version);
      }
      for (uint32_t i = 0; i < kBlocksPerEgroup; i++) {
        const uint32_t block = egroup * kBlocksPerEgroup + i;
        if (replica.rotten[i]) continue;  // Detectable by its checksum; repaired when read.
        if (replica.values[i] != final_values[block]) {
          return fmt::format("block {} on n{} holds {}, the final read returned {}", block, node,
                             replica.values[i], final_values[block]);
        }
      }
    }
  }
  return "";
}

std::string DataWorld::FinalChecks() {
  const RegisterCheckResult result = CheckRegisters(history_);
  report_.operations_checked = result.operations_checked;
  if (!result.ok) return result.explanation;
  return CheckReplicas();
}

DataSimReport DataWorld::Run() {
  for (NodeId node = 0; node < options_.nodes; node++) {
    AtNode(node, random_.Uniform(1, kHeartbeatTicks), [this, node] { Heartbeat(node); });
    AtNode(node, random_.Uniform(1, kRoleCheckTicks), [this, node] { ConsiderTakeover(node); });
  }
  std::function<void()> expire = [this, &expire] {
    report_.session_expiries += membership_.Expire(now_);
    At(now_ + 5, expire);
  };
  At(5, expire);
  At(10, [this] { InjectFaults(); });
  for (Client& client : clients_) {
    At(random_.Uniform(1, 10), [this, id = client.id] { ClientNext(clients_[id]); });
  }
  uint64_t heal_tick = 0;
  bool final_reads_started = false;
  while (!events_.empty() && failure_.empty()) {
    Event event = events_.top();
    events_.pop();
    now_ = event.tick;
    event.action();
    if (heal_tick == 0) {
      const bool done = std::all_of(clients_.begin(), clients_.end(), [](const Client& c) {
        return !c.busy && c.operations_left == 0;
      });
      if (done) {
        Heal();
        heal_tick = now_;
      }
      continue;
    }
    if (now_ > heal_tick + kHealTicksMax) {
      failure_ =
          fmt::format("the cluster did not settle within {} ticks of healing", kHealTicksMax);
      break;
    }
    if (!final_reads_started && Settled()) {
      final_reads_started = true;
      clients_.push_back(Client{.id = static_cast<uint32_t>(clients_.size()),
                                .operations_left = options_.egroups * kBlocksPerEgroup,
                                .final_reader = true});
      ClientNext(clients_.back());
    }
    if (final_reads_started && clients_.back().operations_left == 0 && !clients_.back().busy) {
      if (!Settled()) continue;
      failure_ = FinalChecks();
      break;
    }
  }
  report_.ticks = now_;
  report_.ok = failure_.empty();
  report_.failure = failure_;
  return report_;
}

DataSimReport RunDataSimulation(const DataSimOptions& options) {
  DataWorld world(options);
  return world.Run();
}

}  // namespace weft::sim::datapath
