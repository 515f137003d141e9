// Acceptor: one replica's Paxos role for one row. Pure logic: it takes Prepare, Accept and Commit
// messages and returns the state to persist and the reply to send.
//
// Persistence-before-reply contract: when OnPrepare / OnAccept / OnCommit return `persist`, the
// driver writes that AcceptorState durably (synced), and sends `reply` only after the write
// completed. Writes of one acceptor complete in the order they were requested. A positive reply
// (Promise, Accepted) always comes with a `persist`, also when the state did not change, because
// an identical earlier write may still be in flight. A Nack comes without one: it only tells the
// proposer to pick a higher ballot and is harmless if the state it reveals is lost in a crash. If
// the write fails or the node crashes first, the reply is dropped; after a restart the driver
// builds a new Acceptor from the last state whose write completed.
#pragma once

#include <optional>

#include "metadata/paxos/messages.h"

namespace weft::metadata::paxos {

struct AcceptorOutput {
  std::optional<AcceptorState> persist;  // Write this before sending `reply`.
  std::optional<Message> reply;          // To the sender of the input.
};

class Acceptor {
 public:
  // `recovered`: the last durable state (a default AcceptorState for a row never seen).
  explicit Acceptor(AcceptorState recovered);

  // Promise if `ballot` > promised (or equal: a duplicate of the Prepare already promised).
  AcceptorOutput OnPrepare(const Prepare& prepare);
  // Accept if `ballot` >= promised.
  AcceptorOutput OnAccept(const Accept& accept);
  // Record a chosen state newer than the committed one; no reply.
  AcceptorOutput OnCommit(const Commit& commit);

  // The newest state, including changes whose write may not have completed yet.
  const AcceptorState& state() const { return state_; }

 private:
  AcceptorState state_;
};

}  // namespace weft::metadata::paxos
