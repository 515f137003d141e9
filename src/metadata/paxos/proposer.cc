#include "metadata/paxos/proposer.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "base/assert.h"

namespace weft::metadata::paxos {

namespace {

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

Proposer::Proposer(ProposerConfig config, Operation operation)
    : config_(std::move(config)),
      operation_(std::move(operation)),
      random_state_(config_.backoff_seed) {
  WEFT_ASSERT(!config_.replicas.empty());
  WEFT_ASSERT(config_.replicas.size() <= kMaxReplicas);
  WEFT_ASSERT(config_.attempt_ticks >= 1);
  WEFT_ASSERT(config_.backoff_ticks_max >= 1);
  WEFT_ASSERT(config_.next_replicas.size() <= kMaxReplicas);
}

bool Proposer::IsReplica(NodeId node) const {
  return std::find(config_.replicas.begin(), config_.replicas.end(), node) !=
             config_.replicas.end() ||
         std::find(config_.next_replicas.begin(), config_.next_replicas.end(), node) !=
             config_.next_replicas.end();
}

std::vector<NodeId> Proposer::AllReplicas() const {
  std::vector<NodeId> all = config_.replicas;
  for (NodeId node : config_.next_replicas) {
    if (std::find(all.begin(), all.end(), node) == all.end()) all.push_back(node);
  }
  return all;
}

bool Proposer::HasQuorum(const std::set<NodeId>& nodes) const {
  auto majority_of = [&nodes](const std::vector<NodeId>& set) {
    size_t count = 0;
    for (NodeId node : set) count += nodes.contains(node) ? 1 : 0;
    return count >= set.size() / 2 + 1;
  };
  if (!majority_of(config_.replicas)) return false;
  return config_.next_replicas.empty() || majority_of(config_.next_replicas);
}

void Proposer::SetReplicas(std::vector<NodeId> replicas, std::vector<NodeId> next_replicas) {
  WEFT_ASSERT(!replicas.empty() && replicas.size() <= kMaxReplicas);
  WEFT_ASSERT(next_replicas.size() <= kMaxReplicas);
  pending_replicas_ = std::make_pair(std::move(replicas), std::move(next_replicas));
}

ProposerOutput Proposer::OnRefused() {
  if (phase_ != Phase::kPreparing && phase_ != Phase::kAccepting) return {};
  phase_ = Phase::kBackoff;
  backoff_ticks_left_ = NextBackoffTicks();
  return {};
}

ProposerOutput Proposer::Start() {
  WEFT_ASSERT(phase_ == Phase::kIdle);
  if (operation_.kind == OperationKind::kCompareAndDelete && operation_.expected_version == 0) {
    return Finish(Status::InvalidArgument("compare-and-delete of version 0"), RowState{});
  }
  if (config_.prepared && operation_.kind != OperationKind::kRead) {
    // Phase 2 straight away at the prepared ballot, if the operation applies to the state this
    // node last chose. If the row changed elsewhere meanwhile, a higher promise turns the
    // Accepts into Nacks and the operation goes on with full attempts.
    const PreparedBallot prepared = *config_.prepared;
    WEFT_ASSERT(prepared.ballot.node == config_.self);
    std::optional<RowState> next;
    if (prepared.chosen.version == operation_.expected_version) {
      ballot_ = prepared.ballot;
      next = Apply(prepared.chosen);
    }
    if (next) {
      highest_round_seen_ = std::max(highest_round_seen_, ballot_.round);
      attempts_++;
      adopted_ = prepared.chosen;
      evaluated_against_ = prepared.chosen;
      created_change_min_ = next->change;
      created_ballots_.insert(ballot_);
      proposed_is_operation_ = true;
      return SendAccept(std::move(*next));
    }
  }
  return StartAttempt();
}

ProposerOutput Proposer::StartAttempt() {
  if (pending_replicas_) {
    config_.replicas = std::move(pending_replicas_->first);
    config_.next_replicas = std::move(pending_replicas_->second);
    pending_replicas_.reset();
  }
  const uint64_t round = std::max(config_.first_round, highest_round_seen_ + 1);
  highest_round_seen_ = round;
  ballot_ = Ballot{.round = round, .node = config_.self};
  attempts_++;
  phase_ = Phase::kPreparing;
  ticks_in_phase_ = 0;
  promised_by_.clear();
  highest_accepted_ = Ballot{};
  adopted_ = RowState{};
  accepted_ballots_agree_ = true;
  first_accepted_ = Ballot{};
  ProposerOutput output;
  for (NodeId replica : AllReplicas()) {
    output.messages.push_back(
        Envelope{.from = config_.self, .to = replica, .message = Prepare{.ballot = ballot_}});
  }
  return output;
}

ProposerOutput Proposer::OnMessage(NodeId from, const Message& message) {
  if (phase_ == Phase::kDone || phase_ == Phase::kIdle) return {};
  if (!IsReplica(from)) return {};  // Not one of this row's replicas: a misrouted reply.
  if (const auto* promise = std::get_if<Promise>(&message)) return OnPromise(from, *promise);
  if (const auto* accepted = std::get_if<Accepted>(&message)) return OnAccepted(from, *accepted);
  if (const auto* nack = std::get_if<Nack>(&message)) return OnNack(*nack);
  return {};  // Requests are for acceptors; the driver routes them there.
}

ProposerOutput Proposer::OnPromise(NodeId from, const Promise& promise) {
  if (phase_ != Phase::kPreparing || promise.ballot != ballot_) return {};  // Stale.
  // An acceptor never accepts a ballot above its promise: a reply claiming so is malformed.
  if (!(promise.accepted < ballot_)) return {};
  if (!promised_by_.insert(from).second) return {};  // Duplicate.
  if (promised_by_.size() == 1) {
    first_accepted_ = promise.accepted;
  } else if (promise.accepted != first_accepted_) {
    accepted_ballots_agree_ = false;
  }
  if (promised_by_.size() == 1 || promise.accepted > highest_accepted_) {
    highest_accepted_ = promise.accepted;
    adopted_ = promise.accepted_state;
  }
  if (!HasQuorum(promised_by_)) return {};
  return DecidePhase2();
}

ProposerOutput Proposer::DecidePhase2() {
  evaluated_against_ = adopted_;
  // Every promise reported the same accepted ballot: a majority accepted the adopted state. A
  // repair read writes it again regardless.
  const bool adopted_is_chosen = accepted_ballots_agree_ && !config_.repair;
  if (!adopted_.created_by.IsZero() && created_ballots_.contains(adopted_.created_by)) {
    proposed_is_operation_ = true;  // This operation's own state from an earlier attempt.
    if (adopted_is_chosen) return Finish(Status::Ok(), adopted_);
    return SendAccept(adopted_);
  }
  if (!created_ballots_.empty() && adopted_.change >= created_change_min_) {
    return Finish(Status::Busy(fmt::format("outcome unknown: the row reached change {} past this "
                                           "operation's proposal for change {}",
                                           adopted_.change, created_change_min_)),
                  adopted_);
  }
  std::optional<RowState> next = Apply(adopted_);
  if (next) {
    WEFT_ASSERT(next->change == adopted_.change + 1);
    if (created_ballots_.empty()) created_change_min_ = next->change;
    created_change_min_ = std::min(created_change_min_, next->change);
    created_ballots_.insert(ballot_);
    proposed_is_operation_ = true;
    return SendAccept(std::move(*next));
  }
  // A read, or a version conflict: answer with the adopted state once it is surely chosen. If an
  // earlier attempt of this operation proposed a state of its own, that state may still sit on a
  // minority at a lower ballot and be chosen later; accepting the adopted state at this higher
  // ballot on a quorum first rules that out, so a conflict answer is final (found by sim/).
  proposed_is_operation_ = false;
  if (!adopted_is_chosen || !created_ballots_.empty()) return SendAccept(adopted_);
  if (operation_.kind == OperationKind::kRead) return Finish(Status::Ok(), adopted_);
  return Finish(Status::Aborted(fmt::format("version conflict: expected {}, found {}",
                                            operation_.expected_version, adopted_.version)),
                adopted_);
}

std::optional<RowState> Proposer::Apply(const RowState& current) const {
  if (operation_.kind == OperationKind::kRead) return std::nullopt;
  if (current.version != operation_.expected_version) return std::nullopt;
  RowState next{.change = current.change + 1, .version = 0, .value = {}, .created_by = ballot_};
  if (operation_.kind == OperationKind::kCompareAndSet) {
    next.version = current.version + 1;  // An absent row (version 0) is created at version 1.
    next.value = operation_.value;
  }
  return next;
}

ProposerOutput Proposer::SendAccept(RowState state) {
  phase_ = Phase::kAccepting;
  ticks_in_phase_ = 0;
  accepted_by_.clear();
  proposed_ = std::move(state);
  next_promise_ = Ballot{};
  if (config_.pipeline && config_.next_replicas.empty() && proposed_is_operation_) {
    // The next round is this proposer's from now on: later attempts start above it.
    next_promise_ = Ballot{.round = ballot_.round + 1, .node = config_.self};
    highest_round_seen_ = std::max(highest_round_seen_, next_promise_.round);
  }
  ProposerOutput output;
  for (NodeId replica : AllReplicas()) {
    output.messages.push_back(Envelope{
        .from = config_.self,
        .to = replica,
        .message = Accept{.ballot = ballot_, .state = proposed_, .next_promise = next_promise_}});
  }
  return output;
}

ProposerOutput Proposer::OnAccepted(NodeId from, const Accepted& accepted) {
  if (phase_ != Phase::kAccepting || accepted.ballot != ballot_) return {};  // Stale.
  if (!accepted_by_.insert(from).second) return {};                          // Duplicate.
  if (!HasQuorum(accepted_by_)) return {};
  // proposed_ is chosen: tell every replica, then answer the client.
  ProposerOutput output;
  for (NodeId replica : AllReplicas()) {
    output.messages.push_back(Envelope{.from = config_.self,
                                       .to = replica,
                                       .message = Commit{.ballot = ballot_, .state = proposed_}});
  }
  ProposerOutput finished;
  if (proposed_is_operation_ && !next_promise_.IsZero()) {
    // The quorum that accepted also promised next_promise_ in the same durable write.
    next_prepared_ = PreparedBallot{.ballot = next_promise_, .chosen = proposed_};
  }
  if (proposed_is_operation_ || operation_.kind == OperationKind::kRead) {
    finished = Finish(Status::Ok(), proposed_);
  } else {
    finished = Finish(Status::Aborted(fmt::format("version conflict: expected {}, found {}",
                                                  operation_.expected_version, proposed_.version)),
                      proposed_);
  }
  output.outcome = std::move(finished.outcome);
  return output;
}

ProposerOutput Proposer::OnNack(const Nack& nack) {
  if (nack.ballot != ballot_) return {};  // Stale.
  if (phase_ != Phase::kPreparing && phase_ != Phase::kAccepting) return {};
  if (!(nack.promised > ballot_)) return {};  // Malformed: a nack names a higher promise.
  highest_round_seen_ = std::max(highest_round_seen_, nack.promised.round);
  phase_ = Phase::kBackoff;
  backoff_ticks_left_ = NextBackoffTicks();
  return {};
}

ProposerOutput Proposer::OnTick() {
  if (phase_ == Phase::kDone || phase_ == Phase::kIdle) return {};
  ticks_total_++;
  if (ticks_total_ >= config_.timeout_ticks) {
    return Finish(Status::Busy(fmt::format("no quorum of {} replicas within {} ticks ({} "
                                           "attempts); outcome unknown",
                                           AllReplicas().size(), config_.timeout_ticks, attempts_)),
                  RowState{});
  }
  if (phase_ == Phase::kBackoff) {
    WEFT_ASSERT(backoff_ticks_left_ >= 1);
    if (--backoff_ticks_left_ == 0) return StartAttempt();
    return {};
  }
  if (++ticks_in_phase_ >= config_.attempt_ticks) {
    // Lost messages or a crashed majority: try again with a higher ballot after a backoff.
    phase_ = Phase::kBackoff;
    backoff_ticks_left_ = NextBackoffTicks();
  }
  return {};
}

uint32_t Proposer::NextBackoffTicks() {
  return 1 + static_cast<uint32_t>(SplitMix64(random_state_) % config_.backoff_ticks_max);
}

ProposerOutput Proposer::Finish(Status status, RowState row) {
  WEFT_ASSERT(phase_ != Phase::kDone);
  phase_ = Phase::kDone;
  ProposerOutput output;
  output.outcome = Outcome{.status = std::move(status), .row = std::move(row)};
  return output;
}

}  // namespace weft::metadata::paxos
