// VdiskManager: the node's catalogue of containers and vDisks, and the owner of their
// controllers. Creates, resizes and deletes them through the metadata store (compare-and-set on
// versioned rows, one row per container and per vDisk, no cross-row transactions), keeps an
// in-memory view for listing, and hands controllers to the frontends.
//
// Deleting a vDisk first marks its row DELETING (it disappears from every listing and export),
// then destroys its block map and egroups, then deletes the row; a restart in between resumes
// the deletion.
//
// Threading: the reactor thread. Completions run later through the executor or the stores.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "metadata/metadata_store.h"
#include "vdisk/id_allocator.h"
#include "vdisk/node_disks.h"
#include "vdisk/vdisk_controller.h"
#include "vdisk/vdisk_keys.h"

namespace weft::vdisk {

struct VdiskManagerOptions {
  metadata::MetadataStore* metadata = nullptr;
  metadata::Executor executor;
  std::vector<NodeDisk>* disks = nullptr;
  // Nodes able to hold a copy; a container's replication factor may not exceed it.
  uint32_t node_count = 1;
  VdiskIoOptions io;  // The OpLog and the cache, for every vDisk.
  // Cluster mode: the other nodes. vDisks are then owned by one node each (the row's
  // owner_node); this manager serves only its own, and takes over those of a dead owner when it
  // is their successor (docs/protocol/replication.md). nullptr: a single node, owner of all.
  PeerIo* peers = nullptr;
  // Before a takeover opens the vDisk's OpLog: the node's data service stops keeping its replica
  // OpLog of the vDisk (closing it) and refuses older epochs from now on.
  std::function<void(uint64_t vdisk_id, uint64_t epoch, Completion done)> prepare_takeover;
};

template <typename T>
using ResultCompletion = std::function<void(Result<T>)>;

class VdiskManager {
 public:
  static constexpr const char* kDefaultContainer = "default";

  explicit VdiskManager(VdiskManagerOptions options);
  ~VdiskManager();

  // Loads containers and vDisks and their block maps, and finishes deletions a stop
  // interrupted. Until it completes OK, changes wait for it and listings are empty;
  // it may be called again after a failure (a cluster node retries until the ring has a
  // quorum).
  void Open(Completion done);
  bool loaded() const { return loaded_; }

  void CreateContainer(const std::string& name, uint32_t replication_factor,
                       ResultCompletion<records::Container> done);
  // Busy while the container holds vDisks.
  void DeleteContainer(const std::string& name, Completion done);
  std::vector<records::Container> ListContainers() const;
  Result<records::Container> GetContainer(const std::string& name) const;

  // An empty container name means kDefaultContainer.
  void CreateVdisk(const std::string& name, uint64_t size_bytes, const std::string& container,
                   ResultCompletion<records::Vdisk> done, bool reloaded_containers = false);
  void ResizeVdisk(const std::string& name, uint64_t size_bytes,
                   ResultCompletion<records::Vdisk> done);
  // Busy while NBD connections hold it open or I/O runs on it.
  void DeleteVdisk(const std::string& name, Completion done);
  // Active vDisks, by name.
  std::vector<VdiskController*> ListVdisks() const;
  VdiskController* FindVdisk(const std::string& name) const;
  // Whether this node serves the vDisk (or is taking it over).
  bool ServesVdisk(uint64_t vdisk_id) const;

  // Cluster mode: the live members changed (or at start). vDisks whose owner is not live and
  // whose successor is this node are taken over: epoch raised in the row, OpLog replayed from
  // this node's copy, egroup replicas reconciled, the OpLog drained and new peers chosen, and
  // only then served.
  void OnMembersChanged(std::vector<uint32_t> live_nodes);
  // vDisks being taken over now.
  size_t takeovers_in_progress() const { return takeovers_.size(); }
  // Stale egroup replicas deleted at start (their row lists other nodes: they were replaced
  // while this node was away).
  uint64_t stale_replicas_deleted() const { return stale_replicas_deleted_; }

  // Stops every controller's background work (the OpLog drains); `done` runs once none is
  // running. For shutdown, after inflight_operations() reached 0.
  void Quiesce(Completion done);
  // Operations in flight on every controller (the daemon drains them before stopping).
  uint64_t inflight_operations() const;

 private:
  struct ContainerEntry {
    records::Container record;
    uint64_t version = 0;
  };
  struct VdiskEntry {
    std::unique_ptr<VdiskController> controller;
    uint64_t version = 0;
  };

  Status CheckNewVdisk(const std::string& name, uint64_t size_bytes,
                       const std::string& container) const;
  void LoadContainers(std::string start_after, Completion done);
  void LoadVdisks(std::string start_after, std::vector<metadata::Row> rows, Completion done);
  void OpenLoadedVdisks(std::vector<metadata::Row> rows, size_t index, Completion done);
  void FinishDeletion(std::unique_ptr<VdiskController> controller, std::string key,
                      uint64_t version, Completion done);
  ControllerContext controller_context();
  bool OwnedHere(const records::Vdisk& record) const;
  void WhenLoaded(std::function<void()> run);
  // Once, at the first membership news: deletes this node's egroup replicas whose rows list
  // other nodes only (never served: readers use the rows; this frees their space).
  void DeleteUnlistedReplicas(std::string start_after);
  void TakeOver(records::Vdisk record, uint64_t row_version);
  // Drops a relinquished controller once no client holds it.
  void RetireRelinquished(const std::string& name);

  VdiskManagerOptions options_;
  IdAllocator vdisk_ids_;
  IdAllocator egroup_ids_;
  std::map<std::string, ContainerEntry> containers_;
  std::map<std::string, VdiskEntry> vdisks_;
  std::set<std::string> names_in_progress_;  // vDisks and containers being created or deleted.
  std::vector<std::unique_ptr<VdiskController>> deleting_;
  std::unique_ptr<VdiskController> loading_;  // Open(): the vDisk whose block map is loading.
  std::map<std::string, std::unique_ptr<VdiskController>> takeovers_;
  std::vector<uint32_t> live_nodes_;
  bool unlisted_replicas_checked_ = false;
  bool loaded_ = false;
  std::deque<std::function<void()>> load_waiters_;
  uint64_t stale_replicas_deleted_ = 0;
};

}  // namespace weft::vdisk
