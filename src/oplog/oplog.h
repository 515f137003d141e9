// OpLog: one vDisk's persistent write buffer (the seeds' OpLog). Small random writes are
// appended to a log at journal speed and acknowledged once durable; a drainer (the vDisk
// controller) later moves the data to the extent store and the log space is reused.
//
// - Storage: preallocated segment files (segment_bytes each, at most size_bytes_max in all) in a
//   blockstore's file layer, written in place front to back in batches (oplog_format.h,
//   docs/ondisk/oplog.md). Only one batch is in flight at a time; records appended meanwhile
//   form the next batch, so concurrent writes share one device write and one flush (group
//   commit). A batch's flush is the file layer's flush-only Sync: one device flush per batch.
// - Index: Append inserts into the RangeIndex at once, so reads and later writes see it in
//   arrival order; its completion runs when the record is durable.
// - Drain: NextDrainBatch hands out the oldest durable records (a prefix in seq order) as index
//   pieces; once the caller has made them durable in the extent store, FinishDrain writes the
//   drain watermark (a batch header field) and, when that is durable, erases them from the index
//   and frees segments whose records are all drained. Only after that may writes to those
//   ranges bypass the OpLog: a replay never re-applies a record older than the watermark.
// - Space: when no segment is free and the cap is reached, batches wait for the drain
//   (back-pressure; nothing is dropped). fill_fraction() lets the write characterizer send
//   writes to the extent store before that happens.
// - Recovery (Open): every segment is scanned; records newer than the highest watermark found
//   are replayed into the index in seq order; a torn last batch is discarded (never acknowledged).
// - Replicas (issue 7): a peer node keeps an OpLog for the owner's vDisk (same files, format and
//   vdisk_id) fed by AppendReplica, whose records carry the owner's seqs (increasing, maybe with
//   gaps: a batch ends at a gap, as its seqs are consecutive), and MarkDrained, which persists the
//   owner's drain watermark and frees what it covers. When the owner dies the peer Opens the log,
//   replays every acknowledged record above the watermark and Appends on above the last seq.
// - Failure: an I/O error writing the log fails the batch's writes and every later Append
//   (IOError); reads of the index keep working.
//
// Threading: the reactor thread that polls the blockstore; completions run from its Poll() or
// from the executor, never inside the call.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "blockstore/file_layer.h"
#include "oplog/oplog_format.h"
#include "oplog/range_index.h"

namespace weft::oplog {

using Completion = std::function<void(Status status)>;
using Executor = std::function<void(std::function<void()> task)>;

struct OpLogOptions {
  uint64_t segment_bytes = 16ull << 20;
  uint64_t size_bytes_max = 128ull << 20;  // Log space: segments * segment_bytes at most.
  uint64_t batch_bytes_max = 4ull << 20;   // One device write.
};

// A record at most this long (callers split larger writes, e.g. at vBlock boundaries).
inline constexpr uint64_t kRecordBytesMax = 1ull << 20;

struct OpLogStats {
  uint64_t records_appended = 0;
  uint64_t bytes_appended = 0;
  uint64_t batches_written = 0;  // Each one device write and one flush.
  uint64_t records_drained = 0;
  uint64_t drain_rounds = 0;
  uint64_t records_replayed = 0;          // At the last Open.
  uint64_t space_waits = 0;               // Batches that waited for the drain to free a segment.
  uint64_t appends_failed_for_space = 0;  // Failed while waiting: the drain could not free any.
  uint64_t segments = 0;                  // Segment files.
  uint64_t segments_in_use = 0;
  uint64_t log_bytes_max = 0;
  uint64_t index_bytes = 0;  // Undrained bytes the index serves.
  uint64_t index_pieces = 0;
  uint64_t records_undrained = 0;
  uint64_t last_seq = 0;
  uint64_t drained_seq = 0;  // Durable watermark.
  bool failed = false;
};

class OpLog {
 public:
  OpLog(blockstore::FileLayer& files, uint64_t vdisk_id, OpLogOptions options, Executor executor);
  ~OpLog();
  OpLog(const OpLog&) = delete;
  OpLog& operator=(const OpLog&) = delete;

  // Finds the vDisk's segments, replays them into the index, and makes sure one segment exists.
  // Must complete OK before anything else is called.
  void Open(Completion done);

  // Appends a record of `kind` over [offset, offset + length) (data: kData's bytes, copied).
  // length <= kRecordBytesMax. The index sees it before Append returns; `done` runs once it is
  // durable. Returns the record's seq (last_seq() + 1: what replicas are sent), or 0 when the
  // log has failed (`done` then gets the failure and nothing is appended).
  uint64_t Append(format::RecordKind kind, uint64_t offset_bytes, uint64_t length_bytes,
                  std::span<const std::byte> data, Completion done);

  // A replica's append: the owner's record `seq`, appended like Append (index at once, group
  // commit, `done` once durable, back-pressure) but with the owner's seq. `data_crc32c` is the
  // owner's crc32c of `data` (kData; 0 for the zero kinds), checked before anything changes.
  // Errors (nothing changes): InvalidArgument when, and only when, seq <= last_seq() ("oplog
  // replica: seq S not after L"); Corruption on a crc mismatch or a malformed record (bad kind,
  // length 0 or over kRecordBytesMax, data size not matching the kind); the log's failure once
  // it has failed.
  // Gaps in seqs are fine (records the owner failed never reach the peer). Later Appends
  // continue after the highest seq.
  void AppendReplica(uint64_t seq, format::RecordKind kind, uint64_t offset_bytes,
                     uint64_t length_bytes, std::span<const std::byte> data, uint32_t data_crc32c,
                     Completion done);
  // A replica's drain: the owner has every record with seq <= drained_seq (clamped to
  // last_seq()) in the replicated extent store. Persists that watermark, then erases those
  // records from the index and frees segments whose records are all drained; `done` runs after
  // that (OK) — the effect of NextDrainBatch + FinishDrain, with no data moved. A watermark at
  // or below drained_seq() completes OK at once; one below a watermark still being written
  // completes with it. Busy while a NextDrainBatch drain runs (and NextDrainBatch hands out
  // nothing while a MarkDrained is being written); the log's failure once it has failed.
  void MarkDrained(uint64_t drained_seq, Completion done);

  // The highest seq assigned (Append), accepted (AppendReplica) or replayed, or the watermark
  // if higher (0 for a new log). The next Append gets last_seq() + 1.
  uint64_t last_seq() const { return next_seq_ - 1; }
  // The durable drain watermark: records with seq <= drained_seq() are not replayed.
  uint64_t drained_seq() const { return drained_seq_durable_; }

  const RangeIndex& index() const { return index_; }
  // Log space in use (segments holding undrained records, and the one being written) over the cap.
  double fill_fraction() const;
  // Whether a batch is waiting for the drain to free a segment: the log is full whatever
  // fill_fraction() says (segments can run out with their tails unused).
  bool waiting_for_space() const { return waiting_for_space_; }
  // Appended records not yet durable (in the batch in flight or waiting for it).
  uint64_t appends_pending() const { return pending_.size() + batch_records_in_flight_; }
  bool failed() const { return !failure_.ok(); }

  // The oldest durable records not yet drained, up to about `bytes_max` of them: the index
  // pieces they still own (bytes overwritten by newer records are not included), all with
  // seq <= max_seq. nullopt when nothing is to drain or a drain is already running.
  struct DrainBatch {
    uint64_t max_seq = 0;
    uint64_t records = 0;
    std::vector<IndexPiece> pieces;
  };
  std::optional<DrainBatch> NextDrainBatch(uint64_t bytes_max);
  // The batch's pieces are durable in the extent store: persist the watermark, then erase them
  // from the index and free segments. `done` runs after that (OK), or with the error (the pieces
  // stay in the index and will be drained again).
  void FinishDrain(uint64_t max_seq, Completion done);
  // The caller could not write the batch: nothing changes; it may be handed out again.
  void AbortDrain();
  // The drain cannot free space (the extent store is full): appends waiting for log space fail
  // with `status` instead of waiting for ever.
  void FailAppendsWaitingForSpace(const Status& status);
  bool drain_running() const { return drain_running_; }
  // Whether there are durable records not yet drained, and their bytes.
  bool has_undrained() const { return !undrained_.empty(); }
  uint64_t undrained_bytes() const { return undrained_bytes_; }

  // Deletes the vDisk's segment files (the vDisk is being deleted; nothing may be in flight).
  Status DestroyFiles();
  // Whether nothing is in flight (no batch, no pending appends, no segment being created).
  bool quiescent() const;

  OpLogStats stats() const;

 private:
  struct Segment {
    uint64_t number = 0;
    blockstore::FileId file = 0;
    bool in_use = false;  // Holds undrained records, or is the tail.
    uint64_t write_offset_bytes = 0;
    uint64_t max_record_seq = 0;  // Of the records written to it in its current use.
  };
  struct PendingRecord {
    uint64_t seq = 0;
    format::RecordKind kind = format::RecordKind::kData;
    uint64_t offset_bytes = 0;
    uint64_t length_bytes = 0;
    std::shared_ptr<const RecordData> data;
    Completion done;
  };
  struct UndrainedRecord {
    uint64_t seq = 0;
    uint64_t length_bytes = 0;
  };

  struct Recovery;
  void RecoverSegment(size_t index, std::shared_ptr<Recovery> recovery, Completion done);
  void FinishRecovery(std::shared_ptr<Recovery> recovery, Completion done);
  // Room every segment keeps for two watermark-only batches (see MaybeStartBatch).
  static constexpr uint64_t kWatermarkReserveBytes = 2 * format::kBatchAlignmentBytes;

  // Queues a record whose seq is assigned and checked (Append, AppendReplica).
  void Enqueue(uint64_t seq, format::RecordKind kind, uint64_t offset_bytes, uint64_t length_bytes,
               std::span<const std::byte> data, Completion done);
  void CompleteLater(Completion done, Status status);
  void MaybeStartBatch();
  uint64_t TailRoom() const;
  // Makes a free segment the tail; false when none is free.
  bool SwitchTail();
  // Writes the first `count` pending records (and the watermark) as one batch at the tail.
  void WriteBatch(size_t count, uint64_t data_bytes);
  void CreateSegment();
  void OnBatchDone(std::vector<PendingRecord> records, uint64_t drained_seq, Status status);
  void FreeDrainedSegments();
  void Fail(Status status);

  blockstore::FileLayer& files_;
  const uint64_t vdisk_id_;
  const OpLogOptions options_;
  Executor executor_;
  RangeIndex index_;
  std::vector<Segment> segments_;
  int tail_ = -1;  // Index into segments_.
  uint64_t next_segment_number_ = 1;
  uint64_t next_seq_ = 1;
  uint64_t next_batch_seq_ = 1;
  std::deque<PendingRecord> pending_;
  bool batch_in_flight_ = false;
  size_t batch_records_in_flight_ = 0;
  bool creating_segment_ = false;
  bool waiting_for_space_ = false;
  bool segment_limit_reached_ = false;  // Creating a segment failed with NoSpace.
  Completion open_waiter_;              // Open, waiting for the first segment.
  // Drain watermark: what the next batch will carry, and what is durable.
  uint64_t drained_seq_to_write_ = 0;
  uint64_t drained_seq_durable_ = 0;
  struct WatermarkWaiter {
    uint64_t seq = 0;
    bool from_drain = false;  // FinishDrain (ends drain_running_), else MarkDrained.
    Completion done;
  };
  std::deque<WatermarkWaiter> watermark_waiters_;
  std::deque<UndrainedRecord> undrained_;  // Durable records, seq order.
  uint64_t undrained_bytes_ = 0;
  bool drain_running_ = false;
  uint64_t drain_max_seq_ = 0;
  Status failure_;
  OpLogStats counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace weft::oplog
