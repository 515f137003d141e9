// The file layer's implementation over the blockstore state (file_layer.cc).
#pragma once

#include "blockstore/blockstore_impl.h"
#include "blockstore/file_layer.h"

namespace weft::blockstore {

class FileLayerImpl final : public FileLayer {
 public:
  explicit FileLayerImpl(Blockstore::State& state) : state_(state) {}

  Result<FileId> Create(std::string_view name) override;
  Result<FileId> Lookup(std::string_view name) const override;
  Status Delete(std::string_view name) override;
  Status Rename(std::string_view from, std::string_view to) override;
  std::vector<FileInfo> List() const override;
  Result<FileInfo> Stat(FileId id) const override;
  void Append(FileId id, std::span<const std::byte> data, env::IoCompletion done) override;
  void Read(FileId id, uint64_t offset_bytes, std::span<std::byte> buffer,
            ReadCompletion done) override;
  Status Truncate(FileId id, uint64_t size_bytes) override;
  void Sync(FileId id, env::IoCompletion done) override;
  Status Preallocate(FileId id, uint64_t size_bytes) override;
  void Write(FileId id, uint64_t offset_bytes, std::span<const std::byte> data,
             env::IoCompletion done) override;

 private:
  static Status CheckName(std::string_view name);
  File* Find(FileId id);
  static bool Busy(const File& file);
  // Starts the append at the front of the file's queue, if none is in flight.
  void StartNextAppend(File& file);
  void LoadTailThenAppend(File& file);
  void WriteAppend(File& file);
  void FinishAppend(FileId id, Status status, uint64_t new_size_bytes, bool failed_allocation);
  // Makes sure the file owns blocks for `size_bytes`. NoSpace when the disk or run limit is out.
  Status Reserve(File& file, uint64_t size_bytes);
  // Physical block of the file's `index`th block.
  uint64_t PhysicalBlock(const File& file, uint64_t index) const;
  // Submits writes/reads of consecutive file blocks [first_index, first_index + count) from/to
  // `buffer`, one device operation per physically contiguous piece; `done` runs once with the
  // first error or OK.
  void SubmitBlocks(const File& file, uint64_t first_index, uint64_t count, std::byte* buffer,
                    bool write, env::IoCompletion done);
  void RunSyncWaiters(File& file);

  Blockstore::State& state_;
};

}  // namespace weft::blockstore
