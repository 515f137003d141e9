// A node for vDisk tests: disks (memory device -> blockstore -> extent store, metadata on a
// RocksDB memory env), a LocalMetadataStore on a memory env, a VdiskManager, and a loop that
// runs executor tasks and polls the stores like the daemon's reactor does. Everything can be
// torn down and reopened over the same devices and envs (a restart).
#pragma once

#include <gtest/gtest.h>
#include <rocksdb/env.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "blockstore/blockstore.h"
#include "env/fault_injecting_device.h"
#include "env/memory_device.h"
#include "extent_store/extent_store.h"
#include "metadata/local_metadata_store.h"
#include "vdisk/vdisk_manager.h"

namespace weft::vdisk::testing {

class TestNode {
 public:
  // fault_seed != 0: every disk sits behind a FaultInjectingDevice (for Crash()).
  explicit TestNode(int disk_count = 1, uint64_t disk_bytes = 256ull << 20, uint64_t fault_seed = 0)
      : metadata_env_(rocksdb::NewMemEnv(rocksdb::Env::Default())) {
    for (int index = 0; index < disk_count; ++index) {
      auto disk = std::make_unique<Disk>();
      disk->device = std::make_unique<env::MemoryDevice>("memory:disk" + std::to_string(index),
                                                         disk_bytes, 4096);
      if (fault_seed != 0) {
        disk->fault =
            std::make_unique<env::FaultInjectingDevice>(*disk->device, fault_seed + index);
      }
      disk->env.reset(rocksdb::NewMemEnv(rocksdb::Env::Default()));
      EXPECT_TRUE(blockstore::Blockstore::Format(disk->block_device(), {}).ok());
      disks_.push_back(std::move(disk));
    }
  }
  ~TestNode() { Stop(); }

  Status Start() {
    node_disks_.clear();
    for (size_t index = 0; index < disks_.size(); ++index) {
      Disk& disk = *disks_[index];
      auto blockstore = blockstore::Blockstore::Open(disk.block_device());
      if (!blockstore.ok()) return blockstore.status();
      disk.blockstore = std::move(blockstore).value();
      extent_store::ExtentStoreOptions options;
      options.metadata_path = "/aes" + std::to_string(index);
      options.metadata_env = disk.env.get();
      options.commit_thread = false;
      auto store = extent_store::ExtentStore::Open(*disk.blockstore, options);
      if (!store.ok()) return store.status();
      disk.store = std::move(store).value();
      node_disks_.push_back(
          NodeDisk{disk.blockstore->uuid().ToString(), disk.device->name(), disk.store.get()});
    }
    metadata::LocalMetadataStoreOptions metadata_options;
    metadata_options.path = "/metadata";
    metadata_options.env = metadata_env_.get();
    metadata_options.executor = executor();
    auto metadata = metadata::LocalMetadataStore::Open(metadata_options);
    if (!metadata.ok()) return metadata.status();
    metadata_ = std::move(metadata).value();
    VdiskIoOptions io;
    if (oplog_and_cache_) {
      // Small enough that the tests fill the log, wrap segments and evict from every pool.
      io.oplog_files = &disks_[0]->blockstore->files();
      io.oplog.segment_bytes = 2ull << 20;
      io.oplog.size_bytes_max = 8ull << 20;
      io.oplog.batch_bytes_max = oplog::kRecordBytesMax + 64 * 1024;
      cache::UnifiedCacheOptions cache_options;
      cache_options.memory_bytes = 2ull << 20;
      cache_options.ssd_bytes = 4ull << 20;
      cache_options.ssd_files = &disks_[0]->blockstore->files();
      cache_ = std::make_unique<cache::UnifiedCache>(cache_options);
      std::optional<Status> cache_opened;
      cache_->Open([&](Status status) { cache_opened = status; });
      if (!RunUntil([&] { return cache_opened.has_value(); })) return Status::Aborted("hung");
      if (!cache_opened->ok()) return *cache_opened;
      io.cache = cache_.get();
    }
    manager_ = std::make_unique<VdiskManager>(
        VdiskManagerOptions{metadata_.get(), executor(), &node_disks_, 1, io});
    std::optional<Status> opened;
    manager_->Open([&](Status status) { opened = status; });
    if (!RunUntil([&] { return opened.has_value(); })) return Status::Aborted("open hung");
    return *opened;
  }

  // Client I/O finished, the OpLog drains stopped, the manager gone, the cache's SSD-tier I/O
  // finished and the cache gone: what both a clean stop and a crash do before the stores go.
  void StopManagerAndCache() {
    if (manager_ != nullptr) {
      EXPECT_TRUE(RunUntil([&] { return manager_->inflight_operations() == 0; }));
      bool quiesced = false;
      manager_->Quiesce([&](Status) { quiesced = true; });
      EXPECT_TRUE(RunUntil([&] { return quiesced; }));
    }
    manager_.reset();
    RunPending();
    if (cache_ != nullptr) {
      EXPECT_TRUE(RunUntil([&] {
        const cache::UnifiedCacheStats stats = cache_->stats();
        return stats.ssd_reads_in_flight == 0 && stats.ssd_writes_in_flight == 0;
      }));
    }
    cache_.reset();
  }

  // A clean stop: I/O drained, stores closed.
  void Stop() {
    StopManagerAndCache();
    metadata_.reset();
    RunPending();
    for (auto& disk : disks_) {
      disk->store.reset();
      if (disk->blockstore != nullptr) {
        EXPECT_TRUE(disk->blockstore->Close().ok());
      }
      disk->blockstore.reset();
    }
  }

  // A power loss: every disk drops or tears its unsynced writes (the metadata store, on a
  // memory env, keeps what it synced), everything in flight fails, and the node is torn down
  // without a clean close. Start() again to recover.
  void Crash(env::CrashMode mode) {
    for (auto& disk : disks_) disk->fault->Crash(mode);
    StopManagerAndCache();
    metadata_.reset();
    RunPending();
    for (auto& disk : disks_) {
      disk->store.reset();
      disk->blockstore.reset();
      disk->fault->Revive();
    }
  }

  metadata::Executor executor() {
    return [this](std::function<void()> task) {
      const std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
      posted_.notify_all();
    };
  }

  // Runs tasks and polls stores until done() holds; false after a long time without progress.
  bool RunUntil(const std::function<bool()>& done) {
    int idle_waits = 0;
    while (!done()) {
      size_t progress = RunPending();
      for (auto& disk : disks_) {
        if (disk->store != nullptr) progress += disk->store->Poll(/*wait=*/false);
      }
      if (progress > 0) {
        idle_waits = 0;
        continue;
      }
      std::unique_lock lock(mutex_);
      if (!posted_.wait_for(lock, std::chrono::milliseconds(1),
                            [this] { return !tasks_.empty(); })) {
        if (++idle_waits > 60000) return false;  // A minute with nothing to do: lost completion.
      }
    }
    return true;
  }

  // Runs what is ready now without waiting; returns how much ran.
  size_t PollOnce() {
    size_t progress = RunPending();
    for (auto& disk : disks_) {
      if (disk->store != nullptr) progress += disk->store->Poll(/*wait=*/false);
    }
    return progress;
  }

  size_t RunPending() {
    std::deque<std::function<void()>> tasks;
    {
      const std::lock_guard lock(mutex_);
      tasks.swap(tasks_);
    }
    for (auto& task : tasks) task();
    return tasks.size();
  }

  template <typename T>
  Result<T> Wait(const std::function<void(std::function<void(Result<T>)>)>& start) {
    std::optional<Result<T>> result;
    start([&](Result<T> got) { result = std::move(got); });
    if (!RunUntil([&] { return result.has_value(); })) return Status::Aborted("hung");
    return std::move(*result);
  }
  Status WaitStatus(const std::function<void(Completion)>& start) {
    std::optional<Status> result;
    start([&](Status got) { result = std::move(got); });
    if (!RunUntil([&] { return result.has_value(); })) return Status::Aborted("hung");
    return *result;
  }

  VdiskManager& manager() { return *manager_; }
  metadata::LocalMetadataStore& metadata() { return *metadata_; }
  std::vector<NodeDisk>& node_disks() { return node_disks_; }
  extent_store::ExtentStore& store(size_t index) { return *disks_[index]->store; }
  cache::UnifiedCache* cache() { return cache_.get(); }
  // Runs vDisks with an OpLog and a Unified Cache on disk 0 (from the next Start()).
  void set_oplog_and_cache(bool enabled) { oplog_and_cache_ = enabled; }

 private:
  struct Disk {
    env::BlockDevice& block_device() {
      return fault != nullptr ? static_cast<env::BlockDevice&>(*fault) : *device;
    }
    std::unique_ptr<env::MemoryDevice> device;
    std::unique_ptr<env::FaultInjectingDevice> fault;
    std::unique_ptr<rocksdb::Env> env;
    std::unique_ptr<blockstore::Blockstore> blockstore;
    std::unique_ptr<extent_store::ExtentStore> store;
  };
  std::vector<std::unique_ptr<Disk>> disks_;
  std::unique_ptr<rocksdb::Env> metadata_env_;
  std::vector<NodeDisk> node_disks_;
  std::unique_ptr<metadata::LocalMetadataStore> metadata_;
  bool oplog_and_cache_ = false;
  std::unique_ptr<cache::UnifiedCache> cache_;
  std::unique_ptr<VdiskManager> manager_;
  std::mutex mutex_;
  std::condition_variable posted_;
  std::deque<std::function<void()>> tasks_;
};

}  // namespace weft::vdisk::testing
