// RingNode's private state, shared by ring_node.cc (operations, acceptors, persistence) and
// ring_node_scan.cc (scans and streaming). Not part of the ring's interface.
#pragma once

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "metadata/ring/ring_node.h"

namespace weft::metadata::ring {

enum class OpKind : uint8_t { kGet, kCompareAndSet, kCompareAndDelete, kScanRead, kRepair };

// One single-row operation: a client's, or a read on behalf of a scan or the stream.
struct RowOp {
  OpKind kind = OpKind::kGet;
  uint64_t client_op = 0;  // kGet / kCompareAndSet / kCompareAndDelete.
  uint64_t parent = 0;     // kScanRead: the scan's client_op. kRepair: the stream's epoch.
  uint64_t op_id = 0;      // Names this op's Paxos messages.
  std::string key;
  paxos::Operation operation;
  std::unique_ptr<paxos::Proposer> proposer;  // Set while the op is at the front of its key.
};

// A client's scan: key lists from enough replicas, then a linearizable read of each candidate.
struct ScanOp {
  uint64_t client_op = 0;
  std::string prefix;
  std::string start_after;  // Advances page by page.
  uint32_t limit = 0;
  uint64_t list_op_id = 0;  // 0 while reading.
  std::map<NodeId, KeyListReply> lists;
  uint32_t ticks_in_round = 0;
  uint32_t ticks_total = 0;
  std::optional<std::string> round_bound;  // Candidates are complete only up to this key.
  size_t reads_outstanding = 0;
  std::map<std::string, Row> rows;
  Status failure;
};

// Streaming a ring change: every changed range, page by page, each key repaired through a
// joint quorum.
struct StreamJob {
  uint64_t epoch = 0;
  std::vector<PlacedRange> ranges;
  size_t range_index = 0;
  std::string start_after;
  uint64_t list_op_id = 0;  // 0 while repairing.
  std::map<NodeId, KeyListReply> lists;
  std::optional<std::string> page_bound;
  uint32_t ticks_in_round = 0;
  size_t repairs_outstanding = 0;
  bool repair_failed = false;
  uint32_t backoff_ticks = 0;
};

struct RingNode::Impl {
  Impl(RingNodeOptions options, RecoveredState recovered, RingConfig ring);

  // Operations.
  RingNodeOutput Submit(std::unique_ptr<RowOp> op);
  void StartFront(const std::string& key, RingNodeOutput& out);
  void Drive(RowOp& op, paxos::ProposerOutput proposer_output, RingNodeOutput& out);
  void Finish(RowOp& op, const paxos::Outcome& outcome, RingNodeOutput& out);
  void SendRowRequest(NodeId to, RowRequest request, RingNodeOutput& out);
  void ReleaseHeldPrepares(RingNodeOutput& out);
  uint64_t NewOpId() { return op_id_salt_ + ++op_id_counter_; }
  void SeeRound(uint64_t round) { highest_round_seen = std::max(highest_round_seen, round); }

  // Acceptors.
  RingNodeOutput OnRowRequest(NodeId from, uint64_t reply_token, const RowRequest& request);
  RingNodeOutput OnKeyList(uint64_t reply_token, const KeyListRequest& request);
  void QueuePersist(const std::string& key, paxos::AcceptorState state,
                    std::optional<OutgoingReply> reply, bool sync, RingNodeOutput& out);

  // Scans and streaming (ring_node_scan.cc).
  void StartScanRound(ScanOp& scan, RingNodeOutput& out);
  void OnScanList(ScanOp& scan, NodeId from, const KeyListReply& reply, RingNodeOutput& out);
  void OnScanRead(uint64_t scan_op, const std::string& key, const Status& status,
                  const paxos::RowState& row, RingNodeOutput& out);
  void FinishScan(ScanOp& scan, RingNodeOutput& out);
  void TickScans(RingNodeOutput& out);
  void StartStreamRound(RingNodeOutput& out);
  void OnStreamList(NodeId from, const KeyListReply& reply, RingNodeOutput& out);
  void OnRepairDone(const Status& status, RingNodeOutput& out);
  void TickStream(RingNodeOutput& out);
  // Whether `nodes` holds a majority of every replica set of the ring (both sets in a change).
  bool CoversEveryRange(const std::set<NodeId>& nodes) const;

  RingNodeOptions options;
  std::unique_ptr<Ring> ring;
  std::vector<Placement> distinct_placements;  // Of ring, for CoversEveryRange.
  RingNodeStats stats;

  std::map<std::string, paxos::Acceptor, std::less<>> acceptors;
  uint64_t next_persist_id = 1;
  std::map<uint64_t, std::vector<OutgoingReply>> replies_after_persist;

  // Ballot rounds: every round proposed is below round_floor_durable; Prepares at or above it
  // wait in held_prepares until a higher floor is durable.
  uint64_t highest_round_seen = 0;
  uint64_t round_floor_durable = 0;
  uint64_t round_floor_pending = 0;  // The floor being written, 0 if none.
  uint64_t round_floor_persist_id = 0;
  std::vector<OutgoingRequest> held_prepares;

  uint64_t op_id_salt_ = 0;
  uint64_t op_id_counter_ = 0;
  std::map<std::string, std::deque<std::unique_ptr<RowOp>>, std::less<>> queues;
  std::map<uint64_t, RowOp*> active_ops;  // By op_id.
  std::map<uint64_t, ScanOp> scans;       // By client_op.
  std::map<uint64_t, uint64_t> scan_by_list_op;
  std::optional<StreamJob> stream;
  // Rows whose last change this node made with a pipelined Accept: their next change may skip
  // phase 1 (paxos::PreparedBallot). Dropped on a ring change; bounded.
  std::map<std::string, paxos::PreparedBallot, std::less<>> prepared_rows;
  static constexpr size_t kPreparedRowsMax = 65536;
};

}  // namespace weft::metadata::ring
