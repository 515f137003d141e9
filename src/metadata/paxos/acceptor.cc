#include "metadata/paxos/acceptor.h"

#include <utility>

#include "base/assert.h"

namespace weft::metadata::paxos {

Acceptor::Acceptor(AcceptorState recovered) : state_(std::move(recovered)) {
  WEFT_ASSERT(state_.accepted <= state_.promised);
  WEFT_ASSERT(!state_.accepted.IsZero() || state_.accepted_state.change == 0);
}

AcceptorOutput Acceptor::OnPrepare(const Prepare& prepare) {
  WEFT_ASSERT(!prepare.ballot.IsZero());
  if (prepare.ballot < state_.promised) {
    return {.persist = std::nullopt,
            .reply = Nack{.ballot = prepare.ballot, .promised = state_.promised}};
  }
  state_.promised = prepare.ballot;
  WEFT_ASSERT(state_.accepted <= state_.promised);
  return {.persist = state_,
          .reply = Promise{.ballot = prepare.ballot,
                           .accepted = state_.accepted,
                           .accepted_state = state_.accepted_state}};
}

AcceptorOutput Acceptor::OnAccept(const Accept& accept) {
  WEFT_ASSERT(!accept.ballot.IsZero());
  if (accept.ballot < state_.promised) {
    return {.persist = std::nullopt,
            .reply = Nack{.ballot = accept.ballot, .promised = state_.promised}};
  }
  // One proposer proposes one state per ballot, so an equal ballot means the same state.
  WEFT_ASSERT(accept.ballot != state_.accepted || accept.state == state_.accepted_state);
  state_.promised = accept.ballot;
  state_.accepted = accept.ballot;
  state_.accepted_state = accept.state;
  if (accept.next_promise > accept.ballot) state_.promised = accept.next_promise;
  WEFT_ASSERT(state_.accepted <= state_.promised);
  return {.persist = state_, .reply = Accepted{.ballot = accept.ballot}};
}

AcceptorOutput Acceptor::OnCommit(const Commit& commit) {
  WEFT_ASSERT(!commit.ballot.IsZero());
  if (commit.state.change <= state_.committed.change) return {};
  state_.committed = commit.state;
  return {.persist = state_, .reply = std::nullopt};
}

}  // namespace weft::metadata::paxos
