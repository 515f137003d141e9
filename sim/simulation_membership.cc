// The ring configuration service (ZooKeeper's part in the cluster): it holds the RingConfig,
// tells each node about a new ring after its own random lag, and runs one join and one leave as
// RingNode's driver contract says: the change's epoch, StartStream on the node that moves the
// data once it has that ring, and on stream_done the next epoch with the member NORMAL or gone.
#include <algorithm>

#include "sim/ring_simulation.h"

namespace weft::sim {

using metadata::ring::MemberState;
using metadata::ring::RingMember;

uint64_t RingSimulation::NewToken() {
  for (;;) {
    const uint64_t token = random_.Next();
    if (tokens_used_.insert(token).second) return token;
  }
}

void RingSimulation::SetupRing() {
  config_.epoch = 1;
  config_.replicas = report_.replicas;
  for (NodeId id = 1; id <= options_.nodes; id++) {
    RingMember member{.node = id};
    for (uint32_t i = 0; i < kTokensPerNode; i++) member.tokens.push_back(NewToken());
    config_.members.push_back(std::move(member));
  }
  WEFT_ASSERT(metadata::ring::ValidateRingConfig(config_).ok());
  for (NodeId id = 1; id <= options_.nodes; id++) {
    SimNode& node = nodes_[id];
    node.id = id;
    node.ring_node = MakeRingNode(node);
  }
}

// A new epoch: every node that is up learns it after its own lag (crashed ones on restart).
void RingSimulation::PublishRing() {
  WEFT_ASSERT(metadata::ring::ValidateRingConfig(config_).ok());
  std::string members;
  for (const RingMember& member : config_.members) {
    const char* state = member.state == MemberState::kNormal    ? ""
                        : member.state == MemberState::kJoining ? "(joining)"
                                                                : "(leaving)";
    members += fmt::format(" {}{}", member.node, state);
  }
  Trace("ring epoch {}:{}", config_.epoch, members);
  for (const auto& [id, node] : nodes_) {
    if (node.life == NodeLife::kUp) {
      ring_deliveries_.emplace(tick_ + random_.Uniform(0, ring_lag_ticks_max_), id);
    }
  }
}

void RingSimulation::DeliverRings() {
  while (!finished_ && !ring_deliveries_.empty() && ring_deliveries_.begin()->first <= tick_) {
    const NodeId id = ring_deliveries_.begin()->second;
    ring_deliveries_.erase(ring_deliveries_.begin());
    SimNode* node = Up(id);
    if (node == nullptr || node->ring_node->ring().epoch() >= config_.epoch) continue;
    Trace("node {} learns ring epoch {}", id, config_.epoch);
    Handle(id, node->ring_node->SetRing(config_));
  }
}

// The coordinator of a leave: the lowest-id NORMAL member that is up.
NodeId RingSimulation::LeaveCoordinator() const {
  for (const RingMember& member : config_.members) {
    if (member.state != MemberState::kNormal) continue;
    auto it = nodes_.find(member.node);
    if (it != nodes_.end() && it->second.life == NodeLife::kUp) return member.node;
  }
  return 0;
}

// Starts the stream once the streamer is up and has the change's ring; again after it
// restarted, and on another coordinator if a leave's coordinator is down.
void RingSimulation::DriveChange() {
  if (change_.kind == ChangeKind::kNone) return;
  if (change_.kind == ChangeKind::kLeave && Up(change_.streamer) == nullptr) {
    const NodeId coordinator = LeaveCoordinator();
    if (coordinator != 0 && coordinator != change_.streamer) {
      Trace("leave of node {}: coordinator {} replaces {}", change_.node, coordinator,
            change_.streamer);
      change_.streamer = coordinator;
      change_.stream_incarnation = 0;
    }
  }
  SimNode* streamer = Up(change_.streamer);
  if (streamer == nullptr || streamer->incarnation == change_.stream_incarnation) return;
  if (streamer->ring_node->ring().epoch() != change_.epoch) return;
  change_.stream_incarnation = streamer->incarnation;
  Trace("node {} starts streaming for epoch {}", change_.streamer, change_.epoch);
  Handle(change_.streamer, streamer->ring_node->StartStream());
}

void RingSimulation::MaybeStartMembershipChange(bool healing) {
  if (!membership_planned_ || change_.kind != ChangeKind::kNone) return;
  if (!join_done_) {
    if (healing || OperationsFinished() >= join_after_operations_) StartJoin();
    return;
  }
  if (!leave_done_ && (healing || tick_ >= leave_tick_)) StartLeave();
}

void RingSimulation::StartJoin() {
  const NodeId id = nodes_.rbegin()->first + 1;
  RingMember member{.node = id, .state = MemberState::kJoining};
  for (uint32_t i = 0; i < kTokensPerNode; i++) member.tokens.push_back(NewToken());
  config_.members.push_back(std::move(member));
  config_.epoch++;
  change_ =
      RingChange{.kind = ChangeKind::kJoin, .node = id, .epoch = config_.epoch, .streamer = id};
  report_.joins++;
  // The joiner starts empty, with the ring that names it.
  SimNode& node = nodes_[id];
  node.id = id;
  node.ring_node = MakeRingNode(node);
  Trace("node {} joins", id);
  PublishRing();
}

void RingSimulation::StartLeave() {
  std::vector<NodeId> normal;
  for (const RingMember& member : config_.members) {
    if (member.state == MemberState::kNormal) normal.push_back(member.node);
  }
  WEFT_ASSERT(normal.size() >= 2);
  const NodeId id = normal[random_.Uniform(0, normal.size() - 1)];
  for (RingMember& member : config_.members) {
    if (member.node == id) member.state = MemberState::kLeaving;
  }
  config_.epoch++;
  change_ = RingChange{.kind = ChangeKind::kLeave, .node = id, .epoch = config_.epoch};
  change_.streamer = LeaveCoordinator();
  report_.leaves++;
  Trace("node {} leaves (coordinator {})", id, change_.streamer);
  PublishRing();
}

void RingSimulation::OnStreamDone(NodeId id, uint64_t epoch) {
  Trace("node {} finished streaming for epoch {}", id, epoch);
  if (change_.kind == ChangeKind::kNone || epoch != change_.epoch || epoch != config_.epoch) {
    return;  // A late report of a change already completed.
  }
  const NodeId changed = change_.node;
  if (change_.kind == ChangeKind::kJoin) {
    for (RingMember& member : config_.members) {
      if (member.node == changed) member.state = MemberState::kNormal;
    }
    join_done_ = true;
    leave_tick_ = tick_ + random_.Uniform(20, 300);
  } else {
    std::erase_if(config_.members,
                  [changed](const RingMember& member) { return member.node == changed; });
    leave_done_ = true;
  }
  config_.epoch++;
  change_ = RingChange{};
  PublishRing();
  if (leave_done_ && nodes_.at(changed).life != NodeLife::kRemoved) {
    // The removed node stops; what it had in flight may still arrive elsewhere.
    SimNode& node = nodes_.at(changed);
    Trace("node {} stops", changed);
    if (node.life == NodeLife::kUp) StopRingNode(node);
    node.life = NodeLife::kRemoved;
    AbandonOperationsOn(changed);
  }
}

}  // namespace weft::sim
