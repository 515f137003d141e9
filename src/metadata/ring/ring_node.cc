#include "metadata/ring/ring_node.h"

#include <fmt/format.h>

#include <utility>

#include "base/assert.h"
#include "metadata/ring/ring_node_impl.h"

namespace weft::metadata::ring {

namespace {

// Rounds reserved per durable floor write: one write per ~4 billion ballots.
constexpr uint64_t kRoundFloorStep = uint64_t{1} << 32;

uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Status CheckKey(std::string_view key) {
  if (key.empty()) return Status::InvalidArgument("empty key");
  if (key.size() > kMaxKeyBytes) {
    return Status::InvalidArgument(
        fmt::format("key of {} bytes is longer than {}", key.size(), kMaxKeyBytes));
  }
  return Status::Ok();
}

const paxos::Ballot* BallotOf(const paxos::Message& message) {
  return std::visit([](const auto& m) -> const paxos::Ballot* { return &m.ballot; }, message);
}

}  // namespace

void RingNodeOutput::Append(RingNodeOutput&& other) {
  auto move_all = [](auto& into, auto& from) {
    for (auto& item : from) into.push_back(std::move(item));
  };
  move_all(requests, other.requests);
  move_all(replies, other.replies);
  move_all(persist_rows, other.persist_rows);
  move_all(persist_round_floors, other.persist_round_floors);
  move_all(results, other.results);
  ring_refresh_wanted = ring_refresh_wanted || other.ring_refresh_wanted;
  if (other.stream_done) stream_done = other.stream_done;
}

bool RingNodeOutput::empty() const {
  return requests.empty() && replies.empty() && persist_rows.empty() &&
         persist_round_floors.empty() && results.empty() && !ring_refresh_wanted && !stream_done;
}

RingNode::Impl::Impl(RingNodeOptions options_in, RecoveredState recovered, RingConfig ring_config)
    : options(std::move(options_in)) {
  WEFT_ASSERT(options.self != 0);
  WEFT_ASSERT(options.attempt_ticks >= 1 && options.timeout_ticks >= options.attempt_ticks);
  ring = std::make_unique<Ring>(std::move(ring_config));
  for (const PlacedRange& placed : ring->Ranges()) {
    if (std::find(distinct_placements.begin(), distinct_placements.end(), placed.placement) ==
        distinct_placements.end()) {
      distinct_placements.push_back(placed.placement);
    }
  }
  round_floor_durable = recovered.round_floor;
  highest_round_seen = recovered.round_floor;
  for (auto& [key, state] : recovered.rows) {
    SeeRound(state.promised.round);
    acceptors.emplace(key, paxos::Acceptor(std::move(state)));
  }
  // Op ids differ across restarts so that a late reply to an op of an earlier life finds nothing.
  op_id_salt_ = Mix(options.seed ^ Mix(recovered.round_floor)) & ~uint64_t{0xffffffff};
  stats.rows_hosted = acceptors.size();
}

RingNode::RingNode(RingNodeOptions options, RecoveredState recovered, RingConfig ring)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(recovered), std::move(ring))) {}

RingNode::~RingNode() = default;

const Ring& RingNode::ring() const { return *impl_->ring; }
const RingNodeStats& RingNode::stats() const { return impl_->stats; }
bool RingNode::streaming() const { return impl_->stream.has_value(); }

const paxos::AcceptorState* RingNode::RowState(std::string_view key) const {
  auto it = impl_->acceptors.find(key);
  return it == impl_->acceptors.end() ? nullptr : &it->second.state();
}

// ---- Client operations -------------------------------------------------------------------------

RingNodeOutput RingNode::Get(uint64_t client_op, std::string key) {
  auto op = std::make_unique<RowOp>();
  op->kind = OpKind::kGet;
  op->client_op = client_op;
  op->key = std::move(key);
  op->operation.kind = paxos::OperationKind::kRead;
  return impl_->Submit(std::move(op));
}

RingNodeOutput RingNode::CompareAndSet(uint64_t client_op, std::string key,
                                       uint64_t expected_version, std::string value) {
  auto op = std::make_unique<RowOp>();
  op->kind = OpKind::kCompareAndSet;
  op->client_op = client_op;
  op->key = std::move(key);
  op->operation = {.kind = paxos::OperationKind::kCompareAndSet,
                   .expected_version = expected_version,
                   .value = std::move(value)};
  return impl_->Submit(std::move(op));
}

RingNodeOutput RingNode::CompareAndDelete(uint64_t client_op, std::string key,
                                          uint64_t expected_version) {
  auto op = std::make_unique<RowOp>();
  op->kind = OpKind::kCompareAndDelete;
  op->client_op = client_op;
  op->key = std::move(key);
  op->operation = {.kind = paxos::OperationKind::kCompareAndDelete,
                   .expected_version = expected_version};
  return impl_->Submit(std::move(op));
}

RingNodeOutput RingNode::Impl::Submit(std::unique_ptr<RowOp> op) {
  RingNodeOutput out;
  Status valid = CheckKey(op->key);
  if (valid.ok() && op->operation.value.size() > kMaxValueBytes) {
    valid = Status::InvalidArgument(fmt::format("value of {} bytes is longer than {}",
                                                op->operation.value.size(), kMaxValueBytes));
  }
  if (!valid.ok()) {
    WEFT_ASSERT(op->kind != OpKind::kRepair && op->kind != OpKind::kScanRead);
    stats.operations_failed++;
    out.results.push_back(ClientResult{.client_op = op->client_op, .status = std::move(valid)});
    return out;
  }
  stats.operations_started++;
  op->op_id = NewOpId();
  std::string key = op->key;
  auto& queue = queues[key];
  queue.push_back(std::move(op));
  // One proposer per row at a time on this node: competing ones would only duel.
  if (queue.size() == 1) StartFront(key, out);
  return out;
}

void RingNode::Impl::StartFront(const std::string& key, RingNodeOutput& out) {
  auto it = queues.find(key);
  WEFT_ASSERT(it != queues.end() && !it->second.empty());
  RowOp& op = *it->second.front();
  WEFT_ASSERT(op.proposer == nullptr);
  const Placement placement = ring->PlacementForKey(key);
  paxos::ProposerConfig config{
      .self = options.self,
      .replicas = placement.current,
      .next_replicas = placement.next,
      .repair = op.kind == OpKind::kRepair,
      .first_round = highest_round_seen + 1,
      .attempt_ticks = options.attempt_ticks,
      .timeout_ticks = options.timeout_ticks,
      .backoff_ticks_max = options.backoff_ticks_max,
      .backoff_seed = Mix(options.seed ^ op.op_id),
  };
  const bool is_change = op.kind == OpKind::kCompareAndSet || op.kind == OpKind::kCompareAndDelete;
  if (is_change && !placement.transitioning()) {
    config.pipeline = true;
    auto prepared = prepared_rows.find(key);
    if (prepared != prepared_rows.end()) {
      config.prepared = std::move(prepared->second);
      prepared_rows.erase(prepared);
    }
  }
  op.proposer = std::make_unique<paxos::Proposer>(std::move(config), op.operation);
  active_ops[op.op_id] = &op;
  Drive(op, op.proposer->Start(), out);
}

void RingNode::Impl::Drive(RowOp& op, paxos::ProposerOutput proposer_output, RingNodeOutput& out) {
  for (paxos::Envelope& envelope : proposer_output.messages) {
    if (std::holds_alternative<paxos::Prepare>(envelope.message)) stats.paxos_attempts++;
    SendRowRequest(envelope.to,
                   RowRequest{.op_id = op.op_id,
                              .epoch = ring->epoch(),
                              .key = op.key,
                              .message = std::move(envelope.message)},
                   out);
  }
  SeeRound(op.proposer->highest_round_seen());
  if (proposer_output.outcome) Finish(op, *proposer_output.outcome, out);
}

namespace {

// The highest round a request makes this node's own: a Prepare's, or an Accept's next promise.
uint64_t OwnRound(const paxos::Message& message) {
  if (const auto* prepare = std::get_if<paxos::Prepare>(&message)) return prepare->ballot.round;
  if (const auto* accept = std::get_if<paxos::Accept>(&message)) return accept->next_promise.round;
  return 0;
}

}  // namespace

void RingNode::Impl::SendRowRequest(NodeId to, RowRequest request, RingNodeOutput& out) {
  const uint64_t round = OwnRound(request.message);
  if (round == 0 || round < round_floor_durable) {
    out.requests.push_back(OutgoingRequest{.to = to, .request = std::move(request)});
    return;
  }
  // A round not yet covered by a durable floor: a restart must never reuse it for another state.
  held_prepares.push_back(OutgoingRequest{.to = to, .request = std::move(request)});
  if (round_floor_pending > round) return;  // The write under way covers it.
  if (round_floor_pending != 0) return;     // One write at a time; the next follows it.
  round_floor_pending = round + kRoundFloorStep;
  round_floor_persist_id = next_persist_id++;
  out.persist_round_floors.push_back(
      PersistRoundFloor{.persist_id = round_floor_persist_id, .round_floor = round_floor_pending});
}

void RingNode::Impl::ReleaseHeldPrepares(RingNodeOutput& out) {
  std::vector<OutgoingRequest> still_held;
  uint64_t round_max = 0;
  for (OutgoingRequest& held : held_prepares) {
    const auto& request = std::get<RowRequest>(held.request);
    const uint64_t round = OwnRound(request.message);
    if (round < round_floor_durable) {
      out.requests.push_back(std::move(held));
    } else {
      round_max = std::max(round_max, round);
      still_held.push_back(std::move(held));
    }
  }
  held_prepares = std::move(still_held);
  if (!held_prepares.empty() && round_floor_pending == 0) {
    round_floor_pending = round_max + kRoundFloorStep;
    round_floor_persist_id = next_persist_id++;
    out.persist_round_floors.push_back(PersistRoundFloor{.persist_id = round_floor_persist_id,
                                                         .round_floor = round_floor_pending});
  }
}

void RingNode::Impl::Finish(RowOp& op, const paxos::Outcome& outcome, RingNodeOutput& out) {
  WEFT_ASSERT(op.proposer != nullptr && op.proposer->done());
  const paxos::RowState& row = outcome.status.ok() || outcome.status.code() == StatusCode::kAborted
                                   ? outcome.row
                                   : paxos::RowState{};
  Status status = outcome.status;
  if (status.code() == StatusCode::kBusy) {
    // No quorum in time, or the row moved past this op's proposal: the outcome is unknown.
    status = Status::Unavailable(fmt::format("metadata row '{}': {}", op.key, status.message()));
  }
  if (status.ok()) {
    stats.operations_ok++;
  } else {
    stats.operations_failed++;
  }
  switch (op.kind) {
    case OpKind::kGet: {
      ClientResult result{.client_op = op.client_op, .status = status};
      if (status.ok()) {
        if (row.exists()) {
          result.rows.push_back(Row{.key = op.key, .value = row.value, .version = row.version});
        } else {
          result.status = Status::NotFound(fmt::format("metadata row '{}' not found", op.key));
        }
      }
      out.results.push_back(std::move(result));
      break;
    }
    case OpKind::kCompareAndSet:
    case OpKind::kCompareAndDelete:
      out.results.push_back(ClientResult{
          .client_op = op.client_op, .status = status, .version = status.ok() ? row.version : 0});
      break;
    case OpKind::kScanRead:
      OnScanRead(op.parent, op.key, status, row, out);
      break;
    case OpKind::kRepair:
      if (status.ok()) stats.stream_keys_repaired++;
      if (stream && stream->epoch == op.parent) OnRepairDone(status, out);
      break;
  }
  if (const auto& prepared = op.proposer->next_prepared();
      prepared && ring->changing_member() == 0) {
    if (prepared_rows.size() >= kPreparedRowsMax) prepared_rows.clear();
    prepared_rows[op.key] = *prepared;
  } else if (op.kind == OpKind::kCompareAndSet || op.kind == OpKind::kCompareAndDelete) {
    prepared_rows.erase(op.key);
  }
  // Next op on this row, if any.
  const std::string key = op.key;
  active_ops.erase(op.op_id);
  auto it = queues.find(key);
  WEFT_ASSERT(it != queues.end() && it->second.front().get() == &op);
  it->second.pop_front();
  if (it->second.empty()) {
    queues.erase(it);
  } else {
    StartFront(key, out);
  }
}

// ---- Acceptors ---------------------------------------------------------------------------------

RingNodeOutput RingNode::OnRequest(NodeId from, uint64_t reply_token, const Request& request) {
  if (const auto* row = std::get_if<RowRequest>(&request)) {
    return impl_->OnRowRequest(from, reply_token, *row);
  }
  return impl_->OnKeyList(reply_token, std::get<KeyListRequest>(request));
}

RingNodeOutput RingNode::Impl::OnRowRequest(NodeId from, uint64_t reply_token,
                                            const RowRequest& request) {
  RingNodeOutput out;
  if (!CheckKey(request.key).ok()) return out;  // Malformed: no reply.
  const paxos::Ballot* ballot = BallotOf(request.message);
  if (ballot->IsZero() || (ballot->node != from && from != 0)) return out;
  if (request.epoch < ring->epoch()) {
    // The proposer's ring is older than ours: its replica sets may no longer be the row's.
    stats.epoch_mismatches++;
    out.replies.push_back(
        OutgoingReply{.reply_token = reply_token,
                      .reply = EpochMismatch{.op_id = request.op_id, .epoch = ring->epoch()}});
    return out;
  }
  if (request.epoch > ring->epoch()) out.ring_refresh_wanted = true;
  SeeRound(ballot->round);
  if (const auto* accept = std::get_if<paxos::Accept>(&request.message)) {
    if (!accept->next_promise.IsZero() &&
        (accept->next_promise <= accept->ballot || accept->next_promise.node != ballot->node)) {
      return out;  // A next promise must be the proposer's own, above the accepted ballot.
    }
    SeeRound(accept->next_promise.round);
  }
  auto [it, inserted] = acceptors.try_emplace(request.key, paxos::AcceptorState{});
  if (inserted) stats.rows_hosted = acceptors.size();
  paxos::Acceptor& acceptor = it->second;
  paxos::AcceptorOutput result;
  bool is_commit = false;
  if (const auto* prepare = std::get_if<paxos::Prepare>(&request.message)) {
    result = acceptor.OnPrepare(*prepare);
  } else if (const auto* accept = std::get_if<paxos::Accept>(&request.message)) {
    const paxos::AcceptorState& state = acceptor.state();
    if (accept->ballot == state.accepted && !(accept->state == state.accepted_state)) {
      return out;  // Two states at one ballot: a broken or stale peer; never accept it.
    }
    if (accept->state.change == 0 && !accept->state.created_by.IsZero()) return out;
    result = acceptor.OnAccept(*accept);
  } else if (const auto* commit = std::get_if<paxos::Commit>(&request.message)) {
    result = acceptor.OnCommit(*commit);
    is_commit = true;
    result.reply = paxos::Accepted{.ballot = commit->ballot};
  } else {
    return out;  // A reply sent as a request: malformed.
  }
  std::optional<OutgoingReply> reply;
  if (result.reply) {
    reply = OutgoingReply{
        .reply_token = reply_token,
        .reply = RowReply{
            .op_id = request.op_id, .key = request.key, .message = std::move(*result.reply)}};
  }
  if (result.persist) {
    QueuePersist(request.key, std::move(*result.persist), std::move(reply), /*sync=*/!is_commit,
                 out);
  } else if (reply && (is_commit || std::holds_alternative<paxos::Nack>(
                                        std::get<RowReply>(reply->reply).message))) {
    // A Nack, or a Commit already known: nothing to make durable first.
    out.replies.push_back(std::move(*reply));
  }
  return out;
}

void RingNode::Impl::QueuePersist(const std::string& key, paxos::AcceptorState state,
                                  std::optional<OutgoingReply> reply, bool sync,
                                  RingNodeOutput& out) {
  const uint64_t id = next_persist_id++;
  out.persist_rows.push_back(
      PersistRow{.persist_id = id, .key = key, .state = std::move(state), .sync = sync});
  if (reply) replies_after_persist[id].push_back(std::move(*reply));
}

RingNodeOutput RingNode::OnPersisted(uint64_t persist_id, const Status& status) {
  RingNodeOutput out;
  Impl& impl = *impl_;
  if (persist_id == impl.round_floor_persist_id && impl.round_floor_pending != 0) {
    if (status.ok()) impl.round_floor_durable = impl.round_floor_pending;
    impl.round_floor_pending = 0;
    impl.round_floor_persist_id = 0;
    impl.ReleaseHeldPrepares(out);  // Or asks again after a failed write.
    return out;
  }
  auto it = impl.replies_after_persist.find(persist_id);
  if (it == impl.replies_after_persist.end()) return out;
  // A failed write drops its replies: the proposer retries; a later write carries the state.
  if (status.ok()) {
    for (OutgoingReply& reply : it->second) out.replies.push_back(std::move(reply));
  }
  impl.replies_after_persist.erase(it);
  return out;
}

// ---- Replies, ticks, ring changes -------------------------------------------------------------

RingNodeOutput RingNode::OnReply(NodeId from, const Reply& reply) {
  RingNodeOutput out;
  Impl& impl = *impl_;
  if (const auto* row = std::get_if<RowReply>(&reply)) {
    auto it = impl.active_ops.find(row->op_id);
    if (it == impl.active_ops.end() || it->second->key != row->key) return out;
    RowOp& op = *it->second;
    if (const paxos::Ballot* ballot = BallotOf(row->message)) impl.SeeRound(ballot->round);
    if (const auto* nack = std::get_if<paxos::Nack>(&row->message)) {
      impl.SeeRound(nack->promised.round);
    }
    impl.Drive(op, op.proposer->OnMessage(from, row->message), out);
    return out;
  }
  if (const auto* list = std::get_if<KeyListReply>(&reply)) {
    if (impl.stream && impl.stream->list_op_id == list->op_id) {
      impl.OnStreamList(from, *list, out);
      return out;
    }
    auto scan = impl.scan_by_list_op.find(list->op_id);
    if (scan == impl.scan_by_list_op.end()) return out;
    auto it = impl.scans.find(scan->second);
    WEFT_ASSERT(it != impl.scans.end());
    impl.OnScanList(it->second, from, *list, out);
    return out;
  }
  const auto& mismatch = std::get<EpochMismatch>(reply);
  impl.stats.epoch_mismatches++;
  if (mismatch.epoch > impl.ring->epoch()) out.ring_refresh_wanted = true;
  auto it = impl.active_ops.find(mismatch.op_id);
  if (it != impl.active_ops.end() && mismatch.epoch > impl.ring->epoch()) {
    impl.Drive(*it->second, it->second->proposer->OnRefused(), out);
  }
  // Scans and the stream re-ask nodes that have not answered on their next round.
  return out;
}

RingNodeOutput RingNode::OnTick() {
  RingNodeOutput out;
  Impl& impl = *impl_;
  // Collect first: a tick may finish an op, which starts the next one on its row.
  std::vector<uint64_t> op_ids;
  op_ids.reserve(impl.active_ops.size());
  for (const auto& [op_id, op] : impl.active_ops) op_ids.push_back(op_id);
  for (uint64_t op_id : op_ids) {
    auto it = impl.active_ops.find(op_id);
    if (it == impl.active_ops.end()) continue;
    impl.Drive(*it->second, it->second->proposer->OnTick(), out);
  }
  impl.TickScans(out);
  impl.TickStream(out);
  if (impl.round_floor_pending == 0 && !impl.held_prepares.empty()) impl.ReleaseHeldPrepares(out);
  return out;
}

RingNodeOutput RingNode::SetRing(RingConfig config) {
  RingNodeOutput out;
  Impl& impl = *impl_;
  if (config.epoch <= impl.ring->epoch()) return out;  // Epochs only grow.
  impl.ring = std::make_unique<Ring>(std::move(config));
  impl.distinct_placements.clear();
  for (const PlacedRange& placed : impl.ring->Ranges()) {
    if (std::find(impl.distinct_placements.begin(), impl.distinct_placements.end(),
                  placed.placement) == impl.distinct_placements.end()) {
      impl.distinct_placements.push_back(placed.placement);
    }
  }
  impl.prepared_rows.clear();  // Prepared ballots were promised by the old replica sets.
  for (auto& [op_id, op] : impl.active_ops) {
    Placement placement = impl.ring->PlacementForKey(op->key);
    op->proposer->SetReplicas(std::move(placement.current), std::move(placement.next));
  }
  // A stream of an older change is moot: the ring moved on without it or past it.
  if (impl.stream && impl.stream->epoch != impl.ring->epoch()) impl.stream.reset();
  return out;
}

}  // namespace weft::metadata::ring
