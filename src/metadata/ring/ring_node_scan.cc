// RingNode: key lists, scans and the stream of a ring change (docs/protocol/ring.md).
#include <fmt/format.h>

#include "base/assert.h"
#include "metadata/ring/ring_node.h"
#include "metadata/ring/ring_node_impl.h"

namespace weft::metadata::ring {

namespace {

bool HasPrefix(std::string_view key, std::string_view prefix) {
  return key.substr(0, prefix.size()) == prefix;
}

bool MajorityOf(const std::vector<NodeId>& set, const std::set<NodeId>& nodes) {
  size_t count = 0;
  for (NodeId node : set) count += nodes.contains(node) ? 1 : 0;
  return count >= set.size() / 2 + 1;
}

std::set<NodeId> Responders(const std::map<NodeId, KeyListReply>& lists) {
  std::set<NodeId> nodes;
  for (const auto& [node, list] : lists) nodes.insert(node);
  return nodes;
}

// The keys of all lists after `start_after` (and with `prefix`), up to the bound below which
// every list is complete (the smallest last key of a truncated list), sorted and unique.
std::vector<std::string> Candidates(const std::map<NodeId, KeyListReply>& lists,
                                    std::string_view prefix, std::string_view start_after,
                                    std::optional<std::string>& bound) {
  bound.reset();
  for (const auto& [node, list] : lists) {
    if (list.truncated && !list.keys.empty() && (!bound || list.keys.back() < *bound)) {
      bound = list.keys.back();
    }
  }
  std::set<std::string> keys;
  for (const auto& [node, list] : lists) {
    for (const std::string& key : list.keys) {
      if (!HasPrefix(key, prefix) || key <= start_after) continue;  // A confused peer.
      if (bound && key > *bound) continue;
      keys.insert(key);
    }
  }
  return {keys.begin(), keys.end()};
}

}  // namespace

bool RingNode::Impl::CoversEveryRange(const std::set<NodeId>& nodes) const {
  for (const Placement& placement : distinct_placements) {
    if (!MajorityOf(placement.current, nodes)) return false;
    if (placement.transitioning() && !MajorityOf(placement.next, nodes)) return false;
  }
  return true;
}

// ---- Serving key lists -------------------------------------------------------------------------

RingNodeOutput RingNode::Impl::OnKeyList(uint64_t reply_token, const KeyListRequest& request) {
  RingNodeOutput out;
  if (request.epoch > ring->epoch()) {
    // The asker knows a newer ring. A stream must not count this node until it has that ring
    // (then no proposer with an older ring can use it for a quorum); a scan asks again.
    out.ring_refresh_wanted = true;
    stats.epoch_mismatches++;
    out.replies.push_back(
        OutgoingReply{.reply_token = reply_token,
                      .reply = EpochMismatch{.op_id = request.op_id, .epoch = ring->epoch()}});
    return out;
  }
  if (request.limit == 0 || request.limit > kMaxScanRows || request.prefix.size() > kMaxKeyBytes) {
    return out;  // Malformed: no reply.
  }
  KeyListReply reply{.op_id = request.op_id};
  auto it = request.start_after < request.prefix ? acceptors.lower_bound(request.prefix)
                                                 : acceptors.upper_bound(request.start_after);
  for (; it != acceptors.end() && HasPrefix(it->first, request.prefix); ++it) {
    const paxos::AcceptorState& state = it->second.state();
    const bool exists = state.accepted_state.exists() || state.committed.exists();
    const bool has_history = state.accepted_state.change > 0 || state.committed.change > 0;
    if (!(exists || (request.include_deleted && has_history))) continue;
    if (!request.ranges.empty()) {
      const uint64_t token = KeyToken(it->first);
      bool in_range = false;
      for (const TokenRange& range : request.ranges) in_range = in_range || range.Contains(token);
      if (!in_range) continue;
    }
    if (reply.keys.size() == request.limit) {
      reply.truncated = true;
      break;
    }
    reply.keys.push_back(it->first);
  }
  out.replies.push_back(OutgoingReply{.reply_token = reply_token, .reply = std::move(reply)});
  return out;
}

// ---- Scans -------------------------------------------------------------------------------------

RingNodeOutput RingNode::Scan(uint64_t client_op, std::string prefix, std::string start_after,
                              uint32_t limit) {
  RingNodeOutput out;
  Impl& impl = *impl_;
  if (limit == 0 || limit > kMaxScanRows) {
    out.results.push_back(ClientResult{.client_op = client_op,
                                       .status = Status::InvalidArgument(fmt::format(
                                           "scan limit {} is not in 1..{}", limit, kMaxScanRows))});
    return out;
  }
  if (prefix.size() > kMaxKeyBytes || start_after.size() > kMaxKeyBytes) {
    out.results.push_back(ClientResult{
        .client_op = client_op,
        .status = Status::InvalidArgument("scan prefix or start key longer than a key")});
    return out;
  }
  WEFT_ASSERT(!impl.scans.contains(client_op));
  impl.stats.operations_started++;
  ScanOp& scan = impl.scans[client_op];
  scan.client_op = client_op;
  scan.prefix = std::move(prefix);
  scan.start_after = std::move(start_after);
  scan.limit = limit;
  impl.StartScanRound(scan, out);
  return out;
}

void RingNode::Impl::StartScanRound(ScanOp& scan, RingNodeOutput& out) {
  if (scan.list_op_id != 0) scan_by_list_op.erase(scan.list_op_id);
  scan.list_op_id = NewOpId();
  scan_by_list_op[scan.list_op_id] = scan.client_op;
  scan.lists.clear();
  scan.ticks_in_round = 0;
  for (NodeId node : ring->members()) {
    out.requests.push_back(
        OutgoingRequest{.to = node,
                        .request = KeyListRequest{.op_id = scan.list_op_id,
                                                  .epoch = ring->epoch(),
                                                  .prefix = scan.prefix,
                                                  .start_after = scan.start_after,
                                                  .limit = scan.limit,
                                                  .include_deleted = true}});
  }
}

void RingNode::Impl::OnScanList(ScanOp& scan, NodeId from, const KeyListReply& reply,
                                RingNodeOutput& out) {
  WEFT_ASSERT(scan.list_op_id == reply.op_id);
  scan.lists[from] = reply;
  // Every row that exists was accepted by a majority of its replicas, so lists from a majority
  // of every replica set name every row, provided they name every row with any history: a
  // replica's newest accepted state may be a delete that was never chosen while the row still
  // exists (found by sim/), so the lists include deleted rows and the reads decide.
  if (!CoversEveryRange(Responders(scan.lists))) return;
  scan_by_list_op.erase(scan.list_op_id);
  scan.list_op_id = 0;
  std::vector<std::string> candidates =
      Candidates(scan.lists, scan.prefix, scan.start_after, scan.round_bound);
  scan.lists.clear();
  if (candidates.empty()) {
    FinishScan(scan, out);
    return;
  }
  scan.reads_outstanding = candidates.size();
  const uint64_t client_op = scan.client_op;
  for (std::string& key : candidates) {
    auto op = std::make_unique<RowOp>();
    op->kind = OpKind::kScanRead;
    op->parent = client_op;
    op->key = std::move(key);
    op->operation.kind = paxos::OperationKind::kRead;
    out.Append(Submit(std::move(op)));
  }
}

void RingNode::Impl::OnScanRead(uint64_t scan_op, const std::string& key, const Status& status,
                                const paxos::RowState& row, RingNodeOutput& out) {
  auto it = scans.find(scan_op);
  if (it == scans.end()) return;
  ScanOp& scan = it->second;
  WEFT_ASSERT(scan.reads_outstanding > 0);
  scan.reads_outstanding--;
  if (!status.ok()) {
    if (scan.failure.ok()) scan.failure = status;
  } else if (row.exists()) {
    scan.rows[key] = Row{.key = key, .value = row.value, .version = row.version};
  }
  if (scan.reads_outstanding > 0) return;
  if (!scan.failure.ok() || scan.rows.size() >= scan.limit || !scan.round_bound) {
    FinishScan(scan, out);
    return;
  }
  scan.start_after = *scan.round_bound;
  StartScanRound(scan, out);
}

void RingNode::Impl::FinishScan(ScanOp& scan, RingNodeOutput& out) {
  ClientResult result{.client_op = scan.client_op, .status = scan.failure};
  if (result.status.ok()) {
    stats.operations_ok++;
    for (auto& [key, row] : scan.rows) {
      if (result.rows.size() == scan.limit) break;
      result.rows.push_back(std::move(row));
    }
  } else {
    stats.operations_failed++;
  }
  if (scan.list_op_id != 0) scan_by_list_op.erase(scan.list_op_id);
  out.results.push_back(std::move(result));
  scans.erase(scan.client_op);
}

void RingNode::Impl::TickScans(RingNodeOutput& out) {
  std::vector<uint64_t> expired;
  for (auto& [client_op, scan] : scans) {
    if (scan.list_op_id == 0) continue;  // Reading: the row ops time out on their own.
    scan.ticks_total++;
    if (scan.ticks_total >= options.timeout_ticks) {
      expired.push_back(client_op);
      continue;
    }
    if (++scan.ticks_in_round < options.attempt_ticks) continue;
    scan.ticks_in_round = 0;
    for (NodeId node : ring->members()) {
      if (scan.lists.contains(node)) continue;
      out.requests.push_back(
          OutgoingRequest{.to = node,
                          .request = KeyListRequest{.op_id = scan.list_op_id,
                                                    .epoch = ring->epoch(),
                                                    .prefix = scan.prefix,
                                                    .start_after = scan.start_after,
                                                    .limit = scan.limit,
                                                    .include_deleted = true}});
    }
  }
  for (uint64_t client_op : expired) {
    ScanOp& scan = scans.at(client_op);
    scan.failure = Status::Unavailable(fmt::format(
        "scan of '{}': key lists from {} of {} nodes in time; a majority of every replica set "
        "must answer",
        scan.prefix, scan.lists.size(), ring->members().size()));
    FinishScan(scan, out);
  }
}

// ---- Streaming a ring change -------------------------------------------------------------------

RingNodeOutput RingNode::StartStream() {
  RingNodeOutput out;
  Impl& impl = *impl_;
  if (impl.ring->changing_member() == 0) return out;
  if (impl.stream && impl.stream->epoch == impl.ring->epoch()) return out;  // Under way.
  impl.stream.emplace();
  impl.stream->epoch = impl.ring->epoch();
  impl.stream->ranges = impl.ring->ChangedRanges();
  if (impl.stream->ranges.empty()) {
    out.stream_done = impl.stream->epoch;
    impl.stream.reset();
    return out;
  }
  impl.StartStreamRound(out);
  return out;
}

void RingNode::Impl::StartStreamRound(RingNodeOutput& out) {
  WEFT_ASSERT(stream && stream->range_index < stream->ranges.size());
  StreamJob& job = *stream;
  job.list_op_id = NewOpId();
  job.lists.clear();
  job.ticks_in_round = 0;
  const PlacedRange& placed = job.ranges[job.range_index];
  for (NodeId node : placed.placement.current) {
    out.requests.push_back(
        OutgoingRequest{.to = node,
                        .request = KeyListRequest{.op_id = job.list_op_id,
                                                  .epoch = job.epoch,
                                                  .start_after = job.start_after,
                                                  .limit = options.stream_page_keys,
                                                  .ranges = {placed.range},
                                                  .include_deleted = true}});
  }
}

void RingNode::Impl::OnStreamList(NodeId from, const KeyListReply& reply, RingNodeOutput& out) {
  StreamJob& job = *stream;
  WEFT_ASSERT(job.list_op_id == reply.op_id);
  const PlacedRange& placed = job.ranges[job.range_index];
  if (!placed.placement.Contains(from)) return;
  job.lists[from] = reply;
  // A majority of the old replicas, each already on this ring: they name every row chosen
  // before, and no proposer with the older ring can form a quorum of them any more.
  if (!MajorityOf(placed.placement.current, Responders(job.lists))) return;
  job.list_op_id = 0;
  std::vector<std::string> keys = Candidates(job.lists, "", job.start_after, job.page_bound);
  job.lists.clear();
  std::vector<std::string> in_range;
  for (std::string& key : keys) {
    if (placed.range.Contains(KeyToken(key))) in_range.push_back(std::move(key));
  }
  if (in_range.empty()) {
    OnRepairDone(Status::Ok(), out);  // Nothing to repair: as if the page's last repair ended.
    return;
  }
  job.repairs_outstanding = in_range.size() + 1;  // +1: released by the call below.
  for (std::string& key : in_range) {
    auto op = std::make_unique<RowOp>();
    op->kind = OpKind::kRepair;
    op->parent = job.epoch;
    op->key = std::move(key);
    op->operation.kind = paxos::OperationKind::kRead;
    out.Append(Submit(std::move(op)));
  }
  OnRepairDone(Status::Ok(), out);
}

void RingNode::Impl::OnRepairDone(const Status& status, RingNodeOutput& out) {
  WEFT_ASSERT(stream.has_value());
  StreamJob& job = *stream;
  if (job.repairs_outstanding > 0) job.repairs_outstanding--;
  if (!status.ok()) job.repair_failed = true;
  if (job.repairs_outstanding > 0 || job.list_op_id != 0) return;
  if (job.repair_failed) {
    // Repairs are idempotent: list and repair this page again after a pause.
    job.repair_failed = false;
    job.backoff_ticks = options.attempt_ticks;
    return;
  }
  if (job.page_bound) {
    job.start_after = *job.page_bound;
  } else {
    job.range_index++;
    job.start_after.clear();
    if (job.range_index == job.ranges.size()) {
      out.stream_done = job.epoch;
      stream.reset();
      return;
    }
  }
  StartStreamRound(out);
}

void RingNode::Impl::TickStream(RingNodeOutput& out) {
  if (!stream) return;
  StreamJob& job = *stream;
  if (job.backoff_ticks > 0) {
    if (--job.backoff_ticks == 0) StartStreamRound(out);
    return;
  }
  if (job.list_op_id == 0 || ++job.ticks_in_round < options.attempt_ticks) return;
  job.ticks_in_round = 0;
  const PlacedRange& placed = job.ranges[job.range_index];
  for (NodeId node : placed.placement.current) {
    if (job.lists.contains(node)) continue;
    out.requests.push_back(
        OutgoingRequest{.to = node,
                        .request = KeyListRequest{.op_id = job.list_op_id,
                                                  .epoch = job.epoch,
                                                  .start_after = job.start_after,
                                                  .limit = options.stream_page_keys,
                                                  .ranges = {placed.range},
                                                  .include_deleted = true}});
  }
}

}  // namespace weft::metadata::ring
