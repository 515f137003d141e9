// The OpLog's log: segments, group commit, the drain watermark, recovery (oplog.h).
#include "oplog/oplog.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "base/assert.h"
#include "base/crc32c.h"

namespace weft::oplog {

namespace {

RangeKind IndexKind(format::RecordKind kind) {
  switch (kind) {
    case format::RecordKind::kData:
      return RangeKind::kData;
    case format::RecordKind::kZeroUnmap:
      return RangeKind::kZeroUnmap;
    case format::RecordKind::kZeroFill:
      return RangeKind::kZeroFill;
  }
  WEFT_ASSERT(false && "bad record kind");
  return RangeKind::kData;
}

Status CheckReplicaRecord(uint64_t seq, uint64_t last_seq, format::RecordKind kind,
                          uint64_t offset_bytes, uint64_t length_bytes, uint64_t data_bytes,
                          uint32_t data_crc32c) {
  if (seq <= last_seq || seq == UINT64_MAX) {
    return Status::InvalidArgument(
        fmt::format("oplog replica: seq {} not after {}", seq, last_seq));
  }
  const auto kind_value = static_cast<uint8_t>(kind);
  if (kind_value < static_cast<uint8_t>(format::RecordKind::kData) ||
      kind_value > static_cast<uint8_t>(format::RecordKind::kZeroFill)) {
    return Status::Corruption(fmt::format("oplog replica: seq {} has kind {}", seq, kind_value));
  }
  const bool has_data = kind == format::RecordKind::kData;
  if (length_bytes == 0 || length_bytes > kRecordBytesMax ||
      offset_bytes + length_bytes < offset_bytes || data_bytes != (has_data ? length_bytes : 0)) {
    return Status::Corruption(
        fmt::format("oplog replica: seq {} at {} length {} with {} bytes of data", seq,
                    offset_bytes, length_bytes, data_bytes));
  }
  if (!has_data && data_crc32c != 0) {
    return Status::Corruption(
        fmt::format("oplog replica: seq {} has no data but crc {:08x}", seq, data_crc32c));
  }
  return Status::Ok();
}

}  // namespace

OpLog::OpLog(blockstore::FileLayer& files, uint64_t vdisk_id, OpLogOptions options,
             Executor executor)
    : files_(files), vdisk_id_(vdisk_id), options_(options), executor_(std::move(executor)) {
  WEFT_ASSERT(options_.segment_bytes % format::kBatchAlignmentBytes == 0);
  WEFT_ASSERT(options_.batch_bytes_max + kWatermarkReserveBytes <= options_.segment_bytes);
  // Two segments at least: the tail is never recycled, so one segment could never free space.
  WEFT_ASSERT(options_.size_bytes_max >= 2 * options_.segment_bytes);
  WEFT_ASSERT(format::BatchBytes(1, kRecordBytesMax) <= options_.batch_bytes_max);
  WEFT_ASSERT(executor_ != nullptr);
}

OpLog::~OpLog() {
  // The vDisk controller destroys its OpLog only when nothing is in flight.
  WEFT_ASSERT(!batch_in_flight_ && !creating_segment_);
  *alive_ = false;
}

// ---------------------------------------------------------------------------------------------
// Recovery.

struct OpLog::Recovery {
  struct Record {
    uint64_t seq = 0;
    format::RecordKind kind = format::RecordKind::kData;
    uint64_t offset_bytes = 0;
    uint64_t length_bytes = 0;
    std::shared_ptr<const RecordData> data;
    size_t segment = 0;
  };
  std::vector<Record> records;
  uint64_t drained_seq = 0;
  uint64_t batch_seq_max = 0;
  int tail = -1;  // The segment holding the batch with the highest batch_seq.
};

void OpLog::Open(Completion done) {
  WEFT_ASSERT(segments_.empty() && next_seq_ == 1);
  for (const blockstore::FileInfo& info : files_.List()) {
    uint64_t number = 0;
    if (!format::ParseSegmentFileName(info.name, vdisk_id_, &number)) continue;
    // A segment whose preallocation never became durable is shorter: it holds nothing (its
    // first batch is written only after the preallocation's Sync). Drop it.
    if (info.size_bytes != options_.segment_bytes) {
      spdlog::warn("oplog of vdisk {}: segment {} is {} bytes, not {}: deleting it", vdisk_id_,
                   info.name, info.size_bytes, options_.segment_bytes);
      if (Status deleted = files_.Delete(info.name); !deleted.ok()) {
        executor_([done = std::move(done), deleted] { done(deleted); });
        return;
      }
      next_segment_number_ = std::max(next_segment_number_, number + 1);
      continue;
    }
    segments_.push_back({number, info.id, false, 0, 0});
    next_segment_number_ = std::max(next_segment_number_, number + 1);
  }
  std::sort(segments_.begin(), segments_.end(),
            [](const Segment& a, const Segment& b) { return a.number < b.number; });
  RecoverSegment(0, std::make_shared<Recovery>(), std::move(done));
}

void OpLog::RecoverSegment(size_t index, std::shared_ptr<Recovery> recovery, Completion done) {
  if (index == segments_.size()) {
    FinishRecovery(std::move(recovery), std::move(done));
    return;
  }
  auto buffer = std::make_shared<AlignedBuffer>(options_.segment_bytes);
  files_.Read(segments_[index].file, 0, buffer->span(),
              [this, alive = alive_, index, recovery, buffer, done = std::move(done)](
                  Status status, uint64_t bytes_read) mutable {
                if (!*alive) return;
                Segment& segment = segments_[index];
                if (!status.ok()) {
                  done(status.WithContext(fmt::format("oplog of vdisk {}: reading segment {}",
                                                      vdisk_id_, segment.number)));
                  return;
                }
                Result<std::vector<format::ParsedBatch>> parsed = format::ParseSegment(
                    buffer->span().first(bytes_read), vdisk_id_, segment.number);
                if (!parsed.ok()) {
                  done(parsed.status());
                  return;
                }
                for (const format::ParsedBatch& batch : *parsed) {
                  segment.write_offset_bytes = batch.offset_bytes + batch.batch_bytes;
                  recovery->drained_seq = std::max(recovery->drained_seq, batch.info.drained_seq);
                  if (batch.info.batch_seq > recovery->batch_seq_max) {
                    recovery->batch_seq_max = batch.info.batch_seq;
                    recovery->tail = static_cast<int>(index);
                  }
                  for (const format::RecordView& view : batch.records) {
                    Recovery::Record record{view.seq,          view.kind, view.vdisk_offset_bytes,
                                            view.length_bytes, nullptr,   index};
                    if (!view.data.empty()) {
                      // Copied out: the segment buffer is freed after the scan.
                      auto owned = std::make_shared<RecordData>();
                      owned->buffer = AlignedBuffer(view.data.size());
                      std::memcpy(owned->buffer.data(), view.data.data(), view.data.size());
                      record.data = std::move(owned);
                    }
                    recovery->records.push_back(std::move(record));
                  }
                }
                RecoverSegment(index + 1, std::move(recovery), std::move(done));
              });
}

void OpLog::FinishRecovery(std::shared_ptr<Recovery> recovery, Completion done) {
  const uint64_t drained = recovery->drained_seq;
  std::vector<Recovery::Record>& records = recovery->records;
  uint64_t seq_max = drained;
  for (const auto& record : records) seq_max = std::max(seq_max, record.seq);
  // Records at or below the watermark are in the extent store (and may be stale leftovers of
  // a recycled segment): never replayed.
  std::erase_if(records,
                [drained](const Recovery::Record& record) { return record.seq <= drained; });
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a.seq < b.seq; });
  for (size_t index = 1; index < records.size(); ++index) {
    // Seqs may have gaps (appends that failed while the log was full never reach the disk),
    // but never repeat.
    if (records[index].seq == records[index - 1].seq) {
      Status corrupt = Status::Corruption(fmt::format(
          "oplog of vdisk {}: record seq {} appears twice", vdisk_id_, records[index].seq));
      executor_([done = std::move(done), corrupt] { done(corrupt); });
      return;
    }
  }
  for (const auto& record : records) {
    index_.Insert(record.offset_bytes, record.length_bytes, record.seq, IndexKind(record.kind),
                  record.data, 0);
    undrained_.push_back({record.seq, record.length_bytes});
    undrained_bytes_ += record.length_bytes;
    Segment& segment = segments_[record.segment];
    segment.in_use = true;
    segment.max_record_seq = std::max(segment.max_record_seq, record.seq);
  }
  counters_.records_replayed = records.size();
  tail_ = recovery->tail;
  if (tail_ >= 0) segments_[tail_].in_use = true;
  for (Segment& segment : segments_) {
    if (!segment.in_use) segment.write_offset_bytes = 0;
  }
  next_seq_ = seq_max + 1;
  next_batch_seq_ = recovery->batch_seq_max + 1;
  drained_seq_to_write_ = drained_seq_durable_ = drained;
  if (!records.empty()) {
    spdlog::info("oplog of vdisk {}: replayed {} records (seq {}..{}), {} bytes in the index",
                 vdisk_id_, records.size(), records.front().seq, records.back().seq,
                 index_.live_bytes());
  }
  if (!segments_.empty()) {
    executor_([done = std::move(done)] { done(Status::Ok()); });
    return;
  }
  // A new vDisk (or one whose log never got a segment): create the first one before serving.
  open_waiter_ = std::move(done);
  CreateSegment();
}

// ---------------------------------------------------------------------------------------------
// Appending and group commit.

uint64_t OpLog::Append(format::RecordKind kind, uint64_t offset_bytes, uint64_t length_bytes,
                       std::span<const std::byte> data, Completion done) {
  WEFT_ASSERT(done != nullptr);
  WEFT_ASSERT(length_bytes > 0 && length_bytes <= kRecordBytesMax);
  WEFT_ASSERT(kind == format::RecordKind::kData ? data.size() == length_bytes : data.empty());
  if (!failure_.ok()) {
    CompleteLater(std::move(done), failure_);
    return 0;
  }
  const uint64_t seq = next_seq_;
  Enqueue(seq, kind, offset_bytes, length_bytes, data, std::move(done));
  return seq;
}

void OpLog::AppendReplica(uint64_t seq, format::RecordKind kind, uint64_t offset_bytes,
                          uint64_t length_bytes, std::span<const std::byte> data,
                          uint32_t data_crc32c, Completion done) {
  WEFT_ASSERT(done != nullptr);
  if (!failure_.ok()) {
    CompleteLater(std::move(done), failure_);
    return;
  }
  // The record comes off the network: a malformed one is the sender's error, not ours. Only a
  // seq out of order is InvalidArgument, so that callers can tell the two apart.
  if (Status valid = CheckReplicaRecord(seq, last_seq(), kind, offset_bytes, length_bytes,
                                        data.size(), data_crc32c);
      !valid.ok()) {
    CompleteLater(std::move(done), std::move(valid));
    return;
  }
  // Checked here, before the copy is queued: the log then holds exactly the owner's bytes (the
  // batch's own crcs cover the copy from here on).
  const uint32_t crc = data.empty() ? 0 : Crc32c(data);
  if (crc != data_crc32c) {
    CompleteLater(std::move(done),
                  Status::Corruption(fmt::format(
                      "oplog of vdisk {}: replica record seq {} data crc {:08x}, owner sent {:08x}",
                      vdisk_id_, seq, crc, data_crc32c)));
    return;
  }
  Enqueue(seq, kind, offset_bytes, length_bytes, data, std::move(done));
  WEFT_ASSERT(last_seq() == seq);
}

void OpLog::Enqueue(uint64_t seq, format::RecordKind kind, uint64_t offset_bytes,
                    uint64_t length_bytes, std::span<const std::byte> data, Completion done) {
  WEFT_ASSERT(seq >= next_seq_);
  next_seq_ = seq + 1;
  PendingRecord record;
  record.seq = seq;
  record.kind = kind;
  record.offset_bytes = offset_bytes;
  record.length_bytes = length_bytes;
  if (!data.empty()) {
    auto owned = std::make_shared<RecordData>();
    owned->buffer = AlignedBuffer(data.size());
    std::memcpy(owned->buffer.data(), data.data(), data.size());
    record.data = std::move(owned);
  }
  record.done = std::move(done);
  index_.Insert(offset_bytes, length_bytes, record.seq, IndexKind(kind), record.data, 0);
  ++counters_.records_appended;
  counters_.bytes_appended += length_bytes;
  pending_.push_back(std::move(record));
  MaybeStartBatch();
}

void OpLog::CompleteLater(Completion done, Status status) {
  executor_([done = std::move(done), status = std::move(status)] { done(status); });
}

void OpLog::MaybeStartBatch() {
  if (batch_in_flight_ || creating_segment_ || !failure_.ok()) return;
  const bool watermark_due = drained_seq_to_write_ > drained_seq_durable_;
  if (pending_.empty() && !watermark_due) return;
  // The records that fit one batch (at least one: a record always fits, see the constructor).
  size_t count = 0;
  uint64_t data_bytes = 0;
  while (count < pending_.size()) {
    const PendingRecord& next = pending_[count];
    const uint64_t next_data = next.data ? next.length_bytes : 0;
    // A batch's seqs are consecutive (the format checks it): a replica's gap ends the batch.
    if (count > 0 && next.seq != pending_[count - 1].seq + 1) break;
    if (count > 0 && format::BatchBytes(static_cast<uint32_t>(count + 1), data_bytes + next_data) >
                         options_.batch_bytes_max) {
      break;
    }
    data_bytes += next_data;
    ++count;
  }
  if (count > 0) {
    const uint64_t batch_bytes = format::BatchBytes(static_cast<uint32_t>(count), data_bytes);
    if (TailRoom() >= batch_bytes + kWatermarkReserveBytes || SwitchTail()) {
      WriteBatch(count, data_bytes);
      return;
    }
    const uint64_t segments_max = options_.size_bytes_max / options_.segment_bytes;
    if (segments_.size() < segments_max && !segment_limit_reached_) {
      CreateSegment();
      return;
    }
    if (!waiting_for_space_) {
      waiting_for_space_ = true;
      ++counters_.space_waits;
    }
    if (!watermark_due) return;
  }
  // A watermark alone: it may use the reserve every segment keeps for it, because the drain
  // that frees space needs its watermark durable first.
  if (TailRoom() >= format::kBatchAlignmentBytes || SwitchTail()) WriteBatch(0, 0);
}

uint64_t OpLog::TailRoom() const {
  if (tail_ < 0) return 0;
  return options_.segment_bytes - segments_[tail_].write_offset_bytes;
}

bool OpLog::SwitchTail() {
  for (size_t index = 0; index < segments_.size(); ++index) {
    Segment& segment = segments_[index];
    if (segment.in_use) continue;
    // Recycled from offset 0: its stale batches have lower batch_seqs and end any later scan.
    segment.in_use = true;
    segment.write_offset_bytes = 0;
    segment.max_record_seq = 0;
    tail_ = static_cast<int>(index);
    FreeDrainedSegments();  // The old tail may be all drained already.
    return true;
  }
  return false;
}

void OpLog::WriteBatch(size_t count, uint64_t data_bytes) {
  WEFT_ASSERT(!batch_in_flight_ && tail_ >= 0);
  const uint64_t batch_bytes = format::BatchBytes(static_cast<uint32_t>(count), data_bytes);
  Segment& segment = segments_[tail_];
  WEFT_ASSERT(segment.write_offset_bytes + batch_bytes <= options_.segment_bytes);
  std::vector<PendingRecord> records;
  std::vector<format::RecordView> views;
  records.reserve(count);
  views.reserve(count);
  for (size_t index = 0; index < count; ++index) {
    records.push_back(std::move(pending_.front()));
    pending_.pop_front();
    const PendingRecord& record = records.back();
    std::span<const std::byte> bytes;
    if (record.data) bytes = record.data->bytes().first(record.length_bytes);
    views.push_back({record.seq, record.kind, record.offset_bytes, record.length_bytes, 0, bytes});
    segment.max_record_seq = std::max(segment.max_record_seq, record.seq);
  }
  const format::BatchInfo info{vdisk_id_, segment.number, next_batch_seq_++, drained_seq_to_write_};
  AlignedBuffer buffer(batch_bytes);
  format::EncodeBatch(info, views, buffer.span());
  const uint64_t offset = segment.write_offset_bytes;
  segment.write_offset_bytes += batch_bytes;
  batch_in_flight_ = true;
  batch_records_in_flight_ = count;
  const blockstore::FileId file = segment.file;
  const uint64_t drained_seq = info.drained_seq;
  // One device write; then a flush-only Sync (the segment's size and blocks are journaled).
  files_.Write(file, offset, buffer.span(),
               [this, alive = alive_, file, drained_seq,
                records = std::move(records)](Status written) mutable {
                 if (!*alive) return;
                 if (!written.ok()) {
                   OnBatchDone(std::move(records), drained_seq, std::move(written));
                   return;
                 }
                 files_.Sync(file, [this, alive, drained_seq,
                                    records = std::move(records)](Status synced) mutable {
                   if (!*alive) return;
                   OnBatchDone(std::move(records), drained_seq, std::move(synced));
                 });
               });
}

void OpLog::CreateSegment() {
  WEFT_ASSERT(!creating_segment_);
  const uint64_t number = next_segment_number_++;
  const std::string name = format::SegmentFileName(vdisk_id_, number);
  auto fail = [this, name](Status status) {
    creating_segment_ = false;
    const Status failure =
        status.WithContext(fmt::format("oplog of vdisk {}: creating segment {}", vdisk_id_, name));
    if (segments_.size() >= 2 && status.code() == StatusCode::kNoSpace) {
      // The log works on with the segments it has.
      spdlog::warn("{}; the log stays at {} segments", failure.ToString(), segments_.size());
      segment_limit_reached_ = true;
      MaybeStartBatch();
      return;
    }
    Fail(failure);
  };
  creating_segment_ = true;
  Result<blockstore::FileId> file = files_.Create(name);
  if (!file.ok()) {
    executor_([fail, status = file.status()] { fail(status); });
    return;
  }
  if (Status preallocated = files_.Preallocate(*file, options_.segment_bytes); !preallocated.ok()) {
    (void)files_.Delete(name);
    executor_([fail, preallocated] { fail(preallocated); });
    return;
  }
  // The segment is used only once its size and blocks are durable.
  files_.Sync(*file, [this, alive = alive_, number, file = *file, fail](Status synced) {
    if (!*alive) return;
    if (!synced.ok()) {
      fail(synced);
      return;
    }
    creating_segment_ = false;
    segments_.push_back({number, file, false, 0, 0});
    if (open_waiter_) {
      Completion opened = std::move(open_waiter_);
      open_waiter_ = nullptr;
      opened(Status::Ok());
    }
    MaybeStartBatch();
  });
}

void OpLog::OnBatchDone(std::vector<PendingRecord> records, uint64_t drained_seq, Status status) {
  WEFT_ASSERT(batch_in_flight_);
  batch_in_flight_ = false;
  batch_records_in_flight_ = 0;
  if (!status.ok()) {
    const Status failure =
        status.WithContext(fmt::format("oplog of vdisk {}: writing a batch", vdisk_id_));
    Fail(failure);
    for (PendingRecord& record : records) record.done(failure);
    return;
  }
  ++counters_.batches_written;
  WEFT_ASSERT(drained_seq >= drained_seq_durable_);
  drained_seq_durable_ = drained_seq;
  for (const PendingRecord& record : records) {
    // A replica's MarkDrained may cover records that were still queued (its watermark-only
    // batch can pass them while writes wait for space): they are drained already.
    if (record.seq <= drained_seq_durable_) continue;
    WEFT_ASSERT(undrained_.empty() || undrained_.back().seq < record.seq);
    undrained_.push_back({record.seq, record.length_bytes});
    undrained_bytes_ += record.length_bytes;
  }
  // The watermark is durable: what it covers leaves the index, and its segments are free.
  std::vector<Completion> drained;
  while (!watermark_waiters_.empty() && watermark_waiters_.front().seq <= drained_seq_durable_) {
    const uint64_t seq = watermark_waiters_.front().seq;
    index_.EraseUpTo(seq);
    while (!undrained_.empty() && undrained_.front().seq <= seq) {
      WEFT_ASSERT(undrained_bytes_ >= undrained_.front().length_bytes);
      undrained_bytes_ -= undrained_.front().length_bytes;
      undrained_.pop_front();
      ++counters_.records_drained;
    }
    ++counters_.drain_rounds;
    if (watermark_waiters_.front().from_drain) {
      WEFT_ASSERT(drain_running_);
      drain_running_ = false;
    }
    drained.push_back(std::move(watermark_waiters_.front().done));
    watermark_waiters_.pop_front();
  }
  FreeDrainedSegments();
  const std::shared_ptr<bool> alive = alive_;
  for (PendingRecord& record : records) {
    record.done(Status::Ok());
    if (!*alive) return;
  }
  for (Completion& done : drained) {
    done(Status::Ok());
    if (!*alive) return;
  }
  MaybeStartBatch();
}

void OpLog::FreeDrainedSegments() {
  for (size_t index = 0; index < segments_.size(); ++index) {
    Segment& segment = segments_[index];
    if (!segment.in_use || static_cast<int>(index) == tail_) continue;
    if (segment.max_record_seq <= drained_seq_durable_) segment.in_use = false;
  }
  if (waiting_for_space_) {
    for (const Segment& segment : segments_) {
      if (!segment.in_use) {
        waiting_for_space_ = false;
        break;
      }
    }
  }
}

void OpLog::Fail(Status status) {
  if (failure_.ok()) {
    spdlog::error("{}; the OpLog takes no more writes", status.ToString());
    failure_ = status;
  }
  // Everything waiting can never complete now.
  std::deque<PendingRecord> pending = std::move(pending_);
  pending_.clear();
  std::deque<WatermarkWaiter> waiters = std::move(watermark_waiters_);
  watermark_waiters_.clear();
  if (open_waiter_) {
    Completion opened = std::move(open_waiter_);
    open_waiter_ = nullptr;
    executor_([opened, status] { opened(status); });
  }
  for (PendingRecord& record : pending) {
    executor_([done = std::move(record.done), status] { done(status); });
  }
  for (WatermarkWaiter& waiter : waiters) {
    executor_([done = std::move(waiter.done), status] { done(status); });
  }
  drain_running_ = false;
}

// ---------------------------------------------------------------------------------------------
// Draining.

std::optional<OpLog::DrainBatch> OpLog::NextDrainBatch(uint64_t bytes_max) {
  // A MarkDrained watermark being written may cover records still in undrained_.
  if (drain_running_ || !watermark_waiters_.empty()) return std::nullopt;
  if (undrained_.empty() || !failure_.ok()) return std::nullopt;
  // When writes wait for space, this round covers the oldest segment whole, so that its
  // watermark (written into the reserve) frees that segment.
  uint64_t seq_at_least = 0;
  if (waiting_for_space_) {
    seq_at_least = UINT64_MAX;
    for (size_t index = 0; index < segments_.size(); ++index) {
      const Segment& segment = segments_[index];
      if (segment.in_use && static_cast<int>(index) != tail_) {
        seq_at_least = std::min(seq_at_least, segment.max_record_seq);
      }
    }
    if (seq_at_least == UINT64_MAX) seq_at_least = 0;
  }
  DrainBatch batch;
  uint64_t bytes = 0;
  for (const UndrainedRecord& record : undrained_) {
    if (batch.records > 0 && bytes + record.length_bytes > bytes_max && record.seq > seq_at_least)
      break;
    bytes += record.length_bytes;
    batch.max_seq = record.seq;
    ++batch.records;
  }
  batch.pieces = index_.PiecesUpTo(batch.max_seq);
  drain_running_ = true;
  drain_max_seq_ = batch.max_seq;
  return batch;
}

void OpLog::FinishDrain(uint64_t max_seq, Completion done) {
  WEFT_ASSERT((drain_running_ && max_seq == drain_max_seq_) || !failure_.ok());
  if (!failure_.ok()) {
    drain_running_ = false;
    executor_([done = std::move(done), failure = failure_] { done(failure); });
    return;
  }
  WEFT_ASSERT(max_seq > drained_seq_to_write_);
  drained_seq_to_write_ = max_seq;
  watermark_waiters_.push_back({max_seq, /*from_drain=*/true, std::move(done)});
  MaybeStartBatch();
}

void OpLog::MarkDrained(uint64_t drained_seq, Completion done) {
  WEFT_ASSERT(done != nullptr);
  if (!failure_.ok()) {
    CompleteLater(std::move(done), failure_);
    return;
  }
  // The owner cannot have drained records this replica never got; those it has are all here.
  drained_seq = std::min(drained_seq, last_seq());
  if (drained_seq <= drained_seq_durable_) {
    CompleteLater(std::move(done), Status::Ok());
    return;
  }
  if (drain_running_) {
    CompleteLater(std::move(done),
                  Status::Busy(fmt::format("oplog of vdisk {}: MarkDrained({}) while a drain runs",
                                           vdisk_id_, drained_seq)));
    return;
  }
  // Waiters stay in seq order: one under a watermark already being written waits for that one.
  const uint64_t watermark = std::max(drained_seq, drained_seq_to_write_);
  drained_seq_to_write_ = watermark;
  watermark_waiters_.push_back({watermark, /*from_drain=*/false, std::move(done)});
  WEFT_ASSERT(drained_seq_to_write_ > drained_seq_durable_);
  MaybeStartBatch();
}

void OpLog::FailAppendsWaitingForSpace(const Status& status) {
  if (!waiting_for_space_) return;
  // They never reach the disk; their bytes stay in the index (a failed write's range holds
  // unspecified data) and drain with whatever newer record drains after them.
  std::deque<PendingRecord> pending = std::move(pending_);
  pending_.clear();
  counters_.appends_failed_for_space += pending.size();
  for (PendingRecord& record : pending) {
    executor_([done = std::move(record.done), status] { done(status); });
  }
}

void OpLog::AbortDrain() {
  // A failed log has already let go of its drain (Fail).
  WEFT_ASSERT(drain_running_ || !failure_.ok());
  drain_running_ = false;
}

// ---------------------------------------------------------------------------------------------

double OpLog::fill_fraction() const {
  uint64_t used = 0;
  for (const Segment& segment : segments_) {
    if (segment.in_use) used += segment.write_offset_bytes;
  }
  // A log that could not create all its segments (a full disk) is as full as the ones it has.
  const uint64_t capacity =
      segment_limit_reached_ ? segments_.size() * options_.segment_bytes : options_.size_bytes_max;
  return static_cast<double>(used) / static_cast<double>(capacity);
}

bool OpLog::quiescent() const {
  return !batch_in_flight_ && pending_.empty() && !creating_segment_ &&
         watermark_waiters_.empty() && !drain_running_;
}

Status OpLog::DestroyFiles() {
  WEFT_ASSERT(quiescent());
  for (const Segment& segment : segments_) {
    const std::string name = format::SegmentFileName(vdisk_id_, segment.number);
    if (Status deleted = files_.Delete(name); !deleted.ok() && !deleted.IsNotFound()) {
      return deleted.WithContext(fmt::format("oplog of vdisk {}", vdisk_id_));
    }
  }
  segments_.clear();
  tail_ = -1;
  return Status::Ok();
}

OpLogStats OpLog::stats() const {
  OpLogStats stats = counters_;
  stats.segments = segments_.size();
  stats.segments_in_use = static_cast<uint64_t>(
      std::count_if(segments_.begin(), segments_.end(), [](const Segment& s) { return s.in_use; }));
  stats.log_bytes_max = options_.size_bytes_max;
  stats.index_bytes = index_.live_bytes();
  stats.index_pieces = index_.piece_count();
  stats.records_undrained = undrained_.size();
  stats.last_seq = next_seq_ - 1;
  stats.drained_seq = drained_seq_durable_;
  stats.failed = !failure_.ok();
  return stats;
}

}  // namespace weft::oplog
