// One seed's run: set up the ring, run the workload with faults, heal, read every key through
// every node, then check the history for linearizability and the replicas for lost rows.
#include "sim/ring_simulation.h"

#include <algorithm>

#include "sim/linearizability_checker.h"

namespace weft::sim {

RingSimulation::RingSimulation(SimOptions options)
    : options_(std::move(options)),
      random_(options_.seed),
      write_error_random_(options_.seed ^ 0x5752495445455252ULL) {}

RingSimulation::~RingSimulation() = default;

void RingSimulation::Fail(std::string why) {
  if (finished_) return;
  finished_ = true;
  report_.ok = false;
  report_.failure = std::move(why);
  Trace("FAILED: {}", report_.failure);
}

void RingSimulation::Setup() {
  const FaultProfile& faults = options_.faults;
  drop_per_mille_ = static_cast<uint32_t>(random_.Uniform(0, faults.drop_per_mille_max));
  duplicate_per_mille_ = static_cast<uint32_t>(random_.Uniform(0, faults.duplicate_per_mille_max));
  delay_ticks_max_ =
      static_cast<uint32_t>(random_.Uniform(1, std::max(1u, faults.delay_ticks_max)));
  partition_per_100k_ = static_cast<uint32_t>(random_.Uniform(0, faults.partition_per_100k_max));
  crash_per_100k_ = static_cast<uint32_t>(random_.Uniform(0, faults.crash_per_100k_max));
  clock_jump_per_100k_ = static_cast<uint32_t>(random_.Uniform(0, faults.clock_jump_per_100k_max));
  disk_delay_ticks_max_ = static_cast<uint32_t>(random_.Uniform(0, faults.disk_delay_ticks_max));
  ring_lag_ticks_max_ = static_cast<uint32_t>(random_.Uniform(0, faults.ring_lag_ticks_max));
  // Half of the seeds stream in tiny pages, so that paging runs with a handful of keys.
  if (random_.Chance(1, 2)) stream_page_keys_ = static_cast<uint32_t>(random_.Uniform(1, 3));
  WEFT_ASSERT(options_.nodes >= 1);
  report_.replicas = options_.replicas;
  if (report_.replicas == 0) {
    report_.replicas = options_.nodes >= 5 && random_.Chance(1, 2) ? 5 : 3;
    if (options_.nodes < 3) report_.replicas = 1;
  }
  down_nodes_max_ = std::max(1u, (report_.replicas - 1) / 2);
  report_.clients =
      options_.clients != 0 ? options_.clients : static_cast<uint32_t>(random_.Uniform(3, 6));
  for (uint32_t i = 0; i < options_.keys; i++) keys_.push_back(fmt::format("row/{}", i));
  keys_.push_back("other/0");  // Outside the scans' prefix.
  for (uint32_t i = 0; i < report_.clients; i++) clients_.push_back(SimClient{.id = i + 1});
  membership_planned_ = options_.membership_changes == 1 ||
                        (options_.membership_changes == -1 && random_.Chance(1, 2));
  const uint64_t operations_total = uint64_t{report_.clients} * options_.operations;
  join_after_operations_ = operations_total * random_.Uniform(5, 40) / 100;
  Trace(
      "seed {}: {} nodes, {} replicas, {} clients, drop {}‰, duplicate {}‰, delay 1..{}, "
      "partitions {}/100k, crashes {}/100k, clock jumps {}/100k, disk 0..{}, ring lag 0..{}, "
      "membership changes {}, stream pages of {} keys",
      options_.seed, options_.nodes, report_.replicas, report_.clients, drop_per_mille_,
      duplicate_per_mille_, delay_ticks_max_, partition_per_100k_, crash_per_100k_,
      clock_jump_per_100k_, disk_delay_ticks_max_, ring_lag_ticks_max_,
      membership_planned_ ? "yes" : "no", stream_page_keys_);
  SetupRing();
}

void RingSimulation::Step(bool workload, bool membership) {
  tick_++;
  if (workload) InjectFaults();
  std::erase_if(partitions_, [this](const Partition& partition) {
    if (partition.heal_tick > tick_) return false;
    Trace("partition heals");
    return true;
  });
  RestartNodes(!workload);
  if (membership) MaybeStartMembershipChange(!workload);
  DeliverRings();
  DriveChange();
  CompleteWrites();
  DeliverMessages();
  TickNodes();
  if (workload) StartClientOperations();
}

void RingSimulation::RunWorkload() {
  while (!finished_ && !ClientsFinished()) {
    if (tick_ >= kWorkloadTicksMax) {
      return Fail(fmt::format("the clients did not finish within {} ticks", kWorkloadTicksMax));
    }
    Step(/*workload=*/true, /*membership=*/true);
  }
}

bool RingSimulation::Quiescent(std::string* waiting_for) const {
  if (change_.kind != ChangeKind::kNone) {
    *waiting_for = fmt::format(
        "the ring change of epoch {} (node {} {}, streamer {})", change_.epoch, change_.node,
        change_.kind == ChangeKind::kJoin ? "joining" : "leaving", change_.streamer);
    return false;
  }
  if (membership_planned_ && !(join_done_ && leave_done_)) {
    *waiting_for = "the planned join and leave";
    return false;
  }
  for (const auto& [id, node] : nodes_) {
    if (node.life == NodeLife::kUp && node.ring_node->ring().epoch() != config_.epoch) {
      *waiting_for = fmt::format("node {} to learn ring epoch {}", id, config_.epoch);
      return false;
    }
    if (!node.writes.empty()) {
      *waiting_for = fmt::format("node {}'s writes", id);
      return false;
    }
  }
  if (!outstanding_.empty()) {
    *waiting_for = fmt::format("{} client operations", outstanding_.size());
    return false;
  }
  return true;
}

// No more faults: partitions heal, crashed nodes restart, every node learns the ring, and the
// planned membership changes complete.
void RingSimulation::Heal() {
  Trace("heal: no more faults");
  partitions_.clear();
  drop_per_mille_ = 0;
  duplicate_per_mille_ = 0;
  std::string waiting_for;
  const uint64_t end = tick_ + kHealTicksMax;
  while (!finished_ && !Quiescent(&waiting_for)) {
    if (tick_ >= end) {
      return Fail(
          fmt::format("{} ticks after healing, still waiting for {}", kHealTicksMax, waiting_for));
    }
    Step(/*workload=*/false, /*membership=*/true);
  }
}

// Lets in-flight messages and writes finish (commits, repairs), without requiring it.
void RingSimulation::Settle() {
  const uint64_t end = tick_ + kSettleTicksMax;
  auto busy = [this] {
    if (!network_.empty()) return true;
    return std::any_of(nodes_.begin(), nodes_.end(),
                       [](const auto& entry) { return !entry.second.writes.empty(); });
  };
  while (!finished_ && busy() && tick_ < end) Step(/*workload=*/false, /*membership=*/false);
}

// Reads every key and scans the prefix through `node`, all at once (one operation per key, so
// that they do not compete).
void RingSimulation::RunFinalReadRound(NodeId node, std::map<std::string, uint64_t>* client_ops) {
  for (const std::string& key : keys_) {
    Outstanding outstanding{.client = -1};
    outstanding.row.kind = OperationKind::kRead;
    outstanding.row.key = key;
    (*client_ops)[key] = Submit(node, std::move(outstanding));
  }
  Outstanding scan{.client = -1, .is_scan = true};
  scan.scan.prefix = "row/";
  scan.scan.limit = static_cast<uint32_t>(keys_.size());
  Submit(node, std::move(scan));
  const uint64_t end = tick_ + kSettleTicksMax;
  while (!finished_ && !outstanding_.empty()) {
    if (tick_ >= end) {
      return Fail(fmt::format("{} reads through node {} after healing did not finish in {} ticks",
                              outstanding_.size(), node, kSettleTicksMax));
    }
    Step(/*workload=*/false, /*membership=*/false);
  }
  for (const auto& [client_op, result] : final_results_) {
    if (!result.status.ok() && !result.status.IsNotFound()) {
      return Fail(fmt::format("read op {} through node {} after healing: {}", client_op, node,
                              result.status.ToString()));
    }
  }
}

// Every key read through every member, one member after the other (the first round may complete
// operations that were left half done); the last round's answers are the rows' final states.
// Concurrent reads of one key through every member at once can starve each other (dueling
// proposers), which is a liveness matter, not what this checks.
void RingSimulation::FinalReads() {
  std::map<std::string, uint64_t> client_ops;
  for (NodeId node : UpMembers()) {
    RunFinalReadRound(node, &client_ops);
    if (finished_) return;
  }
  for (const auto& [key, client_op] : client_ops) {
    const metadata::ring::ClientResult& result = final_results_.at(client_op);
    final_rows_[key] = result.status.ok() ? result.rows.at(0) : metadata::Row{.key = key};
  }
}

void RingSimulation::CheckHistory() {
  const CheckResult result =
      CheckLinearizable(history_, CheckerOptions{.scan_absence = options_.scan_absence_checks});
  report_.checked_operations = result.operations_checked;
  report_.checker_steps = result.search_steps;
  if (result.ok) return;
  if (options_.verbose) {
    std::fprintf(options_.trace, "history of key '%s':\n", result.key.c_str());
    std::vector<RowOperation> operations;
    for (const RowOperation& operation : history_.operations) {
      if (operation.key == result.key) operations.push_back(operation);
    }
    std::sort(operations.begin(), operations.end(),
              [](const auto& a, const auto& b) { return a.invoke_time < b.invoke_time; });
    for (const RowOperation& operation : operations) {
      std::fprintf(options_.trace, "  %s\n", DescribeOperation(operation).c_str());
    }
    for (const ScanOperation& scan : history_.scans) {
      std::fprintf(options_.trace, "  %s\n", DescribeScan(scan).c_str());
    }
  }
  Fail(result.inconclusive ? "the linearizability check was inconclusive: " + result.explanation
                           : "not linearizable: " + result.explanation);
}

// No lost rows: after the ring changes and the final reads, a majority of each row's replicas
// durably hold (as their accepted state) the row's final state.
void RingSimulation::CheckReplicas() {
  Settle();
  if (finished_) return;
  const metadata::ring::Ring ring(config_);
  for (const std::string& key : keys_) {
    const metadata::Row& expected = final_rows_.at(key);
    const metadata::ring::Placement placement = ring.PlacementForKey(key);
    WEFT_ASSERT(!placement.transitioning());
    std::vector<NodeId> holders;
    std::string states;
    for (NodeId id : placement.current) {
      const auto& rows = nodes_.at(id).durable.rows;
      auto it = rows.find(key);
      const metadata::paxos::RowState state =
          it == rows.end() ? metadata::paxos::RowState{} : it->second.accepted_state;
      states += fmt::format(" node {}: v{} '{}';", id, state.version, state.value);
      if (state.version == expected.version &&
          (expected.version == 0 || state.value == expected.value)) {
        holders.push_back(id);
      }
    }
    if (holders.size() < placement.current.size() / 2 + 1) {
      return Fail(fmt::format(
          "row {}: only {} of its {} replicas hold its final state (v{} '{}'):{}", key,
          holders.size(), placement.current.size(), expected.version, expected.value, states));
    }
  }
}

SimReport RingSimulation::Run() {
  Setup();
  RunWorkload();
  if (!finished_) Heal();
  if (!finished_) FinalReads();
  if (!finished_) CheckHistory();
  if (!finished_) CheckReplicas();
  for (auto& [id, node] : nodes_) {
    if (node.life == NodeLife::kUp) StopRingNode(node);
  }
  report_.ticks = tick_;
  return report_;
}

SimReport RunSimulation(const SimOptions& options) {
  RingSimulation simulation(options);
  return simulation.Run();
}

}  // namespace weft::sim
