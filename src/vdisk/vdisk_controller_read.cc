// The read path and BlockStatus.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <map>

#include "vdisk/vdisk_controller.h"
#include "vdisk/vdisk_controller_impl.h"

namespace weft::vdisk {

void VdiskController::Read(uint64_t offset_bytes, std::span<std::byte> buffer, Completion done) {
  WEFT_ASSERT(done != nullptr);
  Status status = CheckRange("read", offset_bytes, buffer.size());
  if (status.ok() && buffer.empty()) {
    status = Status::InvalidArgument(fmt::format("vdisk {}: read of length zero", record_.name()));
  }
  if (status.ok() && replicated() && (fenced_ || !context_.peers->may_acknowledge())) {
    // Another node may own the vDisk now and have changed it: this node's bytes may be stale.
    status = Status::Unavailable(fmt::format(
        "vdisk {}: this node {}", record_.name(),
        fenced_ ? "no longer owns the vdisk" : "is fenced from the cluster (no session)"));
  }
  if (!status.ok()) {
    CompleteLater(std::move(done), std::move(status));
    return;
  }
  ++counters_.reads;
  counters_.bytes_read += buffer.size();
  if (oplog_state_ == OplogState::kOpen && oplog_->index().Overlaps(offset_bytes, buffer.size())) {
    ReadWithOplog(offset_bytes, buffer, std::move(done));
    return;
  }
  ReadExtents(offset_bytes, buffer, std::move(done));
}

void VdiskController::ReadExtents(uint64_t offset_bytes, std::span<std::byte> buffer,
                                  Completion done) {
  const uint64_t end = offset_bytes + buffer.size();
  const uint64_t first_vblock = offset_bytes / kVblockBytes;
  const uint64_t last_vblock = (end - 1) / kVblockBytes;
  std::shared_ptr<Operation> operation =
      StartOperation(std::move(done), static_cast<uint32_t>(last_vblock - first_vblock + 1));
  for (uint64_t vblock = first_vblock; vblock <= last_vblock; ++vblock) {
    const uint64_t piece_start = std::max(offset_bytes, vblock * kVblockBytes);
    const uint64_t piece_end = std::min(end, (vblock + 1) * kVblockBytes);
    ReadVblock(vblock, piece_start % kVblockBytes,
               buffer.subspan(piece_start - offset_bytes, piece_end - piece_start), operation);
  }
}

void VdiskController::ReadVblock(uint64_t vblock, uint64_t offset_in_vblock,
                                 std::span<std::byte> buffer,
                                 std::shared_ptr<Operation> operation) {
  WEFT_ASSERT(offset_in_vblock + buffer.size() <= kVblockBytes);
  const auto mapped = block_map_.find(vblock);
  if (mapped == block_map_.end()) {
    // Never written (or its first write is still creating the mapping): zeros.
    std::memset(buffer.data(), 0, buffer.size());
    context_.executor([this, operation] { FinishPiece(*operation, Status::Ok()); });
    return;
  }
  const Extent extent = mapped->second;
  const uint64_t egroup_offset = uint64_t{extent.slot} * kVblockBytes + offset_in_vblock;
  const bool aligned = egroup_offset % kBlockBytes == 0 && buffer.size() % kBlockBytes == 0 &&
                       reinterpret_cast<uintptr_t>(buffer.data()) % kBlockBytes == 0;
  cache::UnifiedCache* cache = context_.io.cache;
  const uint64_t first_block = (vblock * kVblockBytes + offset_in_vblock) / kBlockBytes;
  if (aligned && cache != nullptr) {
    // The ticket comes first: an invalidation after it (a write landing while this read is at
    // the cache or the extent store) keeps the read's bytes out of the cache.
    const uint64_t blocks = buffer.size() / kBlockBytes;
    const uint64_t ticket = cache->FillTicket(id(), first_block, blocks);
    auto inline_call = std::make_shared<bool>(true);
    cache->Lookup(
        id(), first_block, static_cast<uint32_t>(blocks), buffer,
        [this, alive = alive_, inline_call, operation, buffer, first_block, ticket, extent,
         egroup_offset](bool all_hit) {
          if (!*alive) return;
          if (all_hit) {
            // A memory hit answers inside Lookup; the operation must not complete inside Read.
            if (*inline_call) {
              context_.executor([this, operation] { FinishPiece(*operation, Status::Ok()); });
            } else {
              FinishPiece(*operation, Status::Ok());
            }
            return;
          }
          EgroupRead(extent.egroup_id, egroup_offset, buffer,
                     [this, operation, buffer, first_block, ticket](Status status) {
                       if (status.ok()) context_.io.cache->Fill(id(), first_block, buffer, ticket);
                       FinishPiece(*operation, std::move(status));
                     });
        });
    *inline_call = false;
    return;
  }
  if (aligned) {
    EgroupRead(extent.egroup_id, egroup_offset, buffer,
               [this, operation](Status status) { FinishPiece(*operation, std::move(status)); });
    return;
  }
  // The extent store reads whole 4 KiB blocks into aligned memory: read the covering blocks
  // into a bounce buffer and copy out the bytes asked for.
  const uint64_t covering_start = egroup_offset / kBlockBytes * kBlockBytes;
  const uint64_t covering_end =
      (egroup_offset + buffer.size() + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
  auto bounce = std::make_shared<AlignedBuffer>(covering_end - covering_start);
  EgroupRead(
      extent.egroup_id, covering_start, bounce->span(),
      [this, operation, bounce, buffer, skip = egroup_offset - covering_start](Status status) {
        if (status.ok()) std::memcpy(buffer.data(), bounce->data() + skip, buffer.size());
        FinishPiece(*operation, std::move(status));
      });
}

void VdiskController::BlockStatus(uint64_t offset_bytes, uint64_t length_bytes,
                                  BlockStatusCompletion done) {
  WEFT_ASSERT(done != nullptr);
  Status status = CheckRange("block status", offset_bytes, length_bytes);
  if (status.ok() && length_bytes == 0) {
    status = Status::InvalidArgument(
        fmt::format("vdisk {}: block status of length zero", record_.name()));
  }
  if (!status.ok()) {
    context_.executor([done = std::move(done), status] { done(status); });
    return;
  }
  const uint64_t end = offset_bytes + std::min(length_bytes, kBlockStatusBytesMax);
  std::vector<AllocationRun> runs;
  auto append = [&runs](uint64_t length, bool allocated) {
    if (!runs.empty() && runs.back().allocated == allocated) {
      runs.back().length_bytes += length;
    } else {
      runs.push_back({length, allocated});
    }
  };
  uint64_t position = offset_bytes;
  while (position < end) {
    const uint64_t vblock = position / kVblockBytes;
    const uint64_t vblock_end = std::min(end, (vblock + 1) * kVblockBytes);
    const auto mapped = block_map_.find(vblock);
    if (mapped == block_map_.end()) {
      append(vblock_end - position, false);
      position = vblock_end;
      continue;
    }
    // Whole blocks covering [position, vblock_end) within the extent's slot.
    const uint64_t slot_base = uint64_t{mapped->second.slot} * kVblockBytes;
    const uint64_t first_block_offset = (position % kVblockBytes) / kBlockBytes * kBlockBytes;
    const uint64_t last_block_end =
        ((vblock_end - 1) % kVblockBytes) / kBlockBytes * kBlockBytes + kBlockBytes;
    Result<std::vector<bool>> allocated =
        EgroupAllocatedBlocks(mapped->second.egroup_id, slot_base + first_block_offset,
                              last_block_end - first_block_offset);
    if (!allocated.ok()) {
      context_.executor([done = std::move(done), status = allocated.status()] { done(status); });
      return;
    }
    for (size_t index = 0; index < allocated->size(); ++index) {
      const uint64_t block_start = vblock * kVblockBytes + first_block_offset + index * kBlockBytes;
      const uint64_t from = std::max(block_start, position);
      const uint64_t to = std::min(block_start + kBlockBytes, vblock_end);
      append(to - from, (*allocated)[index]);
    }
    position = vblock_end;
  }
  WEFT_ASSERT(!runs.empty());
  if (oplog_state_ == OplogState::kOpen &&
      oplog_->index().Overlaps(offset_bytes, end - offset_bytes)) {
    runs = OverlayOplogAllocation(offset_bytes, std::move(runs));
  }
  context_.executor(
      [done = std::move(done), runs = std::move(runs)]() mutable { done(std::move(runs)); });
}

std::vector<AllocationRun> VdiskController::OverlayOplogAllocation(
    uint64_t offset_bytes, std::vector<AllocationRun> runs) const {
  // Bytes in the OpLog are data (or written zeros) whatever the extent store says, except
  // unmap records, which are holes. As a map: run start -> allocated, up to the next start.
  std::map<uint64_t, bool> starts;
  uint64_t position = offset_bytes;
  for (const AllocationRun& run : runs) {
    starts[position] = run.allocated;
    position += run.length_bytes;
  }
  const uint64_t end = position;
  for (const oplog::IndexPiece& piece : oplog_->index().Lookup(offset_bytes, end - offset_bytes)) {
    const uint64_t from = piece.offset_bytes;
    const uint64_t to = piece.end_bytes();
    // What holds just after the piece, before the piece's keys are erased.
    const bool after = std::prev(starts.upper_bound(to))->second;
    starts.erase(starts.lower_bound(from), starts.lower_bound(to));
    starts[from] = piece.kind != oplog::RangeKind::kZeroUnmap;
    if (to < end && !starts.contains(to)) starts[to] = after;
  }
  std::vector<AllocationRun> merged;
  for (auto it = starts.begin(); it != starts.end(); ++it) {
    const auto next = std::next(it);
    const uint64_t length = (next == starts.end() ? end : next->first) - it->first;
    if (!merged.empty() && merged.back().allocated == it->second) {
      merged.back().length_bytes += length;
    } else {
      merged.push_back({length, it->second});
    }
  }
  WEFT_ASSERT(!merged.empty());
  return merged;
}

}  // namespace weft::vdisk
