// Blockstore: user-space block management over one BlockDevice (the seeds' Blockstore, without
// a kernel file system in the way). It owns the device and hands out runs of fixed-size blocks.
//
// On-disk layout, superblock, checkpoint and journal formats: docs/ondisk/blockstore.md.
//
// Who uses what:
// - The extent store takes raw runs with Allocate()/AllocateAny() and returns them with Free().
// - Named files (the OpLog, later RocksDB) live in the file layer, files().
//
// Persistence and crash consistency. Every change of the allocation state or of the file table
// is applied in memory at once and recorded as a journal record. Records reach the device when
// PersistMetadata() writes them (journal pages, no flush), and are durable once a Flush() that
// was submitted after that write completed has completed. After a crash, Open() restores exactly
// the last durable state: a run whose ALLOC record was not durable is free again, a run whose
// FREE record was not durable is still allocated (a leak, never a double use).
//
// Rules for the client of Allocate/Free (asserted where cheap):
// - Before a client commits a reference to a run anywhere else (the extent store's RocksDB), the
//   ALLOC must be durable: PersistMetadata() then Flush() (one flush can cover the data too).
// - Free() a run only after the client's durable metadata no longer references it. A freed run
//   is not handed out again until its FREE record is durable, so a crash can never leave a block
//   that the old owner still references overwritten by a new owner.
// - Leaks (allocated runs no durable reference points at, left by a crash between ALLOC and the
//   client's commit, or between the client's commit and FREE) are returned by
//   ReclaimUnreferenced(), which the client calls once at open after loading its references.
//
// Threading: like the device, one owner thread; completions run inside Poll().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/uuid.h"
#include "env/block_device.h"

namespace weft::blockstore {

class FileLayer;

struct BlockRun {
  uint64_t first_block = 0;
  uint32_t block_count = 0;

  uint64_t end_block() const { return first_block + block_count; }
  friend bool operator==(const BlockRun&, const BlockRun&) = default;
};

struct FormatOptions {
  uint32_t block_size_bytes = 4096;  // A power of two from 4096 to 65536.
  // Journal ring length; a checkpoint (the whole bitmap and file table) is written each time it
  // fills, so a short ring costs write throughput (measured: 512 -> 4096 blocks on a 1 GiB disk
  // took QD32 4 KiB writes from 18k to 23k IOPS and p99 from 14 ms to 4 ms). 0: automatic, 1/64
  // of the device's blocks, at least 64 and at most 8192 (32 MiB at 4 KiB).
  uint32_t journal_blocks = 0;
  uint32_t max_files = 1024;       // File table limit of the file layer.
  uint32_t max_file_runs = 16384;  // Total runs over all files (bounds the checkpoint size).
};

struct BlockstoreStats {
  uint32_t block_size_bytes = 0;
  uint64_t total_blocks = 0;        // Every block of the formatted device.
  uint64_t data_blocks = 0;         // Blocks available to clients and files.
  uint64_t free_blocks = 0;         // Allocatable now.
  uint64_t quarantined_blocks = 0;  // Freed, waiting for their FREE record to be durable.
  uint64_t client_blocks = 0;       // Allocated through Allocate/AllocateAny.
  uint64_t file_blocks = 0;         // Allocated to files.
  uint32_t journal_blocks = 0;      // Length of the journal ring.
  uint64_t journal_pages_written = 0;
  uint64_t checkpoints_written = 0;
  uint64_t flushes = 0;
  uint64_t leaked_blocks_reclaimed = 0;
};

class Blockstore {
 public:
  // Largest run Allocate() hands out: 4 MiB (one extent group).
  static constexpr uint64_t kMaxRunBytes = 4ull << 20;

  // Writes a fresh blockstore over the whole device: both superblock copies, an empty
  // checkpoint, an empty journal. Errors: InvalidArgument (block size, device too small),
  // IOError. Destroys whatever the device held.
  static Status Format(env::BlockDevice& device, const FormatOptions& options);

  // Validates the superblocks (one bad copy is repaired from the other), loads the newest valid
  // checkpoint and replays the journal. Errors: InvalidArgument (not a weft blockstore, or an
  // unsupported version), Corruption (both superblocks bad, the device is shorter than it was
  // formatted, inconsistent metadata), IOError.
  static Result<std::unique_ptr<Blockstore>> Open(env::BlockDevice& device);

  // Waits for in-flight metadata writes; does not persist pending records (a clean close calls
  // Close() first).
  ~Blockstore();
  Blockstore(const Blockstore&) = delete;
  Blockstore& operator=(const Blockstore&) = delete;

  // Persists pending records and flushes, synchronously (for shutdown and tools).
  Status Close();

  const Uuid& uuid() const;
  uint32_t block_size_bytes() const;
  uint64_t block_count() const;
  uint64_t free_block_count() const;
  uint32_t max_run_blocks() const;  // kMaxRunBytes / block size.
  uint64_t BlockOffsetBytes(uint64_t block) const;
  env::BlockDevice& device();

  // One contiguous run of `block_count` blocks (1..max_run_blocks()). NoSpace when no free run
  // that long exists (the message gives the free total), InvalidArgument for a bad count.
  Result<BlockRun> Allocate(uint32_t block_count);
  // `block_count` blocks in as few runs as the free space allows (each at most max_run_blocks()),
  // for writes that need not be contiguous. NoSpace (and nothing allocated) when fewer are free.
  Result<std::vector<BlockRun>> AllocateAny(uint64_t block_count);
  // Returns a client run (see the rules above). The run must be exactly client-allocated.
  void Free(const BlockRun& run);
  bool IsAllocated(uint64_t block) const;

  // Writes every record pending at the time of the call as journal pages (no flush). Completes
  // when those pages are written. Calls made while one is in progress share the next round.
  void PersistMetadata(env::IoCompletion done);
  // Flushes the device: every write that completed before this call (data and journal pages)
  // is durable when `done` runs. Releases quarantined runs whose FREE became durable.
  void Flush(env::IoCompletion done);
  // PersistMetadata then Flush, with a flush first so that data written before the call is
  // durable before the metadata that describes it (what the file layer's Sync needs).
  void SyncMetadata(env::IoCompletion done);

  // Frees every client-allocated block for which `is_referenced` is false, then persists and
  // flushes, synchronously. Returns how many blocks were reclaimed.
  Result<uint64_t> ReclaimUnreferenced(const std::function<bool(uint64_t block)>& is_referenced);

  FileLayer& files();
  BlockstoreStats stats() const;

  // Runs completions: the device's, and the blockstore's own that must not run inside the call
  // that produced them (e.g. PersistMetadata with nothing to write). Users of a blockstore poll
  // through this, never through device().Poll(), or such completions never run.
  size_t Poll(bool wait);
  // Poll that also waits, when nothing is in flight, for BlockDevice::Wake() from another thread.
  size_t PollUntilWoken();

  struct State;  // Implementation (blockstore_impl.h); public so the file layer can share it.

 private:
  explicit Blockstore(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace weft::blockstore
