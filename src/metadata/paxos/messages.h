// The single-row Paxos messages as plain structs (the wire encoding comes with rpc/). Every reply
// names the ballot it answers so that a proposer can drop stale replies from earlier attempts.
#pragma once

#include <variant>
#include <vector>

#include "metadata/paxos/paxos_types.h"

namespace weft::metadata::paxos {

// Phase 1a: promise to ignore ballots below `ballot` and report what you accepted.
struct Prepare {
  Ballot ballot;
};

// Phase 1b: the acceptor promised `ballot`; `accepted` / `accepted_state` is its newest accept.
struct Promise {
  Ballot ballot;
  Ballot accepted;
  RowState accepted_state;
};

// Phase 2a: accept `state` at `ballot`. A nonzero `next_promise` (above `ballot`) also asks the
// acceptor, once it accepted, to promise that ballot: the proposer's next change of the row can
// then go straight to phase 2 at it (docs/protocol/paxos.md, "Pipelined changes").
struct Accept {
  Ballot ballot;
  RowState state;
  Ballot next_promise;
};

// Phase 2b: the acceptor accepted the state proposed at `ballot`.
struct Accepted {
  Ballot ballot;
};

// A refusal of a Prepare or Accept at `ballot`, because the acceptor promised `promised`.
struct Nack {
  Ballot ballot;
  Ballot promised;
};

// Learn: `state` was chosen (a quorum accepted it at `ballot`). Needs no reply.
struct Commit {
  Ballot ballot;
  RowState state;
};

using Message = std::variant<Prepare, Promise, Accept, Accepted, Nack, Commit>;

struct Envelope {
  NodeId from = 0;
  NodeId to = 0;
  Message message;
};

}  // namespace weft::metadata::paxos
