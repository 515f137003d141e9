// FileLayer: a small named-file API over blockstore blocks, for the OpLog and, later, a
// rocksdb::FileSystem (its operations map onto this one: NewWritableFile -> Create, Append,
// Sync, RandomAccess Read, Truncate, DeleteFile, RenameFile, GetChildren -> List).
//
// Files are append-only byte streams with random-access reads. Appended bytes are readable once
// the append's completion has run, and durable after a Sync() submitted after that completes.
// Appends to one file are carried out one after another, in call order. After a crash a file holds
// every byte of its last completed Sync and possibly more appended bytes that were never synced,
// and nothing else: creation, deletion, rename and truncation are journaled like allocations
// (blockstore.h), and a deleted or truncated file's blocks are reused only once that change is
// durable.
//
// Limits (from FormatOptions): max_files files, max_file_runs runs in total, names of 1..200
// bytes without '/' or NUL. Breaking one is InvalidArgument or NoSpace, never a crash.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "env/block_device.h"

namespace weft::blockstore {

using FileId = uint32_t;

struct FileInfo {
  FileId id = 0;
  std::string name;
  uint64_t size_bytes = 0;       // Bytes appended (synced or not).
  uint64_t allocated_bytes = 0;  // Blocks held, in bytes.
};

// Runs with the status and the number of bytes read (short only at end of file).
using ReadCompletion = std::function<void(Status status, uint64_t bytes_read)>;

class FileLayer {
 public:
  static constexpr size_t kMaxNameBytes = 200;

  virtual ~FileLayer() = default;

  // AlreadyExists, InvalidArgument (bad name), NoSpace (file table full).
  virtual Result<FileId> Create(std::string_view name) = 0;
  virtual Result<FileId> Lookup(std::string_view name) const = 0;  // NotFound.
  // Frees the file's blocks (once the deletion is durable). NotFound; Busy while I/O is running.
  virtual Status Delete(std::string_view name) = 0;
  // Renames, replacing `to` if it exists (atomically: after a crash exactly one of the two
  // states). NotFound, InvalidArgument, Busy.
  virtual Status Rename(std::string_view from, std::string_view to) = 0;
  virtual std::vector<FileInfo> List() const = 0;
  virtual Result<FileInfo> Stat(FileId id) const = 0;

  // Appends bytes (any length, any alignment); `data` may be reused as soon as Append returns.
  // `done` runs when the bytes are written to the device (not yet durable). Errors: NoSpace,
  // NotFound, IOError.
  virtual void Append(FileId id, std::span<const std::byte> data, env::IoCompletion done) = 0;
  // Reads up to buffer.size() bytes at `offset_bytes` (any alignment). Reads past the end are
  // short; reading exactly at the end returns 0 bytes.
  virtual void Read(FileId id, uint64_t offset_bytes, std::span<std::byte> buffer,
                    ReadCompletion done) = 0;
  // Shrinks the file to `size_bytes` (no-op if already that size). InvalidArgument when larger
  // than the file; Busy while appends are in flight.
  virtual Status Truncate(FileId id, uint64_t size_bytes) = 0;
  // Makes every byte appended before the call, every Write completed before the call, and the
  // file's size, durable. When neither the size nor the file's blocks changed since the last
  // Sync, this is one device flush and no journal write (what the OpLog's hot path relies on).
  virtual void Sync(FileId id, env::IoCompletion done) = 0;

  // Grows the file to `size_bytes` without writing: the new bytes' contents are undefined (what
  // the blocks last held) until written. Durable after a Sync. For files written in place (the
  // OpLog's segments, the cache's SSD tier), whose readers validate what they read.
  // InvalidArgument (smaller than the file, not a multiple of the block size), NoSpace, Busy
  // (appends in flight).
  virtual Status Preallocate(FileId id, uint64_t size_bytes) = 0;
  // Overwrites [offset, offset + data.size()) inside the file's size; offset and length must be
  // multiples of the block size. `data` is copied. `done` runs when the bytes are written to the
  // device (readable; durable after a Sync submitted after `done`). InvalidArgument (unaligned,
  // empty, past the end), NotFound, IOError.
  virtual void Write(FileId id, uint64_t offset_bytes, std::span<const std::byte> data,
                     env::IoCompletion done) = 0;
};

}  // namespace weft::blockstore
