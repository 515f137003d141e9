// The messages ring nodes exchange, as plain structs (rpc/ carries them as protobuf:
// metadata/ring/ring.proto, translated by ring_wire.h). Requests go to a peer's RingNode and each
// is answered by exactly one reply, or by none when the peer is down or drops it.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "metadata/paxos/messages.h"
#include "metadata/ring/ring.h"

namespace weft::metadata::ring {

// A Paxos request (Prepare, Accept or Commit) for one row. op_id names the sender's operation so
// that the reply finds it; epoch is the sender's ring epoch.
struct RowRequest {
  uint64_t op_id = 0;
  uint64_t epoch = 0;
  std::string key;
  paxos::Message message;
};

// The acceptor's answer (Promise, Accepted or Nack; a Commit is answered with an empty Accepted
// of the commit's ballot so that every request has one reply).
struct RowReply {
  uint64_t op_id = 0;
  std::string key;
  paxos::Message message;
};

// Which row keys a replica holds: those starting with `prefix`, after `start_after` (bytewise),
// at most `limit`, and only in `ranges` when it is not empty. `include_deleted` also lists rows
// whose newest state is a delete (streaming moves those too; scans do not want them).
struct KeyListRequest {
  uint64_t op_id = 0;
  uint64_t epoch = 0;
  std::string prefix;
  std::string start_after;
  uint32_t limit = 0;
  std::vector<TokenRange> ranges;
  bool include_deleted = false;
};

struct KeyListReply {
  uint64_t op_id = 0;
  std::vector<std::string> keys;  // Sorted.
  bool truncated = false;         // `limit` keys were returned; more may follow the last.
};

// A refusal: the replica's ring epoch differs from the request's in a way that matters (the
// request is older than the replica's ring, or a key list asks for a ring the replica has not
// seen yet). The sender retries once the rings agree.
struct EpochMismatch {
  uint64_t op_id = 0;
  uint64_t epoch = 0;  // The replica's.
};

using Request = std::variant<RowRequest, KeyListRequest>;
using Reply = std::variant<RowReply, KeyListReply, EpochMismatch>;

}  // namespace weft::metadata::ring
