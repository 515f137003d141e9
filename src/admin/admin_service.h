// AdminService: what the admin HTTP API (admin_http_server.h) exposes, as plain calls. The daemon
// implements it on top of the vDisk manager; tests implement it with a fake.
//
// Threading: every method is thread-safe and blocking. The HTTP server calls it from its worker
// threads; the daemon's implementation hands the call to the reactor thread and waits for the
// answer.
//
// Errors (and the HTTP status the API maps them to): InvalidArgument 400 (bad name, size,
// replication factor), NotFound 404, AlreadyExists 409, Busy 409 (e.g. a container that still
// holds vDisks, a vDisk with open NBD connections), Aborted 409 (a concurrent update won),
// NoSpace 507, anything else 500.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"

namespace weft::admin {

// Counters by name (e.g. "writes_oplog"). The daemon decides which counters exist; clients
// treat the maps generically, so that a counter can be added without changing the API.
using Counters = std::map<std::string, uint64_t>;
// Counter groups by name: "io", "characterizer", "oplog" (absent when the vDisk has no OpLog).
using CounterGroups = std::map<std::string, Counters>;

struct ContainerView {
  std::string name;
  uint32_t replication_factor = 1;
  uint64_t vdisk_count = 0;
  uint64_t provisioned_bytes = 0;  // Sum of its vDisks' sizes.
  uint64_t used_bytes = 0;         // Bytes of written data its vDisks hold.
};

struct VdiskView {
  std::string name;
  std::string container;
  uint64_t size_bytes = 0;
  uint64_t used_bytes = 0;      // Written data (thin provisioning: <= size).
  uint64_t mapped_vblocks = 0;  // 1 MiB vBlocks with a block-map entry.
  uint64_t created_unix_s = 0;
  std::string nbd_uri;  // "nbd://127.0.0.1:10809/NAME"
  uint32_t open_connections = 0;
  CounterGroups stats;  // Cumulative since weftd started, except gauges (docs/admin-api.md).
};

struct DiskView {
  std::string path;
  std::string uuid;
  uint64_t size_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t free_bytes = 0;
  uint64_t egroups = 0;
  std::string state;  // "online", or the error that took it offline.
};

struct NodeView {
  std::string node_id;
  std::string version;
  uint64_t uptime_s = 0;
  std::string data_dir;
  std::string nbd_address;    // "127.0.0.1:10809"; "unix:/path" for a Unix socket.
  std::string admin_address;  // "127.0.0.1:9440"
  uint32_t nbd_connections = 0;
  uint64_t vdisk_count = 0;
  uint64_t container_count = 0;
  std::vector<DiskView> disks;
  Counters cache;  // The Unified Cache's counters and gauges (docs/admin-api.md).
};

// One member of the cluster as this node sees it (docs/admin-api.md, GET /v1/cluster).
struct ClusterNodeView {
  uint32_t node_id = 0;
  std::string rpc_address;    // "127.0.0.1:7101"
  std::string admin_address;  // "127.0.0.1:9441"
  bool live = false;          // Has a membership entry (a ZooKeeper session) now.
  std::string ring_state;     // "normal", "joining", "leaving"
  uint32_t ring_tokens = 0;
};

struct ClusterView {
  std::string backend;  // "local" (single node, no ZooKeeper) or "zookeeper"
  std::string cluster_id;
  std::string name;
  uint32_t redundancy_factor = 0;
  uint32_t ring_replicas = 0;  // Copies of each metadata row: 3 for RF2, 5 for RF3.
  uint64_t ring_epoch = 0;
  uint64_t config_version = 0;
  uint32_t self_node_id = 0;
  bool fenced = false;  // This node lost its ZooKeeper session and serves no writes.
  std::string session;  // "connected", "disconnected", "expired", ...
  std::vector<ClusterNodeView> nodes;
  Counters ring;  // This node's ring counters (operations, attempts, ...).
};

// A metadata row (MetadataStore's Row) over the admin API, for operators and tests.
struct MetadataRowView {
  std::string key;
  std::string value;
  uint64_t version = 0;
};

class AdminService {
 public:
  virtual ~AdminService() = default;

  virtual Result<NodeView> GetNode() = 0;

  virtual Result<std::vector<ContainerView>> ListContainers() = 0;
  virtual Result<ContainerView> GetContainer(const std::string& name) = 0;
  virtual Result<ContainerView> CreateContainer(const std::string& name,
                                                uint32_t replication_factor) = 0;
  // Busy while the container holds vDisks.
  virtual Status DeleteContainer(const std::string& name) = 0;

  virtual Result<std::vector<VdiskView>> ListVdisks() = 0;
  virtual Result<VdiskView> GetVdisk(const std::string& name) = 0;
  // Empty container: the default container.
  virtual Result<VdiskView> CreateVdisk(const std::string& name, uint64_t size_bytes,
                                        const std::string& container) = 0;
  // Shrinking frees the data past the new end.
  virtual Result<VdiskView> ResizeVdisk(const std::string& name, uint64_t size_bytes) = 0;
  virtual Status DeleteVdisk(const std::string& name) = 0;

  virtual Result<ClusterView> GetCluster() = 0;
  // The node's global metadata store: the Paxos ring in a cluster, the local RocksDB store on a
  // single node. Errors as MetadataStore (metadata_store.h): NotFound, Aborted (version
  // conflict), InvalidArgument, Unavailable (no quorum: the outcome of an update is unknown).
  virtual Result<MetadataRowView> MetadataGet(const std::string& key) = 0;
  // Returns the new version. expected_version 0: create.
  virtual Result<uint64_t> MetadataCompareAndSet(const std::string& key, uint64_t expected_version,
                                                 const std::string& value) = 0;
  virtual Status MetadataCompareAndDelete(const std::string& key, uint64_t expected_version) = 0;
  virtual Result<std::vector<MetadataRowView>> MetadataScan(const std::string& prefix,
                                                            const std::string& start_after,
                                                            uint32_t limit) = 0;
};

}  // namespace weft::admin
