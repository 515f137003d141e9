// The mutation path: splitting, per-vBlock ordering, read-modify-write of partial blocks.
#include "vdisk/vdisk_controller.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "vdisk/vdisk_controller_impl.h"

namespace weft::vdisk {

std::span<const std::byte> ZeroBytes(uint64_t length_bytes) {
  static const AlignedBuffer* const zeros = [] {
    auto* buffer = new AlignedBuffer(kVblockBytes);
    std::memset(buffer->data(), 0, kVblockBytes);
    return buffer;
  }();
  WEFT_ASSERT(length_bytes <= kVblockBytes);
  return std::span<const std::byte>(zeros->data(), length_bytes);
}

VdiskController::VdiskController(ControllerContext context, records::Vdisk record)
    : context_(std::move(context)), record_(std::move(record)) {
  WEFT_ASSERT(context_.metadata != nullptr && context_.disks != nullptr);
  WEFT_ASSERT(context_.egroup_ids != nullptr && context_.executor != nullptr);
  // A vDisk created now has no log to replay: its OpLog opens with its first write. One that
  // exists is opened (and replayed) by Load().
  if (context_.io.oplog_files != nullptr) oplog_state_ = OplogState::kClosed;
  if (context_.peers != nullptr && record_.replication_factor() > 1) {
    replication_factor_ = record_.replication_factor();
    WEFT_ASSERT(record_.owner_epoch() != 0);
  }
}

VdiskController::~VdiskController() {
  // The manager destroys a controller only when nothing of it is in flight.
  WEFT_ASSERT(inflight_operations_ == 0 && background_operations_ == 0);
  WEFT_ASSERT(!drain_active_ && oplog_state_ != OplogState::kOpening);
  *alive_ = false;
}

void VdiskController::RemoveHandle() {
  WEFT_ASSERT(open_handles_ > 0);
  --open_handles_;
}

VdiskControllerStats VdiskController::stats() const {
  VdiskControllerStats stats = counters_;
  stats.vblocks_mapped = block_map_.size();
  stats.egroups = egroups_.size();
  stats.used_bytes = 0;
  for (const auto& [egroup_id, egroup] : egroups_) {
    if (egroup.disk == nullptr) continue;  // No local replica (counted where it lives).
    Result<extent_store::EgroupInfo> info = egroup.disk->store->GetEgroup(egroup_id);
    if (info.ok()) stats.used_bytes += info->written_bytes;
  }
  return stats;
}

Status VdiskController::CheckRange(std::string_view operation, uint64_t offset_bytes,
                                   uint64_t length_bytes) const {
  const uint64_t size = size_bytes();
  if (offset_bytes > size || length_bytes > size - offset_bytes) {
    return Status::InvalidArgument(
        fmt::format("vdisk {}: {} at offset {} length {} ends beyond the vdisk's {} bytes",
                    record_.name(), operation, offset_bytes, length_bytes, size));
  }
  return Status::Ok();
}

void VdiskController::CompleteLater(Completion done, Status status) {
  context_.executor(
      [done = std::move(done), status = std::move(status)]() mutable { done(std::move(status)); });
}

std::shared_ptr<VdiskController::Operation> VdiskController::StartOperation(Completion done,
                                                                            uint32_t pieces,
                                                                            bool background) {
  WEFT_ASSERT(pieces > 0);
  auto operation = std::make_shared<Operation>();
  operation->done = std::move(done);
  operation->pieces_outstanding = pieces;
  operation->background = background;
  ++(background ? background_operations_ : inflight_operations_);
  if (!background) ++client_operations_started_;
  return operation;
}

void VdiskController::FinishPiece(Operation& operation, Status status) {
  WEFT_ASSERT(operation.pieces_outstanding > 0);
  if (!status.ok() && operation.status.ok()) operation.status = std::move(status);
  if (--operation.pieces_outstanding > 0) return;
  uint64_t& counter = operation.background ? background_operations_ : inflight_operations_;
  WEFT_ASSERT(counter > 0);
  --counter;
  // Pieces finish inside extent-store or executor completions, never inside the submitting
  // call, so the operation's own completion may run right here.
  Completion done = std::move(operation.done);
  const std::shared_ptr<bool> alive = alive_;
  done(std::move(operation.status));
  // A client operation ending may leave the vDisk idle: a moment for the drain.
  if (*alive && !operation.background) MaybeDrain();
}

void VdiskController::Write(uint64_t offset_bytes, std::span<const std::byte> data,
                            Completion done) {
  if (oplog_state_ == OplogState::kOpening) {
    // Mutations wait for the OpLog to open, in arrival order.
    ++inflight_operations_;  // Queued operations count as in flight.
    opening_queue_.push_back([this, offset_bytes, data, done = std::move(done)]() mutable {
      Write(offset_bytes, data, std::move(done));
    });
    return;
  }
  ++counters_.writes;
  counters_.bytes_written += data.size();
  if (oplog_state_ != OplogState::kOpen || oplog_->failed()) {
    Mutate(kWriteData, offset_bytes, data.size(), data, std::move(done));
    return;
  }
  // The write characterizer. Bytes already in the OpLog keep their order only if a write over
  // them goes there too, so only writes that miss the OpLog's data may bypass it.
  const uint64_t length = data.size();
  const bool sequential =
      outstanding_write_bytes_ + length > context_.io.sequential_threshold_bytes;
  const bool full =
      oplog_->fill_fraction() > context_.io.oplog_bypass_fill || oplog_->waiting_for_space();
  bool to_oplog = true;
  if ((sequential || full) && MayBypassOplog()) {
    to_oplog = oplog_->index().Overlaps(offset_bytes, length);
    if (!to_oplog)
      ++(sequential ? counters_.writes_sequential_bypass : counters_.writes_oplog_full_bypass);
  }
  if (to_oplog) ++counters_.writes_oplog;
  outstanding_write_bytes_ += length;
  Completion counted = [this, alive = alive_, length, done = std::move(done)](Status status) {
    if (*alive) {
      WEFT_ASSERT(outstanding_write_bytes_ >= length);
      outstanding_write_bytes_ -= length;
    }
    done(std::move(status));
  };
  // Bypassing writes still go through Dispatch: vBlocks of theirs that overlap the OpLog's data
  // (none when to_oplog is false, checked above) would have to go to the OpLog.
  Dispatch(kWriteData, offset_bytes, length, data, std::move(counted), to_oplog);
}

void VdiskController::Trim(uint64_t offset_bytes, uint64_t length_bytes, Completion done) {
  if (oplog_state_ == OplogState::kOpening) {
    ++inflight_operations_;
    opening_queue_.push_back([this, offset_bytes, length_bytes, done = std::move(done)]() mutable {
      Trim(offset_bytes, length_bytes, std::move(done));
    });
    return;
  }
  if (!MayBypassOplog()) {
    // Replicated, and a peer's OpLog copy may still hold older records of this range: wait
    // until every peer has trimmed to the drain watermark (moments after each drain round).
    return WhenBypassAllowed(
        [this, offset_bytes, length_bytes, done = std::move(done)](Status status) mutable {
          if (!status.ok()) return done(status);
          Trim(offset_bytes, length_bytes, std::move(done));
        });
  }
  ++counters_.trims;
  if (oplog_state_ == OplogState::kOpen && !oplog_->failed() &&
      oplog_->index().Overlaps(offset_bytes, length_bytes)) {
    Dispatch(kTrimHint, offset_bytes, length_bytes, {}, std::move(done), /*to_oplog=*/false);
    return;
  }
  Mutate(kTrimHint, offset_bytes, length_bytes, {}, std::move(done));
}

void VdiskController::WriteZeroes(uint64_t offset_bytes, uint64_t length_bytes, bool no_hole,
                                  Completion done) {
  if (oplog_state_ == OplogState::kOpening) {
    ++inflight_operations_;
    opening_queue_.push_back(
        [this, offset_bytes, length_bytes, no_hole, done = std::move(done)]() mutable {
          WriteZeroes(offset_bytes, length_bytes, no_hole, std::move(done));
        });
    return;
  }
  if (!MayBypassOplog()) {
    // As Trim: no bypass while a peer's OpLog copy may hold older records.
    return WhenBypassAllowed(
        [this, offset_bytes, length_bytes, no_hole, done = std::move(done)](Status status) mutable {
          if (!status.ok()) return done(status);
          WriteZeroes(offset_bytes, length_bytes, no_hole, std::move(done));
        });
  }
  ++counters_.write_zeroes;
  const int kind = no_hole ? kZeroFill : kUnmap;
  if (oplog_state_ == OplogState::kOpen && !oplog_->failed() &&
      oplog_->index().Overlaps(offset_bytes, length_bytes)) {
    Dispatch(kind, offset_bytes, length_bytes, {}, std::move(done), /*to_oplog=*/false);
    return;
  }
  Mutate(kind, offset_bytes, length_bytes, {}, std::move(done));
}

void VdiskController::Flush(Completion done) {
  // Every acknowledged write is already durable (there is no volatile cache to write back).
  ++counters_.flushes;
  CompleteLater(std::move(done), Status::Ok());
}

void VdiskController::Mutate(int kind, uint64_t offset_bytes, uint64_t length_bytes,
                             std::span<const std::byte> data, Completion done, bool check_range,
                             bool background) {
  WEFT_ASSERT(done != nullptr);
  static constexpr std::string_view kNames[] = {"write", "write-zeroes", "write-zeroes", "trim"};
  Status status = check_range ? CheckRange(kNames[kind], offset_bytes, length_bytes) : Status::Ok();
  if (status.ok() && length_bytes == 0) {
    status = Status::InvalidArgument(
        fmt::format("vdisk {}: {} of length zero", record_.name(), kNames[kind]));
  }
  if (!status.ok()) {
    CompleteLater(std::move(done), std::move(status));
    return;
  }
  // Pieces: within a vBlock, a partial first block, the whole blocks, a partial last block.
  std::vector<std::unique_ptr<Piece>> pieces;
  uint64_t position = offset_bytes;
  const uint64_t end = offset_bytes + length_bytes;
  while (position < end) {
    const uint64_t block_end = std::min(end, (position / kBlockBytes + 1) * kBlockBytes);
    const uint64_t vblock_end = std::min(end, (position / kVblockBytes + 1) * kVblockBytes);
    uint64_t piece_end = vblock_end;
    if (position % kBlockBytes != 0 || block_end - position < kBlockBytes) {
      piece_end = block_end;  // A partial block.
    } else {
      piece_end = vblock_end / kBlockBytes * kBlockBytes;  // Whole blocks only.
      if (piece_end <= position) piece_end = block_end;
    }
    auto piece = std::make_unique<Piece>();
    piece->kind = kind;
    piece->vblock = position / kVblockBytes;
    piece->offset_in_vblock = position % kVblockBytes;
    piece->length_bytes = piece_end - position;
    if (kind == kWriteData)
      piece->data = data.subspan(position - offset_bytes, piece->length_bytes);
    WEFT_ASSERT(piece->offset_in_vblock + piece->length_bytes <= kVblockBytes);
    // Trim is advisory: partial blocks at its edges are left as they are.
    if (!(kind == kTrimHint && piece->partial())) pieces.push_back(std::move(piece));
    position = piece_end;
  }
  if (pieces.empty()) {  // A trim smaller than one block.
    CompleteLater(std::move(done), Status::Ok());
    return;
  }
  std::shared_ptr<Operation> operation =
      StartOperation(std::move(done), static_cast<uint32_t>(pieces.size()), background);
  for (std::unique_ptr<Piece>& piece : pieces) {
    piece->operation = operation;
    Enqueue(std::move(piece));
  }
}

void VdiskController::Enqueue(std::unique_ptr<Piece> piece) {
  const uint64_t vblock = piece->vblock;
  queues_[vblock].waiting.push_back(std::move(piece));
  Pump(vblock);
}

void VdiskController::Pump(uint64_t vblock) {
  auto found = queues_.find(vblock);
  if (found == queues_.end()) return;
  VblockQueue& queue = found->second;
  while (!queue.waiting.empty() && !queue.mapping && !queue.rmw_active) {
    Piece& front = *queue.waiting.front();
    const auto mapped = block_map_.find(vblock);
    const bool drops_data = front.kind == kUnmap || front.kind == kTrimHint;
    if (mapped == block_map_.end()) {
      if (drops_data || (front.kind == kZeroFill && front.partial())) {
        // An unmapped vBlock already reads as zeros.
        std::unique_ptr<Piece> piece = std::move(queue.waiting.front());
        queue.waiting.pop_front();
        FinishPiece(*piece->operation, Status::Ok());
        continue;
      }
      queue.mapping = true;
      CreateMapping(vblock);
      return;
    }
    const Extent extent = mapped->second;
    if (front.partial()) {
      // The read must see every earlier mutation of this vBlock: wait for them to complete.
      if (queue.inflight_mutations > 0) return;
      std::unique_ptr<Piece> piece = std::move(queue.waiting.front());
      queue.waiting.pop_front();
      queue.rmw_active = true;
      StartReadModifyWrite(std::move(piece), extent);
      return;
    }
    std::unique_ptr<Piece> piece = std::move(queue.waiting.front());
    queue.waiting.pop_front();
    std::span<const std::byte> data = piece->data;
    if (piece->kind == kZeroFill) data = ZeroBytes(piece->length_bytes);
    SubmitMutation(std::move(piece), extent, data);
  }
  MaybeForgetQueue(vblock);
}

void VdiskController::MaybeForgetQueue(uint64_t vblock) {
  auto found = queues_.find(vblock);
  if (found == queues_.end()) return;
  const VblockQueue& queue = found->second;
  if (queue.waiting.empty() && !queue.mapping && !queue.rmw_active &&
      queue.inflight_mutations == 0) {
    queues_.erase(found);
  }
}

void VdiskController::SubmitMutation(std::unique_ptr<Piece> piece, const Extent& extent,
                                     std::span<const std::byte> data) {
  WEFT_ASSERT(!piece->partial());  // Partial blocks go through StartReadModifyWrite.
  WEFT_ASSERT(piece->offset_in_vblock % kBlockBytes == 0);
  ++queues_.at(piece->vblock).inflight_mutations;
  const uint64_t egroup_offset = uint64_t{extent.slot} * kVblockBytes + piece->offset_in_vblock;
  const uint64_t vblock = piece->vblock;
  // The cache must not keep (or be filled with) what this overwrites: dropped now, and again
  // when the write lands, for a read that missed in between and fills with the old bytes.
  const uint64_t vdisk_offset = vblock * kVblockBytes + piece->offset_in_vblock;
  const uint64_t vdisk_length = piece->length_bytes;
  InvalidateCache(vdisk_offset, vdisk_length);
  Piece* raw = piece.release();  // Owned by the completion below.
  auto done = [this, vblock, raw, vdisk_offset, vdisk_length](Status status) {
    std::unique_ptr<Piece> owned(raw);
    InvalidateCache(vdisk_offset, vdisk_length);
    // The queue first: the operation's completion may start new work on this controller.
    OnMutationDone(vblock, status);
    FinishPiece(*owned->operation, std::move(status));
  };
  if (raw->kind == kUnmap || raw->kind == kTrimHint) {
    WEFT_ASSERT(data.empty());
    EgroupMutate(extent.egroup_id, egroup_offset, raw->length_bytes, {}, std::move(done));
  } else {
    WEFT_ASSERT(data.size() == raw->length_bytes);
    EgroupMutate(extent.egroup_id, egroup_offset, raw->length_bytes, data, std::move(done));
  }
}

void VdiskController::OnMutationDone(uint64_t vblock, Status status) {
  (void)status;  // Reported to the operation; the queue moves on either way.
  VblockQueue& queue = queues_.at(vblock);
  WEFT_ASSERT(queue.inflight_mutations > 0);
  --queue.inflight_mutations;
  Pump(vblock);
}

void VdiskController::StartReadModifyWrite(std::unique_ptr<Piece> piece, const Extent& extent) {
  WEFT_ASSERT(piece->partial());
  WEFT_ASSERT(piece->offset_in_vblock / kBlockBytes ==
              (piece->offset_in_vblock + piece->length_bytes - 1) / kBlockBytes);
  ++counters_.read_modify_writes;
  const uint64_t block_offset = piece->offset_in_vblock / kBlockBytes * kBlockBytes;
  auto block = std::make_shared<AlignedBuffer>(kBlockBytes);
  const uint64_t egroup_offset = uint64_t{extent.slot} * kVblockBytes + block_offset;
  Piece* raw = piece.release();
  EgroupRead(extent.egroup_id, egroup_offset, block->span(),
             [this, raw, block, extent, egroup_offset, block_offset](Status status) {
               std::unique_ptr<Piece> owned(raw);
               VblockQueue& queue = queues_.at(owned->vblock);
               WEFT_ASSERT(queue.rmw_active);
               if (!status.ok()) {
                 queue.rmw_active = false;
                 Pump(owned->vblock);
                 FinishPiece(*owned->operation, status);
                 return;
               }
               std::byte* target = block->data() + (owned->offset_in_vblock - block_offset);
               if (owned->kind == kWriteData) {
                 std::memcpy(target, owned->data.data(), owned->length_bytes);
               } else {
                 std::memset(target, 0, owned->length_bytes);
               }
               // Submitted before the queue moves on: later mutations are ordered after it.
               ++queue.inflight_mutations;
               queue.rmw_active = false;
               const uint64_t vblock = owned->vblock;
               const uint64_t block_vdisk_offset = vblock * kVblockBytes + block_offset;
               InvalidateCache(block_vdisk_offset, kBlockBytes);
               EgroupMutate(extent.egroup_id, egroup_offset, kBlockBytes, block->span(),
                            [this, vblock, block, block_vdisk_offset,
                             piece = owned.release()](Status written) {
                              std::unique_ptr<Piece> done_piece(piece);
                              InvalidateCache(block_vdisk_offset, kBlockBytes);
                              OnMutationDone(vblock, written);
                              FinishPiece(*done_piece->operation, std::move(written));
                            });
               Pump(vblock);
             });
}

}  // namespace weft::vdisk
