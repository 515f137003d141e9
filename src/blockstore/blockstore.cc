// Blockstore: format, open, the allocator and record application. Journal I/O is in
// blockstore_journal.cc, the file layer in file_layer.cc.
#include "blockstore/blockstore.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <ctime>

#include "base/crc32c.h"
#include "blockstore/blockstore_impl.h"
#include "blockstore/file_layer_impl.h"

namespace weft::blockstore {

// ---- Bitmap ----

bool Bitmap::AllSet(uint64_t first, uint64_t count) const {
  for (uint64_t bit = first; bit < first + count; ++bit) {
    if (!Test(bit)) return false;
  }
  return true;
}

bool Bitmap::AllClear(uint64_t first, uint64_t count) const {
  for (uint64_t bit = first; bit < first + count; ++bit) {
    if (Test(bit)) return false;
  }
  return true;
}

void Bitmap::SetRange(uint64_t first, uint64_t count) {
  for (uint64_t bit = first; bit < first + count; ++bit) Set(bit);
}

void Bitmap::ClearRange(uint64_t first, uint64_t count) {
  for (uint64_t bit = first; bit < first + count; ++bit) Clear(bit);
}

// ---- Layout ----

uint32_t CheckpointBlocks(uint32_t block_size_bytes, uint64_t block_count, uint32_t max_files,
                          uint32_t max_file_runs) {
  const uint64_t bitmap_bytes = (block_count + 63) / 64 * 8;
  const uint64_t file_bytes =
      uint64_t{max_files} *
      (sizeof(format::CheckpointFile) + format::PaddedNameBytes(FileLayer::kMaxNameBytes));
  const uint64_t run_bytes = uint64_t{max_file_runs} * sizeof(format::CheckpointRun);
  const uint64_t payload_bytes = bitmap_bytes + file_bytes + run_bytes;
  return static_cast<uint32_t>(1 + (payload_bytes + block_size_bytes - 1) / block_size_bytes);
}

namespace {

uint32_t SuperblockCrc(const format::Superblock& superblock) {
  return Crc32c(reinterpret_cast<const std::byte*>(&superblock) + 4, sizeof(superblock) - 4);
}

uint64_t SuperblockOffsetBytes(int copy_index) {
  return copy_index == 0 ? 0 : format::kSecondSuperblockOffsetBytes;
}

Status WriteSuperblockCopy(env::BlockDevice& device, format::Superblock superblock,
                           int copy_index) {
  superblock.copy_index = static_cast<uint32_t>(copy_index);
  superblock.crc32c = SuperblockCrc(superblock);
  AlignedBuffer block(superblock.block_size_bytes);
  std::memcpy(block.data(), &superblock, sizeof(superblock));
  return env::WriteSync(device, SuperblockOffsetBytes(copy_index), block.span());
}

Status ValidateFormatOptions(const env::BlockDevice& device, const FormatOptions& options) {
  const uint32_t block_size = options.block_size_bytes;
  if (!std::has_single_bit(block_size) || block_size < format::kMinBlockSizeBytes ||
      block_size > format::kMaxBlockSizeBytes) {
    return Status::InvalidArgument(fmt::format("block size {} is not a power of two from {} to {}",
                                               block_size, format::kMinBlockSizeBytes,
                                               format::kMaxBlockSizeBytes));
  }
  if (block_size % device.alignment_bytes() != 0) {
    return Status::InvalidArgument(
        fmt::format("block size {} is not a multiple of {}'s {} B "
                    "alignment",
                    block_size, device.name(), device.alignment_bytes()));
  }
  if (options.journal_blocks != 0 &&
      (options.journal_blocks < 4 || options.journal_blocks > (1u << 20))) {
    return Status::InvalidArgument(
        fmt::format("journal of {} blocks is outside 4..1048576", options.journal_blocks));
  }
  if (options.max_files == 0 || options.max_files > (1u << 20) || options.max_file_runs == 0 ||
      options.max_file_runs > (1u << 24)) {
    return Status::InvalidArgument("max_files must be 1..2^20 and max_file_runs 1..2^24");
  }
  return Status::Ok();
}

// Builds the superblock for `device` and checks that there is room for data.
Result<format::Superblock> PlanLayout(const env::BlockDevice& device,
                                      const FormatOptions& options) {
  format::Superblock superblock{};
  const uint32_t block_size = options.block_size_bytes;
  superblock.format_version = format::kFormatVersion;
  superblock.magic = format::kSuperblockMagic;
  const Uuid uuid = Uuid::Random();
  std::memcpy(superblock.uuid, uuid.bytes.data(), sizeof(superblock.uuid));
  superblock.block_size_bytes = block_size;
  superblock.block_count = device.size_bytes() / block_size;
  const uint32_t checkpoint_blocks = CheckpointBlocks(block_size, superblock.block_count,
                                                      options.max_files, options.max_file_runs);
  const uint64_t first_metadata_block = format::kSecondSuperblockOffsetBytes / block_size + 1;
  superblock.checkpoint_first_block[0] = first_metadata_block;
  superblock.checkpoint_first_block[1] = first_metadata_block + checkpoint_blocks;
  superblock.checkpoint_blocks = checkpoint_blocks;
  superblock.journal_first_block = first_metadata_block + 2ull * checkpoint_blocks;
  constexpr uint64_t kAutomaticJournalBlocksMin = 64;
  constexpr uint64_t kAutomaticJournalBlocksMax = 8192;
  superblock.journal_blocks = options.journal_blocks != 0
                                  ? options.journal_blocks
                                  : static_cast<uint32_t>(std::clamp(superblock.block_count / 64,
                                                                     kAutomaticJournalBlocksMin,
                                                                     kAutomaticJournalBlocksMax));
  superblock.data_first_block = superblock.journal_first_block + superblock.journal_blocks;
  superblock.max_files = options.max_files;
  superblock.max_file_runs = options.max_file_runs;
  superblock.format_time_unix_seconds = static_cast<uint64_t>(std::time(nullptr));
  constexpr uint64_t kMinDataBlocks = 16;
  if (superblock.block_count < superblock.data_first_block + kMinDataBlocks) {
    return Status::InvalidArgument(fmt::format(
        "{} is {} bytes: too small for a blockstore of {} B blocks ({} metadata blocks)",
        device.name(), device.size_bytes(), block_size, superblock.data_first_block));
  }
  return superblock;
}

}  // namespace

Status Blockstore::Format(env::BlockDevice& device, const FormatOptions& options) {
  WEFT_RETURN_IF_ERROR(ValidateFormatOptions(device, options));
  WEFT_ASSIGN_OR_RETURN(format::Superblock superblock, PlanLayout(device, options));

  // Build the empty state and write it as checkpoint 0 in area 0; area 1 and the journal are
  // zeroed so no record of an earlier format on this device can be replayed.
  State state;
  state.device = &device;
  state.superblock = superblock;
  std::memcpy(state.uuid.bytes.data(), superblock.uuid, 16);
  std::memcpy(&state.blockstore_id, superblock.uuid, 8);
  state.block_size_bytes = superblock.block_size_bytes;
  state.block_count = superblock.block_count;
  state.allocated = Bitmap(state.block_count);
  state.quarantine = Bitmap(state.block_count);
  state.allocated.SetRange(0, superblock.data_first_block);
  uint32_t checkpoint_blocks = 0;
  AlignedBuffer checkpoint = state.SerializeCheckpoint(/*sequence=*/0, &checkpoint_blocks);
  WEFT_ASSERT(checkpoint_blocks <= superblock.checkpoint_blocks);
  WEFT_RETURN_IF_ERROR(
      env::WriteSync(device, superblock.checkpoint_first_block[0] * superblock.block_size_bytes,
                     checkpoint.span()));
  const uint64_t zero_blocks = superblock.checkpoint_blocks + uint64_t{superblock.journal_blocks};
  constexpr uint64_t kZeroChunkBytes = 1 << 20;
  AlignedBuffer zeros(kZeroChunkBytes);
  const uint64_t zero_start = superblock.checkpoint_first_block[1] * superblock.block_size_bytes;
  const uint64_t zero_end = zero_start + zero_blocks * superblock.block_size_bytes;
  for (uint64_t offset = zero_start; offset < zero_end; offset += kZeroChunkBytes) {
    const uint64_t length = std::min(kZeroChunkBytes, zero_end - offset);
    WEFT_RETURN_IF_ERROR(env::WriteSync(device, offset, zeros.span().first(length)));
  }
  WEFT_RETURN_IF_ERROR(env::FlushSync(device));
  // Superblocks last: a device whose format was interrupted is not mistaken for a blockstore.
  WEFT_RETURN_IF_ERROR(WriteSuperblockCopy(device, superblock, 1));
  WEFT_RETURN_IF_ERROR(WriteSuperblockCopy(device, superblock, 0));
  WEFT_RETURN_IF_ERROR(env::FlushSync(device));
  spdlog::info("blockstore: formatted {} ({} blocks of {} B, uuid {})", device.name(),
               superblock.block_count, superblock.block_size_bytes, Uuid{state.uuid}.ToString());
  return Status::Ok();
}

namespace {

// Reads and checks one superblock copy. InvalidArgument: not ours; Corruption: ours but bad.
Result<format::Superblock> ReadSuperblockCopy(env::BlockDevice& device, int copy_index) {
  const uint64_t offset = SuperblockOffsetBytes(copy_index);
  if (offset + format::kMinBlockSizeBytes > device.size_bytes()) {
    return Status::Corruption(fmt::format("{} is too short ({} bytes) to hold superblock copy {}",
                                          device.name(), device.size_bytes(), copy_index));
  }
  AlignedBuffer block(format::kMinBlockSizeBytes);
  WEFT_RETURN_IF_ERROR(env::ReadSync(device, offset, block.span()));
  format::Superblock superblock;
  std::memcpy(&superblock, block.data(), sizeof(superblock));
  if (superblock.magic != format::kSuperblockMagic) {
    return Status::InvalidArgument(
        fmt::format("{}: superblock copy {} has no weft magic: not a weft blockstore",
                    device.name(), copy_index));
  }
  if (superblock.crc32c != SuperblockCrc(superblock)) {
    return Status::Corruption(
        fmt::format("{}: superblock copy {} fails its checksum", device.name(), copy_index));
  }
  if (superblock.format_version != format::kFormatVersion) {
    return Status::InvalidArgument(fmt::format("{}: superblock version {} is not supported ({})",
                                               device.name(), superblock.format_version,
                                               format::kFormatVersion));
  }
  if (superblock.copy_index != static_cast<uint32_t>(copy_index)) {
    return Status::Corruption(fmt::format("{}: superblock copy {} claims to be copy {}",
                                          device.name(), copy_index, superblock.copy_index));
  }
  return superblock;
}

// Every field must describe a layout that the code that wrote it could have produced.
Status CheckSuperblockGeometry(const env::BlockDevice& device, const format::Superblock& sb) {
  const uint32_t block_size = sb.block_size_bytes;
  if (!std::has_single_bit(block_size) || block_size < format::kMinBlockSizeBytes ||
      block_size > format::kMaxBlockSizeBytes || block_size % device.alignment_bytes() != 0) {
    return Status::Corruption(
        fmt::format("{}: superblock block size {} is invalid", device.name(), block_size));
  }
  const uint64_t formatted_bytes = sb.block_count * block_size;
  if (formatted_bytes > device.size_bytes()) {
    return Status::Corruption(
        fmt::format("{} is {} bytes but was formatted as {} bytes: the device is truncated",
                    device.name(), device.size_bytes(), formatted_bytes));
  }
  const uint32_t checkpoint_blocks =
      CheckpointBlocks(block_size, sb.block_count, sb.max_files, sb.max_file_runs);
  const uint64_t first = format::kSecondSuperblockOffsetBytes / block_size + 1;
  const bool layout_ok = sb.checkpoint_blocks == checkpoint_blocks &&
                         sb.checkpoint_first_block[0] == first &&
                         sb.checkpoint_first_block[1] == first + checkpoint_blocks &&
                         sb.journal_first_block == first + 2ull * checkpoint_blocks &&
                         sb.data_first_block == sb.journal_first_block + sb.journal_blocks &&
                         sb.data_first_block < sb.block_count;
  if (!layout_ok) {
    return Status::Corruption(
        fmt::format("{}: superblock layout fields are inconsistent", device.name()));
  }
  return Status::Ok();
}

// Picks the valid superblock, repairing a bad copy from the good one.
Result<format::Superblock> LoadSuperblock(env::BlockDevice& device) {
  Result<format::Superblock> copies[2] = {ReadSuperblockCopy(device, 0),
                                          ReadSuperblockCopy(device, 1)};
  if (!copies[0].ok() && !copies[1].ok()) {
    // Both copies foreign: not ours. Otherwise report the more specific failure.
    if (copies[0].status().IsInvalidArgument() && copies[1].status().IsInvalidArgument()) {
      return copies[0].status();
    }
    return Status::Corruption(fmt::format("{}: both superblock copies are unusable ({}; {})",
                                          device.name(), copies[0].status().ToString(),
                                          copies[1].status().ToString()));
  }
  const int good = copies[0].ok() ? 0 : 1;
  format::Superblock superblock = copies[good].value();
  WEFT_RETURN_IF_ERROR(CheckSuperblockGeometry(device, superblock));
  if (copies[0].ok() && copies[1].ok()) {
    format::Superblock other = copies[1].value();
    other.copy_index = 0;
    other.crc32c = superblock.crc32c;
    if (std::memcmp(&other, &superblock, sizeof(superblock)) != 0) {
      return Status::Corruption(
          fmt::format("{}: the two superblock copies disagree", device.name()));
    }
    return superblock;
  }
  spdlog::warn("blockstore: {}: superblock copy {} is bad ({}); rewriting it from copy {}",
               device.name(), 1 - good, copies[1 - good].status().ToString(), good);
  WEFT_RETURN_IF_ERROR(WriteSuperblockCopy(device, superblock, 1 - good));
  WEFT_RETURN_IF_ERROR(env::FlushSync(device));
  return superblock;
}

}  // namespace

Result<std::unique_ptr<Blockstore>> Blockstore::Open(env::BlockDevice& device) {
  WEFT_ASSIGN_OR_RETURN(format::Superblock superblock, LoadSuperblock(device));
  auto state = std::make_unique<State>();
  state->device = &device;
  state->superblock = superblock;
  std::memcpy(state->uuid.bytes.data(), superblock.uuid, 16);
  std::memcpy(&state->blockstore_id, superblock.uuid, 8);
  state->block_size_bytes = superblock.block_size_bytes;
  state->block_count = superblock.block_count;
  state->quarantine = Bitmap(state->block_count);

  // The newest checkpoint whose checksums hold wins; the journal continues from it.
  uint64_t sequences[2] = {0, 0};
  Status loaded[2];
  for (int area = 0; area < 2; ++area) loaded[area] = state->LoadCheckpoint(area, &sequences[area]);
  if (!loaded[0].ok() && !loaded[1].ok()) {
    return Status::Corruption(fmt::format("{}: no valid allocator checkpoint ({}; {})",
                                          device.name(), loaded[0].ToString(),
                                          loaded[1].ToString()));
  }
  int best = loaded[0].ok() ? 0 : 1;
  if (loaded[0].ok() && loaded[1].ok() && sequences[1] > sequences[0]) best = 1;
  WEFT_RETURN_IF_ERROR(state->LoadCheckpoint(best, &sequences[best]));
  state->active_checkpoint = best;
  state->last_sequence = sequences[best];
  WEFT_RETURN_IF_ERROR(state->ReplayJournal());
  WEFT_RETURN_IF_ERROR(state->WriteCheckpointSync());
  state->file_layer = std::make_unique<FileLayerImpl>(*state);
  spdlog::info("blockstore: opened {} (uuid {}, {} of {} data blocks free, {} files)",
               device.name(), state->uuid.ToString(),
               state->block_count - state->data_first_block() - state->allocated_data_blocks,
               state->block_count - state->data_first_block(), state->files.size());
  return std::unique_ptr<Blockstore>(new Blockstore(std::move(state)));
}

Blockstore::Blockstore(std::unique_ptr<State> state) : state_(std::move(state)) {}

Blockstore::~Blockstore() {
  // Completions capture pointers into the state: let every one of them run first.
  while (state_->device->inflight_count() > 0 || !state_->deferred.empty()) Poll(true);
}

Status Blockstore::Close() {
  bool done = false;
  Status result;
  SyncMetadata([&](Status status) {
    result = std::move(status);
    done = true;
  });
  WEFT_RETURN_IF_ERROR(state_->RunUntil(done));
  return result;
}

const Uuid& Blockstore::uuid() const { return state_->uuid; }
uint32_t Blockstore::block_size_bytes() const { return state_->block_size_bytes; }
uint64_t Blockstore::block_count() const { return state_->block_count; }
uint32_t Blockstore::max_run_blocks() const {
  return static_cast<uint32_t>(kMaxRunBytes / state_->block_size_bytes);
}
uint64_t Blockstore::BlockOffsetBytes(uint64_t block) const {
  WEFT_ASSERT(block < state_->block_count);
  return block * state_->block_size_bytes;
}
env::BlockDevice& Blockstore::device() { return *state_->device; }
FileLayer& Blockstore::files() { return *state_->file_layer; }

uint64_t Blockstore::free_block_count() const {
  const State& s = *state_;
  return s.block_count - s.data_first_block() - s.allocated_data_blocks - s.quarantined_blocks;
}

bool Blockstore::IsAllocated(uint64_t block) const {
  WEFT_ASSERT(block < state_->block_count);
  return state_->allocated.Test(block);
}

BlockstoreStats Blockstore::stats() const {
  BlockstoreStats stats = state_->counters;
  stats.block_size_bytes = state_->block_size_bytes;
  stats.journal_blocks = state_->superblock.journal_blocks;
  stats.total_blocks = state_->block_count;
  stats.data_blocks = state_->block_count - state_->data_first_block();
  stats.free_blocks = free_block_count();
  stats.quarantined_blocks = state_->quarantined_blocks;
  stats.file_blocks = state_->file_blocks;
  stats.client_blocks = state_->allocated_data_blocks - state_->file_blocks;
  return stats;
}

size_t Blockstore::Poll(bool wait) {
  size_t ran = 0;
  // Deferred completions first; never block in the device while some are waiting.
  while (!state_->deferred.empty()) {
    auto [done, status] = std::move(state_->deferred.front());
    state_->deferred.pop_front();
    done(std::move(status));
    ++ran;
  }
  const bool may_wait = wait && ran == 0 && state_->device->inflight_count() > 0;
  return ran + state_->device->Poll(may_wait);
}

size_t Blockstore::PollUntilWoken() {
  const size_t ran = Poll(/*wait=*/false);
  if (ran > 0) return ran;
  return state_->device->PollUntilWoken();
}

Status Blockstore::State::RunUntil(const bool& done) {
  while (!done) {
    while (!deferred.empty()) {
      auto [completion, status] = std::move(deferred.front());
      deferred.pop_front();
      completion(std::move(status));
    }
    if (done) break;
    if (device->inflight_count() == 0 && deferred.empty()) {
      return Status::Aborted("blockstore: waiting for an operation that has nothing in flight");
    }
    device->Poll(deferred.empty());
  }
  return Status::Ok();
}

void Blockstore::State::Defer(env::IoCompletion done, Status status) {
  deferred.emplace_back(std::move(done), std::move(status));
}

// ---- Allocator ----

bool Blockstore::State::InDataArea(uint64_t first, uint64_t count) const {
  return count > 0 && first >= data_first_block() && first < block_count &&
         count <= block_count - first;
}

Result<BlockRun> Blockstore::State::FindFreeRun(uint32_t count, uint64_t start_hint) {
  // Next fit: scan from the cursor to the end, then from the data start, for `count` blocks
  // free in both the allocated and the quarantine bitmaps. Whole busy words are skipped.
  const uint64_t data_start = data_first_block();
  const uint64_t start = std::clamp(start_hint, data_start, block_count - 1);
  const auto& used = allocated.words();
  const auto& held = quarantine.words();
  for (int pass = 0; pass < 2; ++pass) {
    uint64_t block = pass == 0 ? start : data_start;
    const uint64_t end = pass == 0 ? block_count : std::min(block_count, start + count);
    uint64_t run_start = block;
    uint64_t run_length = 0;
    while (block < end) {
      if (block % 64 == 0 && block + 64 <= end && (used[block / 64] | held[block / 64]) == ~0ull) {
        run_length = 0;
        block += 64;
        run_start = block;
        continue;
      }
      if (allocated.Test(block) || quarantine.Test(block)) {
        run_length = 0;
        run_start = block + 1;
      } else if (++run_length == count) {
        return BlockRun{run_start, count};
      }
      ++block;
    }
  }
  return Status::NoSpace(
      fmt::format("{}: no free run of {} blocks ({} blocks free in all)", device->name(), count,
                  block_count - data_start - allocated_data_blocks - quarantined_blocks));
}

bool Blockstore::State::OverlapsFileRun(const BlockRun& run) const {
  for (const auto& [id, file] : files) {
    for (const BlockRun& owned : file.runs) {
      if (owned.first_block < run.end_block() && run.first_block < owned.end_block()) return true;
    }
  }
  return false;
}

bool Blockstore::State::TryAllocateAt(uint64_t first, uint32_t count) {
  if (!InDataArea(first, count)) return false;
  if (!allocated.AllClear(first, count) || !quarantine.AllClear(first, count)) return false;
  return true;
}

void Blockstore::State::MarkAllocated(const BlockRun& run) {
  WEFT_ASSERT(InDataArea(run.first_block, run.block_count));
  WEFT_DASSERT(allocated.AllClear(run.first_block, run.block_count));
  allocated.SetRange(run.first_block, run.block_count);
  allocated_data_blocks += run.block_count;
}

void Blockstore::State::ReleaseToQuarantine(const BlockRun& run, bool live) {
  WEFT_ASSERT(InDataArea(run.first_block, run.block_count));
  WEFT_DASSERT(allocated.AllSet(run.first_block, run.block_count));
  allocated.ClearRange(run.first_block, run.block_count);
  allocated_data_blocks -= run.block_count;
  if (!live) return;
  quarantine.SetRange(run.first_block, run.block_count);
  quarantined_blocks += run.block_count;
  pending_frees.push_back(run);
}

void Blockstore::State::ReleaseQuarantine(const std::vector<BlockRun>& runs) {
  for (const BlockRun& run : runs) {
    WEFT_DASSERT(quarantine.AllSet(run.first_block, run.block_count));
    quarantine.ClearRange(run.first_block, run.block_count);
    WEFT_ASSERT(quarantined_blocks >= run.block_count);
    quarantined_blocks -= run.block_count;
  }
}

Result<BlockRun> Blockstore::Allocate(uint32_t block_count) {
  if (block_count == 0 || block_count > max_run_blocks()) {
    return Status::InvalidArgument(
        fmt::format("cannot allocate a run of {} blocks (1..{})", block_count, max_run_blocks()));
  }
  if (block_count > free_block_count()) {
    return Status::NoSpace(fmt::format("{}: {} blocks requested, {} free", device().name(),
                                       block_count, free_block_count()));
  }
  WEFT_ASSIGN_OR_RETURN(BlockRun run, state_->FindFreeRun(block_count, state_->allocation_cursor));
  state_->AppendLiveRecord(format::RecordType::kAllocate, 0, run.first_block, run.block_count);
  state_->allocation_cursor = run.end_block();
  WEFT_ASSERT(state_->allocated.Test(run.first_block));
  return run;
}

Result<std::vector<BlockRun>> Blockstore::AllocateAny(uint64_t block_count) {
  if (block_count == 0) return Status::InvalidArgument("cannot allocate 0 blocks");
  if (block_count > free_block_count()) {
    return Status::NoSpace(fmt::format("{}: {} blocks requested, {} free", device().name(),
                                       block_count, free_block_count()));
  }
  std::vector<BlockRun> runs;
  uint64_t remaining = block_count;
  // Largest runs first: halve the run length each time none that long is free.
  uint32_t want = static_cast<uint32_t>(std::min<uint64_t>(remaining, max_run_blocks()));
  while (remaining > 0) {
    want = static_cast<uint32_t>(std::min<uint64_t>(want, remaining));
    Result<BlockRun> run = state_->FindFreeRun(want, state_->allocation_cursor);
    if (!run.ok()) {
      WEFT_ASSERT(want > 1);  // free_block_count() >= remaining, so single blocks exist.
      want /= 2;
      continue;
    }
    state_->AppendLiveRecord(format::RecordType::kAllocate, 0, run->first_block, run->block_count);
    state_->allocation_cursor = run->end_block();
    runs.push_back(*run);
    remaining -= run->block_count;
  }
  return runs;
}

void Blockstore::Free(const BlockRun& run) {
  WEFT_ASSERT(state_->InDataArea(run.first_block, run.block_count));
  WEFT_ASSERT(state_->allocated.AllSet(run.first_block, run.block_count));
  // A client freeing file blocks would corrupt a file; checking costs a walk of every file's
  // runs, so only debug builds do it.
  WEFT_DASSERT(!state_->OverlapsFileRun(run));
  state_->AppendLiveRecord(format::RecordType::kFree, 0, run.first_block, run.block_count);
}

Result<uint64_t> Blockstore::ReclaimUnreferenced(
    const std::function<bool(uint64_t block)>& is_referenced) {
  Bitmap file_owned(state_->block_count);
  for (const auto& [id, file] : state_->files) {
    for (const BlockRun& run : file.runs) file_owned.SetRange(run.first_block, run.block_count);
  }
  uint64_t reclaimed = 0;
  for (uint64_t block = state_->data_first_block(); block < state_->block_count; ++block) {
    if (!state_->allocated.Test(block) || file_owned.Test(block) || is_referenced(block)) continue;
    uint64_t end = block + 1;
    while (end < state_->block_count && end - block < max_run_blocks() &&
           state_->allocated.Test(end) && !file_owned.Test(end) && !is_referenced(end)) {
      ++end;
    }
    Free(BlockRun{block, static_cast<uint32_t>(end - block)});
    reclaimed += end - block;
    block = end - 1;
  }
  if (reclaimed > 0) {
    spdlog::info("blockstore: {}: reclaimed {} leaked blocks", device().name(), reclaimed);
  }
  state_->counters.leaked_blocks_reclaimed += reclaimed;
  WEFT_RETURN_IF_ERROR(Close());
  return reclaimed;
}

// ---- Records ----

void Blockstore::State::AppendLiveRecord(format::RecordType type, FileId file_id, uint64_t value,
                                         uint32_t block_count, std::string_view name) {
  format::JournalRecord record{};
  record.type = static_cast<uint8_t>(type);
  record.name_bytes = static_cast<uint16_t>(name.size());
  record.file_id = file_id;
  record.value = value;
  record.block_count = block_count;
  const Status applied = ApplyRecord(record, name, /*live=*/true);
  WEFT_ASSERT(applied.ok());
  const size_t old_size = pending_records.size();
  pending_records.resize(old_size + sizeof(record) + format::PaddedNameBytes(name.size()));
  std::memcpy(pending_records.data() + old_size, &record, sizeof(record));
  if (!name.empty()) {
    std::memcpy(pending_records.data() + old_size + sizeof(record), name.data(), name.size());
  }
  ++pending_record_count;
}

}  // namespace weft::blockstore
