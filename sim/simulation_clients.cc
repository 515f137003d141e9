// The clients: each is attached to a live member and runs one operation at a time on a few keys
// under one prefix (so that conflicts are frequent): reads, compare-and-sets (usually expecting
// the version it last saw, sometimes a wrong one on purpose), compare-and-deletes and scans.
// Every invocation and response is stamped on the event clock and lands in the history.
#include <algorithm>

#include "sim/ring_simulation.h"

namespace weft::sim {

using metadata::ring::ClientResult;

bool RingSimulation::ClientsFinished() const {
  return std::all_of(clients_.begin(), clients_.end(), [this](const SimClient& client) {
    return client.operations_done >= options_.operations && !client.pending;
  });
}

uint64_t RingSimulation::OperationsFinished() const {
  uint64_t total = 0;
  for (const SimClient& client : clients_) total += client.operations_done;
  return total;
}

void RingSimulation::StartClientOperations() {
  for (size_t i = 0; i < clients_.size() && !finished_; i++) {
    SimClient& client = clients_[i];
    if (client.pending || client.operations_done >= options_.operations) continue;
    if (tick_ < client.ready_tick) continue;
    if (client.node == 0 || Up(client.node) == nullptr) {
      const std::vector<NodeId> up = UpMembers();
      if (up.empty()) continue;
      client.node = up[random_.Uniform(0, up.size() - 1)];
      Trace("client {} attaches to node {}", client.id, client.node);
    }
    StartOperation(client, i);
  }
}

void RingSimulation::StartOperation(SimClient& client, size_t index) {
  Outstanding outstanding{.client = static_cast<int>(index)};
  const std::string& key = keys_[random_.Uniform(0, keys_.size() - 1)];
  const uint64_t known = client.known_versions[key];
  const uint64_t pick = random_.Uniform(0, 99);
  if (pick < 12) {
    outstanding.is_scan = true;
    outstanding.scan.prefix = "row/";
    outstanding.scan.start_after =
        random_.Chance(1, 2) ? "" : keys_[random_.Uniform(0, keys_.size() - 1)];
    outstanding.scan.limit = static_cast<uint32_t>(random_.Uniform(1, keys_.size() + 1));
  } else {
    RowOperation& row = outstanding.row;
    row.key = key;
    // Mostly the version last seen; sometimes a wrong one, so that aborts are checked too.
    row.expected_version = random_.Chance(85, 100) ? known : random_.Uniform(0, known + 2);
    if (pick < 40 || client.stale_keys.contains(key)) {
      row.kind = OperationKind::kRead;
      row.expected_version = 0;
    } else if (pick < 52 && row.expected_version != 0) {
      row.kind = OperationKind::kCompareAndDelete;
    } else {
      row.kind = OperationKind::kCompareAndSet;
      row.value = fmt::format("c{}-{}", client.id, next_client_op_);
    }
  }
  client.pending = Submit(client.node, std::move(outstanding));
}

// Stamps the invocation and hands the operation to the node.
uint64_t RingSimulation::Submit(NodeId node_id, Outstanding outstanding) {
  SimNode* node = Up(node_id);
  WEFT_ASSERT(node != nullptr);
  const uint64_t client_op = next_client_op_++;
  outstanding.node = node_id;
  const uint64_t client =
      outstanding.client >= 0 ? clients_[outstanding.client].id : kFinalClientBase + node_id;
  metadata::ring::RingNode& ring_node = *node->ring_node;
  metadata::ring::RingNodeOutput output;
  if (outstanding.is_scan) {
    ScanOperation& scan = outstanding.scan;
    scan.id = client_op;
    scan.client = client;
    scan.invoke_time = ++event_clock_;
    Trace("client {} op {} via node {}: Scan('{}', after '{}', limit {})", client, client_op,
          node_id, scan.prefix, scan.start_after, scan.limit);
    outstanding_.emplace(client_op, outstanding);
    output = ring_node.Scan(client_op, scan.prefix, scan.start_after, scan.limit);
  } else {
    RowOperation& row = outstanding.row;
    row.id = client_op;
    row.client = client;
    row.invoke_time = ++event_clock_;
    Trace("client {} via node {}: invoke {}", client, node_id, DescribeOperation(row));
    outstanding_.emplace(client_op, outstanding);
    switch (row.kind) {
      case OperationKind::kRead:
        output = ring_node.Get(client_op, row.key);
        break;
      case OperationKind::kCompareAndSet:
        output = ring_node.CompareAndSet(client_op, row.key, row.expected_version, row.value);
        break;
      case OperationKind::kCompareAndDelete:
        output = ring_node.CompareAndDelete(client_op, row.key, row.expected_version);
        break;
    }
  }
  if (!output.results.empty()) {
    Fail(fmt::format("node {} answered client op {} inside the call that submitted it", node_id,
                     client_op));
  }
  Handle(node_id, std::move(output));
  return client_op;
}

void RingSimulation::OnResult(NodeId id, const ClientResult& result) {
  auto it = outstanding_.find(result.client_op);
  if (it == outstanding_.end() || it->second.node != id) {
    return Fail(
        fmt::format("node {} answered client op {}, which it does not hold", id, result.client_op));
  }
  Outstanding outstanding = std::move(it->second);
  outstanding_.erase(it);
  RecordResult(outstanding, result);
  if (outstanding.client < 0) {
    final_results_[result.client_op] = result;
    return;
  }
  SimClient& client = clients_[outstanding.client];
  client.pending.reset();
  client.operations_done++;
  // Think time, so that clients drift apart.
  client.ready_tick = tick_ + random_.Uniform(0, 10);
  if (outstanding.is_scan) {
    for (const ScannedRow& row : outstanding.scan.rows)
      client.known_versions[row.key] = row.version;
    return;
  }
  const RowOperation& row = outstanding.row;
  if (row.outcome == Outcome::kAborted || row.outcome == Outcome::kUnknown) {
    client.stale_keys.insert(row.key);
    return;
  }
  client.stale_keys.erase(row.key);
  if (row.outcome == Outcome::kOk) {
    client.known_versions[row.key] =
        row.kind == OperationKind::kCompareAndDelete ? 0 : row.result_version;
  } else if (row.outcome == Outcome::kNotFound) {
    client.known_versions[row.key] = 0;
  }
}

// Translates a ClientResult into the history's terms; a status the contract does not allow for
// the operation fails the run.
void RingSimulation::RecordResult(Outstanding& outstanding, const ClientResult& result) {
  const Status& status = result.status;
  const bool unknown = status.code() == StatusCode::kUnavailable ||
                       status.code() == StatusCode::kTimedOut || status.IsBusy();
  const uint64_t now = ++event_clock_;
  if (outstanding.is_scan) {
    ScanOperation& scan = outstanding.scan;
    Trace("op {} Scan -> {} ({} rows)", scan.id, status.ToString(), result.rows.size());
    if (unknown) return;
    if (!status.ok()) return Fail(fmt::format("scan op {}: {}", scan.id, status.ToString()));
    scan.response_time = now;
    for (const metadata::Row& row : result.rows) {
      scan.rows.push_back(ScannedRow{.key = row.key, .value = row.value, .version = row.version});
    }
    report_.scans_ok++;
    history_.scans.push_back(scan);
    return;
  }
  RowOperation& row = outstanding.row;
  const bool read = row.kind == OperationKind::kRead;
  if (unknown) {
    report_.operations_unknown++;
    Abandon(outstanding);
    return;
  }
  row.response_time = now;
  if (status.ok()) {
    row.outcome = Outcome::kOk;
    if (read) {
      if (result.rows.size() != 1 || result.rows[0].key != row.key) {
        return Fail(
            fmt::format("op {}: a Get answered OK with {} rows", row.id, result.rows.size()));
      }
      row.result_version = result.rows[0].version;
      row.result_value = result.rows[0].value;
    } else if (row.kind == OperationKind::kCompareAndSet) {
      row.result_version = result.version;
    }
    report_.operations_ok++;
  } else if (status.IsNotFound() && read) {
    row.outcome = Outcome::kNotFound;
    report_.operations_not_found++;
  } else if (status.IsAborted() && !read) {
    row.outcome = Outcome::kAborted;
    report_.operations_aborted++;
  } else {
    return Fail(fmt::format("{}: unexpected status {}", DescribeOperation(row), status.ToString()));
  }
  Trace("{}", DescribeOperation(row));
  history_.operations.push_back(row);
}

// The client will never learn the outcome: an update may still take effect, a read tells
// nothing.
void RingSimulation::Abandon(Outstanding& outstanding) {
  if (outstanding.is_scan || outstanding.row.kind == OperationKind::kRead) return;
  RowOperation& row = outstanding.row;
  row.outcome = Outcome::kUnknown;
  row.response_time = kNeverReturned;
  row.result_version = 0;
  Trace("{}", DescribeOperation(row));
  history_.operations.push_back(row);
}

void RingSimulation::AbandonOperationsOn(NodeId id) {
  for (auto it = outstanding_.begin(); it != outstanding_.end();) {
    if (it->second.node != id) {
      ++it;
      continue;
    }
    Outstanding outstanding = std::move(it->second);
    it = outstanding_.erase(it);
    if (outstanding.client < 0) {
      Fail(fmt::format("node {} went down during the checks after the workload", id));
      continue;
    }
    if (!outstanding.is_scan && outstanding.row.kind != OperationKind::kRead) {
      report_.operations_unknown++;
    }
    Abandon(outstanding);
    SimClient& client = clients_[outstanding.client];
    client.pending.reset();
    client.operations_done++;
    client.node = 0;
    client.ready_tick = tick_ + random_.Uniform(1, 20);
  }
}

}  // namespace weft::sim
