// The values single-row Paxos agrees on: ballots, row states and the acceptor's durable state.
// docs/protocol/paxos.md describes the protocol these types take part in.
#pragma once

#include <compare>
#include <cstdint>
#include <string>

namespace weft::metadata::paxos {

using NodeId = uint32_t;

// Ballots are unique per node because the node id breaks ties between equal rounds; they are
// totally ordered by (round, node). The zero ballot is below every ballot a proposer uses (rounds
// start at 1) and stands for "nothing promised / accepted yet".
struct Ballot {
  uint64_t round = 0;
  NodeId node = 0;

  bool IsZero() const { return round == 0; }
  auto operator<=>(const Ballot&) const = default;
};

// One state of a row. `change` counts the changes chosen for the row: it advances by exactly one
// per chosen change, deletes included, and is what Paxos orders. `version` is the MetadataStore
// version: 0 while the row is absent (never created or deleted), 1 after a create, +1 per update.
// `created_by` is the ballot of the proposal that first proposed this state; a proposer proposes
// at most one new state per ballot, so it names the state (a re-proposal keeps it).
struct RowState {
  uint64_t change = 0;
  uint64_t version = 0;
  std::string value;
  Ballot created_by;

  bool exists() const { return version != 0; }
  bool operator==(const RowState&) const = default;
};

// What an acceptor must find again after a crash. Invariant: accepted <= promised. The zero
// `accepted` ballot goes with the initial RowState (change 0, absent), which is chosen by
// definition. `committed` is the newest state this replica learned as chosen (a Commit); it is
// the replica's local copy of the row and plays no part in the acceptor's safety.
struct AcceptorState {
  Ballot promised;
  Ballot accepted;
  RowState accepted_state;
  RowState committed;

  bool operator==(const AcceptorState&) const = default;
};

}  // namespace weft::metadata::paxos
