// VdiskController: owns one vDisk's I/O (the seeds' vDisk controller in Stargate). It cuts the
// vDisk's address space into 1 MiB vBlocks; the block map (metadata rows, cached here in full)
// sends each written vBlock to an extent slot of an extent group on one of the node's disks.
// Unwritten vBlocks read as zeros and use no disk.
//
// Contract:
// - Read/Write/Trim/WriteZeroes take any byte offset and length within the vDisk (bounds are
//   checked against its current size: InvalidArgument). Buffers should be 4096-aligned (they
//   are bounced otherwise).
// - A write completes OK only when its data and the metadata reaching it are durable (extent
//   store commit, block-map row for a vBlock's first write). Flush therefore has nothing to wait
//   for: it completes at once. After a crash every acknowledged write reads back.
// - Overlapping writes, trims and zeroings apply in arrival order: every mutation of a vBlock
//   goes through that vBlock's FIFO. A read runs at once and sees every mutation acknowledged
//   before it was submitted (and possibly some in flight).
// - Unaligned mutations read-modify-write their partial 4 KiB blocks after the earlier
//   mutations of that vBlock have completed.
// - Trim frees the whole 4 KiB blocks of its range (partial blocks at its edges are left as they
//   are: NBD trim is advisory). WriteZeroes without no_hole unmaps whole blocks and zero-fills
//   partial ones; with no_hole it writes zeros.
// - Completions never run inside the call; they run from the reactor (extent store Poll or the
//   executor).
//
// Threading: the reactor thread that owns the node's disks.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/status.h"
#include "blockstore/file_layer.h"
#include "cache/unified_cache.h"
#include "metadata/metadata_store.h"
#include "oplog/oplog.h"
#include "vdisk/id_allocator.h"
#include "vdisk/node_disks.h"
#include "vdisk/peer_io.h"
#include "vdisk/vdisk_keys.h"

namespace weft::vdisk {

using Completion = std::function<void(Status status)>;

// One run of BlockStatus: `allocated` false means a hole that reads as zeros.
struct AllocationRun {
  uint64_t length_bytes = 0;
  bool allocated = false;
};
using BlockStatusCompletion = std::function<void(Result<std::vector<AllocationRun>> runs)>;

// The OpLog and the Unified Cache, as the node configures them for every vDisk.
struct VdiskIoOptions {
  // Where OpLogs live (the fast disk's file layer); nullptr: no OpLog, writes go to the extent
  // store.
  blockstore::FileLayer* oplog_files = nullptr;
  oplog::OpLogOptions oplog;
  // The write characterizer: with more than this many bytes of writes outstanding on the vDisk,
  // a write is sequential and goes straight to the extent store.
  uint64_t sequential_threshold_bytes = 1536 * 1024;
  // Above this OpLog fill, writes that do not overlap its data go straight to the extent store
  // (the drain cannot keep up: better the extent store's pace than stalled clients).
  double oplog_bypass_fill = 0.75;
  cache::UnifiedCache* cache = nullptr;  // nullptr: no read cache.
  // Runs a task on the controller's thread after a delay (the daemon's reactor timers). With
  // it, the drain of a small OpLog tail waits for the vDisk to be idle for a moment; without
  // it (tests), it starts whenever no client operation is in flight.
  std::function<void(std::chrono::microseconds delay, std::function<void()> task)> schedule;
};

// What a controller needs from the node: metadata, the disks, ids for new egroups, and a way to
// run completions later on the reactor.
struct ControllerContext {
  metadata::MetadataStore* metadata = nullptr;
  metadata::Executor executor;
  std::vector<NodeDisk>* disks = nullptr;
  IdAllocator* egroup_ids = nullptr;
  VdiskIoOptions io;
  // Other nodes, for vDisks whose record asks for more than one copy (replication_factor > 1);
  // nullptr on a single node.
  PeerIo* peers = nullptr;
};

struct VdiskControllerStats {
  uint64_t reads = 0;
  uint64_t writes = 0;
  uint64_t trims = 0;
  uint64_t write_zeroes = 0;
  uint64_t flushes = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t read_modify_writes = 0;
  // The write characterizer's decisions, per write.
  uint64_t writes_oplog = 0;
  uint64_t writes_sequential_bypass = 0;
  uint64_t writes_oplog_full_bypass = 0;
  uint64_t reads_from_oplog = 0;  // Served by the OpLog's index alone.
  uint64_t reads_merged = 0;      // OpLog bytes laid over extent-store bytes.
  uint64_t vblocks_mapped = 0;    // Block-map rows (1 MiB vBlocks that have an extent).
  uint64_t egroups = 0;
  uint64_t used_bytes = 0;  // Written 4 KiB blocks, in bytes.
  // The replicated data path (docs/protocol/replication.md).
  uint64_t reads_local = 0;   // Extent-store reads served by this node's replica.
  uint64_t reads_remote = 0;  // Served by another node's replica.
  uint64_t egroups_localized = 0;
  uint64_t replica_repairs = 0;       // Bad replica blocks rewritten from a good replica.
  uint64_t replica_replacements = 0;  // Failed replicas replaced by a copy on another node.
  uint64_t stale_replicas_dropped = 0;
  uint64_t oplog_repeers = 0;  // New OpLog peer sets after a peer failed.
  uint64_t oplog_peer_appends = 0;
};

class VdiskController {
 public:
  // BlockStatus reports on at most this much per call (a prefix of the range).
  static constexpr uint64_t kBlockStatusBytesMax = 1ull << 30;

  VdiskController(ControllerContext context, records::Vdisk record);
  ~VdiskController();
  VdiskController(const VdiskController&) = delete;
  VdiskController& operator=(const VdiskController&) = delete;

  // Loads the block map and egroup rows, and replays the OpLog. Must complete OK before any I/O.
  // Corruption when a row names an egroup or a disk that does not exist.
  void Load(Completion done);
  // Instead of Load, for a vDisk just created: opens its (empty) OpLog in the background;
  // writes go to the extent store until it is open.
  void Start();

  void Read(uint64_t offset_bytes, std::span<std::byte> buffer, Completion done);
  void Write(uint64_t offset_bytes, std::span<const std::byte> data, Completion done);
  void Trim(uint64_t offset_bytes, uint64_t length_bytes, Completion done);
  void WriteZeroes(uint64_t offset_bytes, uint64_t length_bytes, bool no_hole, Completion done);
  void Flush(Completion done);
  // Allocation of a prefix of [offset, offset + length) (at most kBlockStatusBytesMax), at
  // 4 KiB granularity as committed.
  void BlockStatus(uint64_t offset_bytes, uint64_t length_bytes, BlockStatusCompletion done);

  const records::Vdisk& record() const { return record_; }
  // The metadata version of the vDisk's row as this node last wrote or read it (the controller
  // rewrites the row when it chooses new OpLog peers).
  uint64_t row_version() const { return row_version_; }
  void set_row_version(uint64_t version) { row_version_ = std::max(row_version_, version); }
  // After Load() on a node taking the vDisk over: reconciles the egroups' replica versions,
  // drains the replayed OpLog into the (replicated) extent store and writes new OpLog peers to
  // the row. The vDisk may serve I/O once `done` runs OK.
  void RecoverAfterTakeover(Completion done);
  // Cluster mode: the live members changed (sorted ids). A replicated vDisk whose OpLog peer
  // left drains and chooses new peers.
  void OnMembersChanged(const std::vector<uint32_t>& live_nodes);
  // Another node owns the vDisk now (its row names it): no more I/O here, reads included.
  void Relinquish() {
    fenced_ = true;
    MaybeFinishRepeer();  // Writes held for a new peer set fail now.
  }
  bool relinquished() const { return fenced_; }
  uint64_t id() const { return record_.id(); }
  uint64_t size_bytes() const { return record_.size_bytes(); }
  // Resizing (the manager, after its metadata update): shrinking first frees what lies past the
  // new end, so that growing again later reads zeros there. `done` runs when that is durable.
  void Resize(records::Vdisk updated_record, Completion done);
  // Deletes every egroup and block-map row of this vDisk (the manager, once no I/O is left).
  void DestroyData(Completion done);

  // Client operations accepted and not completed (the drainer's work is not counted).
  uint64_t inflight_operations() const { return inflight_operations_; }
  // Stops starting background work (the OpLog drain); `done` runs once none is running. The
  // controller may then be destroyed once inflight_operations() is 0.
  void Quiesce(Completion done);
  // Holds the OpLog drain back (true) or lets it run again (false); for tests that need a full
  // OpLog, and for maintenance. Writes that need log space wait meanwhile.
  void PauseDrain(bool paused);
  // Counters by group ("io", "characterizer", "oplog"), for the admin API.
  std::map<std::string, std::map<std::string, uint64_t>> StatGroups() const;
  const oplog::OpLog* oplog() const {
    return oplog_state_ == OplogState::kOpen ? oplog_.get() : nullptr;
  }
  // Handles (NBD exports) holding the controller open.
  uint32_t open_handles() const { return open_handles_; }
  void AddHandle() { ++open_handles_; }
  void RemoveHandle();
  VdiskControllerStats stats() const;

  struct Operation;
  struct Piece;

 private:
  struct Extent {
    uint64_t egroup_id = 0;
    uint32_t slot = 0;
  };
  struct Replica {
    uint32_t node_id = 0;  // 0 on a single node (always local).
    std::string disk_uuid;
  };
  struct EgroupState {
    NodeDisk* disk = nullptr;      // This node's replica's disk; nullptr: no local replica.
    uint32_t used_slots_mask = 0;  // Bit k: slot k is mapped (or being mapped).
    // Replicated egroups: the replicas the row lists (the local one included), the last replica
    // version written, and the row's metadata version (for the compare-and-set that changes
    // the list).
    std::vector<Replica> replicas;
    uint64_t replica_version = 0;
    uint64_t row_version = 0;
    uint32_t inflight_writes = 0;        // Fan-outs in progress.
    bool changing = false;               // A replica is being replaced or localized.
    std::vector<uint32_t> failed_nodes;  // To replace before writes resume.
    // Writes held while the replica set changes, by submission order: a retried write goes back
    // in its original place, so overlapping writes still land in the order they were issued.
    std::map<uint64_t, std::function<void()>> waiting;
    uint64_t committed_version = 0;  // The newest version every replica acknowledged.
    // False for an egroup loaded without a local replica: its version is learnt from the
    // remote replicas before the first write (else that write would be numbered below them).
    bool version_known = true;
    bool localizing = false;
  };
  struct VblockQueue {
    std::deque<std::unique_ptr<Piece>> waiting;
    bool mapping = false;     // The block-map row is being created.
    bool rmw_active = false;  // A read-modify-write between its read and its write's submission.
    uint32_t inflight_mutations = 0;  // Submitted to the extent store, not completed.
  };

  enum class OplogState { kOff, kClosed, kOpening, kOpen };

  Status CheckRange(std::string_view operation, uint64_t offset_bytes, uint64_t length_bytes) const;
  std::shared_ptr<Operation> StartOperation(Completion done, uint32_t pieces,
                                            bool background = false);
  // The OpLog path (vdisk_controller_oplog.cc).
  void OpenOplog(Completion done);
  // Sends a mutation to the OpLog, vBlock by vBlock: every vBlock part that overlaps the OpLog's
  // data (or all of them with to_oplog) becomes a record; the other parts go to the extent
  // store (with direct_parts false they are dropped: a shrink frees them itself).
  void Dispatch(int kind, uint64_t offset_bytes, uint64_t length_bytes,
                std::span<const std::byte> data, Completion done, bool to_oplog,
                bool direct_parts = true);
  void ReadWithOplog(uint64_t offset_bytes, std::span<std::byte> buffer, Completion done);
  // BlockStatus runs of [offset, ...) with the OpLog's data laid over the extent store's.
  std::vector<AllocationRun> OverlayOplogAllocation(uint64_t offset_bytes,
                                                    std::vector<AllocationRun> runs) const;
  // Starts a drain round when one is due; `idle` (the idle timer): the vDisk has been idle, so a
  // round of any size is due.
  void MaybeDrain(bool idle = false);
  void ArmIdleDrain();
  void DrainBatch(oplog::OpLog::DrainBatch batch);
  void OnDrainDone(Status status, uint64_t max_seq);
  void CheckQuiesced();
  void InvalidateCache(uint64_t offset_bytes, uint64_t length_bytes);
  void FinishPiece(Operation& operation, Status status);
  void CompleteLater(Completion done, Status status);
  // Splits a mutation into per-vBlock pieces (head partial block, aligned middle, tail partial
  // block) and queues them.
  // check_range false: past the current size (shrinking frees what lies there).
  void Mutate(int kind, uint64_t offset_bytes, uint64_t length_bytes,
              std::span<const std::byte> data, Completion done, bool check_range = true,
              bool background = false);
  // The extent-store path of a read (below the OpLog).
  void ReadExtents(uint64_t offset_bytes, std::span<std::byte> buffer, Completion done);
  void Enqueue(std::unique_ptr<Piece> piece);
  void Pump(uint64_t vblock);
  void MaybeForgetQueue(uint64_t vblock);
  void SubmitMutation(std::unique_ptr<Piece> piece, const Extent& extent,
                      std::span<const std::byte> data);
  void StartReadModifyWrite(std::unique_ptr<Piece> piece, const Extent& extent);
  void OnMutationDone(uint64_t vblock, Status status);
  void CreateMapping(uint64_t vblock);
  void OnMappingCreated(uint64_t vblock, Status status);
  // Finds a free extent slot, creating an egroup when none is open.
  void ReserveSlot(std::function<void(Result<Extent>)> done);
  void CreateEgroup();
  void OnEgroupIdAllocated(Result<uint64_t> egroup_id);
  void ReadVblock(uint64_t vblock, uint64_t offset_in_vblock, std::span<std::byte> buffer,
                  std::shared_ptr<Operation> operation);
  // ---- Egroup I/O (vdisk_controller_replication.cc): every replica of the egroup. ----
  bool replicated() const { return context_.peers != nullptr && replication_factor_ > 1; }
  // A write (data non-empty) or trim (data empty) of the egroup on every listed replica, with the
  // next replica version; done OK only once all have committed. A replica that fails is replaced
  // by a copy on another node and the write retried there; with no node to replace it, the
  // write fails (never acknowledged with fewer copies).
  void EgroupMutate(uint64_t egroup_id, uint64_t offset_bytes, uint64_t length_bytes,
                    std::span<const std::byte> data, Completion done);
  struct EgroupMutation;
  void SubmitEgroupMutation(std::shared_ptr<EgroupMutation> mutation);
  // Reads from the local replica when there is one, else a remote one; a checksum mismatch is
  // served from another replica and the bad one rewritten.
  void EgroupRead(uint64_t egroup_id, uint64_t offset_bytes, std::span<std::byte> buffer,
                  Completion done);
  Result<std::vector<bool>> EgroupAllocatedBlocks(uint64_t egroup_id, uint64_t offset_bytes,
                                                  uint64_t length_bytes);
  void ReadFromReplicas(uint64_t egroup_id, uint64_t offset_bytes, std::span<std::byte> buffer,
                        std::vector<uint32_t> nodes, Completion done);
  void RepairReplica(uint64_t egroup_id, uint32_t node_id, uint64_t offset_bytes,
                     std::span<const std::byte> good);
  // Replaces `remove_node`'s replica with a copy on `add_node` (0: choose one), then updates the
  // egroup row. Holds the egroup's writes meanwhile.
  void ChangeReplica(uint64_t egroup_id, uint32_t remove_node, uint32_t add_node, Completion done);
  void StartReplicaChanges(uint64_t egroup_id);
  void CopyEgroup(uint64_t egroup_id, uint32_t source_node, uint32_t target_node,
                  std::string target_disk, Completion done);
  void ResumeEgroupWrites(uint64_t egroup_id);
  // Reads every listed replica's version (writes to the egroup held meanwhile).
  void LearnReplicaVersion(uint64_t egroup_id);
  void Localize(uint64_t egroup_id);
  // Live nodes for `count` new copies beside the copies on `holders` (this node is one when
  // `local_holds`), none of them a holder or in a holder's fault domain, nor two in one domain;
  // among equals by free space, a rotation by `spread`.
  Result<std::vector<uint32_t>> ChooseNodes(uint32_t count, const std::vector<uint32_t>& holders,
                                            bool local_holds, uint64_t spread) const;
  void CreateReplicatedEgroup(uint64_t egroup_id, uint32_t attempt);
  records::Egroup EgroupRecord(uint64_t egroup_id) const;
  // Takeover (vdisk_controller_replication.cc): reads every replica's version; replicas behind
  // the newest are dropped from the row.
  void ReconcileEgroups(Completion done);
  // ---- The replicated OpLog ----
  void AppendToOplog(int kind, uint64_t offset_bytes, uint64_t length_bytes,
                     std::span<const std::byte> data, Completion done);
  void StartRepeer();
  void MaybeFinishRepeer();
  void TrimPeerOplogs();
  // Whether a mutation may bypass the OpLog: always on a single copy; with peers, only while
  // every peer has durably trimmed its copy up to this OpLog's drain watermark. Otherwise a
  // peer taking the vDisk over would replay (re-drain) older records over the bypassing
  // mutation and roll it back.
  bool MayBypassOplog() const;
  // Runs `run` once MayBypassOplog() (asking the peers to trim now), or with the error that
  // made the peers unable to (too few live nodes for a new peer set).
  void WhenBypassAllowed(std::function<void(Status)> run);
  void RunBypassWaiters(const Status& status);
  // Read-modify-writes the vDisk row (a new OpLog peer set).
  void UpdateVdiskRow(std::function<void(records::Vdisk&)> change, Completion done);
  void LoadEgroups(std::string start_after, Completion done);
  Status AddLoadedEgroup(const metadata::Row& row);
  void LoadBlockMap(std::string start_after, Completion done);
  Status AddLoadedMapping(const metadata::Row& row);
  void ServeSlotWaiters(Status status);
  void DestroyExtents(Completion done);
  void DestroyBlockMapRows(Completion done);
  void DestroyNextEgroup(Completion done);
  void TrimBeyond(uint64_t new_size_bytes, Completion done);

  ControllerContext context_;
  records::Vdisk record_;
  uint32_t replication_factor_ = 1;
  uint64_t row_version_ = 0;
  // The replicated OpLog: a peer failed, so the OpLog drains completely before a new peer set
  // takes over; records waiting for that (seq, completion), and mutations held meanwhile.
  bool repeering_ = false;
  std::vector<std::pair<uint64_t, Completion>> repeer_waiters_;
  std::deque<std::function<void()>> repeer_queue_;
  bool repeer_committing_ = false;
  bool fenced_ = false;  // A newer owner exists: no more writes.
  // Per OpLog peer, the drain watermark it has acknowledged (durably trimmed to).
  std::map<uint32_t, uint64_t> peer_trimmed_seq_;
  std::deque<std::function<void(Status)>> bypass_waiters_;
  uint64_t next_egroup_mutation_ = 1;
  uint64_t oplog_generation_ = 0;  // Seq of the first record the current OpLog peers got.
  std::unordered_map<uint64_t, Extent> block_map_;  // vBlock -> extent.
  std::map<uint64_t, EgroupState> egroups_;
  uint64_t open_egroup_ = 0;  // An egroup with free slots; 0: none.
  bool creating_egroup_ = false;
  std::deque<std::function<void(Result<Extent>)>> slot_waiters_;
  std::unordered_map<uint64_t, VblockQueue> queues_;
  uint64_t inflight_operations_ = 0;
  uint64_t background_operations_ = 0;
  uint32_t open_handles_ = 0;
  OplogState oplog_state_ = OplogState::kOff;
  std::unique_ptr<oplog::OpLog> oplog_;
  std::deque<std::function<void()>> opening_queue_;  // Mutations waiting for the OpLog to open.
  uint64_t outstanding_write_bytes_ = 0;             // The characterizer's measure.
  bool drain_active_ = false;
  bool idle_drain_armed_ = false;
  bool drain_backoff_ = false;
  bool drain_paused_ = false;               // A round failed: the next waits a moment.
  uint64_t client_operations_started_ = 0;  // For the idle timer: has anything happened since.
  bool quiescing_ = false;
  std::vector<Completion> quiesce_waiters_;
  VdiskControllerStats counters_;
  // Completions of operations that outlive the controller must not touch it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace weft::vdisk
