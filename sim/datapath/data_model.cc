#include "sim/datapath/data_model.h"

#include <algorithm>

#include "base/assert.h"
#include "base/crc32c.h"

namespace weft::sim::datapath {

uint32_t RecordCrc(const OplogRecord& record) {
  uint32_t crc = Crc32c(&record.epoch, sizeof(record.epoch));
  crc = Crc32c(&record.seq, sizeof(record.seq), crc);
  crc = Crc32c(&record.block, sizeof(record.block), crc);
  return Crc32c(&record.value, sizeof(record.value), crc);
}

OplogRecord MakeRecord(uint64_t epoch, uint64_t seq, uint32_t block, uint64_t value) {
  OplogRecord record{.epoch = epoch, .seq = seq, .block = block, .value = value};
  record.crc = RecordCrc(record);
  return record;
}

void OplogStore::Synced(uint64_t epoch, uint64_t seq) {
  // Appends complete in order, so a synced record is the oldest unsynced one unless a trim took it.
  if (unsynced_.empty()) return;
  const OplogRecord& oldest = unsynced_.front();
  if (oldest.epoch != epoch || oldest.seq != seq) return;
  durable_.push_back(oldest);
  unsynced_.erase(unsynced_.begin());
}

void OplogStore::Trim(uint64_t epoch, uint64_t seq_max) {
  auto drained = [&](const OplogRecord& record) {
    return record.epoch == epoch && record.seq <= seq_max;
  };
  std::erase_if(durable_, drained);
  std::erase_if(unsynced_, drained);
}

uint64_t OplogStore::Crash(SimRandom& random) {
  const size_t kept = random.Uniform(0, unsynced_.size());
  for (size_t i = 0; i < kept; i++) durable_.push_back(unsynced_[i]);
  uint64_t lost = unsynced_.size() - kept;
  if (kept < unsynced_.size() && random.Chance(1, 2)) {
    // Torn: part of the record reached the disk; its crc no longer matches.
    OplogRecord torn = unsynced_[kept];
    torn.value ^= uint64_t{1} << random.Uniform(0, 63);
    durable_.push_back(torn);
  }
  unsynced_.clear();
  return lost;
}

uint64_t OplogStore::Recover() {
  WEFT_ASSERT(unsynced_.empty());
  const auto bad = std::find_if(durable_.begin(), durable_.end(), [](const OplogRecord& record) {
    return RecordCrc(record) != record.crc;
  });
  const auto dropped = static_cast<uint64_t>(durable_.end() - bad);
  durable_.erase(bad, durable_.end());
  return dropped;
}

std::vector<OplogRecord> OplogStore::Replay(uint64_t epoch, uint64_t seq_min) const {
  std::vector<OplogRecord> records;
  for (const OplogRecord& record : durable_) {
    if (record.epoch == epoch && record.seq >= seq_min) records.push_back(record);
  }
  std::sort(records.begin(), records.end(),
            [](const OplogRecord& a, const OplogRecord& b) { return a.seq < b.seq; });
  return records;
}

const char* ReplicaAnswerName(ReplicaAnswer answer) {
  switch (answer) {
    case ReplicaAnswer::kOk:
      return "ok";
    case ReplicaAnswer::kStaleEpoch:
      return "stale-epoch";
    case ReplicaAnswer::kGap:
      return "gap";
    case ReplicaAnswer::kMissing:
      return "missing";
    case ReplicaAnswer::kVersionMismatch:
      return "version-mismatch";
  }
  return "?";
}

ReplicaAnswer NodeStore::ObserveEpoch(uint64_t epoch) {
  if (check_epochs && epoch < epoch_seen) return ReplicaAnswer::kStaleEpoch;
  epoch_seen = std::max(epoch_seen, epoch);
  return ReplicaAnswer::kOk;
}

ReplicaAnswer NodeStore::CommitWrite(uint64_t epoch, uint32_t egroup, uint64_t version,
                                     uint32_t block, uint64_t value, uint64_t stamp) {
  WEFT_ASSERT(version > 0);
  WEFT_ASSERT(block < kBlocksPerEgroup);
  // Checked again at the commit: a fence that arrived while the write waited for the disk wins.
  if (ObserveEpoch(epoch) != ReplicaAnswer::kOk) return ReplicaAnswer::kStaleEpoch;
  auto it = egroups.find(egroup);
  if (it == egroups.end()) return ReplicaAnswer::kMissing;
  EgroupReplica& replica = it->second;
  if (version <= replica.version) return ReplicaAnswer::kOk;
  if (version != replica.version + 1) return ReplicaAnswer::kGap;
  replica.version = version;
  replica.writer_epoch = epoch;
  if (stamp <= replica.stamps[block]) return ReplicaAnswer::kOk;  // Superseded already.
  replica.values[block] = value;
  replica.stamps[block] = stamp;
  replica.rotten[block] = false;
  return ReplicaAnswer::kOk;
}

ReplicaAnswer NodeStore::CommitInstall(uint64_t epoch, uint32_t egroup,
                                       const EgroupReplica& replica) {
  if (ObserveEpoch(epoch) != ReplicaAnswer::kOk) return ReplicaAnswer::kStaleEpoch;
  auto it = egroups.find(egroup);
  if (it != egroups.end() && it->second.writer_epoch >= epoch &&
      it->second.version > replica.version) {
    return ReplicaAnswer::kVersionMismatch;
  }
  egroups[egroup] = replica;
  egroups[egroup].writer_epoch = epoch;
  return ReplicaAnswer::kOk;
}

ReplicaAnswer NodeStore::CommitRepair(uint64_t epoch, uint32_t egroup, uint64_t version,
                                      uint32_t block, uint64_t value) {
  WEFT_ASSERT(block < kBlocksPerEgroup);
  if (ObserveEpoch(epoch) != ReplicaAnswer::kOk) return ReplicaAnswer::kStaleEpoch;
  auto it = egroups.find(egroup);
  if (it == egroups.end()) return ReplicaAnswer::kMissing;
  if (it->second.version != version) return ReplicaAnswer::kVersionMismatch;
  it->second.values[block] = value;
  it->second.rotten[block] = false;
  return ReplicaAnswer::kOk;
}

MetadataService::MetadataService(VdiskRow vdisk, std::vector<EgroupRow> egroups)
    : vdisk_(std::move(vdisk)) {
  for (EgroupRow& row : egroups) egroups_.push_back(VersionedEgroup{std::move(row)});
}

bool MetadataService::CasVdisk(uint64_t expected_version, const VdiskRow& row) {
  if (expected_version != vdisk_version_) return false;
  WEFT_ASSERT(row.epoch >= vdisk_.epoch);
  vdisk_ = row;
  vdisk_version_++;
  return true;
}

bool MetadataService::CasEgroup(uint32_t egroup, uint64_t expected_version, const EgroupRow& row) {
  VersionedEgroup& current = egroups_.at(egroup);
  if (expected_version != current.version) return false;
  current.row = row;
  current.version++;
  return true;
}

uint64_t Membership::Heartbeat(NodeId node, uint64_t incarnation, uint64_t now_tick) {
  Session& session = sessions_[node];
  if (!session.live || session.incarnation != incarnation) {
    session = Session{.id = next_session_id_++, .incarnation = incarnation, .live = true};
  }
  session.renewed_tick = now_tick;
  return session.id;
}

uint64_t Membership::Expire(uint64_t now_tick) {
  uint64_t expired = 0;
  for (auto& [node, session] : sessions_) {
    if (session.live && now_tick > session.renewed_tick + timeout_ticks_) {
      session.live = false;
      expired++;
    }
  }
  return expired;
}

bool Membership::Live(NodeId node) const {
  auto it = sessions_.find(node);
  return it != sessions_.end() && it->second.live;
}

uint64_t Membership::LiveMask() const {
  uint64_t mask = 0;
  for (const auto& [node, session] : sessions_) {
    if (session.live) mask |= uint64_t{1} << node;
  }
  return mask;
}

}  // namespace weft::sim::datapath
