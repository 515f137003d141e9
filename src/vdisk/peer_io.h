// PeerIo: what a vDisk controller needs from other nodes to keep RF copies of its data
// (docs/protocol/replication.md): append OpLog records to peers' OpLogs, and write, read and
// copy egroup replicas held by other nodes. The daemon implements it over the data RPC service
// (src/replication/); the vDisk layer sees only this interface, so it does not depend on the
// network.
//
// Every call completes later on the controller's thread (never inside the call). Errors:
// Unavailable (the node is down or unreachable, or not a member), TimedOut, Aborted with
// "stale epoch" (a newer owner has fenced this one), and the peer's own storage errors (IOError,
// NoSpace, Corruption for a checksum mismatch).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"

namespace weft::vdisk {

using PeerCompletion = std::function<void(Status status)>;

struct OplogRecordHeader {
  uint64_t vdisk_id = 0;
  uint64_t owner_epoch = 0;
  uint64_t seq = 0;
  uint32_t kind = 0;  // oplog::format::RecordKind.
  uint64_t offset_bytes = 0;
  uint64_t length_bytes = 0;
  uint32_t data_crc32c = 0;  // Of the data (kData records), checked by the peer before writing.
  uint64_t drained_seq = 0;  // The owner's drain watermark: the peer may free records up to it.
};

struct EgroupTarget {
  uint64_t egroup_id = 0;
  uint64_t vdisk_id = 0;
  uint64_t owner_epoch = 0;
};

struct EgroupReadReply {
  uint64_t replica_version = 0;
};

// A live node and what placement needs to know about it.
struct PeerNode {
  uint32_t node_id = 0;
  uint64_t free_bytes = 0;  // As the node last published it.
  // The node's fault domain (block or rack, weftd --fault-domain); empty: its own. No two
  // copies of anything go to one domain.
  std::string fault_domain;
};

class PeerIo {
 public:
  virtual ~PeerIo() = default;

  virtual uint32_t local_node_id() const = 0;
  virtual std::string local_fault_domain() const { return {}; }
  // The live members other than this node.
  virtual std::vector<PeerNode> LivePeers() const = 0;
  // Whether this node may acknowledge writes (it holds its cluster session: not fenced).
  virtual bool may_acknowledge() const = 0;

  virtual void OplogAppend(uint32_t node, const OplogRecordHeader& header,
                           std::span<const std::byte> data, PeerCompletion done) = 0;
  virtual void OplogTrim(uint32_t node, uint64_t vdisk_id, uint64_t owner_epoch,
                         uint64_t drained_seq, PeerCompletion done) = 0;
  // Creates the egroup on the node (idempotent); `done` gets the disk uuid that holds it.
  virtual void EgroupCreate(uint32_t node, const EgroupTarget& target, uint64_t replica_version,
                            std::function<void(Result<std::string> disk_uuid)> done) = 0;
  // `data` stays valid until `done` runs. Offsets and lengths as ExtentStore::Write.
  virtual void EgroupWrite(uint32_t node, const EgroupTarget& target, uint64_t replica_version,
                           uint64_t offset_bytes, std::span<const std::byte> data,
                           PeerCompletion done) = 0;
  virtual void EgroupTrim(uint32_t node, const EgroupTarget& target, uint64_t replica_version,
                          uint64_t offset_bytes, uint64_t length_bytes, PeerCompletion done) = 0;
  // Reads into `buffer` (valid until `done`), verifying checksums on the peer.
  virtual void EgroupRead(uint32_t node, uint64_t egroup_id, uint64_t offset_bytes,
                          std::span<std::byte> buffer,
                          std::function<void(Result<EgroupReadReply>)> done) = 0;
  virtual void EgroupDelete(uint32_t node, uint64_t egroup_id, PeerCompletion done) = 0;
  // Tells the node that the vDisk is owned at `owner_epoch` now: it refuses older epochs.
  virtual void Fence(uint32_t node, uint64_t vdisk_id, uint64_t owner_epoch,
                     PeerCompletion done) = 0;
};

}  // namespace weft::vdisk
