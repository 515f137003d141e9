// The OpLog path of the vDisk controller: the write characterizer's dispatch, reads that merge
// the OpLog's index with the extent store, the drainer, and quiescing.
//
// Ordering: a mutation of bytes the OpLog holds must go to the OpLog too (a later drain would
// otherwise write the older OpLog bytes over it), so only vBlock parts that do not overlap the
// index may go straight to the extent store. The index forgets drained bytes only once the
// drain's watermark is durable (oplog.h), so a replay never brings them back over a write that
// bypassed the OpLog afterwards.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "vdisk/vdisk_controller.h"
#include "vdisk/vdisk_controller_impl.h"

namespace weft::vdisk {

namespace {

oplog::format::RecordKind RecordKindOf(int kind) {
  switch (kind) {
    case kWriteData:
      return oplog::format::RecordKind::kData;
    case kZeroFill:
      return oplog::format::RecordKind::kZeroFill;
    default:  // kUnmap, kTrimHint (cut to whole blocks by then).
      return oplog::format::RecordKind::kZeroUnmap;
  }
}

int PieceKindOf(oplog::RangeKind kind) {
  switch (kind) {
    case oplog::RangeKind::kData:
      return kWriteData;
    case oplog::RangeKind::kZeroFill:
      return kZeroFill;
    case oplog::RangeKind::kZeroUnmap:
      return kUnmap;
  }
  WEFT_ASSERT(false && "bad range kind");
  return kUnmap;
}

// Drain rounds grow with the OpLog's fill: small while it has room (less interference with
// foreground I/O), large when it must free space.
uint64_t DrainRoundBytes(double fill) {
  if (fill < 0.25) return 1ull << 20;
  if (fill < 0.5) return 4ull << 20;
  return 16ull << 20;
}

// A round starts while clients are busy only when this much is waiting (a round's fixed cost,
// the watermark batch and the extent store's commits, is then shared by many records) or the
// OpLog's space is this full; a smaller tail waits until the vDisk has been idle for
// kIdleDrainDelay.
constexpr uint64_t kDrainRoundBytesMin = 1ull << 20;
constexpr double kDrainWhenBusyFill = 0.5;
constexpr std::chrono::microseconds kIdleDrainDelay{20000};

}  // namespace

void VdiskController::Start() {
  if (oplog_state_ == OplogState::kClosed) OpenOplog(nullptr);
}

void VdiskController::OpenOplog(Completion done) {
  WEFT_ASSERT(oplog_state_ == OplogState::kClosed && context_.io.oplog_files != nullptr);
  oplog_state_ = OplogState::kOpening;
  oplog_ = std::make_unique<oplog::OpLog>(*context_.io.oplog_files, id(), context_.io.oplog,
                                          context_.executor);
  oplog_->Open([this, alive = alive_, done = std::move(done)](Status status) {
    if (!*alive) return;
    if (status.ok()) {
      oplog_state_ = OplogState::kOpen;
    } else {
      // Writes then go to the extent store. A vDisk being loaded fails instead (done below):
      // its log may hold acknowledged writes.
      spdlog::error("vdisk {}: opening its oplog: {}", record_.name(), status.ToString());
      oplog_state_ = OplogState::kOff;
      oplog_.reset();
    }
    if (done) done(status);
    if (!*alive) return;
    std::deque<std::function<void()>> queued = std::move(opening_queue_);
    opening_queue_.clear();
    WEFT_ASSERT(inflight_operations_ >= queued.size());
    inflight_operations_ -= queued.size();  // Each one counts again as it starts.
    for (auto& mutation : queued) mutation();
    CheckQuiesced();
    MaybeDrain();
  });
}

void VdiskController::Dispatch(int kind, uint64_t offset_bytes, uint64_t length_bytes,
                               std::span<const std::byte> data, Completion done, bool to_oplog,
                               bool direct_parts) {
  WEFT_ASSERT(oplog_state_ == OplogState::kOpen);
  if (repeering_) {
    // The OpLog is draining for a new peer set; mutations wait (data stays valid until done).
    ++inflight_operations_;  // Held mutations count as in flight (see OpenOplog's queue).
    repeer_queue_.push_back([this, kind, offset_bytes, length_bytes, data, done = std::move(done),
                             to_oplog, direct_parts]() mutable {
      --inflight_operations_;
      Dispatch(kind, offset_bytes, length_bytes, data, std::move(done), to_oplog, direct_parts);
    });
    return;
  }
  static constexpr std::string_view kNames[] = {"write", "write-zeroes", "write-zeroes", "trim"};
  Status status =
      direct_parts ? CheckRange(kNames[kind], offset_bytes, length_bytes) : Status::Ok();
  if (status.ok() && length_bytes == 0) {
    status = Status::InvalidArgument(
        fmt::format("vdisk {}: {} of length zero", record_.name(), kNames[kind]));
  }
  if (!status.ok()) {
    CompleteLater(std::move(done), std::move(status));
    return;
  }
  if (kind == kTrimHint) {
    // Trim is advisory: only its whole blocks are freed, so only they are recorded.
    const uint64_t start = (offset_bytes + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
    const uint64_t end = (offset_bytes + length_bytes) / kBlockBytes * kBlockBytes;
    if (end <= start) {
      CompleteLater(std::move(done), Status::Ok());
      return;
    }
    kind = kUnmap;
    offset_bytes = start;
    length_bytes = end - start;
  }
  struct Part {
    bool oplog = false;
    uint64_t offset_bytes = 0;
    uint64_t length_bytes = 0;
  };
  std::vector<Part> parts;
  const uint64_t end = offset_bytes + length_bytes;
  if (!direct_parts) {
    // Only the vBlocks holding OpLog data (a shrink's range may span terabytes).
    for (const oplog::IndexPiece& piece : oplog_->index().Lookup(offset_bytes, length_bytes)) {
      for (uint64_t vblock = piece.offset_bytes / kVblockBytes;
           vblock <= (piece.end_bytes() - 1) / kVblockBytes; ++vblock) {
        const uint64_t start = std::max(offset_bytes, vblock * kVblockBytes);
        if (!parts.empty() && parts.back().offset_bytes + parts.back().length_bytes > start) {
          continue;  // This vBlock's part is already there.
        }
        parts.push_back({true, start, std::min(end, (vblock + 1) * kVblockBytes) - start});
      }
    }
  }
  for (uint64_t position = offset_bytes; direct_parts && position < end;) {
    const uint64_t part_end = std::min(end, (position / kVblockBytes + 1) * kVblockBytes);
    const bool oplog = to_oplog || oplog_->index().Overlaps(position, part_end - position);
    if (!oplog && !parts.empty() && !parts.back().oplog) {
      parts.back().length_bytes += part_end - position;  // One extent-store mutation.
    } else {
      parts.push_back({oplog, position, part_end - position});
    }
    position = part_end;
  }
  if (parts.empty()) {
    CompleteLater(std::move(done), Status::Ok());
    return;
  }
  std::shared_ptr<Operation> operation =
      StartOperation(std::move(done), static_cast<uint32_t>(parts.size()));
  auto finish = [this, operation](Status part_status) {
    FinishPiece(*operation, std::move(part_status));
  };
  for (const Part& part : parts) {
    std::span<const std::byte> part_data;
    if (kind == kWriteData)
      part_data = data.subspan(part.offset_bytes - offset_bytes, part.length_bytes);
    if (part.oplog) {
      AppendToOplog(static_cast<int>(RecordKindOf(kind)), part.offset_bytes, part.length_bytes,
                    part_data, finish);
    } else {
      Mutate(kind, part.offset_bytes, part.length_bytes, part_data, finish, direct_parts);
    }
  }
}

namespace {
void CopyPieces(const std::vector<oplog::IndexPiece>& pieces, uint64_t offset_bytes,
                std::span<std::byte> buffer) {
  for (const oplog::IndexPiece& piece : pieces) {
    WEFT_ASSERT(piece.offset_bytes >= offset_bytes &&
                piece.end_bytes() <= offset_bytes + buffer.size());
    std::byte* target = buffer.data() + (piece.offset_bytes - offset_bytes);
    if (piece.kind == oplog::RangeKind::kData) {
      std::memcpy(target, piece.bytes().data(), piece.length_bytes);
    } else {
      std::memset(target, 0, piece.length_bytes);
    }
  }
}
}  // namespace

void VdiskController::ReadWithOplog(uint64_t offset_bytes, std::span<std::byte> buffer,
                                    Completion done) {
  // The pieces are taken now (they hold their bytes): the read returns the state at its
  // submission even if a drain erases them before the extent store answers.
  std::vector<oplog::IndexPiece> pieces = oplog_->index().Lookup(offset_bytes, buffer.size());
  uint64_t covered = 0;
  for (const oplog::IndexPiece& piece : pieces) covered += piece.length_bytes;
  if (covered == buffer.size()) {
    ++counters_.reads_from_oplog;
    CopyPieces(pieces, offset_bytes, buffer);
    std::shared_ptr<Operation> operation = StartOperation(std::move(done), 1);
    context_.executor([this, operation] { FinishPiece(*operation, Status::Ok()); });
    return;
  }
  ++counters_.reads_merged;
  ReadExtents(
      offset_bytes, buffer,
      [pieces = std::move(pieces), offset_bytes, buffer, done = std::move(done)](Status status) {
        if (status.ok()) CopyPieces(pieces, offset_bytes, buffer);
        done(std::move(status));
      });
}

// ---- The drainer ----

void VdiskController::MaybeDrain(bool idle) {
  if (oplog_state_ != OplogState::kOpen || drain_active_ || quiescing_ || drain_backoff_ ||
      drain_paused_) {
    return;
  }
  if (oplog_->failed() || !oplog_->has_undrained()) return;
  const double fill = oplog_->fill_fraction();
  const bool due = idle || repeering_ || fill >= kDrainWhenBusyFill ||
                   oplog_->undrained_bytes() >= kDrainRoundBytesMin ||
                   (context_.io.schedule == nullptr && inflight_operations_ == 0);
  if (!due) {
    ArmIdleDrain();
    return;
  }
  std::optional<oplog::OpLog::DrainBatch> batch = oplog_->NextDrainBatch(DrainRoundBytes(fill));
  if (!batch) return;
  drain_active_ = true;
  DrainBatch(std::move(*batch));
}

void VdiskController::ArmIdleDrain() {
  if (context_.io.schedule == nullptr || idle_drain_armed_) return;
  idle_drain_armed_ = true;
  const uint64_t started = client_operations_started_;
  context_.io.schedule(kIdleDrainDelay, [this, alive = alive_, started] {
    if (!*alive) return;
    idle_drain_armed_ = false;
    // Idle: no client operation started since the timer was armed, and none is in flight.
    const bool idle = started == client_operations_started_ && inflight_operations_ == 0;
    MaybeDrain(idle);
  });
}

void VdiskController::DrainBatch(oplog::OpLog::DrainBatch batch) {
  // Adjacent pieces of one kind within one vBlock become one extent-store mutation (a
  // sequential run of small OpLog writes drains as one write).
  struct Run {
    int kind = kWriteData;
    uint64_t offset_bytes = 0;
    uint64_t length_bytes = 0;
    std::vector<const oplog::IndexPiece*> pieces;
  };
  std::vector<Run> runs;
  for (const oplog::IndexPiece& piece : batch.pieces) {
    const int kind = PieceKindOf(piece.kind);
    if (!runs.empty()) {
      Run& last = runs.back();
      if (last.kind == kind && last.offset_bytes + last.length_bytes == piece.offset_bytes &&
          last.offset_bytes / kVblockBytes == (piece.end_bytes() - 1) / kVblockBytes) {
        last.length_bytes += piece.length_bytes;
        last.pieces.push_back(&piece);
        continue;
      }
    }
    // Mutations stay within one vBlock; a piece across a boundary is cut there.
    uint64_t position = piece.offset_bytes;
    while (position < piece.end_bytes()) {
      const uint64_t run_end =
          std::min(piece.end_bytes(), (position / kVblockBytes + 1) * kVblockBytes);
      runs.push_back({kind, position, run_end - position, {&piece}});
      position = run_end;
    }
  }
  const uint64_t max_seq = batch.max_seq;
  if (runs.empty()) {
    // Every byte of these records was overwritten by newer ones: only the watermark moves.
    oplog_->FinishDrain(max_seq, [this, alive = alive_, max_seq](Status status) {
      if (*alive) OnDrainDone(std::move(status), max_seq);
    });
    return;
  }
  struct Work {
    oplog::OpLog::DrainBatch batch;  // Keeps the pieces' bytes alive.
    std::vector<AlignedBuffer> buffers;
    size_t outstanding = 0;
    Status status;
  };
  auto work = std::make_shared<Work>();
  work->batch = std::move(batch);
  work->outstanding = runs.size();
  work->buffers.reserve(runs.size());
  for (const Run& run : runs) {
    std::span<const std::byte> data;
    if (run.kind == kWriteData) {
      AlignedBuffer& buffer = work->buffers.emplace_back(run.length_bytes);
      for (const oplog::IndexPiece* piece : run.pieces) {
        const uint64_t from = std::max(piece->offset_bytes, run.offset_bytes);
        const uint64_t to = std::min(piece->end_bytes(), run.offset_bytes + run.length_bytes);
        std::memcpy(buffer.data() + (from - run.offset_bytes),
                    piece->bytes().data() + (from - piece->offset_bytes), to - from);
      }
      data = buffer.span().first(run.length_bytes);
    }
    // No range check: a shrink's zero records lie past the new end.
    Mutate(
        run.kind, run.offset_bytes, run.length_bytes, data,
        [this, alive = alive_, work, max_seq](Status status) {
          if (!*alive) return;
          if (!status.ok() && work->status.ok()) work->status = status;
          if (--work->outstanding > 0) return;
          if (!work->status.ok()) {
            oplog_->AbortDrain();
            OnDrainDone(work->status, max_seq);
            return;
          }
          oplog_->FinishDrain(max_seq, [this, alive, max_seq](Status finished) {
            if (*alive) OnDrainDone(std::move(finished), max_seq);
          });
        },
        /*check_range=*/false, /*background=*/true);
  }
}

void VdiskController::OnDrainDone(Status status, uint64_t max_seq) {
  WEFT_ASSERT(drain_active_);
  drain_active_ = false;
  if (!status.ok()) {
    // The records stay in the OpLog (durable, served from its index) and are drained again a
    // second later (a full disk, say, until space is freed).
    spdlog::warn("vdisk {}: draining the oplog up to seq {}: {}; retrying in 1 s", record_.name(),
                 max_seq, status.ToString());
    if (status.code() == StatusCode::kNoSpace) {
      oplog_->FailAppendsWaitingForSpace(status.WithContext(
          fmt::format("vdisk {}: the oplog is full and cannot drain", record_.name())));
    }
    // A node that no longer owns the vDisk stops: its drain would only be refused.
    if (context_.io.schedule != nullptr && !fenced_) {
      drain_backoff_ = true;
      context_.io.schedule(std::chrono::seconds(1), [this, alive = alive_] {
        if (!*alive) return;
        drain_backoff_ = false;
        MaybeDrain();
      });
    }
  }
  CheckQuiesced();
  if (status.ok()) {
    TrimPeerOplogs();
    MaybeDrain();
  }
  MaybeFinishRepeer();
}

void VdiskController::PauseDrain(bool paused) {
  drain_paused_ = paused;
  if (!paused) MaybeDrain();
}

void VdiskController::Quiesce(Completion done) {
  quiescing_ = true;
  quiesce_waiters_.push_back(std::move(done));
  CheckQuiesced();
}

void VdiskController::CheckQuiesced() {
  if (!quiescing_ || quiesce_waiters_.empty()) return;
  if (drain_active_ || oplog_state_ == OplogState::kOpening) return;
  if (oplog_ != nullptr && !oplog_->quiescent()) return;
  for (Completion& waiter : quiesce_waiters_) CompleteLater(std::move(waiter), Status::Ok());
  quiesce_waiters_.clear();
}

void VdiskController::InvalidateCache(uint64_t offset_bytes, uint64_t length_bytes) {
  if (context_.io.cache == nullptr || length_bytes == 0) return;
  const uint64_t first_block = offset_bytes / kBlockBytes;
  const uint64_t end_block = (offset_bytes + length_bytes + kBlockBytes - 1) / kBlockBytes;
  context_.io.cache->Invalidate(id(), first_block, end_block - first_block);
}

std::map<std::string, std::map<std::string, uint64_t>> VdiskController::StatGroups() const {
  const VdiskControllerStats io = stats();
  std::map<std::string, std::map<std::string, uint64_t>> groups;
  groups["io"] = {{"reads", io.reads},
                  {"writes", io.writes},
                  {"trims", io.trims},
                  {"write_zeroes", io.write_zeroes},
                  {"flushes", io.flushes},
                  {"bytes_read", io.bytes_read},
                  {"bytes_written", io.bytes_written},
                  {"read_modify_writes", io.read_modify_writes}};
  groups["characterizer"] = {{"writes_oplog", io.writes_oplog},
                             {"writes_sequential_bypass", io.writes_sequential_bypass},
                             {"writes_oplog_full_bypass", io.writes_oplog_full_bypass}};
  if (oplog_ != nullptr) {
    const oplog::OpLogStats log = oplog_->stats();
    groups["oplog"] = {{"records_appended", log.records_appended},
                       {"bytes_appended", log.bytes_appended},
                       {"batches_written", log.batches_written},
                       {"records_drained", log.records_drained},
                       {"drain_rounds", log.drain_rounds},
                       {"records_replayed", log.records_replayed},
                       {"space_waits", log.space_waits},
                       {"appends_failed_for_space", log.appends_failed_for_space},
                       {"segments", log.segments},
                       {"segments_in_use", log.segments_in_use},
                       {"log_bytes_max", log.log_bytes_max},
                       {"index_bytes", log.index_bytes},
                       {"index_pieces", log.index_pieces},
                       {"records_undrained", log.records_undrained},
                       {"drained_seq", log.drained_seq},
                       {"last_seq", log.last_seq},
                       {"failed", log.failed ? 1u : 0u},
                       {"reads_from_oplog", io.reads_from_oplog},
                       {"reads_merged", io.reads_merged}};
  }
  if (record_.replication_factor() > 1 || context_.peers != nullptr) {
    // Egroups short of copies: fewer replicas listed than RF, or a replica on a node that is
    // not live now (it stays listed until a write replaces it or the node returns).
    std::set<uint32_t> live;
    if (context_.peers != nullptr) {
      live.insert(context_.peers->local_node_id());
      for (const PeerNode& peer : context_.peers->LivePeers()) live.insert(peer.node_id);
    }
    uint64_t under_replicated = 0;
    for (const auto& [egroup_id, egroup] : egroups_) {
      if (egroup.replicas.empty()) continue;
      bool short_of_copies = egroup.replicas.size() < replication_factor_;
      for (const Replica& replica : egroup.replicas) {
        if (!live.contains(replica.node_id)) short_of_copies = true;
      }
      if (short_of_copies) ++under_replicated;
    }
    uint64_t oplog_peers_live = 0;
    for (uint32_t peer : record_.oplog_peers()) oplog_peers_live += live.contains(peer) ? 1 : 0;
    groups["replication"] = {{"replication_factor", replication_factor_},
                             {"owner_node", record_.owner_node()},
                             {"owner_epoch", record_.owner_epoch()},
                             {"oplog_peers_count", oplog_peers_live},
                             {"oplog_peer_appends", io.oplog_peer_appends},
                             {"oplog_repeers", io.oplog_repeers},
                             {"reads_local", io.reads_local},
                             {"reads_remote", io.reads_remote},
                             {"egroups_localized", io.egroups_localized},
                             {"replica_repairs", io.replica_repairs},
                             {"replica_replacements", io.replica_replacements},
                             {"stale_replicas_dropped", io.stale_replicas_dropped},
                             {"under_replicated_egroups", under_replicated},
                             {"fenced", fenced_ ? 1u : 0u}};
  }
  return groups;
}

}  // namespace weft::vdisk
