// Proposer: one client operation (a read, a compare-and-set or a compare-and-delete) on one row,
// driven to an outcome among the row's replicas. Pure logic: the driver feeds it replies and
// ticks and sends the messages it returns; it gives up after `timeout_ticks`.
//
// Each attempt runs phase 1 (Prepare to every replica, a majority of Promises) and adopts the
// state with the highest accepted ballot among them (the initial absent row if none). The client's
// operation is evaluated against that adopted state, and phase 2 proposes, at the same ballot:
// - the state the operation produces (change + 1), if it applies: choosing it also fixes the
//   adopted state as the row's state at the change before (the adopted state is completed);
// - the adopted state itself, if the operation does not apply (a version conflict) or is a read
//   and the promises did not all report the same accepted ballot: the answer must not name a
//   state that could still be lost. When all promises report one accepted ballot, a majority
//   accepted that state, so it is chosen and the proposer answers without phase 2.
// A majority of Accepted completes the operation and sends Commit to every replica. A Nack or an
// attempt without a quorum within `attempt_ticks` starts a new attempt with a higher ballot after
// a short seeded backoff. If an attempt adopts the state this proposer itself created in an
// earlier attempt, that state is completed and the compare-and-set reported successful; if it
// adopts another state at or past the change its own proposal had, it gives up with an unknown
// outcome rather than apply the operation a second time.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "metadata/paxos/messages.h"

namespace weft::metadata::paxos {

inline constexpr size_t kMaxReplicas = 7;

enum class OperationKind : uint8_t { kRead, kCompareAndSet, kCompareAndDelete };

struct Operation {
  OperationKind kind = OperationKind::kRead;
  uint64_t expected_version = 0;  // Compare-and-set / -delete; 0 = the row must be absent.
  std::string value;              // Compare-and-set only.
};

// A ballot this node may use for phase 2 of the row's next change without phase 1: a quorum
// accepted `chosen` at the ballot below it and promised `ballot` in the same write.
struct PreparedBallot {
  Ballot ballot;
  RowState chosen;
};

struct ProposerConfig {
  NodeId self = 0;
  std::vector<NodeId> replicas;  // 1..kMaxReplicas distinct nodes (3 or 5 in a ring).
  // During a ring change, the row's replicas after the change (empty otherwise): every quorum
  // then needs a majority of `replicas` and a majority of `next_replicas` (joint consensus).
  std::vector<NodeId> next_replicas;
  // A read that always runs phase 2, writing the adopted state to a quorum at this ballot even
  // when the promises agree: streaming uses it to put every row on the new replicas.
  bool repair = false;
  // Compare-and-set / -delete only. `prepared`: skip phase 1 of the first attempt (a conflict
  // found against it is not answered but sends the operation through a full attempt, since the
  // row may have moved on elsewhere). `pipeline`: ask the accepting quorum to promise the next
  // round too, so that next_prepared() is set when the operation succeeds.
  std::optional<PreparedBallot> prepared;
  bool pipeline = false;
  uint64_t first_round = 1;      // The driver passes one above the highest round it has seen.
  uint32_t attempt_ticks = 8;    // Without a quorum after this many ticks, retry.
  uint32_t timeout_ticks = 200;  // Give up after this many ticks.
  uint32_t backoff_ticks_max = 4;
  uint64_t backoff_seed = 0;  // Spreads the backoffs of competing proposers.
};

// The end of an operation.
// - OK: `row` is the row's state after the operation (a read's answer, the CAS's new state).
// - Aborted: version conflict; `row` is the chosen state the operation was evaluated against.
// - InvalidArgument: a compare-and-delete of version 0; nothing was sent.
// - Busy: no quorum before the timeout, or the row moved past a state this operation proposed.
//   The outcome is unknown: a proposed state may have been or may still be chosen (a later
//   operation on the row completes it).
struct Outcome {
  Status status;
  RowState row;
};

struct ProposerOutput {
  std::vector<Envelope> messages;
  std::optional<Outcome> outcome;  // Set once, by the input that finishes the operation.
};

class Proposer {
 public:
  Proposer(ProposerConfig config, Operation operation);

  // Sends the first Prepare (or finishes at once for an invalid operation).
  ProposerOutput Start();
  // A reply from a replica. Duplicates and replies to earlier attempts are ignored.
  ProposerOutput OnMessage(NodeId from, const Message& message);
  // One unit of virtual time has passed.
  ProposerOutput OnTick();
  // The ring changed: later attempts use these replica sets (the current attempt keeps its own,
  // and replies from members of neither set are ignored from now on).
  void SetReplicas(std::vector<NodeId> replicas, std::vector<NodeId> next_replicas);
  // The replica refused the attempt (its ring is newer): back off and retry, like a Nack.
  ProposerOutput OnRefused();

  bool done() const { return phase_ == Phase::kDone; }
  // After a successful pipelined change: the ballot the row's next change may start phase 2 at.
  const std::optional<PreparedBallot>& next_prepared() const { return next_prepared_; }
  // The highest ballot round seen so far, for the driver's next `first_round`.
  uint64_t highest_round_seen() const { return highest_round_seen_; }
  uint32_t attempts() const { return attempts_; }
  // The state the current attempt adopted in phase 1 (what a created state was derived from);
  // for checkers and logs.
  const RowState& adopted() const { return adopted_; }

 private:
  enum class Phase : uint8_t { kIdle, kPreparing, kAccepting, kBackoff, kDone };

  // A majority of replicas and, during a change, of next_replicas.
  bool HasQuorum(const std::set<NodeId>& nodes) const;
  bool IsReplica(NodeId node) const;
  // The attempt's recipients: replicas, then the members of next_replicas not among them.
  std::vector<NodeId> AllReplicas() const;
  ProposerOutput StartAttempt();
  ProposerOutput OnPromise(NodeId from, const Promise& promise);
  ProposerOutput OnAccepted(NodeId from, const Accepted& accepted);
  ProposerOutput OnNack(const Nack& nack);
  ProposerOutput DecidePhase2();
  ProposerOutput SendAccept(RowState state);
  ProposerOutput Finish(Status status, RowState row);
  std::optional<RowState> Apply(const RowState& current) const;
  uint32_t NextBackoffTicks();

  ProposerConfig config_;
  // Replica sets from SetReplicas, taken by the next attempt.
  std::optional<std::pair<std::vector<NodeId>, std::vector<NodeId>>> pending_replicas_;
  Operation operation_;
  Phase phase_ = Phase::kIdle;
  Ballot ballot_;
  uint64_t highest_round_seen_ = 0;
  uint32_t attempts_ = 0;
  uint64_t ticks_total_ = 0;
  uint64_t ticks_in_phase_ = 0;
  uint32_t backoff_ticks_left_ = 0;
  uint64_t random_state_ = 0;

  // Phase 1 of the current attempt.
  std::set<NodeId> promised_by_;
  Ballot highest_accepted_;
  RowState adopted_;
  bool accepted_ballots_agree_ = true;
  Ballot first_accepted_;

  // Phase 2 of the current attempt.
  std::set<NodeId> accepted_by_;
  RowState proposed_;
  bool proposed_is_operation_ = false;  // proposed_ is a state this operation created.
  RowState evaluated_against_;

  // The ballots of the states this operation created (one per attempt at most) and the lowest
  // change among them: once the row reaches that change through a state that is not one of
  // these, whether this operation took effect can no longer be told.
  std::set<Ballot> created_ballots_;
  uint64_t created_change_min_ = 0;

  Ballot next_promise_;  // Sent with the current attempt's Accepts (zero: none).
  std::optional<PreparedBallot> next_prepared_;
};

}  // namespace weft::metadata::paxos
