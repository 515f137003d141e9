// Applying journal records to the in-memory state. The same code runs for a live change and for
// replay at open, so the state after replay is exactly the state that was journaled.
#include <fmt/format.h>

#include <algorithm>

#include "blockstore/blockstore_impl.h"

namespace weft::blockstore {

namespace {

Status RecordError(const format::JournalRecord& record, std::string_view problem) {
  return Status::Corruption(fmt::format("journal record type {} (file {}, value {}, {} blocks): {}",
                                        record.type, record.file_id, record.value,
                                        record.block_count, problem));
}

}  // namespace

Status Blockstore::State::FreeFileBlocksBeyond(File& file, uint64_t keep_blocks, bool live) {
  uint64_t seen_blocks = 0;
  std::vector<BlockRun> kept;
  for (const BlockRun& run : file.runs) {
    if (seen_blocks >= keep_blocks) {
      ReleaseToQuarantine(run, live);
      file_blocks -= run.block_count;
    } else if (seen_blocks + run.block_count > keep_blocks) {
      const uint32_t keep = static_cast<uint32_t>(keep_blocks - seen_blocks);
      kept.push_back({run.first_block, keep});
      const BlockRun tail{run.first_block + keep, run.block_count - keep};
      ReleaseToQuarantine(tail, live);
      file_blocks -= tail.block_count;
    } else {
      kept.push_back(run);
    }
    seen_blocks += run.block_count;
  }
  file_run_count -= file.runs.size() - kept.size();
  file.runs = std::move(kept);
  file.allocated_blocks = std::min(file.allocated_blocks, keep_blocks);
  return Status::Ok();
}

Status Blockstore::State::ApplyRecord(const format::JournalRecord& record, std::string_view name,
                                      bool live) {
  const auto type = static_cast<format::RecordType>(record.type);
  const bool is_run = type == format::RecordType::kAllocate || type == format::RecordType::kFree ||
                      type == format::RecordType::kFileExtend;
  if (is_run && !InDataArea(record.value, record.block_count)) {
    return RecordError(record, "run outside the data area");
  }
  File* file = nullptr;
  if (type >= format::RecordType::kFileExtend && type <= format::RecordType::kFileRename) {
    auto found = files.find(record.file_id);
    if (found == files.end()) return RecordError(record, "no such file");
    file = &found->second;
  }
  switch (type) {
    case format::RecordType::kAllocate:
    case format::RecordType::kFileExtend: {
      if (!allocated.AllClear(record.value, record.block_count)) {
        return RecordError(record, "allocates blocks that are in use");
      }
      const BlockRun run{record.value, record.block_count};
      MarkAllocated(run);
      if (file == nullptr) return Status::Ok();
      if (file_run_count >= superblock.max_file_runs) {
        return RecordError(record, "file run limit exceeded");
      }
      file_blocks += run.block_count;
      file->allocated_blocks += run.block_count;
      if (!file->runs.empty() && file->runs.back().end_block() == run.first_block) {
        file->runs.back().block_count += run.block_count;  // Grown in place: still one run.
      } else {
        file->runs.push_back(run);
        ++file_run_count;
      }
      return Status::Ok();
    }
    case format::RecordType::kFree:
      if (!allocated.AllSet(record.value, record.block_count)) {
        return RecordError(record, "frees blocks that are not in use");
      }
      ReleaseToQuarantine({record.value, record.block_count}, live);
      return Status::Ok();
    case format::RecordType::kFileCreate: {
      if (files.contains(record.file_id)) return RecordError(record, "file id in use");
      if (name.empty() || file_names.contains(name)) return RecordError(record, "bad name");
      if (files.size() >= superblock.max_files) return RecordError(record, "too many files");
      File& created = files[record.file_id];
      created.id = record.file_id;
      created.name = std::string(name);
      file_names.emplace(created.name, created.id);
      next_file_id = std::max(next_file_id, record.file_id + 1);
      return Status::Ok();
    }
    case format::RecordType::kFileSize:
      if (record.value > file->allocated_blocks * block_size_bytes) {
        return RecordError(record, "size beyond the file's blocks");
      }
      file->recorded_size_bytes = record.value;
      if (!live) file->size_bytes = file->queued_size_bytes = record.value;
      return Status::Ok();
    case format::RecordType::kFileTruncate: {
      if (record.value > file->allocated_blocks * block_size_bytes) {
        return RecordError(record, "truncates beyond the file's blocks");
      }
      const uint64_t keep_blocks = (record.value + block_size_bytes - 1) / block_size_bytes;
      WEFT_RETURN_IF_ERROR(FreeFileBlocksBeyond(*file, keep_blocks, live));
      file->recorded_size_bytes = std::min(file->recorded_size_bytes, record.value);
      file->size_bytes = file->queued_size_bytes = record.value;
      if (!live) file->size_bytes = file->queued_size_bytes = file->recorded_size_bytes;
      file->tail_valid = false;
      return Status::Ok();
    }
    case format::RecordType::kFileDelete:
    case format::RecordType::kFileRename: {
      if (type == format::RecordType::kFileRename) {
        if (name.empty()) return RecordError(record, "empty name");
        auto existing = file_names.find(name);
        if (existing != file_names.end() && existing->second != file->id) {
          File& replaced = files.at(existing->second);
          WEFT_RETURN_IF_ERROR(FreeFileBlocksBeyond(replaced, 0, live));
          file_names.erase(existing);
          files.erase(replaced.id);
        }
        file_names.erase(file->name);
        file->name = std::string(name);
        file_names[file->name] = file->id;
        return Status::Ok();
      }
      WEFT_RETURN_IF_ERROR(FreeFileBlocksBeyond(*file, 0, live));
      file_names.erase(file->name);
      files.erase(file->id);
      return Status::Ok();
    }
  }
  return RecordError(record, "unknown record type");
}

}  // namespace weft::blockstore
