// Persisting the blockstore's metadata: journal rounds, checkpoints, flushes, and replay at open.
// Format: docs/ondisk/blockstore.md.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "base/crc32c.h"
#include "blockstore/blockstore_impl.h"

namespace weft::blockstore {

namespace {

uint32_t PageCrc(const std::byte* page, uint32_t record_bytes) {
  return Crc32c(page + 4, sizeof(format::JournalPageHeader) - 4 + record_bytes);
}

uint32_t CheckpointHeaderCrc(const format::CheckpointHeader& header) {
  return Crc32c(reinterpret_cast<const std::byte*>(&header) + 4, sizeof(header) - 4);
}

size_t RecordSize(const format::JournalRecord& record) {
  return sizeof(record) + format::PaddedNameBytes(record.name_bytes);
}

}  // namespace

// ---- Journal pages ----

std::vector<AlignedBuffer> Blockstore::State::SerializePages(
    const std::vector<std::byte>& records) {
  std::vector<AlignedBuffer> pages;
  const size_t capacity = block_size_bytes - sizeof(format::JournalPageHeader);
  size_t position = 0;
  while (position < records.size()) {
    AlignedBuffer page(block_size_bytes);
    uint32_t record_bytes = 0;
    uint32_t record_count = 0;
    while (position < records.size()) {
      format::JournalRecord record;
      std::memcpy(&record, records.data() + position, sizeof(record));
      const size_t size = RecordSize(record);
      WEFT_ASSERT(size <= capacity);  // Names are bounded, so any record fits an empty page.
      if (record_bytes + size > capacity) break;
      std::memcpy(page.data() + sizeof(format::JournalPageHeader) + record_bytes,
                  records.data() + position, size);
      record_bytes += static_cast<uint32_t>(size);
      ++record_count;
      position += size;
    }
    format::JournalPageHeader header{};
    header.format_version = format::kFormatVersion;
    header.magic = format::kJournalPageMagic;
    header.blockstore_id = blockstore_id;
    header.sequence = ++last_sequence;
    header.record_bytes = record_bytes;
    header.record_count = record_count;
    std::memcpy(page.data(), &header, sizeof(header));
    header.crc32c = PageCrc(page.data(), record_bytes);
    std::memcpy(page.data(), &header, sizeof(header));
    pages.push_back(std::move(page));
  }
  return pages;
}

// A round writes every pending record: as journal pages when they fit in the rest of the ring,
// otherwise as a new checkpoint (which holds the whole state, these records included) followed
// by a flush, after which the ring starts over.
void Blockstore::State::StartRound() {
  WEFT_ASSERT(!round_in_flight);
  if (next_round_waiters.empty()) return;
  round_in_flight = true;
  round_waiters = std::move(next_round_waiters);
  next_round_waiters.clear();
  // Completions must not run inside PersistMetadata(): finish trivial rounds through Poll().
  if (!metadata_failure.ok()) {
    Defer([this](Status status) { FinishRound(std::move(status), {}); }, metadata_failure);
    return;
  }
  std::vector<std::byte> records = std::move(pending_records);
  pending_records.clear();
  pending_record_count = 0;
  std::vector<BlockRun> frees = std::move(pending_frees);
  pending_frees.clear();
  if (records.empty()) {
    WEFT_ASSERT(frees.empty());
    Defer([this](Status status) { FinishRound(std::move(status), {}); }, Status::Ok());
    return;
  }
  // Count pages before serializing so a checkpoint can take their sequence numbers' place.
  const uint64_t sequence_before = last_sequence;
  std::vector<AlignedBuffer> pages = SerializePages(records);
  const uint64_t page_count = pages.size();
  if (journal_next_slot + page_count <= superblock.journal_blocks) {
    auto buffer = std::make_shared<AlignedBuffer>(page_count * block_size_bytes);
    for (uint64_t i = 0; i < page_count; ++i) {
      std::memcpy(buffer->data() + i * block_size_bytes, pages[i].data(), block_size_bytes);
    }
    const uint64_t offset = (superblock.journal_first_block + journal_next_slot) * block_size_bytes;
    journal_next_slot += static_cast<uint32_t>(page_count);
    counters.journal_pages_written += page_count;
    device->SubmitWrite(offset, buffer->span(),
                        [this, buffer, frees = std::move(frees)](Status status) mutable {
                          FinishRound(std::move(status), std::move(frees));
                        });
    return;
  }
  last_sequence = sequence_before;
  uint32_t checkpoint_blocks = 0;
  const uint64_t sequence = ++last_sequence;
  auto checkpoint =
      std::make_shared<AlignedBuffer>(SerializeCheckpoint(sequence, &checkpoint_blocks));
  const int area = 1 - active_checkpoint;
  const uint64_t offset = superblock.checkpoint_first_block[area] * block_size_bytes;
  counters.checkpoints_written++;
  // The frees in the checkpoint become durable with it; so do those written before.
  frees.insert(frees.end(), written_frees.begin(), written_frees.end());
  written_frees.clear();
  device->SubmitWrite(
      offset, checkpoint->span(),
      [this, checkpoint, area, frees = std::move(frees)](Status status) mutable {
        if (!status.ok()) {
          FinishRound(std::move(status), std::move(frees));
          return;
        }
        device->SubmitFlush([this, area, frees = std::move(frees)](Status flushed) mutable {
          if (flushed.ok()) {
            active_checkpoint = area;
            journal_next_slot = 0;
            counters.flushes++;
            ReleaseQuarantine(frees);
            frees.clear();
          }
          FinishRound(std::move(flushed), std::move(frees));
        });
      });
}

void Blockstore::State::FinishRound(Status status, std::vector<BlockRun> frees) {
  WEFT_ASSERT(round_in_flight);
  if (!status.ok() && metadata_failure.ok()) {
    metadata_failure = status.WithContext("blockstore metadata write failed; reopen required");
    spdlog::error("blockstore: {}: {}", device->name(), metadata_failure.ToString());
  }
  if (status.ok()) {
    written_frees.insert(written_frees.end(), frees.begin(), frees.end());
  }
  // Failed frees stay quarantined: they leak until the next open, never get reused early.
  round_in_flight = false;
  std::vector<env::IoCompletion> waiters = std::move(round_waiters);
  round_waiters.clear();
  for (auto& waiter : waiters) waiter(status.ok() ? Status::Ok() : metadata_failure);
  if (!round_in_flight) StartRound();
}

void Blockstore::State::PersistMetadata(env::IoCompletion done) {
  next_round_waiters.push_back(std::move(done));
  if (!round_in_flight) StartRound();
}

void Blockstore::PersistMetadata(env::IoCompletion done) {
  state_->PersistMetadata(std::move(done));
}

void Blockstore::State::SubmitFlush(env::IoCompletion done) {
  // Frees whose records were written before this flush become durable with it.
  std::vector<BlockRun> frees = std::move(written_frees);
  written_frees.clear();
  device->SubmitFlush([this, frees = std::move(frees), done = std::move(done)](Status status) {
    if (status.ok()) {
      counters.flushes++;
      ReleaseQuarantine(frees);
    } else {
      // Not known to be durable: keep them quarantined until a later flush succeeds.
      written_frees.insert(written_frees.end(), frees.begin(), frees.end());
    }
    done(std::move(status));
  });
}

void Blockstore::Flush(env::IoCompletion done) { state_->SubmitFlush(std::move(done)); }

void Blockstore::State::SyncMetadata(env::IoCompletion done) {
  // Flush first: data written before the call must be durable before metadata describing it.
  SubmitFlush([this, done = std::move(done)](Status status) mutable {
    if (!status.ok()) {
      done(std::move(status));
      return;
    }
    PersistMetadata([this, done = std::move(done)](Status persisted) mutable {
      if (!persisted.ok()) {
        done(std::move(persisted));
        return;
      }
      SubmitFlush(std::move(done));
    });
  });
}

void Blockstore::SyncMetadata(env::IoCompletion done) { state_->SyncMetadata(std::move(done)); }

// ---- Checkpoints ----

Status Blockstore::State::WriteCheckpointSync() {
  WEFT_ASSERT(!round_in_flight);
  WEFT_ASSERT(pending_records.empty());
  uint32_t checkpoint_blocks = 0;
  AlignedBuffer checkpoint = SerializeCheckpoint(++last_sequence, &checkpoint_blocks);
  const int area = 1 - active_checkpoint;
  WEFT_RETURN_IF_ERROR(env::WriteSync(
      *device, superblock.checkpoint_first_block[area] * block_size_bytes, checkpoint.span()));
  WEFT_RETURN_IF_ERROR(env::FlushSync(*device));
  active_checkpoint = area;
  journal_next_slot = 0;
  counters.checkpoints_written++;
  return Status::Ok();
}

AlignedBuffer Blockstore::State::SerializeCheckpoint(uint64_t sequence,
                                                     uint32_t* block_count_out) const {
  std::vector<std::byte> payload;
  const auto& words = allocated.words();
  payload.resize(words.size() * sizeof(uint64_t));
  std::memcpy(payload.data(), words.data(), payload.size());
  uint32_t run_total = 0;
  for (const auto& [id, file] : files) {
    format::CheckpointFile entry{};
    entry.file_id = id;
    entry.name_bytes = static_cast<uint16_t>(file.name.size());
    entry.size_bytes = file.recorded_size_bytes;
    entry.run_count = static_cast<uint32_t>(file.runs.size());
    const size_t at = payload.size();
    payload.resize(at + sizeof(entry) + format::PaddedNameBytes(file.name.size()) +
                   file.runs.size() * sizeof(format::CheckpointRun));
    std::memcpy(payload.data() + at, &entry, sizeof(entry));
    std::memcpy(payload.data() + at + sizeof(entry), file.name.data(), file.name.size());
    size_t run_at = at + sizeof(entry) + format::PaddedNameBytes(file.name.size());
    for (const BlockRun& run : file.runs) {
      const format::CheckpointRun stored{run.first_block, run.block_count, 0};
      std::memcpy(payload.data() + run_at, &stored, sizeof(stored));
      run_at += sizeof(stored);
    }
    run_total += entry.run_count;
  }
  format::CheckpointHeader header{};
  header.format_version = format::kFormatVersion;
  header.magic = format::kCheckpointMagic;
  header.blockstore_id = blockstore_id;
  header.sequence = sequence;
  header.block_count = block_count;
  header.payload_bytes = payload.size();
  header.payload_crc32c = Crc32c(payload.data(), payload.size());
  header.file_count = static_cast<uint32_t>(files.size());
  header.file_run_count = run_total;
  header.crc32c = CheckpointHeaderCrc(header);
  const uint64_t payload_blocks = (payload.size() + block_size_bytes - 1) / block_size_bytes;
  *block_count_out = static_cast<uint32_t>(1 + payload_blocks);
  WEFT_ASSERT(*block_count_out <= superblock.checkpoint_blocks ||
              superblock.checkpoint_blocks == 0);
  AlignedBuffer buffer(*block_count_out * uint64_t{block_size_bytes});
  std::memcpy(buffer.data(), &header, sizeof(header));
  std::memcpy(buffer.data() + block_size_bytes, payload.data(), payload.size());
  return buffer;
}

Status Blockstore::State::LoadCheckpoint(int area, uint64_t* sequence_out) {
  const uint64_t offset = superblock.checkpoint_first_block[area] * block_size_bytes;
  AlignedBuffer header_block(block_size_bytes);
  WEFT_RETURN_IF_ERROR(env::ReadSync(*device, offset, header_block.span()));
  format::CheckpointHeader header;
  std::memcpy(&header, header_block.data(), sizeof(header));
  const std::string where = fmt::format("{}: checkpoint area {}", device->name(), area);
  if (header.magic != format::kCheckpointMagic || header.crc32c != CheckpointHeaderCrc(header)) {
    return Status::Corruption(where + ": header missing or failing its checksum");
  }
  if (header.blockstore_id != blockstore_id || header.block_count != block_count ||
      header.format_version != format::kFormatVersion) {
    return Status::Corruption(where + ": belongs to another format of this device");
  }
  const uint64_t bitmap_bytes = (block_count + 63) / 64 * 8;
  const uint64_t max_payload = (superblock.checkpoint_blocks - 1ull) * block_size_bytes;
  if (header.payload_bytes < bitmap_bytes || header.payload_bytes > max_payload) {
    return Status::Corruption(where + ": payload size out of range");
  }
  const uint64_t payload_blocks = (header.payload_bytes + block_size_bytes - 1) / block_size_bytes;
  AlignedBuffer payload(payload_blocks * block_size_bytes);
  WEFT_RETURN_IF_ERROR(env::ReadSync(*device, offset + block_size_bytes, payload.span()));
  if (Crc32c(payload.data(), header.payload_bytes) != header.payload_crc32c) {
    return Status::Corruption(where + ": payload fails its checksum");
  }
  // Load into fresh state.
  allocated = Bitmap(block_count);
  std::memcpy(allocated.words().data(), payload.data(), bitmap_bytes);
  files.clear();
  file_names.clear();
  file_run_count = 0;
  file_blocks = 0;
  allocated_data_blocks = 0;
  for (uint64_t block = data_first_block(); block < block_count; ++block) {
    allocated_data_blocks += allocated.Test(block) ? 1 : 0;
  }
  if (!allocated.AllSet(0, data_first_block())) {
    return Status::Corruption(where + ": metadata blocks are marked free");
  }
  uint64_t at = bitmap_bytes;
  for (uint32_t i = 0; i < header.file_count; ++i) {
    format::CheckpointFile entry;
    if (at + sizeof(entry) > header.payload_bytes) return Status::Corruption(where + ": short");
    std::memcpy(&entry, payload.data() + at, sizeof(entry));
    at += sizeof(entry);
    const uint64_t need = format::PaddedNameBytes(entry.name_bytes) +
                          uint64_t{entry.run_count} * sizeof(format::CheckpointRun);
    if (entry.name_bytes == 0 || entry.name_bytes > FileLayer::kMaxNameBytes ||
        at + need > header.payload_bytes || files.contains(entry.file_id)) {
      return Status::Corruption(where + fmt::format(": file entry {} is malformed", i));
    }
    File& file = files[entry.file_id];
    file.id = entry.file_id;
    file.name.assign(reinterpret_cast<const char*>(payload.data() + at), entry.name_bytes);
    at += format::PaddedNameBytes(entry.name_bytes);
    for (uint32_t r = 0; r < entry.run_count; ++r) {
      format::CheckpointRun stored;
      std::memcpy(&stored, payload.data() + at, sizeof(stored));
      at += sizeof(stored);
      if (!InDataArea(stored.first_block, stored.block_count) ||
          !allocated.AllSet(stored.first_block, stored.block_count)) {
        return Status::Corruption(where +
                                  fmt::format(": file {} has a run of free blocks", file.name));
      }
      file.runs.push_back({stored.first_block, stored.block_count});
      file.allocated_blocks += stored.block_count;
      file_blocks += stored.block_count;
    }
    file_run_count += entry.run_count;
    if (entry.size_bytes > file.allocated_blocks * block_size_bytes ||
        !file_names.emplace(file.name, file.id).second) {
      return Status::Corruption(where + fmt::format(": file {} is inconsistent", file.name));
    }
    file.recorded_size_bytes = file.size_bytes = file.queued_size_bytes = entry.size_bytes;
    next_file_id = std::max(next_file_id, file.id + 1);
  }
  *sequence_out = header.sequence;
  return Status::Ok();
}

Status Blockstore::State::ReplayJournal() {
  // Pages continue the checkpoint's sequence from slot 0; the first page that is torn, stale
  // (lower sequence, from before the checkpoint) or foreign ends the journal.
  AlignedBuffer journal(uint64_t{superblock.journal_blocks} * block_size_bytes);
  WEFT_RETURN_IF_ERROR(
      env::ReadSync(*device, superblock.journal_first_block * block_size_bytes, journal.span()));
  uint32_t slot = 0;
  uint64_t records_applied = 0;
  for (; slot < superblock.journal_blocks; ++slot) {
    const std::byte* page = journal.data() + uint64_t{slot} * block_size_bytes;
    format::JournalPageHeader header;
    std::memcpy(&header, page, sizeof(header));
    if (header.magic != format::kJournalPageMagic || header.blockstore_id != blockstore_id ||
        header.sequence != last_sequence + 1 ||
        header.record_bytes > block_size_bytes - sizeof(header) ||
        header.crc32c != PageCrc(page, header.record_bytes)) {
      break;
    }
    uint32_t position = 0;
    for (uint32_t i = 0; i < header.record_count; ++i) {
      format::JournalRecord record;
      if (position + sizeof(record) > header.record_bytes) {
        return Status::Corruption(
            fmt::format("{}: journal page {} has a short record", device->name(), slot));
      }
      const std::byte* at = page + sizeof(header) + position;
      std::memcpy(&record, at, sizeof(record));
      if (position + RecordSize(record) > header.record_bytes ||
          record.name_bytes > FileLayer::kMaxNameBytes) {
        return Status::Corruption(
            fmt::format("{}: journal page {} has a malformed record", device->name(), slot));
      }
      const std::string_view name(reinterpret_cast<const char*>(at + sizeof(record)),
                                  record.name_bytes);
      WEFT_RETURN_IF_ERROR(
          ApplyRecord(record, name, /*live=*/false)
              .WithContext(fmt::format("{}: journal page {}", device->name(), slot)));
      position += static_cast<uint32_t>(RecordSize(record));
      ++records_applied;
    }
    last_sequence = header.sequence;
  }
  journal_next_slot = slot;
  // Pages after the end may be valid leftovers of a round that was torn before them. Open writes
  // a new checkpoint with a sequence above all of them, so they can never be taken for a
  // continuation of the journal later.
  for (uint32_t later = slot; later < superblock.journal_blocks; ++later) {
    const std::byte* page = journal.data() + uint64_t{later} * block_size_bytes;
    format::JournalPageHeader header;
    std::memcpy(&header, page, sizeof(header));
    if (header.magic == format::kJournalPageMagic && header.blockstore_id == blockstore_id) {
      last_sequence = std::max(last_sequence, header.sequence);
    }
  }
  spdlog::debug("blockstore: {}: replayed {} journal pages, {} records", device->name(), slot,
                records_applied);
  return Status::Ok();
}

}  // namespace weft::blockstore
