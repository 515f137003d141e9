// The replicated data path's deterministic simulation (docs/simulation.md, "The replicated data
// path"): N nodes serving one vDisk at RF 2 or 3 through the protocol of
// docs/protocol/replication.md, a linearizable metadata service, a membership service with
// expiring sessions, clients, and the faults of a seed, on virtual time. One seeded PRNG decides
// everything, so a seed replays exactly.
//
// The world is one class whose operations are split by topic: data_world.cc (events, network,
// faults, clients, final checks), data_service.cc (what a node answers to the owner's requests),
// data_owner.cc (the owner's writes, drain, reads, recovery) and data_takeover.cc (the successor).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "sim/datapath/data_model.h"
#include "sim/datapath/register_checker.h"
#include "sim/sim_random.h"

namespace weft::sim::datapath {

struct DataFaults {
  uint64_t drop_per_mille_max = 0;
  // Messages held 100..400 ticks (a stalled sender or link): they arrive long after their
  // sender's timeout, after a takeover, a peer change or a replica's replacement.
  uint64_t long_delay_per_mille_max = 0;
  uint64_t delay_ticks_max = 3;
  uint64_t partitions_per_10k_ticks_max = 0;
  uint64_t crashes_per_10k_ticks_max = 0;
  uint64_t bit_rots_per_10k_ticks_max = 0;
  // A node's process stops for 100..400 ticks (a stall, a paused VM): longer than the fence
  // delay and often than the session timeout; it resumes acting on what it knew before.
  uint64_t pauses_per_10k_ticks_max = 0;
  uint64_t disk_ticks_max = 2;
};

// The maxima of a profile: none, network, crash or all (another name asserts; main.cc checks it).
DataFaults DataFaultProfile(const std::string& name);

struct DataSimOptions {
  uint64_t seed = 1;
  uint32_t nodes = 3;
  uint32_t rf = 2;
  uint32_t egroups = 4;       // Of kBlocksPerEgroup blocks each.
  uint32_t clients = 0;       // 0: the seed picks 2..4.
  uint32_t operations = 150;  // Per client.
  DataFaults faults = DataFaultProfile("all");
  bool verbose = false;
};

struct DataSimReport {
  bool ok = true;
  std::string failure;
  uint64_t writes_ok = 0;
  uint64_t writes_direct = 0;       // Straight to the egroups (sequential, or the OpLog is full).
  uint64_t writes_unavailable = 0;  // Refused before anything was written: never took effect.
  uint64_t writes_unknown = 0;
  uint64_t reads_ok = 0;
  uint64_t reads_failed = 0;
  uint64_t messages = 0;
  uint64_t messages_dropped = 0;
  uint64_t messages_delayed_long = 0;
  uint64_t partitions = 0;
  uint64_t crashes = 0;
  uint64_t pauses = 0;
  uint64_t torn_or_lost_records = 0;
  uint64_t bit_rots = 0;
  uint64_t repairs = 0;
  uint64_t takeovers = 0;
  uint64_t peer_changes = 0;
  uint64_t replica_replacements = 0;
  uint64_t stale_epoch_refusals = 0;
  uint64_t session_expiries = 0;
  uint64_t operations_checked = 0;
  uint64_t ticks = 0;

  void Add(const DataSimReport& other);
};

DataSimReport RunDataSimulation(const DataSimOptions& options);

enum class MessageKind : uint8_t {
  kHeartbeat,
  kMetaReadVdisk,
  kMetaReadEgroup,
  kMetaCasVdisk,
  kMetaCasEgroup,
  kOplogAppend,
  kEgroupWrite,
  kEgroupInstall,
  kEgroupRepair,
  kEgroupReadAll,  // With a nonzero epoch it also fences (the successor's reconciliation).
  kEgroupRead,
  kFence,
  kClientWrite,
  kClientRead,
  kReply,
};

const char* MessageKindName(MessageKind kind);

enum class ClientStatus : uint8_t { kOk, kNotOwner, kUnavailable, kError };

// One message; a fat struct (only the fields of its kind are meaningful), as fits a model.
struct Message {
  MessageKind kind = MessageKind::kReply;
  uint32_t from = 0;
  uint32_t to = 0;
  uint64_t request_id = 0;
  uint64_t epoch = 0;
  uint64_t version = 0;  // Egroup version, or a metadata row's version.
  uint64_t seq = 0;      // kOplogAppend: the drained seq. kEgroupWrite: the write's stamp.
  uint64_t value = 0;
  uint64_t send_tick = 0;
  uint64_t session_id = 0;
  uint64_t live_mask = 0;
  uint32_t egroup = 0;
  uint32_t block = 0;
  bool ok = false;
  bool present = false;
  bool rotten = false;
  ReplicaAnswer answer = ReplicaAnswer::kOk;
  ClientStatus client_status = ClientStatus::kOk;
  OplogRecord record;
  EgroupReplica replica;
  VdiskRow vdisk;
  EgroupRow egroup_row;
};

class DataWorld {
 public:
  explicit DataWorld(const DataSimOptions& options);
  DataSimReport Run();

 private:
  using ReplyHandler = std::function<void(const Message* reply)>;  // nullptr: timed out.
  using ClientReplyFn = std::function<void(ClientStatus status, uint64_t value)>;

  enum class Phase : uint8_t { kTakeover, kServing, kRecovering };

  struct PendingWrite {
    OplogRecord record;
    ClientReplyFn reply;
    bool local_durable = false;
    uint32_t peers_acked = 0;
  };

  struct EgroupState {
    EgroupRow row;
    uint64_t row_version = 0;
    uint64_t committed_version = 0;
    bool writing = false;
    uint32_t reads_in_flight = 0;
  };

  // The owner's volatile state (lost on a crash, dropped when deposed).
  struct Owner {
    uint64_t generation = 0;
    Phase phase = Phase::kTakeover;
    uint64_t epoch = 0;
    VdiskRow row;
    uint64_t row_version = 0;
    uint64_t next_seq = 1;
    uint64_t drained_seq = 0;
    std::map<uint64_t, PendingWrite> inflight;  // By seq: not yet on every OpLog copy.
    std::map<uint64_t, OplogRecord> undrained;  // By seq: acknowledged (or being recovered).
    std::map<uint32_t, uint64_t> index;         // Block -> seq of its newest undrained record.
    std::vector<ClientReplyFn> acks_after_recovery;
    std::vector<EgroupState> egroups;
    std::deque<Message> queued;  // Client requests held until the owner serves.
    bool draining = false;
  };

  struct Node {
    bool up = true;
    uint64_t incarnation = 1;
    NodeStore store;
    SessionView session;
    uint64_t disk_tail_tick = 0;
    uint64_t paused_start_tick = 0;
    uint64_t paused_until_tick = 0;
    uint64_t next_request_id = 1;
    std::map<uint64_t, ReplyHandler> pending;
    std::unique_ptr<Owner> owner;
    bool takeover_running = false;
  };

  struct Client {
    uint32_t id = 0;
    uint64_t operations_left = 0;
    uint64_t counter = 0;
    bool busy = false;
    BlockOperation operation;
    uint64_t request_id = 0;
    uint64_t deadline_tick = 0;
    bool final_reader = false;
  };

  struct Event {
    uint64_t tick;
    uint64_t order;
    std::function<void()> action;
    bool operator>(const Event& other) const {
      return tick != other.tick ? tick > other.tick : order > other.order;
    }
  };

  // data_world.cc: events, network, membership, faults.
  void At(uint64_t tick, std::function<void()> action);
  void AtNode(NodeId node, uint64_t delay_ticks, std::function<void()> action);
  void Send(Message message);
  void Deliver(const Message& message);
  bool Blocked(uint32_t from, uint32_t to) const;
  void Request(NodeId from, uint32_t to, Message message, ReplyHandler handler);
  void Reply(const Message& request, Message reply);
  void DiskWrite(NodeId node, std::function<void()> commit);
  void HandleControl(const Message& message);
  void Heartbeat(NodeId node);
  void OnHeartbeatReply(NodeId node, const Message& reply);
  void InjectFaults();
  void Partition();
  void Crash(NodeId node);
  void Restart(NodeId node);
  void Pause(NodeId node);
  void BitRot();
  void Heal();
  uint32_t LiveCount(NodeId node) const;
  std::vector<NodeId> LiveNodes(NodeId node) const;
  bool Fenced(NodeId node) const;
  uint64_t NextTime() { return ++history_clock_; }
  template <typename... Args>
  void Trace(const char* format, const Args&... args);

  // data_world.cc: clients and the final checks.
  void ClientNext(Client& client);
  void ClientSend(Client& client);
  void OnClientReply(const Message& message);
  void ClientTimeout(uint32_t client_id, uint64_t request_id);
  void FinishOperation(Client& client, bool recorded);
  bool Settled() const;
  std::string FinalChecks();
  std::string CheckReplicas() const;

  // data_service.cc: a node answering the owner (and a successor).
  void HandleNodeRequest(NodeId node, const Message& message);
  void ServeOplogAppend(NodeId node, const Message& message);
  void ServeEgroupWrite(NodeId node, const Message& message);
  void ServeEgroupReadAll(NodeId node, const Message& message);
  void ServeEgroupRead(NodeId node, const Message& message);

  // data_owner.cc: the owner.
  bool Owns(NodeId node, uint64_t generation) const;
  void DropOwner(NodeId node, const char* why);
  void HandleClient(NodeId node, const Message& message);
  void OwnerWrite(NodeId node, uint32_t block, uint64_t value, ClientReplyFn reply);
  void MaybeAcknowledge(NodeId node, uint64_t generation, uint64_t seq);
  void DirectWrite(NodeId node, uint32_t block, uint64_t value, ClientReplyFn reply);
  void AcknowledgeDirect(NodeId node, uint64_t generation, ClientReplyFn reply);
  void OwnerRead(NodeId node, uint32_t block, ClientReplyFn reply, const Message& request);
  void ReadRemote(NodeId node, uint32_t egroup, uint32_t block, bool repair_local,
                  ClientReplyFn reply);
  void PeerFailed(NodeId node, uint64_t generation);
  void RecoveryWaitLocal(NodeId node, uint64_t generation);
  void KickDrain(NodeId node);
  void DrainDone(NodeId node);
  void WriteEgroup(NodeId node, uint32_t egroup, uint64_t version, uint32_t block, uint64_t value,
                   uint64_t stamp, std::function<void()> done);
  void ReplaceReplica(NodeId node, uint32_t egroup, NodeId failed, std::function<void()> then);
  void InstallAndList(NodeId node, uint32_t egroup, NodeId target, const EgroupReplica& replica,
                      NodeId replaced, std::function<void(bool)> then);
  void ChoosePeers(NodeId node, uint64_t generation);
  void StartServing(NodeId node);
  void CasVdisk(NodeId node, uint64_t generation, const VdiskRow& row,
                std::function<void(bool)> done);
  void CasEgroup(NodeId node, uint64_t generation, uint32_t egroup, const EgroupRow& row,
                 std::function<void(bool)> done);

  // data_takeover.cc: the successor.
  void ConsiderTakeover(NodeId node);
  void StartTakeover(NodeId node, const VdiskRow& row, uint64_t row_version);
  void Reconcile(NodeId node, uint64_t generation, uint32_t egroup);
  void RestoreReplicas(NodeId node, uint64_t generation, uint32_t egroup,
                       const EgroupReplica& clean, EgroupRow kept);
  void Replay(NodeId node, uint64_t generation);

  DataSimOptions options_;
  SimRandom random_;
  DataSimReport report_;
  uint64_t now_ = 0;
  uint64_t event_order_ = 0;
  uint64_t history_clock_ = 0;
  uint64_t next_generation_ = 1;
  bool faults_on_ = true;
  uint64_t drop_per_mille_ = 0;
  uint64_t long_delay_per_mille_ = 0;
  uint64_t partition_per_10k_ = 0;
  uint64_t crash_per_10k_ = 0;
  uint64_t pause_per_10k_ = 0;
  uint64_t bit_rot_per_10k_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::vector<Node> nodes_;
  MetadataService metadata_;
  Membership membership_;
  std::vector<Client> clients_;
  std::vector<std::pair<uint32_t, uint32_t>> blocked_;  // Directed (from, to) pairs cut.
  uint32_t partitions_active_ = 0;
  std::vector<BlockOperation> history_;
  std::string failure_;
};

}  // namespace weft::sim::datapath
