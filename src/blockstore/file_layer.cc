// The file layer: named, append-only files over blockstore runs. Metadata changes are journal
// records (blockstore_records.cc); data goes straight to the file's blocks.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "blockstore/file_layer_impl.h"

namespace weft::blockstore {

Status FileLayerImpl::CheckName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return Status::InvalidArgument(
        fmt::format("file name of {} bytes: must be 1..{} bytes", name.size(), kMaxNameBytes));
  }
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return Status::InvalidArgument(fmt::format("file name '{}' contains '/' or NUL", name));
  }
  return Status::Ok();
}

File* FileLayerImpl::Find(FileId id) {
  auto found = state_.files.find(id);
  return found == state_.files.end() ? nullptr : &found->second;
}

bool FileLayerImpl::Busy(const File& file) {
  return !file.appends.empty() || file.reads_in_flight > 0 || file.writes_in_flight > 0 ||
         !file.sync_waiters.empty() || file.syncs_in_flight > 0;
}

Result<FileId> FileLayerImpl::Create(std::string_view name) {
  WEFT_RETURN_IF_ERROR(CheckName(name));
  if (state_.file_names.contains(name)) {
    return Status::AlreadyExists(fmt::format("file '{}' exists", name));
  }
  if (state_.files.size() >= state_.superblock.max_files) {
    return Status::NoSpace(fmt::format("file table full ({} files)", state_.superblock.max_files));
  }
  const FileId id = state_.next_file_id;
  state_.AppendLiveRecord(format::RecordType::kFileCreate, id, 0, 0, name);
  WEFT_ASSERT(state_.files.contains(id));
  state_.files.at(id).journal_dirty = true;  // A Sync must make the creation durable.
  return id;
}

Result<FileId> FileLayerImpl::Lookup(std::string_view name) const {
  auto found = state_.file_names.find(name);
  if (found == state_.file_names.end()) return Status::NotFound(fmt::format("no file '{}'", name));
  return found->second;
}

Status FileLayerImpl::Delete(std::string_view name) {
  WEFT_ASSIGN_OR_RETURN(FileId id, Lookup(name));
  if (Busy(state_.files.at(id)))
    return Status::Busy(fmt::format("file '{}' has I/O running", name));
  state_.AppendLiveRecord(format::RecordType::kFileDelete, id, 0, 0);
  WEFT_ASSERT(!state_.files.contains(id));
  return Status::Ok();
}

Status FileLayerImpl::Rename(std::string_view from, std::string_view to) {
  WEFT_RETURN_IF_ERROR(CheckName(to));
  WEFT_ASSIGN_OR_RETURN(FileId id, Lookup(from));
  if (from == to) return Status::Ok();
  if (Busy(state_.files.at(id)))
    return Status::Busy(fmt::format("file '{}' has I/O running", from));
  auto target = state_.file_names.find(to);
  if (target != state_.file_names.end() && Busy(state_.files.at(target->second))) {
    return Status::Busy(fmt::format("file '{}' has I/O running", to));
  }
  state_.AppendLiveRecord(format::RecordType::kFileRename, id, 0, 0, to);
  WEFT_ASSERT(state_.file_names.at(std::string(to)) == id);
  state_.files.at(id).journal_dirty = true;
  return Status::Ok();
}

std::vector<FileInfo> FileLayerImpl::List() const {
  std::vector<FileInfo> infos;
  for (const auto& [name, id] : state_.file_names) infos.push_back(Stat(id).value());
  return infos;
}

Result<FileInfo> FileLayerImpl::Stat(FileId id) const {
  auto found = state_.files.find(id);
  if (found == state_.files.end()) return Status::NotFound(fmt::format("no file id {}", id));
  const File& file = found->second;
  return FileInfo{file.id, file.name, file.size_bytes,
                  file.allocated_blocks * state_.block_size_bytes};
}

uint64_t FileLayerImpl::PhysicalBlock(const File& file, uint64_t index) const {
  for (const BlockRun& run : file.runs) {
    if (index < run.block_count) return run.first_block + index;
    index -= run.block_count;
  }
  WEFT_ASSERT(false && "file block index beyond the file's runs");
  return 0;
}

Status FileLayerImpl::Reserve(File& file, uint64_t size_bytes) {
  const uint64_t block_size = state_.block_size_bytes;
  const uint64_t needed_blocks = (size_bytes + block_size - 1) / block_size;
  while (file.allocated_blocks < needed_blocks) {
    // Grow by at least a quarter of the file (16 blocks minimum, 4 MiB maximum) so a file that
    // grows by small appends still ends up in few runs.
    const uint64_t max_run = Blockstore::kMaxRunBytes / block_size;
    const uint64_t want = std::clamp<uint64_t>(
        std::max<uint64_t>(needed_blocks - file.allocated_blocks, file.allocated_blocks / 4), 16,
        max_run);
    const uint64_t free = state_.block_count - state_.data_first_block() -
                          state_.allocated_data_blocks - state_.quarantined_blocks;
    uint32_t count = static_cast<uint32_t>(std::min(want, free));
    if (count == 0)
      return Status::NoSpace(fmt::format("{}: no free blocks", state_.device->name()));
    // Extend the last run in place when the blocks after it are free: no new run.
    if (!file.runs.empty() && state_.TryAllocateAt(file.runs.back().end_block(), count)) {
      state_.AppendLiveRecord(format::RecordType::kFileExtend, file.id,
                              file.runs.back().end_block(), count);
      continue;
    }
    if (state_.file_run_count >= state_.superblock.max_file_runs) {
      return Status::NoSpace(
          fmt::format("file run limit ({}) reached", state_.superblock.max_file_runs));
    }
    Result<BlockRun> run = state_.FindFreeRun(count, state_.allocation_cursor);
    while (!run.ok() && count > 1) {
      count /= 2;
      run = state_.FindFreeRun(count, state_.allocation_cursor);
    }
    if (!run.ok()) return run.status();
    state_.AppendLiveRecord(format::RecordType::kFileExtend, file.id, run->first_block,
                            run->block_count);
    state_.allocation_cursor = run->end_block();
  }
  return Status::Ok();
}

void FileLayerImpl::SubmitBlocks(const File& file, uint64_t first_index, uint64_t count,
                                 std::byte* buffer, bool write, env::IoCompletion done) {
  struct Pending {
    uint32_t remaining = 0;
    Status first_error;
    env::IoCompletion done;
  };
  auto pending = std::make_shared<Pending>();
  pending->done = std::move(done);
  const uint64_t block_size = state_.block_size_bytes;
  uint64_t index = 0;
  std::vector<std::pair<uint64_t, uint64_t>> pieces;  // (physical first block, block count)
  while (index < count) {
    const uint64_t physical = PhysicalBlock(file, first_index + index);
    uint64_t length = 1;
    while (index + length < count &&
           PhysicalBlock(file, first_index + index + length) == physical + length) {
      ++length;
    }
    pieces.emplace_back(physical, length);
    index += length;
  }
  pending->remaining = static_cast<uint32_t>(pieces.size());
  std::byte* at = buffer;
  for (const auto& [physical, length] : pieces) {
    auto piece_done = [pending](Status status) {
      if (!status.ok() && pending->first_error.ok()) pending->first_error = std::move(status);
      if (--pending->remaining == 0) pending->done(pending->first_error);
    };
    const uint64_t offset = physical * block_size;
    if (write) {
      state_.device->SubmitWrite(offset, {at, length * block_size}, piece_done);
    } else {
      state_.device->SubmitRead(offset, {at, length * block_size}, piece_done);
    }
    at += length * block_size;
  }
}

void FileLayerImpl::Append(FileId id, std::span<const std::byte> data, env::IoCompletion done) {
  File* file = Find(id);
  if (file == nullptr) {
    state_.Defer(std::move(done), Status::NotFound(fmt::format("no file id {}", id)));
    return;
  }
  file->appends.push_back({std::vector<std::byte>(data.begin(), data.end()), std::move(done)});
  file->queued_size_bytes += data.size();
  if (!file->append_in_flight) StartNextAppend(*file);
}

void FileLayerImpl::StartNextAppend(File& file) {
  WEFT_ASSERT(!file.append_in_flight);
  if (file.appends.empty()) {
    RunSyncWaiters(file);
    return;
  }
  file.append_in_flight = true;
  if (file.size_bytes % state_.block_size_bytes != 0 && !file.tail_valid) {
    LoadTailThenAppend(file);
  } else {
    WriteAppend(file);
  }
}

void FileLayerImpl::LoadTailThenAppend(File& file) {
  // After open or truncate the partial last block's bytes are only on disk; the append
  // rewrites that whole block, so read it first.
  const uint64_t block_size = state_.block_size_bytes;
  file.tail = state_.device->AllocateBuffer(block_size);
  const uint64_t tail_index = file.size_bytes / block_size;
  const FileId id = file.id;
  SubmitBlocks(file, tail_index, 1, file.tail.data(), /*write=*/false, [this, id](Status status) {
    File* reloaded = Find(id);
    WEFT_ASSERT(reloaded != nullptr);  // Busy files cannot be deleted.
    if (!status.ok()) {
      FinishAppend(id, std::move(status), reloaded->size_bytes, false);
      return;
    }
    reloaded->tail_valid = true;
    WriteAppend(*reloaded);
  });
}

void FileLayerImpl::WriteAppend(File& file) {
  const uint64_t block_size = state_.block_size_bytes;
  const std::vector<std::byte>& data = file.appends.front().data;
  const uint64_t new_size = file.size_bytes + data.size();
  if (data.empty()) {
    FinishAppend(file.id, Status::Ok(), new_size, false);
    return;
  }
  if (Status reserved = Reserve(file, new_size); !reserved.ok()) {
    FinishAppend(file.id, std::move(reserved), file.size_bytes, true);
    return;
  }
  // Rewrite from the start of the partial tail block: its old bytes, then the new data.
  const uint64_t first_index = file.size_bytes / block_size;
  const uint64_t tail_bytes = file.size_bytes % block_size;
  const uint64_t block_total = (new_size + block_size - 1) / block_size - first_index;
  auto buffer =
      std::make_shared<AlignedBuffer>(state_.device->AllocateBuffer(block_total * block_size));
  std::memset(buffer->data(), 0, buffer->size());
  if (tail_bytes > 0) {
    WEFT_ASSERT(file.tail_valid);
    std::memcpy(buffer->data(), file.tail.data(), tail_bytes);
  }
  std::memcpy(buffer->data() + tail_bytes, data.data(), data.size());
  const FileId id = file.id;
  SubmitBlocks(file, first_index, block_total, buffer->data(), /*write=*/true,
               [this, id, buffer, new_size, block_total](Status status) {
                 File* written = Find(id);
                 WEFT_ASSERT(written != nullptr);
                 if (status.ok()) {
                   // Keep the new partial tail for the next append.
                   const uint64_t block_size = state_.block_size_bytes;
                   if (written->tail.size() != block_size) {
                     written->tail = state_.device->AllocateBuffer(block_size);
                   }
                   std::memcpy(written->tail.data(),
                               buffer->data() + (block_total - 1) * block_size, block_size);
                   written->tail_valid = true;
                 }
                 FinishAppend(id, std::move(status), new_size, false);
               });
}

void FileLayerImpl::FinishAppend(FileId id, Status status, uint64_t new_size_bytes,
                                 bool failed_allocation) {
  File* file = Find(id);
  WEFT_ASSERT(file != nullptr && file->append_in_flight);
  File::PendingAppend append = std::move(file->appends.front());
  file->appends.pop_front();
  file->append_in_flight = false;
  if (status.ok()) {
    WEFT_ASSERT(new_size_bytes == file->size_bytes + append.data.size());
    file->size_bytes = new_size_bytes;
  } else {
    // The bytes are not part of the file; a failed write may have left the tail block in either
    // state on disk, so reload it before the next append.
    file->queued_size_bytes -= append.data.size();
    if (!failed_allocation) file->tail_valid = false;
  }
  append.done(std::move(status));
  if (Find(id) != nullptr && !Find(id)->append_in_flight) StartNextAppend(*Find(id));
}

void FileLayerImpl::Read(FileId id, uint64_t offset_bytes, std::span<std::byte> buffer,
                         ReadCompletion done) {
  File* file = Find(id);
  if (file == nullptr) {
    state_.Defer([done](Status status) { done(std::move(status), 0); },
                 Status::NotFound(fmt::format("no file id {}", id)));
    return;
  }
  const uint64_t end = std::min<uint64_t>(file->size_bytes, offset_bytes + buffer.size());
  if (offset_bytes >= end) {
    state_.Defer([done](Status status) { done(std::move(status), 0); }, Status::Ok());
    return;
  }
  const uint64_t block_size = state_.block_size_bytes;
  const uint64_t first_index = offset_bytes / block_size;
  const uint64_t block_total = (end + block_size - 1) / block_size - first_index;
  auto bounce =
      std::make_shared<AlignedBuffer>(state_.device->AllocateBuffer(block_total * block_size));
  ++file->reads_in_flight;
  SubmitBlocks(*file, first_index, block_total, bounce->data(), /*write=*/false,
               [this, id, bounce, buffer, offset_bytes, end, first_index, done](Status status) {
                 File* read_file = Find(id);
                 WEFT_ASSERT(read_file != nullptr && read_file->reads_in_flight > 0);
                 --read_file->reads_in_flight;
                 if (!status.ok()) {
                   done(std::move(status), 0);
                   return;
                 }
                 const uint64_t skip = offset_bytes - first_index * state_.block_size_bytes;
                 std::memcpy(buffer.data(), bounce->data() + skip, end - offset_bytes);
                 done(Status::Ok(), end - offset_bytes);
               });
}

Status FileLayerImpl::Truncate(FileId id, uint64_t size_bytes) {
  File* file = Find(id);
  if (file == nullptr) return Status::NotFound(fmt::format("no file id {}", id));
  if (Busy(*file)) {
    return Status::Busy(fmt::format("file '{}' has I/O running", file->name));
  }
  if (size_bytes > file->size_bytes) {
    return Status::InvalidArgument(fmt::format("cannot truncate '{}' of {} bytes to {} bytes",
                                               file->name, file->size_bytes, size_bytes));
  }
  if (size_bytes == file->size_bytes) return Status::Ok();
  state_.AppendLiveRecord(format::RecordType::kFileTruncate, id, size_bytes, 0);
  WEFT_ASSERT(file->size_bytes == size_bytes);
  file->journal_dirty = true;
  return Status::Ok();
}

void FileLayerImpl::Sync(FileId id, env::IoCompletion done) {
  File* file = Find(id);
  if (file == nullptr) {
    state_.Defer(std::move(done), Status::NotFound(fmt::format("no file id {}", id)));
    return;
  }
  file->sync_waiters.push_back(std::move(done));
  if (!file->append_in_flight) RunSyncWaiters(*file);
}

void FileLayerImpl::RunSyncWaiters(File& file) {
  // Every append queued before these syncs has completed. Flush the data first, and only then
  // journal the new size: the size record must never be durable before the bytes it covers.
  if (file.sync_waiters.empty()) return;
  auto waiters = std::make_shared<std::vector<env::IoCompletion>>(std::move(file.sync_waiters));
  file.sync_waiters.clear();
  ++file.syncs_in_flight;
  const FileId id = file.id;
  const uint64_t size_bytes = file.size_bytes;
  // In-place writes into a file whose size and blocks are already journaled need only the
  // flush. A journal round still in flight for this file must complete first, though (it may
  // carry this file's size), so its presence forces the slow path too.
  const bool flush_only = size_bytes <= file.recorded_size_bytes && !file.journal_dirty &&
                          file.journal_syncs_in_flight == 0;
  if (flush_only) {
    state_.SubmitFlush([this, id, waiters](Status status) {
      File* synced = Find(id);
      WEFT_ASSERT(synced != nullptr && synced->syncs_in_flight > 0);
      --synced->syncs_in_flight;
      for (auto& waiter : *waiters) waiter(status);
    });
    return;
  }
  file.journal_dirty = false;
  ++file.journal_syncs_in_flight;
  auto finish = [this, id, waiters](const Status& status) {
    File* synced = Find(id);
    WEFT_ASSERT(synced != nullptr && synced->syncs_in_flight > 0);
    WEFT_ASSERT(synced->journal_syncs_in_flight > 0);
    --synced->syncs_in_flight;
    --synced->journal_syncs_in_flight;
    // A failed round may not have persisted this file's records: journal them again next time.
    if (!status.ok()) synced->journal_dirty = true;
    for (auto& waiter : *waiters) waiter(status);
  };
  state_.SubmitFlush([this, id, size_bytes, finish](Status status) {
    if (!status.ok()) {
      finish(std::move(status));
      return;
    }
    File* flushed = Find(id);
    WEFT_ASSERT(flushed != nullptr);
    if (size_bytes > flushed->recorded_size_bytes) {
      state_.AppendLiveRecord(format::RecordType::kFileSize, id, size_bytes, 0);
    }
    state_.PersistMetadata([this, finish](Status persisted) {
      if (!persisted.ok()) {
        finish(std::move(persisted));
        return;
      }
      state_.SubmitFlush(finish);
    });
  });
}

Status FileLayerImpl::Preallocate(FileId id, uint64_t size_bytes) {
  File* file = Find(id);
  if (file == nullptr) return Status::NotFound(fmt::format("no file id {}", id));
  if (!file->appends.empty()) {
    return Status::Busy(fmt::format("file '{}' has appends running", file->name));
  }
  if (size_bytes < file->size_bytes || size_bytes % state_.block_size_bytes != 0) {
    return Status::InvalidArgument(
        fmt::format("cannot preallocate '{}' of {} bytes to {} bytes (a smaller size, or not a "
                    "multiple of {})",
                    file->name, file->size_bytes, size_bytes, state_.block_size_bytes));
  }
  if (size_bytes == file->size_bytes) return Status::Ok();
  WEFT_RETURN_IF_ERROR(Reserve(*file, size_bytes));
  state_.AppendLiveRecord(format::RecordType::kFileSize, id, size_bytes, 0);
  file->size_bytes = file->queued_size_bytes = size_bytes;
  // The tail block (if the old size was partial) is now whole and undefined past the old end.
  file->tail_valid = false;
  file->journal_dirty = true;
  WEFT_ASSERT(file->recorded_size_bytes == size_bytes);
  return Status::Ok();
}

void FileLayerImpl::Write(FileId id, uint64_t offset_bytes, std::span<const std::byte> data,
                          env::IoCompletion done) {
  File* file = Find(id);
  if (file == nullptr) {
    state_.Defer(std::move(done), Status::NotFound(fmt::format("no file id {}", id)));
    return;
  }
  const uint64_t block_size = state_.block_size_bytes;
  if (data.empty() || offset_bytes % block_size != 0 || data.size() % block_size != 0 ||
      offset_bytes > file->size_bytes || data.size() > file->size_bytes - offset_bytes) {
    state_.Defer(std::move(done),
                 Status::InvalidArgument(fmt::format(
                     "write of {} bytes at {} in '{}' of {} bytes: must be non-empty, "
                     "{}-aligned and inside the file",
                     data.size(), offset_bytes, file->name, file->size_bytes, block_size)));
    return;
  }
  auto buffer = std::make_shared<AlignedBuffer>(state_.device->AllocateBuffer(data.size()));
  std::memcpy(buffer->data(), data.data(), data.size());
  // Whole blocks inside the size never include a partial tail block, so the append path's
  // cached tail stays valid.
  WEFT_ASSERT(offset_bytes + data.size() <= file->size_bytes / block_size * block_size);
  ++file->writes_in_flight;
  SubmitBlocks(*file, offset_bytes / block_size, data.size() / block_size, buffer->data(),
               /*write=*/true, [this, id, buffer, done = std::move(done)](Status status) {
                 File* written = Find(id);
                 WEFT_ASSERT(written != nullptr && written->writes_in_flight > 0);
                 --written->writes_in_flight;
                 done(std::move(status));
               });
}

}  // namespace weft::blockstore
