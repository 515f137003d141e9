// The world: virtual time, the network, the metadata and membership services, faults.
#include "sim/datapath/data_world.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>

#include "base/assert.h"
#include "sim/datapath/data_world_internal.h"

namespace weft::sim::datapath {

DataFaults DataFaultProfile(const std::string& name) {
  DataFaults faults;
  const bool network = name == "network" || name == "all";
  const bool crash = name == "crash" || name == "all";
  WEFT_ASSERT(network || crash || name == "none");
  if (network) {
    faults.drop_per_mille_max = 50;
    faults.long_delay_per_mille_max = 10;
    faults.delay_ticks_max = 6;
    faults.partitions_per_10k_ticks_max = 20;
  }
  if (crash) {
    faults.crashes_per_10k_ticks_max = 20;
    faults.bit_rots_per_10k_ticks_max = 30;
    faults.pauses_per_10k_ticks_max = 40;
    faults.disk_ticks_max = 6;
  }
  return faults;
}

void DataSimReport::Add(const DataSimReport& other) {
  writes_ok += other.writes_ok;
  writes_direct += other.writes_direct;
  writes_unavailable += other.writes_unavailable;
  writes_unknown += other.writes_unknown;
  reads_ok += other.reads_ok;
  reads_failed += other.reads_failed;
  messages += other.messages;
  messages_dropped += other.messages_dropped;
  messages_delayed_long += other.messages_delayed_long;
  partitions += other.partitions;
  crashes += other.crashes;
  pauses += other.pauses;
  torn_or_lost_records += other.torn_or_lost_records;
  bit_rots += other.bit_rots;
  repairs += other.repairs;
  takeovers += other.takeovers;
  peer_changes += other.peer_changes;
  replica_replacements += other.replica_replacements;
  stale_epoch_refusals += other.stale_epoch_refusals;
  session_expiries += other.session_expiries;
  operations_checked += other.operations_checked;
  ticks += other.ticks;
}

const char* MessageKindName(MessageKind kind) {
  static constexpr const char* kNames[] = {
      "Heartbeat",   "MetaReadVdisk", "MetaReadEgroup", "MetaCasVdisk", "MetaCasEgroup",
      "OplogAppend", "EgroupWrite",   "EgroupInstall",  "EgroupRepair", "EgroupReadAll",
      "EgroupRead",  "Fence",         "ClientWrite",    "ClientRead",   "Reply"};
  return kNames[static_cast<size_t>(kind)];
}

namespace {

MetadataService InitialMetadata(const DataSimOptions& options, SimRandom& random) {
  VdiskRow vdisk{.owner = 0, .epoch = 1};
  for (NodeId peer = 1; peer < options.rf; peer++) vdisk.oplog_peers.push_back(peer);
  std::vector<EgroupRow> egroups;
  for (uint32_t egroup = 0; egroup < options.egroups; egroup++) {
    EgroupRow row{.replicas = {0}, .owner_epoch = 1};
    while (row.replicas.size() < options.rf) {
      const auto node = static_cast<NodeId>(random.Uniform(1, options.nodes - 1));
      if (std::find(row.replicas.begin(), row.replicas.end(), node) == row.replicas.end()) {
        row.replicas.push_back(node);
      }
    }
    egroups.push_back(row);
  }
  return MetadataService(vdisk, egroups);
}

}  // namespace

DataWorld::DataWorld(const DataSimOptions& options)
    : options_(options),
      random_(options.seed * 0x2545f4914f6cdd1dULL + 17),
      metadata_(InitialMetadata(options, random_)),
      membership_(kSessionTimeoutTicks) {
  WEFT_ASSERT(options.nodes >= options.rf);
  WEFT_ASSERT(options.nodes <= 8);
  const DataFaults& faults = options.faults;
  drop_per_mille_ = random_.Uniform(0, faults.drop_per_mille_max);
  long_delay_per_mille_ = random_.Uniform(0, faults.long_delay_per_mille_max);
  partition_per_10k_ = random_.Uniform(0, faults.partitions_per_10k_ticks_max);
  crash_per_10k_ = random_.Uniform(0, faults.crashes_per_10k_ticks_max);
  pause_per_10k_ = random_.Uniform(0, faults.pauses_per_10k_ticks_max);
  bit_rot_per_10k_ = random_.Uniform(0, faults.bit_rots_per_10k_ticks_max);
  nodes_.resize(options.nodes);
  for (NodeId node = 0; node < options.nodes; node++) {
    membership_.Heartbeat(node, 1, 0);
    nodes_[node].session = SessionView{.session_id = membership_.Heartbeat(node, 1, 0),
                                       .answered_send_tick = 0,
                                       .has_session = true};
  }
  for (NodeId node = 0; node < options.nodes; node++) {
    nodes_[node].session.live_mask = membership_.LiveMask();
  }
  for (uint32_t egroup = 0; egroup < options.egroups; egroup++) {
    for (NodeId node : metadata_.egroup(egroup).replicas) nodes_[node].store.egroups[egroup] = {};
  }
  // Node 0 starts as the owner, serving.
  auto owner = std::make_unique<Owner>();
  owner->generation = next_generation_++;
  owner->phase = Phase::kServing;
  owner->epoch = 1;
  owner->row = metadata_.vdisk();
  owner->row_version = metadata_.vdisk_version();
  for (uint32_t egroup = 0; egroup < options.egroups; egroup++) {
    owner->egroups.push_back(EgroupState{.row = metadata_.egroup(egroup),
                                         .row_version = metadata_.egroup_version(egroup)});
  }
  nodes_[0].owner = std::move(owner);
  const uint32_t clients = options.clients != 0 ? options.clients : random_.Uniform(2, 4);
  for (uint32_t id = 0; id < clients; id++) {
    clients_.push_back(Client{.id = id, .operations_left = options.operations});
  }
}

void DataWorld::At(uint64_t tick, std::function<void()> action) {
  WEFT_ASSERT(tick >= now_);
  events_.push(Event{tick, event_order_++, std::move(action)});
}

void DataWorld::AtNode(NodeId node, uint64_t delay_ticks, std::function<void()> action) {
  const uint64_t incarnation = nodes_[node].incarnation;
  At(now_ + delay_ticks, [this, node, incarnation, action = std::move(action)]() mutable {
    const Node& state = nodes_[node];
    if (!state.up || state.incarnation != incarnation) return;
    if (now_ < state.paused_until_tick) {  // A paused process acts when it resumes.
      At(state.paused_until_tick, [this, node, incarnation, action = std::move(action)] {
        if (nodes_[node].up && nodes_[node].incarnation == incarnation) action();
      });
      return;
    }
    action();
  });
}

bool DataWorld::Blocked(uint32_t from, uint32_t to) const {
  return std::find(blocked_.begin(), blocked_.end(), std::make_pair(from, to)) != blocked_.end();
}

void DataWorld::Send(Message message) {
  report_.messages++;
  message.send_tick = message.send_tick != 0 ? message.send_tick : now_;
  const bool local = message.from == message.to;
  if (!local && faults_on_ && random_.Chance(drop_per_mille_, 1000)) {
    report_.messages_dropped++;
    Trace("drop {} {}->{}", MessageKindName(message.kind), message.from, message.to);
    return;
  }
  uint64_t delay = local ? 1 : random_.Uniform(1, options_.faults.delay_ticks_max);
  if (!local && faults_on_ && random_.Chance(long_delay_per_mille_, 1000)) {
    report_.messages_delayed_long++;
    delay += random_.Uniform(100, 400);
  }
  At(now_ + delay, [this, message = std::move(message)] { Deliver(message); });
}

void DataWorld::Deliver(const Message& message) {
  if (message.from < options_.nodes && message.from != message.to) {
    // What a process sent just before it stopped was still in its buffers: it leaves on resume.
    const Node& sender = nodes_[message.from];
    if (now_ < sender.paused_until_tick &&
        message.send_tick + kUnflushedTicks >= sender.paused_start_tick) {
      At(sender.paused_until_tick + 1, [this, message] { Deliver(message); });
      return;
    }
  }
  if (message.from != message.to && Blocked(message.from, message.to)) {
    report_.messages_dropped++;
    return;
  }
  if (message.to == kControl) {
    HandleControl(message);
    return;
  }
  if (message.to >= kClientBase) {
    OnClientReply(message);
    return;
  }
  Node& node = nodes_[message.to];
  if (!node.up) return;
  if (now_ < node.paused_until_tick) {
    At(node.paused_until_tick, [this, message] { Deliver(message); });
    return;
  }
  if (message.kind != MessageKind::kReply) {
    HandleNodeRequest(message.to, message);
    return;
  }
  auto it = node.pending.find(message.request_id);
  if (it == node.pending.end()) return;  // Timed out already, or a crash forgot it.
  ReplyHandler handler = std::move(it->second);
  node.pending.erase(it);
  handler(&message);
}

void DataWorld::Request(NodeId from, uint32_t to, Message message, ReplyHandler handler) {
  Node& node = nodes_[from];
  const uint64_t request_id = node.next_request_id++;
  message.from = from;
  message.to = to;
  message.request_id = request_id;
  node.pending[request_id] = std::move(handler);
  AtNode(from, kRequestTimeoutTicks, [this, from, request_id] {
    auto it = nodes_[from].pending.find(request_id);
    if (it == nodes_[from].pending.end()) return;
    ReplyHandler handler = std::move(it->second);
    nodes_[from].pending.erase(it);
    handler(nullptr);
  });
  Send(std::move(message));
}

void DataWorld::Reply(const Message& request, Message reply) {
  reply.kind = MessageKind::kReply;
  reply.from = request.to;
  reply.to = request.from;
  reply.request_id = request.request_id;
  Send(std::move(reply));
}

void DataWorld::DiskWrite(NodeId node, std::function<void()> commit) {
  Node& state = nodes_[node];
  // Writes complete in order: each after the one before it.
  const uint64_t done_tick =
      std::max(now_, state.disk_tail_tick) + random_.Uniform(0, options_.faults.disk_ticks_max);
  state.disk_tail_tick = done_tick;
  AtNode(node, done_tick - now_, std::move(commit));
}

void DataWorld::HandleControl(const Message& message) {
  Message reply;
  switch (message.kind) {
    case MessageKind::kHeartbeat:
      reply.session_id = membership_.Heartbeat(message.from, message.version, now_);
      reply.live_mask = membership_.LiveMask();
      reply.send_tick = message.send_tick;
      break;
    case MessageKind::kMetaCasVdisk:
      reply.ok = metadata_.CasVdisk(message.version, message.vdisk);
      if (reply.ok)
        Trace("ring: vdisk row by n{} owner n{} epoch {}", message.from, message.vdisk.owner,
              message.vdisk.epoch);
      [[fallthrough]];
    case MessageKind::kMetaReadVdisk:
      reply.vdisk = metadata_.vdisk();
      reply.version = metadata_.vdisk_version();
      break;
    case MessageKind::kMetaCasEgroup:
      reply.ok = metadata_.CasEgroup(message.egroup, message.version, message.egroup_row);
      [[fallthrough]];
    case MessageKind::kMetaReadEgroup:
      reply.egroup_row = metadata_.egroup(message.egroup);
      reply.version = metadata_.egroup_version(message.egroup);
      break;
    default:
      WEFT_ASSERT(false);
  }
  reply.from = kControl;
  reply.to = message.from;
  reply.request_id = message.request_id;
  reply.kind = MessageKind::kReply;
  Send(std::move(reply));
}

void DataWorld::Heartbeat(NodeId node) {
  Message heartbeat{.kind = MessageKind::kHeartbeat, .version = nodes_[node].incarnation};
  heartbeat.send_tick = now_;
  Request(node, kControl, heartbeat, [this, node](const Message* reply) {
    if (reply != nullptr) OnHeartbeatReply(node, *reply);
  });
  AtNode(node, kHeartbeatTicks, [this, node] { Heartbeat(node); });
}

void DataWorld::OnHeartbeatReply(NodeId node, const Message& reply) {
  SessionView& session = nodes_[node].session;
  if (reply.session_id < session.session_id) return;  // A late answer about an older session.
  if (reply.session_id != session.session_id) {
    // The session expired (or this is a new process): a successor may have acted.
    if (nodes_[node].owner != nullptr) DropOwner(node, "lost its session");
    session = SessionView{.session_id = reply.session_id};
  }
  session.has_session = true;
  session.answered_send_tick = std::max(session.answered_send_tick, reply.send_tick);
  session.live_mask = reply.live_mask;
}

bool DataWorld::Fenced(NodeId node) const {
  return nodes_[node].session.Fenced(now_, kSessionTimeoutTicks);
}

uint32_t DataWorld::LiveCount(NodeId node) const {
  return static_cast<uint32_t>(std::popcount(nodes_[node].session.live_mask));
}

std::vector<NodeId> DataWorld::LiveNodes(NodeId node) const {
  std::vector<NodeId> live;
  for (NodeId other = 0; other < options_.nodes; other++) {
    if ((nodes_[node].session.live_mask >> other) & 1) live.push_back(other);
  }
  return live;
}

void DataWorld::InjectFaults() {
  if (!faults_on_) return;
  if (random_.Chance(partition_per_10k_, 1000) && partitions_active_ < 2) Partition();
  if (random_.Chance(crash_per_10k_, 1000)) {
    uint32_t down = 0;
    for (const Node& node : nodes_) down += node.up ? 0 : 1;
    const auto victim = static_cast<NodeId>(random_.Uniform(0, options_.nodes - 1));
    if (down + 1 < options_.rf && nodes_[victim].up) Crash(victim);
  }
  if (random_.Chance(bit_rot_per_10k_, 1000)) BitRot();
  if (random_.Chance(pause_per_10k_, 1000)) {
    // Half the pauses stop the owner: the stale owner is what the epoch fences are for.
    Pause(random_.Chance(1, 2) ? metadata_.vdisk().owner
                               : static_cast<NodeId>(random_.Uniform(0, options_.nodes - 1)));
  }
  At(now_ + 10, [this] { InjectFaults(); });
}

void DataWorld::Partition() {
  std::vector<std::pair<uint32_t, uint32_t>> cut;
  const auto a = static_cast<uint32_t>(random_.Uniform(0, options_.nodes - 1));
  const uint64_t kind = random_.Uniform(0, 2);
  if (kind == 0) {  // Isolated from everything (the owner, on some seeds: no split brain).
    for (uint32_t other = 0; other < options_.nodes; other++) {
      if (other != a) cut.insert(cut.end(), {{a, other}, {other, a}});
    }
    cut.insert(cut.end(), {{a, kControl}, {kControl, a}});
  } else if (kind == 1) {  // Cut from the membership and metadata services only.
    cut.insert(cut.end(), {{a, kControl}, {kControl, a}});
  } else {  // Two nodes that cannot talk.
    const auto b =
        static_cast<uint32_t>((a + random_.Uniform(1, options_.nodes - 1)) % options_.nodes);
    cut.insert(cut.end(), {{a, b}, {b, a}});
  }
  report_.partitions++;
  partitions_active_++;
  Trace("partition kind {} around n{}", kind, a);
  blocked_.insert(blocked_.end(), cut.begin(), cut.end());
  At(now_ + random_.Uniform(50, 400), [this, cut] {
    for (const auto& pair : cut) {
      auto it = std::find(blocked_.begin(), blocked_.end(), pair);
      if (it != blocked_.end()) blocked_.erase(it);
    }
    partitions_active_--;
    Trace("partition healed");
  });
}

void DataWorld::Crash(NodeId node) {
  Node& state = nodes_[node];
  report_.crashes++;
  report_.torn_or_lost_records += state.store.oplog.Crash(random_);
  state.up = false;
  state.incarnation++;
  state.pending.clear();
  state.owner.reset();
  state.takeover_running = false;
  Trace("crash n{}", node);
  At(now_ + random_.Uniform(30, 300), [this, node] { Restart(node); });
}

void DataWorld::Restart(NodeId node) {
  Node& state = nodes_[node];
  if (state.up) return;
  state.up = true;
  state.incarnation++;
  state.store.oplog.Recover();
  state.session = SessionView{};
  state.disk_tail_tick = now_;
  Trace("restart n{}", node);
  Heartbeat(node);
  AtNode(node, random_.Uniform(1, kRoleCheckTicks), [this, node] { ConsiderTakeover(node); });
}

void DataWorld::Pause(NodeId node) {
  Node& state = nodes_[node];
  if (!state.up || now_ < state.paused_until_tick) return;
  report_.pauses++;
  state.paused_start_tick = now_;
  state.paused_until_tick = now_ + random_.Uniform(100, 400);
  Trace("pause n{} until {}", node, state.paused_until_tick);
}

void DataWorld::BitRot() {
  const auto egroup = static_cast<uint32_t>(random_.Uniform(0, options_.egroups - 1));
  const auto block = static_cast<uint32_t>(random_.Uniform(0, kBlocksPerEgroup - 1));
  const EgroupRow& row = metadata_.egroup(egroup);
  const NodeId victim = row.replicas[random_.Uniform(0, row.replicas.size() - 1)];
  // One copy of a block rots while the others are good and current: a single fault, which RF
  // copies survive. (Rot on the only copy of a write that reached one replica is two faults.)
  auto it = nodes_[victim].store.egroups.find(egroup);
  if (it == nodes_[victim].store.egroups.end()) return;
  for (NodeId node : row.replicas) {
    auto other = nodes_[node].store.egroups.find(egroup);
    if (other == nodes_[node].store.egroups.end() || other->second.rotten[block]) return;
    if (other->second.version != it->second.version) return;
  }
  it->second.rotten[block] = true;
  it->second.values[block] ^= 0xdead0000ULL;
  report_.bit_rots++;
  Trace("bit rot n{} egroup {} block {}", victim, egroup, block);
}

void DataWorld::Heal() {
  faults_on_ = false;
  blocked_.clear();
  for (NodeId node = 0; node < options_.nodes; node++) {
    if (!nodes_[node].up) Restart(node);
  }
  Trace("healing");
}

}  // namespace weft::sim::datapath
