// RingSimulation: the world one seed runs in (simulation.h is the interface). Split by concern:
// ring_simulation.cc runs the phases and the checks after the workload, simulation_world.cc the
// network, disks and node faults, simulation_membership.cc the ring configuration service (joins
// and leaves), simulation_clients.cc the clients and their history.
#pragma once

#include <fmt/format.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "metadata/ring/ring_node.h"
#include "sim/history.h"
#include "sim/sim_random.h"
#include "sim/simulation.h"

namespace weft::sim {

using metadata::ring::NodeId;

// Limits on everything that grows (TigerBeetle's rule): a run past one of them has a bug.
inline constexpr uint64_t kWorkloadTicksMax = 400'000;
inline constexpr uint64_t kHealTicksMax = 40'000;
inline constexpr uint64_t kSettleTicksMax = 4'000;
inline constexpr size_t kNetworkMessagesMax = 200'000;
inline constexpr size_t kPartitionsMax = 2;
inline constexpr uint32_t kTokensPerNode = 8;
inline constexpr uint64_t kFinalClientBase = 1'000'000;  // Client ids of the final reads.

struct Message {
  uint64_t deliver_tick = 0;
  uint64_t sequence = 0;  // Breaks ties: equal ticks deliver in send order.
  NodeId from = 0;
  NodeId to = 0;
  std::variant<metadata::ring::Request, metadata::ring::Reply> payload;
};

struct MessageLater {
  bool operator()(const Message& a, const Message& b) const {
    return a.deliver_tick != b.deliver_tick ? a.deliver_tick > b.deliver_tick
                                            : a.sequence > b.sequence;
  }
};

// A write the node asked for; it completes (becomes durable) at done_tick, in order per node.
struct PendingWrite {
  uint64_t done_tick = 0;
  uint64_t persist_id = 0;
  std::optional<metadata::ring::PersistRow> row;
  std::optional<uint64_t> round_floor;
};

enum class NodeLife : uint8_t { kUp, kCrashed, kRemoved };

struct SimNode {
  NodeId id = 0;
  NodeLife life = NodeLife::kUp;
  std::unique_ptr<metadata::ring::RingNode> ring_node;  // Null unless up.
  metadata::ring::RecoveredState durable;               // What completed writes left.
  std::deque<PendingWrite> writes;
  std::map<uint64_t, NodeId> reply_routes;  // reply_token -> the requester.
  uint64_t restart_tick = 0;
  uint64_t incarnation = 0;  // Grows with every (re)start.
};

// Blocked directed pairs; a message whose pair is blocked when it would arrive is lost.
struct Partition {
  std::set<std::pair<NodeId, NodeId>> blocked;
  uint64_t heal_tick = 0;
};

enum class ChangeKind : uint8_t { kNone, kJoin, kLeave };

struct RingChange {
  ChangeKind kind = ChangeKind::kNone;
  NodeId node = 0;                  // The member joining or leaving.
  uint64_t epoch = 0;               // The epoch that started the change.
  NodeId streamer = 0;              // The joiner, or for a leave the coordinator.
  uint64_t stream_incarnation = 0;  // The streamer's incarnation that StartStream ran in.
};

// A client operation submitted to a node and not answered yet.
struct Outstanding {
  int client = -1;  // Index into clients_, or -1 for a read of the checks after the workload.
  NodeId node = 0;
  bool is_scan = false;
  RowOperation row;
  ScanOperation scan;
};

struct SimClient {
  uint64_t id = 0;
  NodeId node = 0;  // 0 while detached (its node crashed or left).
  uint64_t ready_tick = 0;
  uint32_t operations_done = 0;
  std::optional<uint64_t> pending;                 // Its outstanding client_op.
  std::map<std::string, uint64_t> known_versions;  // What it last saw of each key.
  std::set<std::string> stale_keys;                // Aborted here: read before writing again.
};

class RingSimulation {
 public:
  explicit RingSimulation(SimOptions options);
  ~RingSimulation();

  SimReport Run();

 private:
  // ring_simulation.cc: phases and checks.
  void Setup();
  void RunWorkload();
  void Heal();
  bool Quiescent(std::string* waiting_for) const;
  void Settle();
  void FinalReads();
  void CheckHistory();
  void CheckReplicas();
  void Step(bool workload, bool membership);
  void RunFinalReadRound(NodeId node, std::map<std::string, uint64_t>* client_ops);
  void Fail(std::string why);
  template <typename... Args>
  void Trace(fmt::format_string<Args...> format, Args&&... args);

  // simulation_world.cc: network, disks, faults.
  void Handle(NodeId id, metadata::ring::RingNodeOutput output);
  void Send(NodeId from, NodeId to,
            std::variant<metadata::ring::Request, metadata::ring::Reply> payload);
  void DeliverMessages();
  void Deliver(const Message& message);
  bool Blocked(NodeId from, NodeId to) const;
  void CompleteWrites();
  void TickNodes();
  void InjectFaults();
  void Crash(NodeId id);
  void RestartNodes(bool now);
  void StartPartition();
  void ClockJump(NodeId id);
  SimNode* Up(NodeId id);
  std::vector<NodeId> UpMembers() const;
  std::unique_ptr<metadata::ring::RingNode> MakeRingNode(SimNode& node);
  // Stops the node's RingNode (a crash or a removal), keeping its counters.
  void StopRingNode(SimNode& node);

  // simulation_membership.cc: the ring configuration service.
  void SetupRing();
  uint64_t NewToken();
  void PublishRing();
  void DeliverRings();
  void DriveChange();
  void MaybeStartMembershipChange(bool healing);
  void StartJoin();
  void StartLeave();
  void OnStreamDone(NodeId id, uint64_t epoch);
  NodeId LeaveCoordinator() const;

  // simulation_clients.cc: clients and the history.
  void StartClientOperations();
  void StartOperation(SimClient& client, size_t index);
  uint64_t Submit(NodeId node, Outstanding outstanding);
  void OnResult(NodeId id, const metadata::ring::ClientResult& result);
  void RecordResult(Outstanding& outstanding, const metadata::ring::ClientResult& result);
  void AbandonOperationsOn(NodeId id);
  void Abandon(Outstanding& outstanding);
  bool ClientsFinished() const;
  uint64_t OperationsFinished() const;

  SimOptions options_;
  SimRandom random_;
  SimRandom write_error_random_;  // Only for write errors (SimOptions::write_error_per_mille).
  SimReport report_;
  uint64_t tick_ = 0;
  uint64_t event_clock_ = 0;  // Orders every invocation and response of the history.

  // Rates this seed drew from its fault profile.
  uint32_t drop_per_mille_ = 0;
  uint32_t duplicate_per_mille_ = 0;
  uint32_t delay_ticks_max_ = 1;
  uint32_t partition_per_100k_ = 0;
  uint32_t crash_per_100k_ = 0;
  uint32_t clock_jump_per_100k_ = 0;
  uint32_t disk_delay_ticks_max_ = 0;
  uint32_t ring_lag_ticks_max_ = 0;
  uint32_t down_nodes_max_ = 1;
  uint32_t stream_page_keys_ = 256;

  std::map<NodeId, SimNode> nodes_;
  std::priority_queue<Message, std::vector<Message>, MessageLater> network_;
  uint64_t message_sequence_ = 0;
  uint64_t next_reply_token_ = 1;
  std::vector<Partition> partitions_;

  // The configuration service.
  metadata::ring::RingConfig config_;
  std::set<uint64_t> tokens_used_;
  std::multimap<uint64_t, NodeId> ring_deliveries_;  // Tick -> node that learns config_ then.
  RingChange change_;
  bool membership_planned_ = false;
  uint64_t join_after_operations_ = 0;
  uint64_t leave_tick_ = 0;  // Set once the join completed.
  bool join_done_ = false;
  bool leave_done_ = false;

  // Clients and the history.
  std::vector<std::string> keys_;
  std::vector<SimClient> clients_;
  std::map<uint64_t, Outstanding> outstanding_;  // By client_op.
  uint64_t next_client_op_ = 1;
  History history_;
  std::map<uint64_t, metadata::ring::ClientResult> final_results_;
  std::map<std::string, metadata::Row> final_rows_;  // What the last final reads returned.
  bool finished_ = false;                            // A check failed: stop stepping.
};

template <typename... Args>
void RingSimulation::Trace(fmt::format_string<Args...> format, Args&&... args) {
  if (!options_.verbose) return;
  std::fprintf(options_.trace, "[%llu] %s\n", static_cast<unsigned long long>(tick_),
               fmt::format(format, std::forward<Args>(args)...).c_str());
}

}  // namespace weft::sim
