// ExtentStore internals shared by extent_store.cc (open, egroups, deferred frees, Poll),
// extent_store_write.cc (the out-of-place write path and group commit), extent_store_read.cc
// (reads) and extent_store_scrub.cc. Not part of the public API.
//
// The life of a write: validated, new blocks allocated, crc32c of every 4 KiB block taken, data
// written to the new blocks while PersistMetadata() writes the ALLOC records; queued in arrival
// order. The longest prefix of the queue whose I/O is done becomes a commit group: one device
// Flush (data and ALLOC records durable), one synced RocksDB batch switching the block map, then
// the replaced blocks are freed (deferred past older reads) and the writes complete.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/aligned_buffer.h"
#include "extent_store/commit_thread.h"
#include "extent_store/extent_store.h"
#include "extent_store/metadata_db.h"
#include "extent_store/metadata_format.h"

namespace weft::extent_store {

inline constexpr uint32_t kBlocksPerIoMax = kMaxIoBytes / kChecksumBlockBytes;  // 256
// Reads in flight beyond this are rejected with Busy (each holds deferred frees back).
inline constexpr uint32_t kMaxInflightReads = 1024;
// Egroups one disk may hold: 2^32 blocks of 4 KiB (the layout entry width) is 16 TiB, or 2^22
// full egroups; allow empty ones too, but not without bound (each costs memory).
inline constexpr uint64_t kMaxEgroups = uint64_t{1} << 24;
// Layout entries are uint32 block numbers.
inline constexpr uint64_t kMaxDeviceBlocks = uint64_t{1} << 32;

struct LiveEgroup {
  uint64_t created_micros = 0;
  uint32_t written_block_count = 0;  // As committed.
  uint32_t inflight_writes = 0;      // Accepted and not yet completed.
  uint64_t replica_version = 0;      // As committed.
};

struct PendingWrite {
  EgroupId egroup_id = 0;
  uint64_t offset_bytes = 0;
  std::span<const std::byte> data;  // The caller's buffer, or `bounce`.
  AlignedBuffer bounce;             // A copy when the caller's buffer is not device-aligned.
  WriteCompletion done;
  std::vector<blockstore::BlockRun> new_runs;  // Where the data goes, in data order.
  std::vector<uint32_t> checksums;             // crc32c of each 4 KiB block of `data`.
  uint32_t trim_block_count = 0;               // A trim: no data, this many blocks unmapped.
  uint64_t replica_version = 0;                // 0: leaves the egroup's version as it is.
  uint32_t device_writes_outstanding = 0;
  bool metadata_persisted = false;  // The PersistMetadata() carrying the ALLOC records is done.
  Status status;                    // First error of its I/O.

  bool is_trim() const { return trim_block_count > 0; }
  uint32_t block_count() const {
    return is_trim() ? trim_block_count : static_cast<uint32_t>(checksums.size());
  }
  bool ready() const { return device_writes_outstanding == 0 && metadata_persisted; }
};

struct PendingRead {
  uint64_t sequence = 0;  // Orders the read against commits (deferred frees).
  EgroupId egroup_id = 0;
  uint64_t offset_bytes = 0;
  std::span<std::byte> buffer;
  ReadCompletion done;
  std::vector<uint32_t> physical_blocks;     // Per 4 KiB block; 0 = unwritten (reads as zeros).
  std::vector<uint32_t> expected_checksums;  // Per 4 KiB block, where written.
  uint32_t device_reads_outstanding = 0;
  Status status;
};

// Blocks a commit stopped referencing, freed once no read that might still use them runs.
struct DeferredFree {
  uint64_t commit_sequence = 0;
  std::vector<uint64_t> blocks;
};

struct ExtentStore::State {
  State(blockstore::Blockstore& blockstore_in, const ExtentStoreOptions& options_in,
        std::string disk_name_in, std::unique_ptr<MetadataDb> metadata_in)
      : blockstore(blockstore_in),
        options(options_in),
        disk_name(std::move(disk_name_in)),
        metadata(std::move(metadata_in)) {}

  blockstore::Blockstore& blockstore;
  const ExtentStoreOptions options;
  const std::string disk_name;
  std::unique_ptr<MetadataDb> metadata;
  std::map<EgroupId, LiveEgroup> egroups;

  // Write path. `write_queue` holds accepted writes in arrival order until their group commits;
  // `flushing_groups` are the groups between their Flush and their RocksDB batch, in commit
  // order: at most two, the one whose flush completed (committing) and the next, whose flush
  // runs in the kernel while the first one's batch is written (pipelining).
  std::deque<std::unique_ptr<PendingWrite>> write_queue;
  struct CommitGroupState {
    std::vector<std::unique_ptr<PendingWrite>> writes;
    bool flushed = false;
    Status flush_status;
  };
  std::deque<std::unique_ptr<CommitGroupState>> flushing_groups;
  // A group whose RocksDB batch is being written on the commit thread (at most one: batches are
  // prepared from the rows the previous batch left, so they go one after another).
  // What a commit makes of each egroup it touches (its egroup row in the batch says the same).
  struct EgroupAfterCommit {
    uint32_t written_block_count = 0;
    uint64_t replica_version = 0;
  };
  struct PreparedCommit {
    std::vector<std::unique_ptr<PendingWrite>> writes;
    std::unique_ptr<MetadataBatch> batch;
    std::map<EgroupId, EgroupAfterCommit> egroups_after;
    std::vector<uint64_t> replaced_blocks;
  };
  std::unique_ptr<PreparedCommit> running_commit;
  uint64_t next_commit_ticket = 1;
  bool commit_in_progress = false;  // flushing_groups is not empty.
  uint32_t inflight_writes = 0;
  // Sticky: after a metadata write failed, whether it reached the log is unknown, so nothing
  // more is written (RocksDB itself stops accepting writes after a log sync error).
  Status metadata_failure;

  // Reads, and the frees they hold back. One counter orders reads and commits.
  uint64_t next_sequence = 1;
  std::map<uint64_t, std::unique_ptr<PendingRead>> inflight_reads;
  std::optional<uint64_t> scrub_sequence;
  std::deque<DeferredFree> deferred_frees;  // Ascending commit_sequence.
  bool frees_unpersisted = false;           // Free() was called after the last PersistMetadata().
  bool metadata_sync_in_progress = false;

  // Writes that found no free blocks while freed blocks were still on their way back (deferred,
  // unpersisted or quarantined). They are retried when a metadata sync completes.
  struct SpaceWaiter {
    EgroupId egroup_id = 0;
    uint64_t offset_bytes = 0;
    std::span<const std::byte> data;
    WriteCompletion done;
    uint64_t trim_length_bytes = 0;  // A trim queued behind waiting writes (keeps the order).
    uint64_t replica_version = 0;
  };
  std::deque<SpaceWaiter> space_waiters;
  static constexpr size_t kMaxSpaceWaiters = 1024;
  bool space_waiting_allowed = true;  // False while retrying after a failed metadata sync.

  // User completions run by Poll(), never inside the call or the device completion that
  // produced them, so that a completion may call back into the store.
  std::deque<std::pair<std::function<void(Status)>, Status>> ready_completions;
  ExtentStoreStats counters;

  // Last member: destroyed (joined) before the metadata it writes to.
  std::unique_ptr<CommitThread> commit_thread;

  // extent_store.cc
  Status CheckHeader();
  Status LoadEgroups();
  Status LoadLayoutAndReclaim();
  Status CheckReferencedBlock(format::SlotAddress address, uint32_t entry, uint64_t block,
                              const std::vector<bool>& referenced) const;
  Status ValidateRange(std::string_view operation, EgroupId egroup_id, uint64_t offset_bytes,
                       uint64_t length_bytes, uint64_t length_bytes_max = kMaxIoBytes) const;
  void CompleteLater(std::function<void(Status)> done, Status status);
  size_t RunReadyCompletions();
  uint64_t OldestReaderSequence() const;
  void DeferFree(std::vector<uint64_t> blocks);
  void ReleaseDeferredFrees();
  void FreeBlocks(std::vector<uint64_t> blocks);
  // Persists pending FREE records when the store is idle (`idle`), when writes wait for space,
  // or when free space runs low; otherwise they ride along with the next write's round.
  void MaybeStartMetadataSync(bool idle);
  bool FreesOnTheirWay() const;
  void RetrySpaceWaiters(bool may_wait_again);
  bool Idle() const;
  bool HasWaitingWrites(EgroupId egroup_id) const;
  uint64_t device_block_count() const { return blockstore.block_count(); }

  // extent_store_write.cc
  void SubmitWrite(EgroupId egroup_id, uint64_t offset_bytes, std::span<const std::byte> data,
                   WriteCompletion done, uint64_t replica_version);
  void SubmitTrim(EgroupId egroup_id, uint64_t offset_bytes, uint64_t length_bytes,
                  WriteCompletion done, uint64_t replica_version);
  Result<std::vector<blockstore::BlockRun>> AllocateBlocks(uint32_t block_count);
  void OnDataWritten(PendingWrite* write, Status status);
  void OnWriteMetadataPersisted(PendingWrite* write, Status status);
  void TryStartCommit();
  // Takes the longest ready prefix of the write queue as a group and submits its Flush.
  void StartGroupFlush();
  void OnGroupFlushed(CommitGroupState* group, Status status);
  void ProcessFlushedGroups();
  std::unique_ptr<PreparedCommit> PrepareCommit(std::vector<std::unique_ptr<PendingWrite>> group);
  void FinishCommit(std::unique_ptr<PreparedCommit> prepared, Status status);
  size_t CollectCommitResults();
  void FailWrite(std::unique_ptr<PendingWrite> write, Status status);
  void FinishWrite(std::unique_ptr<PendingWrite> write, Status status);

  // extent_store_block_map.cc
  // Calls visit(index, layout entry, checksum entry) for each 4 KiB block of a range that passed
  // ValidateRange, from the committed slot rows.
  Status VisitCommittedBlocks(
      EgroupId egroup_id, uint64_t offset_bytes, uint64_t length_bytes,
      const std::function<void(uint64_t index, uint32_t physical_block, uint32_t checksum)>& visit);

  // extent_store_read.cc
  void SubmitRead(EgroupId egroup_id, uint64_t offset_bytes, std::span<std::byte> buffer,
                  ReadCompletion done);
  Status LookUpBlocks(PendingRead& read);
  void OnDeviceRead(uint64_t sequence, Status status);
  void FinishRead(std::unique_ptr<PendingRead> read);
  Status VerifyReadChecksums(const PendingRead& read);

  // extent_store_scrub.cc
  ScrubReport Scrub();
  void ScrubSlot(format::SlotAddress address, const Result<format::SlotRows>& rows,
                 std::span<std::byte> buffer, ScrubReport& report);
};

// Physically contiguous stretches of a block map: [first_index, first_index + block_count) map
// to [first_block, first_block + block_count). Unwritten (0) entries are skipped.
struct ContiguousStretch {
  uint32_t first_index = 0;
  uint32_t block_count = 0;
  uint64_t first_block = 0;
};
std::vector<ContiguousStretch> FindContiguousStretches(std::span<const uint32_t> physical_blocks);

}  // namespace weft::extent_store
