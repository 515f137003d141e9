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

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/status.h"
#include "metadata/metadata_store.h"
#include "vdisk/id_allocator.h"
#include "vdisk/node_disks.h"
#include "vdisk/vdisk_keys.h"

namespace weft::vdisk {

using Completion = std::function<void(Status status)>;

// One run of BlockStatus: `allocated` false means a hole that reads as zeros.
struct AllocationRun {
  uint64_t length_bytes = 0;
  bool allocated = false;
};
using BlockStatusCompletion = std::function<void(Result<std::vector<AllocationRun>> runs)>;

// What a controller needs from the node: metadata, the disks, ids for new egroups, and a way to
// run completions later on the reactor.
struct ControllerContext {
  metadata::MetadataStore* metadata = nullptr;
  metadata::Executor executor;
  std::vector<NodeDisk>* disks = nullptr;
  IdAllocator* egroup_ids = nullptr;
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
  uint64_t vblocks_mapped = 0;  // Block-map rows (1 MiB vBlocks that have an extent).
  uint64_t egroups = 0;
  uint64_t used_bytes = 0;  // Written 4 KiB blocks, in bytes.
};

class VdiskController {
 public:
  // BlockStatus reports on at most this much per call (a prefix of the range).
  static constexpr uint64_t kBlockStatusBytesMax = 1ull << 30;

  VdiskController(ControllerContext context, records::Vdisk record);
  ~VdiskController();
  VdiskController(const VdiskController&) = delete;
  VdiskController& operator=(const VdiskController&) = delete;

  // Loads the block map and egroup rows. Must complete OK before any I/O. Corruption when a row
  // names an egroup or a disk that does not exist.
  void Load(Completion done);

  void Read(uint64_t offset_bytes, std::span<std::byte> buffer, Completion done);
  void Write(uint64_t offset_bytes, std::span<const std::byte> data, Completion done);
  void Trim(uint64_t offset_bytes, uint64_t length_bytes, Completion done);
  void WriteZeroes(uint64_t offset_bytes, uint64_t length_bytes, bool no_hole, Completion done);
  void Flush(Completion done);
  // Allocation of a prefix of [offset, offset + length) (at most kBlockStatusBytesMax), at
  // 4 KiB granularity as committed.
  void BlockStatus(uint64_t offset_bytes, uint64_t length_bytes, BlockStatusCompletion done);

  const records::Vdisk& record() const { return record_; }
  uint64_t id() const { return record_.id(); }
  uint64_t size_bytes() const { return record_.size_bytes(); }
  // Resizing (the manager, after its metadata update): shrinking first frees what lies past the
  // new end, so that growing again later reads zeros there. `done` runs when that is durable.
  void Resize(records::Vdisk updated_record, Completion done);
  // Deletes every egroup and block-map row of this vDisk (the manager, once no I/O is left).
  void DestroyData(Completion done);

  // Operations accepted and not completed.
  uint64_t inflight_operations() const { return inflight_operations_; }
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
  struct EgroupState {
    NodeDisk* disk = nullptr;
    uint32_t used_slots_mask = 0;  // Bit k: slot k is mapped (or being mapped).
  };
  struct VblockQueue {
    std::deque<std::unique_ptr<Piece>> waiting;
    bool mapping = false;     // The block-map row is being created.
    bool rmw_active = false;  // A read-modify-write between its read and its write's submission.
    uint32_t inflight_mutations = 0;  // Submitted to the extent store, not completed.
  };

  Status CheckRange(std::string_view operation, uint64_t offset_bytes, uint64_t length_bytes) const;
  std::shared_ptr<Operation> StartOperation(Completion done, uint32_t pieces);
  void FinishPiece(Operation& operation, Status status);
  void CompleteLater(Completion done, Status status);
  // Splits a mutation into per-vBlock pieces (head partial block, aligned middle, tail partial
  // block) and queues them.
  // check_range false: past the current size (shrinking frees what lies there).
  void Mutate(int kind, uint64_t offset_bytes, uint64_t length_bytes,
              std::span<const std::byte> data, Completion done, bool check_range = true);
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
  extent_store::ExtentStore& StoreOf(uint64_t egroup_id);
  void LoadEgroups(std::string start_after, Completion done);
  Status AddLoadedEgroup(const metadata::Row& row);
  void LoadBlockMap(std::string start_after, Completion done);
  Status AddLoadedMapping(const metadata::Row& row);
  void ServeSlotWaiters(Status status);
  void DestroyBlockMapRows(Completion done);
  void DestroyNextEgroup(Completion done);
  void TrimBeyond(uint64_t new_size_bytes, Completion done);

  ControllerContext context_;
  records::Vdisk record_;
  std::unordered_map<uint64_t, Extent> block_map_;  // vBlock -> extent.
  std::map<uint64_t, EgroupState> egroups_;
  uint64_t open_egroup_ = 0;  // An egroup with free slots; 0: none.
  bool creating_egroup_ = false;
  std::deque<std::function<void(Result<Extent>)>> slot_waiters_;
  std::unordered_map<uint64_t, VblockQueue> queues_;
  uint64_t inflight_operations_ = 0;
  uint32_t open_handles_ = 0;
  VdiskControllerStats counters_;
  // Completions of operations that outlive the controller must not touch it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace weft::vdisk
