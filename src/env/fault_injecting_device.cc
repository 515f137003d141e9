#include "env/fault_injecting_device.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "base/crc32c.h"

// Choices the header leaves open:
// - Reads are carried out when their completion runs (inside Poll), not at submit, so a caller
//   that looks at a read buffer before the completion sees stale bytes, as on a real device.
// - Writes enter the overlay at submit. When a write's completion runs, its buffer must still hold
//   what was submitted (the BlockDevice contract); a checksum taken at submit asserts it.
// - Discard is applied at submit: it drops the overlay versions of the range and discards the
//   inner device's range at once, so reads return zeros and the range is zero after a crash even
//   without a flush. The contract makes discarded bytes unspecified, and a real SSD may apply a
//   TRIM before any flush, so a caller that still needs discarded data is wrong either way. This
//   keeps a whole-device discard cheap (no per-sector overlay entries).
// - FailRange(kWrites) also fails discards touching the range; SetFull() does not (a discard
//   frees space). Flushes are never failed by FailRange() or SetFull().
// - FlipBit() flips the bit in the durable bytes and in every overlay version of the sector, so
//   the corruption is seen whichever version reads, a flush or a crash ends up exposing.
// - Poll() runs every completion that was ready when it was called, in a random order; the
//   shuffle uses the raw mt19937_64 output (not std::shuffle, whose algorithm is up to the
//   standard library), so one seed replays one run on every platform.
// - write_count() counts writes accepted into the overlay (not rejected ones); flush_count()
//   counts flushes that ran to completion successfully.

namespace weft::env {

namespace {

// Longest run of inner-device blocks read, patched and written back in one request, so that
// flushing or tearing a large overlay never needs one huge buffer.
constexpr uint64_t kInnerRunBytesMax = uint64_t{1} << 20;

bool RangesOverlap(uint64_t first_offset_bytes, uint64_t first_length_bytes,
                   uint64_t second_offset_bytes, uint64_t second_length_bytes) {
  return first_offset_bytes < second_offset_bytes + second_length_bytes &&
         second_offset_bytes < first_offset_bytes + first_length_bytes;
}

}  // namespace

struct FaultInjectingDevice::State {
  enum class OperationType { kRead, kWrite, kFlush, kDiscard };

  // The bytes one write left in one sector.
  struct SectorVersion {
    uint64_t write_sequence = 0;    // Submission order of the write, over the device's lifetime.
    uint64_t completion_stamp = 0;  // 0 until the write's completion runs; then its run order.
    std::vector<std::byte> data;    // kSectorBytes.
  };

  struct PendingOperation {
    OperationType type = OperationType::kFlush;
    uint64_t offset_bytes = 0;
    uint64_t length_bytes = 0;
    std::byte* read_buffer = nullptr;
    const std::byte* write_data = nullptr;
    uint32_t write_crc = 0;  // Of the write's buffer at submit.
    uint64_t write_sequence = 0;
    uint64_t flush_completion_stamp = 0;  // A flush makes durable writes stamped up to this.
    uint64_t crash_generation = 0;        // crash_count at submit: a later crash fails it.
    Status status;                        // An error decided at submit, else OK.
    IoCompletion done;
  };

  struct FailedRange {
    uint64_t offset_bytes;
    uint64_t length_bytes;
    FailOperations operations;
  };

  // A sector to store on the inner device, and its new bytes.
  struct SectorWrite {
    uint64_t sector_index;
    const std::byte* data;
  };

  State(BlockDevice& inner_device, uint64_t seed) : inner(inner_device), random(seed) {}

  uint64_t UniformBelow(uint64_t bound);
  Status CrashedError() const;
  Status Admit(OperationType type, uint64_t offset_bytes, uint64_t length_bytes,
               const void* buffer_address) const;
  void AddVersions(uint64_t offset_bytes, std::span<const std::byte> data, uint64_t sequence);
  void DropVersions(uint64_t offset_bytes, uint64_t length_bytes);
  void Enqueue(PendingOperation operation);
  void Deliver(PendingOperation operation);
  Status ExecuteRead(const PendingOperation& operation);
  void CompleteWrite(const PendingOperation& operation);
  Status ExecuteFlush(const PendingOperation& operation);
  Status WriteSectorsToInner(const std::vector<SectorWrite>& writes);

  BlockDevice& inner;
  std::mt19937_64 random;
  // Unsynced versions by sector index, oldest first. A std::map so that every walk over it (crash
  // tearing consumes random numbers per sector) happens in one order, which keeps seeds replayable.
  std::map<uint64_t, std::vector<SectorVersion>> overlay;
  std::vector<PendingOperation> ready;
  std::vector<FailedRange> failed_ranges;
  bool full = false;
  bool crashed = false;
  uint64_t crash_count = 0;
  uint64_t write_sequence_last = 0;
  uint64_t completion_stamp_last = 0;
  size_t inflight_count = 0;
  uint64_t flush_count = 0;
  uint64_t write_count = 0;
};

uint64_t FaultInjectingDevice::State::UniformBelow(uint64_t bound) {
  WEFT_ASSERT(bound > 0);
  // The modulo bias is below 2^-50 for the small bounds used here and irrelevant to a test device;
  // std::uniform_int_distribution would make the sequence depend on the standard library.
  return random() % bound;
}

Status FaultInjectingDevice::State::CrashedError() const {
  return Status::IOError(fmt::format("{}: device crashed", inner.name()));
}

Status FaultInjectingDevice::State::Admit(OperationType type, uint64_t offset_bytes,
                                          uint64_t length_bytes, const void* buffer_address) const {
  if (type != OperationType::kFlush) {
    WEFT_RETURN_IF_ERROR(ValidateRequest(inner, offset_bytes, length_bytes, buffer_address));
  }
  if (crashed) return CrashedError();
  if (type == OperationType::kFlush) return Status::Ok();
  const bool is_read = type == OperationType::kRead;
  const auto needed =
      static_cast<uint8_t>(is_read ? FailOperations::kReads : FailOperations::kWrites);
  for (const FailedRange& range : failed_ranges) {
    if ((static_cast<uint8_t>(range.operations) & needed) == 0) continue;
    if (!RangesOverlap(offset_bytes, length_bytes, range.offset_bytes, range.length_bytes)) {
      continue;
    }
    return Status::IOError(fmt::format("{}: injected EIO {} offset {} (failing range [{}, +{}))",
                                       inner.name(), is_read ? "reading" : "writing", offset_bytes,
                                       range.offset_bytes, range.length_bytes));
  }
  if (full && type == OperationType::kWrite) {
    return Status::NoSpace(fmt::format("{}: device is full (injected ENOSPC) writing offset {}",
                                       inner.name(), offset_bytes));
  }
  return Status::Ok();
}

void FaultInjectingDevice::State::AddVersions(uint64_t offset_bytes,
                                              std::span<const std::byte> data, uint64_t sequence) {
  const uint64_t first_sector = offset_bytes / kSectorBytes;
  for (uint64_t done_bytes = 0; done_bytes < data.size(); done_bytes += kSectorBytes) {
    const std::byte* source = data.data() + done_bytes;
    overlay[first_sector + done_bytes / kSectorBytes].push_back(
        SectorVersion{sequence, 0, std::vector<std::byte>(source, source + kSectorBytes)});
  }
}

void FaultInjectingDevice::State::DropVersions(uint64_t offset_bytes, uint64_t length_bytes) {
  const uint64_t first_sector = offset_bytes / kSectorBytes;
  const uint64_t end_sector = (offset_bytes + length_bytes) / kSectorBytes;
  overlay.erase(overlay.lower_bound(first_sector), overlay.lower_bound(end_sector));
}

void FaultInjectingDevice::State::Enqueue(PendingOperation operation) {
  operation.crash_generation = crash_count;
  ++inflight_count;
  ready.push_back(std::move(operation));
}

void FaultInjectingDevice::State::Deliver(PendingOperation operation) {
  WEFT_ASSERT(inflight_count > 0);
  --inflight_count;
  Status status = std::move(operation.status);
  if (operation.crash_generation != crash_count) {
    // In flight at a crash: whatever it did is gone or torn, and the caller must learn so.
    status = CrashedError();
  } else if (status.ok()) {
    switch (operation.type) {
      case OperationType::kRead:
        status = ExecuteRead(operation);
        break;
      case OperationType::kWrite:
        CompleteWrite(operation);
        break;
      case OperationType::kFlush:
        status = ExecuteFlush(operation);
        break;
      case OperationType::kDiscard:
        break;  // Applied at submit.
    }
  }
  operation.done(std::move(status));
}

Status FaultInjectingDevice::State::ExecuteRead(const PendingOperation& operation) {
  std::span<std::byte> buffer(operation.read_buffer, operation.length_bytes);
  WEFT_RETURN_IF_ERROR(ReadSync(inner, operation.offset_bytes, buffer));
  const uint64_t first_sector = operation.offset_bytes / kSectorBytes;
  const uint64_t end_sector = (operation.offset_bytes + operation.length_bytes) / kSectorBytes;
  for (auto entry = overlay.lower_bound(first_sector);
       entry != overlay.end() && entry->first < end_sector; ++entry) {
    WEFT_ASSERT(!entry->second.empty());
    std::memcpy(buffer.data() + (entry->first - first_sector) * kSectorBytes,
                entry->second.back().data.data(), kSectorBytes);
  }
  return Status::Ok();
}

void FaultInjectingDevice::State::CompleteWrite(const PendingOperation& operation) {
  // The contract says a write's buffer stays unmodified until its completion has run; a caller
  // that reuses it early would write different bytes on a real device than it believes.
  WEFT_ASSERT(Crc32c(operation.write_data, operation.length_bytes) == operation.write_crc);
  const uint64_t stamp = ++completion_stamp_last;
  const uint64_t first_sector = operation.offset_bytes / kSectorBytes;
  const uint64_t end_sector = (operation.offset_bytes + operation.length_bytes) / kSectorBytes;
  for (auto entry = overlay.lower_bound(first_sector);
       entry != overlay.end() && entry->first < end_sector; ++entry) {
    // The version may be gone: a flush that made a newer write durable, or a discard, dropped it.
    for (SectorVersion& version : entry->second) {
      if (version.write_sequence == operation.write_sequence) version.completion_stamp = stamp;
    }
  }
}

Status FaultInjectingDevice::State::ExecuteFlush(const PendingOperation& operation) {
  struct Durable {
    std::map<uint64_t, std::vector<SectorVersion>>::iterator entry;
    size_t dropped_count;  // The durable version and every older one.
  };
  std::vector<SectorWrite> writes;
  std::vector<Durable> durables;
  for (auto entry = overlay.begin(); entry != overlay.end(); ++entry) {
    std::vector<SectorVersion>& versions = entry->second;
    for (size_t index = versions.size(); index-- > 0;) {
      const uint64_t stamp = versions[index].completion_stamp;
      if (stamp == 0 || stamp > operation.flush_completion_stamp) continue;
      writes.push_back({entry->first, versions[index].data.data()});
      durables.push_back({entry, index + 1});
      break;
    }
  }
  // On failure nothing is dropped: every version stays readable and may still be lost in a crash.
  WEFT_RETURN_IF_ERROR(WriteSectorsToInner(writes));
  for (const Durable& durable : durables) {
    std::vector<SectorVersion>& versions = durable.entry->second;
    versions.erase(versions.begin(),
                   versions.begin() + static_cast<ptrdiff_t>(durable.dropped_count));
    if (versions.empty()) overlay.erase(durable.entry);
  }
  WEFT_RETURN_IF_ERROR(FlushSync(inner));
  ++flush_count;
  return Status::Ok();
}

Status FaultInjectingDevice::State::WriteSectorsToInner(const std::vector<SectorWrite>& writes) {
  // The inner device may need 4096-byte alignment while sectors are 512 bytes, so each run of
  // touched inner blocks is read, patched and written back whole.
  const uint64_t block_bytes = inner.alignment_bytes();
  const uint64_t sectors_per_block = block_bytes / kSectorBytes;
  size_t run_begin = 0;
  while (run_begin < writes.size()) {
    const uint64_t run_first_block = writes[run_begin].sector_index / sectors_per_block;
    uint64_t run_last_block = run_first_block;
    size_t run_end = run_begin + 1;
    while (run_end < writes.size()) {
      WEFT_DASSERT(writes[run_end].sector_index > writes[run_end - 1].sector_index);
      const uint64_t block = writes[run_end].sector_index / sectors_per_block;
      if (block > run_last_block + 1) break;
      if ((block + 1 - run_first_block) * block_bytes > kInnerRunBytesMax) break;
      run_last_block = block;
      ++run_end;
    }
    const uint64_t run_offset_bytes = run_first_block * block_bytes;
    AlignedBuffer run((run_last_block + 1 - run_first_block) * block_bytes);
    if ((run_end - run_begin) * kSectorBytes < run.size()) {
      WEFT_RETURN_IF_ERROR(ReadSync(inner, run_offset_bytes, run.span()));
    }
    for (size_t index = run_begin; index < run_end; ++index) {
      std::memcpy(run.data() + writes[index].sector_index * kSectorBytes - run_offset_bytes,
                  writes[index].data, kSectorBytes);
    }
    WEFT_RETURN_IF_ERROR(WriteSync(inner, run_offset_bytes, run.span()));
    run_begin = run_end;
  }
  return Status::Ok();
}

FaultInjectingDevice::FaultInjectingDevice(BlockDevice& inner, uint64_t seed)
    : state_(std::make_unique<State>(inner, seed)) {
  WEFT_ASSERT(inner.alignment_bytes() % kSectorBytes == 0);
  WEFT_ASSERT(inner.inflight_count() == 0);
}

FaultInjectingDevice::~FaultInjectingDevice() = default;

uint64_t FaultInjectingDevice::size_bytes() const { return state_->inner.size_bytes(); }

uint32_t FaultInjectingDevice::alignment_bytes() const { return state_->inner.alignment_bytes(); }

const std::string& FaultInjectingDevice::name() const { return state_->inner.name(); }

void FaultInjectingDevice::SubmitRead(uint64_t offset_bytes, std::span<std::byte> buffer,
                                      IoCompletion done) {
  State::PendingOperation operation;
  operation.type = State::OperationType::kRead;
  operation.offset_bytes = offset_bytes;
  operation.length_bytes = buffer.size();
  operation.read_buffer = buffer.data();
  operation.status = state_->Admit(operation.type, offset_bytes, buffer.size(), buffer.data());
  operation.done = std::move(done);
  state_->Enqueue(std::move(operation));
}

void FaultInjectingDevice::SubmitWrite(uint64_t offset_bytes, std::span<const std::byte> data,
                                       IoCompletion done) {
  State::PendingOperation operation;
  operation.type = State::OperationType::kWrite;
  operation.offset_bytes = offset_bytes;
  operation.length_bytes = data.size();
  operation.write_data = data.data();
  operation.status = state_->Admit(operation.type, offset_bytes, data.size(), data.data());
  if (operation.status.ok()) {
    operation.write_crc = Crc32c(data);
    operation.write_sequence = ++state_->write_sequence_last;
    state_->AddVersions(offset_bytes, data, operation.write_sequence);
    ++state_->write_count;
  }
  operation.done = std::move(done);
  state_->Enqueue(std::move(operation));
}

void FaultInjectingDevice::SubmitFlush(IoCompletion done) {
  State::PendingOperation operation;
  operation.type = State::OperationType::kFlush;
  // Only writes whose completion has already run are covered, even if others complete before
  // this flush gets to run.
  operation.flush_completion_stamp = state_->completion_stamp_last;
  operation.status = state_->Admit(operation.type, 0, 0, nullptr);
  operation.done = std::move(done);
  state_->Enqueue(std::move(operation));
}

void FaultInjectingDevice::SubmitDiscard(uint64_t offset_bytes, uint64_t length_bytes,
                                         IoCompletion done) {
  State::PendingOperation operation;
  operation.type = State::OperationType::kDiscard;
  operation.offset_bytes = offset_bytes;
  operation.length_bytes = length_bytes;
  operation.status = state_->Admit(operation.type, offset_bytes, length_bytes, nullptr);
  if (operation.status.ok()) {
    state_->DropVersions(offset_bytes, length_bytes);
    operation.status = DiscardSync(state_->inner, offset_bytes, length_bytes);
  }
  operation.done = std::move(done);
  state_->Enqueue(std::move(operation));
}

size_t FaultInjectingDevice::Poll(bool /*wait*/) {
  // Only what is ready now runs; operations submitted by these completions wait for the next
  // Poll, as on a real device. Nothing here is ever waited for, so wait=true cannot block. The
  // batch is local so that a completion may call Poll (say, through ReadSync) or Crash().
  std::vector<State::PendingOperation> batch;
  batch.swap(state_->ready);
  for (size_t index = batch.size(); index > 1; --index) {
    std::swap(batch[index - 1], batch[state_->UniformBelow(index)]);
  }
  for (State::PendingOperation& operation : batch) state_->Deliver(std::move(operation));
  return batch.size();
}

size_t FaultInjectingDevice::inflight_count() const { return state_->inflight_count; }

uint64_t FaultInjectingDevice::Crash(CrashMode mode) {
  const uint64_t unsynced_sector_count = state_->overlay.size();
  if (mode == CrashMode::kTearRandomly) {
    std::vector<State::SectorWrite> writes;
    for (const auto& [sector_index, versions] : state_->overlay) {
      // 0 keeps the durable bytes; the newest version is no likelier than any other outcome.
      const uint64_t choice = state_->UniformBelow(versions.size() + 1);
      if (choice > 0) writes.push_back({sector_index, versions[choice - 1].data.data()});
    }
    // Crash() has no way to report an error, and going on would leave the durable state unknown.
    const Status status = state_->WriteSectorsToInner(writes);
    WEFT_ASSERT(status.ok());
  }
  state_->overlay.clear();
  state_->crashed = true;
  ++state_->crash_count;
  return unsynced_sector_count;
}

void FaultInjectingDevice::Revive() { state_->crashed = false; }

bool FaultInjectingDevice::crashed() const { return state_->crashed; }

void FaultInjectingDevice::FlipBit(uint64_t offset_bytes, uint8_t bit_index) {
  WEFT_ASSERT(bit_index < 8);
  WEFT_ASSERT(offset_bytes < size_bytes());
  const std::byte mask = std::byte{1} << bit_index;
  const uint64_t block_bytes = alignment_bytes();
  const uint64_t block_offset_bytes = offset_bytes - offset_bytes % block_bytes;
  AlignedBuffer block(block_bytes);
  // Fault injection is test set-up with no way to report an error; a failing inner device there
  // is a broken test environment.
  Status status = ReadSync(state_->inner, block_offset_bytes, block.span());
  WEFT_ASSERT(status.ok());
  block.data()[offset_bytes - block_offset_bytes] ^= mask;
  status = WriteSync(state_->inner, block_offset_bytes, block.span());
  WEFT_ASSERT(status.ok());
  auto entry = state_->overlay.find(offset_bytes / kSectorBytes);
  if (entry == state_->overlay.end()) return;
  for (State::SectorVersion& version : entry->second) {
    version.data[offset_bytes % kSectorBytes] ^= mask;
  }
}

void FaultInjectingDevice::FailRange(uint64_t offset_bytes, uint64_t length_bytes,
                                     FailOperations operations) {
  state_->failed_ranges.push_back({offset_bytes, length_bytes, operations});
}

void FaultInjectingDevice::ClearFailures() { state_->failed_ranges.clear(); }

void FaultInjectingDevice::SetFull(bool full) { state_->full = full; }

uint64_t FaultInjectingDevice::unsynced_sector_count() const { return state_->overlay.size(); }

uint64_t FaultInjectingDevice::flush_count() const { return state_->flush_count; }

uint64_t FaultInjectingDevice::write_count() const { return state_->write_count; }

void FaultInjectingDevice::Wake() { state_->inner.Wake(); }

size_t FaultInjectingDevice::PollUntilWoken() {
  // Completions held here are ready at once; otherwise wait as the inner device does.
  const size_t ran = Poll(/*wait=*/false);
  if (ran > 0) return ran;
  return state_->inner.PollUntilWoken() + Poll(/*wait=*/false);
}

}  // namespace weft::env
