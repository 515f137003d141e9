// The pieces of the replicated data path model (docs/simulation.md, "The replicated data path"):
// a node's durable state for the one vDisk (its OpLog copy, its egroup replicas, the highest
// owner epoch it has seen), the linearizable metadata rows, and the membership service's sessions.
// These are a model of docs/protocol/replication.md, not the runtime classes of src/replication/.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "sim/sim_random.h"

namespace weft::sim::datapath {

using NodeId = uint32_t;

inline constexpr uint32_t kBlocksPerEgroup = 4;

// One OpLog record: a write of `value` to `block`, numbered by the owner of `epoch`. The crc covers
// the other fields, so a torn record (a crash in the middle of its write) is detected on recovery.
struct OplogRecord {
  uint64_t epoch = 0;
  uint64_t seq = 0;
  uint32_t block = 0;
  uint64_t value = 0;
  uint32_t crc = 0;
};

uint32_t RecordCrc(const OplogRecord& record);

// Orders the writes of a vDisk: by owner epoch, then by seq (OpLog records and direct writes
// share the owner's seq numbers).
inline uint64_t MakeStamp(uint64_t epoch, uint64_t seq) { return epoch << 40 | seq; }
OplogRecord MakeRecord(uint64_t epoch, uint64_t seq, uint32_t block, uint64_t value);

// A node's OpLog copy for the vDisk. Appends are unsynced until the disk completes them (in
// order); a crash keeps a random prefix of the unsynced tail, possibly with its last record torn.
class OplogStore {
 public:
  void Append(const OplogRecord& record) { unsynced_.push_back(record); }
  // The disk completed the append of (epoch, seq): it is durable (if no trim removed it first).
  void Synced(uint64_t epoch, uint64_t seq);
  // Removes the records of `epoch` with seq <= seq_max (drained into the extent store).
  void Trim(uint64_t epoch, uint64_t seq_max);
  // A crash: unsynced records survive as a random prefix; the first lost one may be kept torn.
  // Returns the number of unsynced records that were lost or torn.
  uint64_t Crash(SimRandom& random);
  // Recovery after a restart: drops the first record whose crc does not match and all after it.
  // Returns the number dropped.
  uint64_t Recover();
  // The durable records of `epoch` with seq >= seq_min, by seq: what a successor replays.
  std::vector<OplogRecord> Replay(uint64_t epoch, uint64_t seq_min) const;
  const std::vector<OplogRecord>& durable() const { return durable_; }
  size_t unsynced_count() const { return unsynced_.size(); }

 private:
  std::vector<OplogRecord> durable_;
  std::vector<OplogRecord> unsynced_;
};

// An egroup replica: its version (the highest write version applied) and block values, committed
// atomically. `rotten` marks blocks whose data no longer matches their checksum (bit rot).
struct EgroupReplica {
  uint64_t version = 0;
  std::array<uint64_t, kBlocksPerEgroup> values{};
  // Per block, beside its checksum, the stamp (MakeStamp) of the write that set it: a write older
  // than the block's stamp advances the version but leaves the block (a takeover's replay of a
  // record that a later write superseded). A block that rotted on the newest copies can be taken
  // from an older copy with the same stamp.
  std::array<uint64_t, kBlocksPerEgroup> stamps{};
  uint64_t writer_epoch = 0;  // The owner epoch of the last write or copy.
  std::array<bool, kBlocksPerEgroup> rotten{};
};

enum class ReplicaAnswer : uint8_t {
  kOk,              // Committed (or already had this version: a retried write).
  kStaleEpoch,      // An owner epoch lower than the highest the node has seen.
  kGap,             // The replica missed an earlier version: it is stale.
  kMissing,         // The node holds no replica of the egroup.
  kVersionMismatch  // A repair for a version the replica is not at.
};

const char* ReplicaAnswerName(ReplicaAnswer answer);

// A node's durable state for the vDisk and the rules its data service applies.
struct NodeStore {
  OplogStore oplog;
  std::map<uint32_t, EgroupReplica> egroups;
  uint64_t epoch_seen = 0;

  // Raises epoch_seen, or refuses an older owner (the epoch fence).
  ReplicaAnswer ObserveEpoch(uint64_t epoch);
  // The commit of an egroup write (at the disk's completion): applies version v = version + 1
  // (the block's value only if `stamp` is newer than the block's), acknowledges v <= version
  // (already applied), refuses a gap.
  ReplicaAnswer CommitWrite(uint64_t epoch, uint32_t egroup, uint64_t version, uint32_t block,
                            uint64_t value, uint64_t stamp);
  // The commit of a whole-egroup copy: replaces the replica, unless the replica holds a newer
  // version written under the same (or a newer) epoch: a copy that arrived late.
  ReplicaAnswer CommitInstall(uint64_t epoch, uint32_t egroup, const EgroupReplica& replica);
  // The commit of a repair of one rotten block at `version`.
  ReplicaAnswer CommitRepair(uint64_t epoch, uint32_t egroup, uint64_t version, uint32_t block,
                             uint64_t value);

  bool check_epochs = true;  // Only a planted bug turns this off.
};

// The metadata ring as the model sees it: linearizable rows with compare-and-set on a version.
struct VdiskRow {
  NodeId owner = 0;
  uint64_t epoch = 0;
  std::vector<NodeId> oplog_peers;
  // The OpLog the current peers hold: the records of owner epoch `oplog_epoch` from seq
  // `oplog_start_seq` on. Older records were drained before the peers were chosen; a takeover
  // that did not finish (no new peers yet) leaves both as they were.
  uint64_t oplog_epoch = 1;
  uint64_t oplog_start_seq = 1;
  bool operator==(const VdiskRow&) const = default;
};

struct EgroupRow {
  std::vector<NodeId> replicas;
  // The epoch of the owner that last wrote the row: a takeover rewrites every egroup row, so a
  // compare-and-set of the old owner that was in flight fails.
  uint64_t owner_epoch = 0;
  bool operator==(const EgroupRow&) const = default;
};

class MetadataService {
 public:
  MetadataService(VdiskRow vdisk, std::vector<EgroupRow> egroups);

  const VdiskRow& vdisk() const { return vdisk_; }
  uint64_t vdisk_version() const { return vdisk_version_; }
  const EgroupRow& egroup(uint32_t egroup) const { return egroups_.at(egroup).row; }
  uint64_t egroup_version(uint32_t egroup) const { return egroups_.at(egroup).version; }
  size_t egroup_count() const { return egroups_.size(); }

  // Each returns false (and changes nothing) when the row's version is not `expected_version`.
  bool CasVdisk(uint64_t expected_version, const VdiskRow& row);
  bool CasEgroup(uint32_t egroup, uint64_t expected_version, const EgroupRow& row);

 private:
  struct VersionedEgroup {
    EgroupRow row;
    uint64_t version = 1;
  };
  VdiskRow vdisk_;
  uint64_t vdisk_version_ = 1;
  std::vector<VersionedEgroup> egroups_;
};

// The membership service (ZooKeeper): a session per node, renewed by heartbeats, expiring
// `timeout_ticks` after the last heartbeat it received.
class Membership {
 public:
  explicit Membership(uint64_t timeout_ticks) : timeout_ticks_(timeout_ticks) {}

  // A heartbeat from `node`'s process `incarnation`: renews its session, or opens a new one if
  // the session expired or the process restarted. Returns the session's id.
  uint64_t Heartbeat(NodeId node, uint64_t incarnation, uint64_t now_tick);
  // Expires the sessions not renewed within the timeout. Returns how many expired.
  uint64_t Expire(uint64_t now_tick);
  bool Live(NodeId node) const;
  uint64_t LiveMask() const;
  uint64_t timeout_ticks() const { return timeout_ticks_; }

 private:
  struct Session {
    uint64_t id = 0;
    uint64_t incarnation = 0;
    uint64_t renewed_tick = 0;
    bool live = false;
  };
  uint64_t timeout_ticks_;
  uint64_t next_session_id_ = 1;
  std::map<NodeId, Session> sessions_;
};

// The node's side of its session: it counts itself fenced a third of the timeout after the send
// time of the last heartbeat that was answered, so before the service can expire the session
// (the service renewed it no earlier than that send).
struct SessionView {
  uint64_t session_id = 0;
  uint64_t answered_send_tick = 0;
  uint64_t live_mask = 0;
  bool has_session = false;

  bool Fenced(uint64_t now_tick, uint64_t timeout_ticks) const {
    return !has_session || now_tick >= answered_send_tick + timeout_ticks / 3;
  }
};

}  // namespace weft::sim::datapath
