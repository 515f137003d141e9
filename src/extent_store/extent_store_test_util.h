// Helpers shared by the extent store tests: a disk stack (memory device, fault injection,
// blockstore, metadata on a RocksDB memory env) and blocking wrappers for Write and Read.
#pragma once

#include <gtest/gtest.h>
#include <rocksdb/env.h>

#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/aligned_buffer.h"
#include "blockstore/blockstore.h"
#include "env/fault_injecting_device.h"
#include "env/memory_device.h"
#include "extent_store/extent_store.h"

namespace weft::extent_store::testing {

// Polls beyond this without the awaited completion mean a lost completion: fail, don't hang.
inline constexpr int kPollsMax = 1'000'000;

// MemoryDevice -> FaultInjectingDevice -> Blockstore -> ExtentStore, metadata in a memory env
// (unless a real directory is given). Each layer can be closed and reopened.
class TestDisk {
 public:
  explicit TestDisk(uint64_t size_bytes = 64ull << 20, uint64_t seed = 1,
                    std::string metadata_path = "/extent_store", bool memory_metadata = true)
      : memory_("memory:test-disk", size_bytes, 4096),
        fault_(memory_, seed),
        memory_env_(memory_metadata ? rocksdb::NewMemEnv(rocksdb::Env::Default()) : nullptr) {
    options_.metadata_path = std::move(metadata_path);
    options_.metadata_env = memory_env_.get();
    options_.disk_name = "disk0";
  }
  ~TestDisk() {
    store_.reset();
    blockstore_.reset();
  }

  Status FormatAndOpen(const blockstore::FormatOptions& format_options = {}) {
    WEFT_RETURN_IF_ERROR(blockstore::Blockstore::Format(fault_, format_options));
    WEFT_RETURN_IF_ERROR(OpenBlockstore());
    return OpenStore();
  }
  Status OpenBlockstore() {
    Result<std::unique_ptr<blockstore::Blockstore>> opened = blockstore::Blockstore::Open(fault_);
    if (!opened.ok()) return opened.status();
    blockstore_ = std::move(opened).value();
    return Status::Ok();
  }
  Status OpenStore() {
    Result<std::unique_ptr<ExtentStore>> opened = ExtentStore::Open(*blockstore_, options_);
    if (!opened.ok()) return opened.status();
    store_ = std::move(opened).value();
    return Status::Ok();
  }
  // A clean shutdown: the store drains, the blockstore persists its journal.
  Status Close() {
    store_.reset();
    Status closed = blockstore_ ? blockstore_->Close() : Status::Ok();
    blockstore_.reset();
    return closed;
  }
  Status Reopen() {
    WEFT_RETURN_IF_ERROR(Close());
    WEFT_RETURN_IF_ERROR(OpenBlockstore());
    return OpenStore();
  }

  ExtentStore& store() { return *store_; }
  std::unique_ptr<ExtentStore>& store_pointer() { return store_; }
  blockstore::Blockstore& blockstore() { return *blockstore_; }
  std::unique_ptr<blockstore::Blockstore>& blockstore_pointer() { return blockstore_; }
  env::MemoryDevice& memory() { return memory_; }
  env::FaultInjectingDevice& fault() { return fault_; }
  ExtentStoreOptions& options() { return options_; }
  rocksdb::Env* metadata_env() { return memory_env_.get(); }

 private:
  env::MemoryDevice memory_;
  env::FaultInjectingDevice fault_;
  std::unique_ptr<rocksdb::Env> memory_env_;
  ExtentStoreOptions options_;
  std::unique_ptr<blockstore::Blockstore> blockstore_;
  std::unique_ptr<ExtentStore> store_;
};

inline Status WaitFor(ExtentStore& store, const std::optional<Status>& result) {
  for (int polls = 0; !result.has_value(); ++polls) {
    if (polls >= kPollsMax) {
      ADD_FAILURE() << "completion never ran";
      return Status::Aborted("completion never ran");
    }
    store.Poll(/*wait=*/true);
  }
  return *result;
}

inline Status WriteSync(ExtentStore& store, EgroupId egroup_id, uint64_t offset_bytes,
                        std::span<const std::byte> data, uint64_t replica_version = 0) {
  std::optional<Status> result;
  store.Write(
      egroup_id, offset_bytes, data, [&result](Status status) { result = status; },
      replica_version);
  return WaitFor(store, result);
}

inline Status TrimSync(ExtentStore& store, EgroupId egroup_id, uint64_t offset_bytes,
                       uint64_t length_bytes, uint64_t replica_version = 0) {
  std::optional<Status> result;
  store.Trim(
      egroup_id, offset_bytes, length_bytes, [&result](Status status) { result = status; },
      replica_version);
  EXPECT_FALSE(result.has_value()) << "a completion ran inside the call";
  return WaitFor(store, result);
}

inline Status ReadSync(ExtentStore& store, EgroupId egroup_id, uint64_t offset_bytes,
                       std::span<std::byte> buffer) {
  std::optional<Status> result;
  store.Read(egroup_id, offset_bytes, buffer, [&result](Status status) { result = status; });
  return WaitFor(store, result);
}

// Polls until nothing is left to run: completions, commits, the store's metadata sync.
inline void Drain(ExtentStore& store) {
  for (int polls = 0; store.Poll(/*wait=*/true) > 0; ++polls) {
    ASSERT_LT(polls, kPollsMax) << "store never became idle";
  }
}

// Deterministic bytes: a splitmix64 stream from `seed`.
inline void FillPattern(std::span<std::byte> buffer, uint64_t seed) {
  uint64_t state = seed;
  for (size_t offset = 0; offset < buffer.size(); offset += sizeof(uint64_t)) {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t value = state;
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ull;
    value = (value ^ (value >> 27)) * 0x94D049BB133111EBull;
    value ^= value >> 31;
    std::memcpy(buffer.data() + offset, &value, std::min(sizeof(value), buffer.size() - offset));
  }
}

inline AlignedBuffer PatternBuffer(size_t size_bytes, uint64_t seed) {
  AlignedBuffer buffer(size_bytes);
  FillPattern(buffer.span(), seed);
  return buffer;
}

inline bool SameBytes(std::span<const std::byte> first, std::span<const std::byte> second) {
  return first.size() == second.size() &&
         std::memcmp(first.data(), second.data(), first.size()) == 0;
}

}  // namespace weft::extent_store::testing
