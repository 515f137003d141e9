// Blockstore internals shared by blockstore.cc (format, open, allocator), blockstore_journal.cc
// (persisting records, checkpoints, flushes) and file_layer.cc. Not part of the public API.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "blockstore/blockstore.h"
#include "blockstore/blockstore_format.h"
#include "blockstore/file_layer.h"

namespace weft::blockstore {

// One bit per block; a set bit means "in use".
class Bitmap {
 public:
  explicit Bitmap(uint64_t bit_count = 0) : bit_count_(bit_count), words_((bit_count + 63) / 64) {}
  bool Test(uint64_t bit) const { return (words_[bit / 64] >> (bit % 64)) & 1u; }
  void Set(uint64_t bit) { words_[bit / 64] |= uint64_t{1} << (bit % 64); }
  void Clear(uint64_t bit) { words_[bit / 64] &= ~(uint64_t{1} << (bit % 64)); }
  bool AllSet(uint64_t first, uint64_t count) const;
  bool AllClear(uint64_t first, uint64_t count) const;
  void SetRange(uint64_t first, uint64_t count);
  void ClearRange(uint64_t first, uint64_t count);
  uint64_t bit_count() const { return bit_count_; }
  std::vector<uint64_t>& words() { return words_; }
  const std::vector<uint64_t>& words() const { return words_; }

 private:
  uint64_t bit_count_;
  std::vector<uint64_t> words_;
};

struct File {
  FileId id = 0;
  std::string name;
  std::vector<BlockRun> runs;
  uint64_t allocated_blocks = 0;
  uint64_t recorded_size_bytes = 0;  // Size as the journal knows it (last kFileSize/kFileTruncate).
  uint64_t size_bytes = 0;           // Bytes appended and completed, synced or not.
  uint64_t queued_size_bytes = 0;    // size_bytes plus appends still queued or in flight.
  // The contents of the last, partial block, valid when tail_valid; loaded lazily by the first
  // append after open or truncate.
  AlignedBuffer tail;
  bool tail_valid = false;
  struct PendingAppend {
    std::vector<std::byte> data;
    env::IoCompletion done;
  };
  std::deque<PendingAppend> appends;  // Front is in flight when append_in_flight.
  bool append_in_flight = false;
  uint32_t reads_in_flight = 0;
  uint32_t writes_in_flight = 0;  // In-place Write()s.
  uint32_t syncs_in_flight = 0;
  // Journal records of this file (Preallocate's extends and size) not yet covered by a
  // completed Sync, and Syncs persisting them: while either is set, Sync writes the journal.
  bool journal_dirty = false;
  uint32_t journal_syncs_in_flight = 0;
  std::vector<env::IoCompletion> sync_waiters;  // Waiting for the append queue to drain.
};

class FileLayerImpl;

struct Blockstore::State {
  env::BlockDevice* device = nullptr;
  format::Superblock superblock{};
  Uuid uuid;
  uint64_t blockstore_id = 0;
  uint32_t block_size_bytes = 0;
  uint64_t block_count = 0;

  // Allocation state. `allocated` is the state the journal describes (frees applied);
  // `quarantine` holds freed blocks whose FREE record is not durable yet, which Allocate skips.
  Bitmap allocated;
  Bitmap quarantine;
  uint64_t allocated_data_blocks = 0;
  uint64_t quarantined_blocks = 0;
  uint64_t file_blocks = 0;
  uint64_t allocation_cursor = 0;

  // Files.
  std::map<FileId, File> files;
  std::map<std::string, FileId, std::less<>> file_names;
  FileId next_file_id = 1;
  uint64_t file_run_count = 0;
  std::unique_ptr<FileLayerImpl> file_layer;

  // Journal. Records appended since the last round started, and the runs they free.
  std::vector<std::byte> pending_records;
  uint32_t pending_record_count = 0;
  std::vector<BlockRun> pending_frees;
  // Frees whose records are written but not yet flushed.
  std::vector<BlockRun> written_frees;
  uint64_t last_sequence = 0;  // Of the newest checkpoint or journal page written.
  uint32_t journal_next_slot = 0;
  int active_checkpoint = 0;
  bool round_in_flight = false;
  std::vector<env::IoCompletion> round_waiters;       // Served by the round in flight.
  std::vector<env::IoCompletion> next_round_waiters;  // Served by the next round.
  Status metadata_failure;  // Sticky: once a metadata write fails, every later one fails.
  uint32_t inflight_internal = 0;

  // Completions that must not run inside the call that produced them; run by Poll().
  std::deque<std::pair<env::IoCompletion, Status>> deferred;

  BlockstoreStats counters;

  // blockstore.cc
  uint64_t data_first_block() const { return superblock.data_first_block; }
  bool InDataArea(uint64_t first, uint64_t count) const;
  Result<BlockRun> FindFreeRun(uint32_t block_count, uint64_t start_hint);
  bool TryAllocateAt(uint64_t first, uint32_t count);
  bool OverlapsFileRun(const BlockRun& run) const;
  void MarkAllocated(const BlockRun& run);
  void ReleaseToQuarantine(const BlockRun& run, bool live);
  void ReleaseQuarantine(const std::vector<BlockRun>& runs);
  // Validates and applies one record to the in-memory state. On replay (live=false) frees take
  // effect at once; live frees go to quarantine. Returns Corruption for a record that does not
  // fit the state (only possible on replay of damaged metadata).
  Status ApplyRecord(const format::JournalRecord& record, std::string_view name, bool live);
  // Applies a record and queues it for the next round. Asserts it applies.
  void AppendLiveRecord(format::RecordType type, FileId file_id, uint64_t value,
                        uint32_t block_count, std::string_view name = {});
  void Defer(env::IoCompletion done, Status status);
  Status FreeFileBlocksBeyond(File& file, uint64_t keep_blocks, bool live);

  // blockstore_journal.cc
  void StartRound();
  void FinishRound(Status status, std::vector<BlockRun> frees);
  std::vector<AlignedBuffer> SerializePages(const std::vector<std::byte>& records);
  AlignedBuffer SerializeCheckpoint(uint64_t sequence, uint32_t* block_count_out) const;
  Status LoadCheckpoint(int area, uint64_t* sequence_out);
  Status ReplayJournal();
  Status WriteCheckpointSync();  // At open: the ring starts over after it.
  void SubmitFlush(env::IoCompletion done);
  void PersistMetadata(env::IoCompletion done);
  void SyncMetadata(env::IoCompletion done);
  Status RunUntil(const bool& done);
};

// Layout arithmetic shared by Format and Open.
uint32_t CheckpointBlocks(uint32_t block_size_bytes, uint64_t block_count, uint32_t max_files,
                          uint32_t max_file_runs);

}  // namespace weft::blockstore
