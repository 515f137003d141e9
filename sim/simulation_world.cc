// The simulated world around the RingNodes: the network (delay, reordering, drop, duplication,
// partitions), the disks (writes complete later, in order; a crash loses the pending ones), node
// crashes and restarts, and clock jumps.
#include <algorithm>

#include "sim/ring_simulation.h"

namespace weft::sim {

using metadata::ring::Reply;
using metadata::ring::Request;
using metadata::ring::RingNode;
using metadata::ring::RingNodeOutput;

namespace {

std::string DescribeState(const metadata::paxos::RowState& state) {
  return fmt::format("[change {} v{} '{}' by {}.{}]", state.change, state.version, state.value,
                     state.created_by.round, state.created_by.node);
}

// "Accept 4294967301.2 [change 5 v4 'c2-98' by 4294967301.2]": the ballot, and the state the
// message carries.
std::string DescribePaxos(const metadata::paxos::Message& message) {
  using namespace metadata::paxos;
  auto ballot = [](const Ballot& b) { return fmt::format("{}.{}", b.round, b.node); };
  if (const auto* prepare = std::get_if<Prepare>(&message)) {
    return "Prepare " + ballot(prepare->ballot);
  }
  if (const auto* promise = std::get_if<Promise>(&message)) {
    return fmt::format("Promise {} accepted {} {}", ballot(promise->ballot),
                       ballot(promise->accepted), DescribeState(promise->accepted_state));
  }
  if (const auto* accept = std::get_if<Accept>(&message)) {
    return fmt::format("Accept {} {}", ballot(accept->ballot), DescribeState(accept->state));
  }
  if (const auto* accepted = std::get_if<Accepted>(&message)) {
    return "Accepted " + ballot(accepted->ballot);
  }
  if (const auto* nack = std::get_if<Nack>(&message)) {
    return fmt::format("Nack {} promised {}", ballot(nack->ballot), ballot(nack->promised));
  }
  const auto& commit = std::get<Commit>(message);
  return fmt::format("Commit {} {}", ballot(commit.ballot), DescribeState(commit.state));
}

std::string DescribePayload(const std::variant<Request, Reply>& payload) {
  if (const auto* request = std::get_if<Request>(&payload)) {
    if (const auto* row = std::get_if<metadata::ring::RowRequest>(request)) {
      return fmt::format("{} {} op {} epoch {}", row->key, DescribePaxos(row->message), row->op_id,
                         row->epoch);
    }
    const auto& list = std::get<metadata::ring::KeyListRequest>(*request);
    return fmt::format("KeyList op {} epoch {} after '{}' ranges {}", list.op_id, list.epoch,
                       list.start_after, list.ranges.size());
  }
  const auto& reply = std::get<Reply>(payload);
  if (const auto* row = std::get_if<metadata::ring::RowReply>(&reply)) {
    return fmt::format("{} {} op {}", row->key, DescribePaxos(row->message), row->op_id);
  }
  if (const auto* list = std::get_if<metadata::ring::KeyListReply>(&reply)) {
    return fmt::format("KeyListReply op {} keys {}{}", list->op_id, list->keys.size(),
                       list->truncated ? " truncated" : "");
  }
  const auto& mismatch = std::get<metadata::ring::EpochMismatch>(reply);
  return fmt::format("EpochMismatch op {} epoch {}", mismatch.op_id, mismatch.epoch);
}

}  // namespace

SimNode* RingSimulation::Up(NodeId id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end() || it->second.life != NodeLife::kUp) return nullptr;
  WEFT_ASSERT(it->second.ring_node != nullptr);
  return &it->second;
}

std::vector<NodeId> RingSimulation::UpMembers() const {
  std::vector<NodeId> up;
  for (const auto& member : config_.members) {
    auto it = nodes_.find(member.node);
    if (it != nodes_.end() && it->second.life == NodeLife::kUp) up.push_back(member.node);
  }
  return up;
}

std::unique_ptr<RingNode> RingSimulation::MakeRingNode(SimNode& node) {
  node.incarnation++;
  metadata::ring::RingNodeOptions ring_options{
      .self = node.id, .seed = random_.Next(), .stream_page_keys = stream_page_keys_};
  return std::make_unique<RingNode>(ring_options, node.durable, config_);
}

void RingSimulation::StopRingNode(SimNode& node) {
  WEFT_ASSERT(node.ring_node != nullptr);
  const metadata::ring::RingNodeStats& stats = node.ring_node->stats();
  report_.paxos_attempts += stats.paxos_attempts;
  report_.stream_keys_repaired += stats.stream_keys_repaired;
  report_.epoch_mismatches += stats.epoch_mismatches;
  node.ring_node.reset();
  node.writes.clear();
  node.reply_routes.clear();
}

// Carries out what a node asked for.
void RingSimulation::Handle(NodeId id, RingNodeOutput output) {
  SimNode* node = Up(id);
  WEFT_ASSERT(node != nullptr);
  for (auto& request : output.requests) Send(id, request.to, std::move(request.request));
  for (auto& reply : output.replies) {
    auto route = node->reply_routes.find(reply.reply_token);
    if (route == node->reply_routes.end()) {
      return Fail(fmt::format("node {} replied to an unknown or already answered token {}", id,
                              reply.reply_token));
    }
    const NodeId to = route->second;
    node->reply_routes.erase(route);
    Send(id, to, std::move(reply.reply));
  }
  // Writes complete in the order of their persist ids, which is the order they were asked for.
  std::vector<PendingWrite> writes;
  for (auto& row : output.persist_rows) {
    writes.push_back(PendingWrite{.persist_id = row.persist_id, .row = std::move(row)});
  }
  for (const auto& floor : output.persist_round_floors) {
    writes.push_back(
        PendingWrite{.persist_id = floor.persist_id, .round_floor = floor.round_floor});
  }
  std::sort(writes.begin(), writes.end(), [](const PendingWrite& a, const PendingWrite& b) {
    return a.persist_id < b.persist_id;
  });
  for (PendingWrite& write : writes) {
    const uint64_t previous = node->writes.empty() ? tick_ : node->writes.back().done_tick;
    write.done_tick = std::max(previous, tick_ + random_.Uniform(0, disk_delay_ticks_max_));
    node->writes.push_back(std::move(write));
  }
  for (const auto& result : output.results) OnResult(id, result);
  if (output.ring_refresh_wanted && node->ring_node->ring().epoch() < config_.epoch) {
    ring_deliveries_.emplace(tick_ + random_.Uniform(1, 5), id);
  }
  if (output.stream_done) OnStreamDone(id, *output.stream_done);
}

void RingSimulation::Send(NodeId from, NodeId to, std::variant<Request, Reply> payload) {
  report_.messages_sent++;
  if (random_.Chance(drop_per_mille_, 1000)) {
    report_.messages_dropped++;
    Trace("drop {} -> {}: {}", from, to, DescribePayload(payload));
    return;
  }
  const int copies = random_.Chance(duplicate_per_mille_, 1000) ? 2 : 1;
  for (int copy = 0; copy < copies; copy++) {
    if (network_.size() >= kNetworkMessagesMax) {
      return Fail(fmt::format("more than {} messages in flight", kNetworkMessagesMax));
    }
    network_.push(Message{.deliver_tick = tick_ + random_.Uniform(1, delay_ticks_max_),
                          .sequence = message_sequence_++,
                          .from = from,
                          .to = to,
                          .payload = payload});
  }
}

bool RingSimulation::Blocked(NodeId from, NodeId to) const {
  if (from == to) return false;
  for (const Partition& partition : partitions_) {
    if (partition.blocked.contains({from, to})) return true;
  }
  return false;
}

void RingSimulation::DeliverMessages() {
  while (!finished_ && !network_.empty() && network_.top().deliver_tick <= tick_) {
    Message message = network_.top();
    network_.pop();
    Deliver(message);
  }
}

void RingSimulation::Deliver(const Message& message) {
  SimNode* node = Up(message.to);
  if (node == nullptr || Blocked(message.from, message.to)) {
    Trace("lost {} -> {}: {}", message.from, message.to, DescribePayload(message.payload));
    return;
  }
  Trace("deliver {} -> {}: {}", message.from, message.to, DescribePayload(message.payload));
  if (const auto* request = std::get_if<Request>(&message.payload)) {
    const uint64_t token = next_reply_token_++;
    node->reply_routes[token] = message.from;
    Handle(message.to, node->ring_node->OnRequest(message.from, token, *request));
  } else {
    Handle(message.to, node->ring_node->OnReply(message.from, std::get<Reply>(message.payload)));
  }
}

// Completes every write that is due, in order per node, and tells the node.
void RingSimulation::CompleteWrites() {
  for (auto& [id, node] : nodes_) {
    while (!finished_ && node.life == NodeLife::kUp && !node.writes.empty() &&
           node.writes.front().done_tick <= tick_) {
      PendingWrite write = std::move(node.writes.front());
      node.writes.pop_front();
      if (options_.write_error_per_mille != 0 &&
          write_error_random_.Chance(options_.write_error_per_mille, 1000)) {
        report_.write_errors++;
        Trace("write {} on node {} fails", write.persist_id, id);
        Handle(id, node.ring_node->OnPersisted(write.persist_id,
                                               Status::IOError("simulated write error")));
        continue;
      }
      if (write.row) {
        node.durable.rows[write.row->key] = write.row->state;
      } else {
        WEFT_ASSERT(write.round_floor.has_value());
        node.durable.round_floor = std::max(node.durable.round_floor, *write.round_floor);
      }
      Handle(id, node.ring_node->OnPersisted(write.persist_id, Status::Ok()));
    }
  }
}

void RingSimulation::TickNodes() {
  for (auto& [id, node] : nodes_) {
    if (finished_) return;
    if (node.life == NodeLife::kUp) Handle(id, node.ring_node->OnTick());
  }
}

void RingSimulation::InjectFaults() {
  for (NodeId id : UpMembers()) {
    if (random_.Chance(clock_jump_per_100k_, 100'000)) ClockJump(id);
    if (finished_) return;
  }
  for (NodeId id : UpMembers()) {
    size_t down = 0;
    for (const auto& [other, node] : nodes_) down += node.life == NodeLife::kCrashed ? 1 : 0;
    if (down < down_nodes_max_ && random_.Chance(crash_per_100k_, 100'000)) Crash(id);
  }
  if (partitions_.size() < kPartitionsMax && random_.Chance(partition_per_100k_, 100'000)) {
    StartPartition();
  }
}

// The node loses everything not yet durable: pending writes, the replies waiting on them, its
// reply routes and its clients' operations. Messages it already sent may still arrive.
void RingSimulation::Crash(NodeId id) {
  SimNode& node = nodes_.at(id);
  WEFT_ASSERT(node.life == NodeLife::kUp);
  Trace("crash node {} ({} pending writes lost)", id, node.writes.size());
  report_.crashes++;
  StopRingNode(node);
  if (options_.forget_synced_rows_on_crash) node.durable.rows.clear();
  node.life = NodeLife::kCrashed;
  node.restart_tick =
      tick_ + random_.Uniform(20, std::max<uint64_t>(20, options_.faults.restart_ticks_max));
  AbandonOperationsOn(id);
}

void RingSimulation::RestartNodes(bool now) {
  for (auto& [id, node] : nodes_) {
    if (node.life != NodeLife::kCrashed || (!now && node.restart_tick > tick_)) continue;
    // It comes back with what its completed writes left and the ring the service holds now.
    node.ring_node = MakeRingNode(node);
    node.life = NodeLife::kUp;
    Trace("restart node {} (incarnation {}, {} rows, round floor {}, epoch {})", id,
          node.incarnation, node.durable.rows.size(), node.durable.round_floor, config_.epoch);
  }
}

// One of: a one-way cut between two nodes, a two-way cut, a node cut off both ways, or a node
// that can hear but not be heard.
void RingSimulation::StartPartition() {
  std::vector<NodeId> ids;
  for (const auto& [id, node] : nodes_) {
    if (node.life != NodeLife::kRemoved) ids.push_back(id);
  }
  if (ids.size() < 2) return;
  const NodeId a = ids[random_.Uniform(0, ids.size() - 1)];
  NodeId b = ids[random_.Uniform(0, ids.size() - 1)];
  if (a == b) b = ids[(std::find(ids.begin(), ids.end(), a) - ids.begin() + 1) % ids.size()];
  Partition partition;
  partition.heal_tick =
      tick_ + random_.Uniform(10, std::max<uint64_t>(10, options_.faults.partition_ticks_max));
  const uint64_t kind = random_.Uniform(0, 3);
  std::string description;
  if (kind == 0) {
    partition.blocked.insert({a, b});
    description = fmt::format("{} -/-> {}", a, b);
  } else if (kind == 1) {
    partition.blocked.insert({a, b});
    partition.blocked.insert({b, a});
    description = fmt::format("{} <-/-> {}", a, b);
  } else {
    for (NodeId other : ids) {
      if (other == a) continue;
      partition.blocked.insert({a, other});
      if (kind == 2) partition.blocked.insert({other, a});
    }
    description = kind == 2 ? fmt::format("{} isolated", a) : fmt::format("{} unheard", a);
  }
  report_.partitions++;
  Trace("partition {} until tick {}", description, partition.heal_tick);
  partitions_.push_back(std::move(partition));
}

// The node was paused (or its clock jumped): every tick it missed arrives at once, so all its
// timers fire before it hears anything.
void RingSimulation::ClockJump(NodeId id) {
  const uint64_t ticks =
      random_.Uniform(50, std::max<uint64_t>(50, options_.faults.clock_jump_ticks_max));
  Trace("clock jump on node {}: {} ticks", id, ticks);
  report_.clock_jumps++;
  for (uint64_t i = 0; i < ticks && !finished_; i++) {
    SimNode* node = Up(id);
    if (node == nullptr) return;
    Handle(id, node->ring_node->OnTick());
  }
}

}  // namespace weft::sim
