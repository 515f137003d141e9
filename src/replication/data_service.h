// DataService: the peer side of the replicated data path (docs/protocol/replication.md). It
// answers other nodes' data RPCs against this node's storage:
// - OpLog records of vDisks owned elsewhere go to this node's replica OpLog of that vDisk (an
//   ordinary OpLog whose records keep the owner's seqs), so that this node can take the vDisk
//   over by opening that OpLog;
// - egroup replicas are created, written, trimmed, read and deleted in this node's extent stores.
//
// Fencing: every OpLog and egroup mutation carries the owner's epoch; the service remembers the
// highest epoch seen per vDisk and refuses lower ones (Aborted "stale epoch"), so an owner that
// was replaced cannot change data any more once its successor has spoken to this node.
//
// Threading: the reactor thread that owns the node's disks; the RPC server runs on the same
// io_context, so a request is served without a thread hand-off.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "base/status.h"
#include "blockstore/file_layer.h"
#include "oplog/oplog.h"
#include "rpc/rpc_message.h"
#include "vdisk/node_disks.h"

namespace weft::replication {

struct DataServiceOptions {
  std::vector<vdisk::NodeDisk>* disks = nullptr;
  // Where replica OpLogs live (the fast disk's file layer); nullptr: OpLog appends are refused.
  blockstore::FileLayer* oplog_files = nullptr;
  oplog::OpLogOptions oplog;
  oplog::Executor executor;  // Runs completions later on the reactor.
  // Whether this node serves the vDisk itself (its controller owns the OpLog files then).
  std::function<bool(uint64_t vdisk_id)> owns_vdisk;
};

struct DataServiceStats {
  uint64_t oplog_appends = 0;
  uint64_t oplog_trims = 0;
  uint64_t egroup_writes = 0;
  uint64_t egroup_reads = 0;
  uint64_t egroup_creates = 0;
  uint64_t egroup_deletes = 0;
  uint64_t stale_epoch_refusals = 0;
  uint64_t bad_requests = 0;
  uint64_t replica_oplogs = 0;  // Open now.
};

class DataService {
 public:
  explicit DataService(DataServiceOptions options);
  ~DataService();
  DataService(const DataService&) = delete;
  DataService& operator=(const DataService&) = delete;

  // The RPC handler for the data message types (data_rpc.h).
  void Handle(const rpc::Message& request, rpc::ReplyFn reply);

  // The node takes the vDisk over (or is no longer its peer): closes its replica OpLog once
  // nothing is in flight on it, then `done`. The files stay (the controller opens them).
  void ReleaseOplog(uint64_t vdisk_id, std::function<void(Status)> done);
  // Deletes the replica OpLog's files (the vDisk row no longer names this node).
  void DiscardOplog(uint64_t vdisk_id, std::function<void(Status)> done);
  // Raises the vDisk's epoch (this node's own controller took it over at `epoch`).
  void Fence(uint64_t vdisk_id, uint64_t epoch);
  // Vdisks with a replica OpLog open here.
  std::vector<uint64_t> ReplicaOplogs() const;
  // Closes every replica OpLog (shutdown); `done` once all are quiescent.
  void Close(std::function<void()> done);

  DataServiceStats stats() const;

  struct ReplicaLog;

 private:
  Status CheckEpoch(uint64_t vdisk_id, uint64_t epoch);
  void HandleOplogAppend(const rpc::Message& request, rpc::ReplyFn reply);
  void HandleOplogTrim(const rpc::Message& request, rpc::ReplyFn reply);
  void HandleEgroupCreate(const rpc::Message& request, rpc::ReplyFn reply);
  void HandleEgroupWrite(const rpc::Message& request, rpc::ReplyFn reply, bool trim);
  void HandleEgroupRead(const rpc::Message& request, rpc::ReplyFn reply);
  void HandleEgroupDelete(const rpc::Message& request, rpc::ReplyFn reply);
  // Runs `task` once the vDisk's replica OpLog is open (opening it first), or fails `reply`.
  void WithReplicaLog(uint64_t vdisk_id, rpc::ReplyFn reply,
                      std::function<void(oplog::OpLog&, rpc::ReplyFn)> task);
  // The disk holding the egroup (NotFound).
  Result<vdisk::NodeDisk*> DiskOf(uint64_t egroup_id);
  void MaybeFinishRelease(uint64_t vdisk_id);
  // A MarkDrained ended: runs the appends that waited for it.
  void FinishMark(uint64_t vdisk_id);

  DataServiceOptions options_;
  std::map<uint64_t, uint64_t> epochs_;  // vdisk id -> highest owner epoch seen.
  std::map<uint64_t, std::unique_ptr<ReplicaLog>> logs_;
  std::map<uint64_t, vdisk::NodeDisk*> egroup_disks_;  // Cache of DiskOf.
  // vdisk id -> requests waiting for its old replica OpLog's files to be deleted (a reset).
  std::map<uint64_t, std::shared_ptr<std::deque<std::function<void()>>>> discards_;
  DataServiceStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace weft::replication
