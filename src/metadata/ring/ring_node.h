// RingNode: one node's part of the metadata ring, as a sans-I/O state machine (DESIGN.md). It
// hosts the Paxos acceptors of every row this node is a replica of, runs the proposers of the
// operations its clients submit, answers peers' key lists, and, during a ring change, streams the
// changed ranges. It never does I/O: the driver (RingMetadataStore in the daemon, the simulator
// in sim/) feeds it requests, replies, persistence completions, ticks and client operations, and
// carries out what it returns.
//
// Driver contract:
// - Requests: deliver each OutgoingRequest to `to`'s RingNode::OnRequest (also when `to` is this
//   node), and the reply that node returns (OutgoingReply with the same reply_token) back to the
//   sender's OnReply. Any of them may be lost, duplicated, delayed or reordered.
// - Persistence: write every PersistRow / PersistRoundFloor durably (synced), in the order
//   returned, then call OnPersisted(persist_id, status) for each, in that order. Replies that
//   depend on a write are returned only after it completed (persistence before reply).
// - After a crash the driver builds a new RingNode from what the completed writes left
//   (RecoveredState): unsynced writes may be lost, completed ones may not.
// - Ticks: OnTick once per tick (the daemon: every tick_ms); timeouts count ticks.
// - Ring: SetRing whenever the cluster configuration's ring changes (epochs only grow). When the
//   output asks for a ring refresh (a peer knows a newer epoch), re-read the configuration.
// - Stream: when this node is the one that must move data for a ring change (the joining member,
//   or for a leaving member the coordinator), the driver calls StartStream after SetRing; the
//   output's stream_done carries the epoch whose change may now be completed (the driver then
//   moves the ring to epoch + 1 with the member NORMAL, or removed).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "metadata/metadata_store.h"
#include "metadata/paxos/acceptor.h"
#include "metadata/paxos/proposer.h"
#include "metadata/ring/ring.h"
#include "metadata/ring/ring_messages.h"

namespace weft::metadata::ring {

struct RingNodeOptions {
  NodeId self = 0;
  uint32_t attempt_ticks = 10;     // A Paxos attempt without a quorum after this: retry.
  uint32_t timeout_ticks = 300;    // An operation without an outcome after this: Unavailable.
  uint32_t backoff_ticks_max = 4;  // Spread of retries of competing proposers.
  uint64_t seed = 0;               // Backoff randomness.
  uint32_t stream_page_keys = 256;
};

// What the driver recovered from durable storage after a (re)start.
struct RecoveredState {
  std::map<std::string, paxos::AcceptorState> rows;
  // Every ballot round this node ever proposed is below this (0 for a new node).
  uint64_t round_floor = 0;
};

struct OutgoingRequest {
  NodeId to = 0;
  Request request;
};

struct OutgoingReply {
  uint64_t reply_token = 0;  // The one OnRequest was given.
  Reply reply;
};

struct PersistRow {
  uint64_t persist_id = 0;
  std::string key;
  paxos::AcceptorState state;
  // False for a write that only records a learned commit: `committed` plays no part in Paxos's
  // safety (its promises and accepts were synced by earlier writes, which it follows in the
  // log), so the driver may write it without waiting for the device.
  bool sync = true;
};

struct PersistRoundFloor {
  uint64_t persist_id = 0;
  uint64_t round_floor = 0;
};

// The end of a client operation, in MetadataStore terms (metadata_store.h):
// - Get: OK + rows[0], or NotFound.
// - CompareAndSet: OK + version (the new one), or Aborted ("version conflict: ...").
// - CompareAndDelete: OK, Aborted, or InvalidArgument.
// - Scan: OK + rows.
// - Any: Unavailable when no quorum answered in time (for updates the outcome is then unknown:
//   the change may or may not take effect; re-read), InvalidArgument for a bad key or value.
struct ClientResult {
  uint64_t client_op = 0;
  Status status;
  std::vector<Row> rows;
  uint64_t version = 0;
};

struct RingNodeOutput {
  std::vector<OutgoingRequest> requests;
  std::vector<OutgoingReply> replies;
  std::vector<PersistRow> persist_rows;
  std::vector<PersistRoundFloor> persist_round_floors;
  std::vector<ClientResult> results;
  bool ring_refresh_wanted = false;
  std::optional<uint64_t> stream_done;  // The epoch whose change the stream completed.

  void Append(RingNodeOutput&& other);
  bool empty() const;
};

// Counters for status pages and tests.
struct RingNodeStats {
  uint64_t operations_started = 0;
  uint64_t operations_ok = 0;
  uint64_t operations_failed = 0;
  uint64_t paxos_attempts = 0;
  uint64_t rows_hosted = 0;
  uint64_t stream_keys_repaired = 0;
  uint64_t epoch_mismatches = 0;
};

class RingNode {
 public:
  RingNode(RingNodeOptions options, RecoveredState recovered, RingConfig ring);
  ~RingNode();
  RingNode(const RingNode&) = delete;
  RingNode& operator=(const RingNode&) = delete;

  // Client operations. The result comes in this call's output (a bad argument) or a later one;
  // the driver must not run a client's completion inside the client's call.
  RingNodeOutput Get(uint64_t client_op, std::string key);
  RingNodeOutput CompareAndSet(uint64_t client_op, std::string key, uint64_t expected_version,
                               std::string value);
  RingNodeOutput CompareAndDelete(uint64_t client_op, std::string key, uint64_t expected_version);
  RingNodeOutput Scan(uint64_t client_op, std::string prefix, std::string start_after,
                      uint32_t limit);

  RingNodeOutput OnRequest(NodeId from, uint64_t reply_token, const Request& request);
  RingNodeOutput OnReply(NodeId from, const Reply& reply);
  RingNodeOutput OnPersisted(uint64_t persist_id, const Status& status);
  RingNodeOutput OnTick();
  RingNodeOutput SetRing(RingConfig ring);
  RingNodeOutput StartStream();

  const Ring& ring() const;
  const RingNodeStats& stats() const;
  bool streaming() const;
  // The acceptor state of `key` here, including writes not yet completed (tests, checkers).
  const paxos::AcceptorState* RowState(std::string_view key) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace weft::metadata::ring
