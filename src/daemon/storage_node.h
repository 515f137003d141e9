// StorageNode: everything one weftd owns below the frontends, wired onto one reactor: its disks
// (io_uring device -> blockstore -> extent store, each with its AES RocksDB), the metadata
// store, and the vDisk manager.
//
// The data directory (docs/operations.md):
//   DIR/node.json           node id and the disks that belong to the node (path, uuid)
//   DIR/metadata/           the global metadata (LocalMetadataStore, RocksDB)
//   DIR/disks/UUID/aes/     each disk's extent-store metadata (RocksDB)
//   DIR/disks/disk0.img     the default disk's backing file, when no --disk was given
//
// A disk is formatted only when weftd creates its file, or when the device's first 128 KiB
// (both superblock copies) are all zeros; anything else that is not a weft blockstore is
// refused, so a wrong --disk never destroys data.
//
// Threading: the reactor thread (Open and Close are called before and after it runs).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "blockstore/blockstore.h"
#include "cache/unified_cache.h"
#include "daemon/daemon_options.h"
#include "env/reactor.h"
#include "env/uring_device.h"
#include "extent_store/extent_store.h"
#include "metadata/local_metadata_store.h"
#include "vdisk/vdisk_manager.h"

namespace weft::daemon {

class StorageNode {
 public:
  StorageNode(env::Reactor& reactor, DaemonOptions options);
  ~StorageNode();

  // Opens (creating on first start) the data dir, the disks, the local metadata store and the
  // cache. Runs the reactor while it waits.
  Status Open();
  // Opens the catalogue (the vDisk manager) over `metadata` (the local store on a single node,
  // the ring in a cluster, whose completions must come on the reactor), and creates the default
  // container on first start. `peers`: the other nodes (cluster mode) or nullptr; then the
  // catalogue loads in the background (retrying until the ring has a quorum) and this returns
  // at once.
  Status OpenCatalogue(
      metadata::MetadataStore& metadata, vdisk::PeerIo* peers, uint32_t node_count,
      std::function<void(uint64_t vdisk_id, uint64_t epoch, vdisk::Completion)> prepare_takeover);
  // The OpLogs' file layer (the fast disk's), for the data service's replica OpLogs.
  blockstore::FileLayer* oplog_files() const { return io_options_.oplog_files; }
  const vdisk::VdiskIoOptions& io_options() const { return io_options_; }
  // Waits for I/O in flight (running the reactor), then closes everything in order.
  Status Close();

  const std::string& node_id() const { return node_id_; }
  const DaemonOptions& options() const { return options_; }
  vdisk::VdiskManager& manager() { return *manager_; }
  bool manager_open() const { return manager_ != nullptr; }
  // The node's local metadata store: the vDisks' rows, and the global metadata of a single node.
  metadata::LocalMetadataStore& local_metadata() { return *metadata_; }
  std::vector<vdisk::NodeDisk>& disks() { return node_disks_; }
  // The Unified Cache's counters (unified_cache.h), for the admin API.
  std::map<std::string, uint64_t> CacheStats() const;

 private:
  struct Disk {
    std::string path;
    std::string uuid;
    DiskTier tier = DiskTier::kUnspecified;
    std::unique_ptr<env::UringDevice> device;
    std::unique_ptr<blockstore::Blockstore> blockstore;
    std::unique_ptr<extent_store::ExtentStore> store;
  };

  Status LoadOrCreateNodeFile();
  Status SaveNodeFile() const;
  Status OpenDisk(const DiskSpec& spec);
  Status EnsureDefaultContainer();
  // Cluster mode: Open() of the catalogue, retried every second until the ring answers; then the
  // default container on a fresh node.
  void LoadCatalogueInBackground(uint32_t attempt);
  void CreateDefaultContainerInBackground(uint32_t attempt);
  // The OpLogs' and the cache's disk: the first ssd disk, else the first disk.
  Disk& FastDisk();
  Status OpenCache(Disk& fast_disk);

  env::Reactor& reactor_;
  DaemonOptions options_;
  std::string node_id_;
  std::vector<DiskSpec> known_disks_;  // From node.json.
  std::vector<std::unique_ptr<Disk>> disks_;
  std::vector<vdisk::NodeDisk> node_disks_;
  std::unique_ptr<metadata::LocalMetadataStore> metadata_;
  std::unique_ptr<cache::UnifiedCache> cache_;
  vdisk::VdiskIoOptions io_options_;
  bool closing_ = false;
  std::unique_ptr<vdisk::VdiskManager> manager_;
};

}  // namespace weft::daemon
