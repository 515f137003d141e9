// ClusterNode: this weftd's place in the cluster (wiring). It owns the cluster backend, the
// node's RPC server and the metadata ring, and answers with the node's global MetadataStore:
//
// - Cluster mode (--zookeeper): the configuration comes from ZooKeeper (`weft cluster create`
//   wrote it). The node finds its entry by --node-id, serves RPC on the entry's rpc_address on
//   its own thread, runs the ring (RingService over DIR/ring/), announces itself as a member,
//   campaigns in the "maintenance" election, follows configuration changes (ring epochs; it
//   streams its ranges when it is the joining node, or the coordinator of a leaving one, and
//   completes the change afterwards), and fences itself while its ZooKeeper session is expired.
// - Single node (no --zookeeper): a LocalClusterBackend in the data dir holds a one-node
//   configuration, and the global metadata is the node's LocalMetadataStore.
//
// In cluster mode the vDisk catalogue (containers, vDisks, block maps, egroups) lives in the
// ring too, so any node can take a vDisk over; a single node keeps it in its local store.
//
// Threading: Open and Close on the main thread; View() and metadata() from any thread.
#pragma once

#include <asio.hpp>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "admin/admin_service.h"
#include "cluster/callback_thread.h"
#include "cluster/cluster_backend.h"
#include "metadata/metadata_store.h"
#include "metadata/ring/ring_service.h"
#include "rpc/rpc_server.h"

namespace weft::daemon {

struct ClusterNodeOptions {
  uint32_t node_id = 1;
  std::string zookeeper;  // Empty: single node.
  std::string zookeeper_root = "/weft";
  int zookeeper_session_timeout_ms = 6000;
  std::string data_dir;
  std::string admin_address;
  std::string rpc_address;  // Single node: recorded in its local configuration only.
  uint32_t ring_tick_ms = 10;
  // How long Open waits for `weft cluster create` to have written the configuration.
  int config_wait_ms = 30000;
  // Cluster mode: starts the node's data RPC server given the host of its RPC address, and
  // returns the address it listens on (published in the membership entry).
  std::function<Result<std::string>(const std::string& rpc_host)> start_data_server;
  uint64_t free_bytes = 0;   // Published for placement.
  std::string fault_domain;  // Published for placement (weftd --fault-domain).
};

class ClusterNode {
 public:
  // `local_metadata`: the node's LocalMetadataStore (the single-node MetadataStore); it must
  // outlive this object.
  static Result<std::unique_ptr<ClusterNode>> Open(ClusterNodeOptions options,
                                                   metadata::MetadataStore& local_metadata);
  ~ClusterNode();

  // The ring in cluster mode, the local store otherwise.
  metadata::MetadataStore& metadata();
  bool clustered() const { return ring_ != nullptr; }
  Result<admin::ClusterView> View();
  // Whether the node lost its cluster session (it must not acknowledge writes then).
  bool fenced() const;
  // Nodes in the configuration (1 for a single node).
  uint32_t node_count() const;
  // Live members (node id -> their published data RPC address and free bytes), once now and
  // after every change, on a backend thread. Cluster mode only.
  struct Member {
    std::string data_address;
    uint64_t free_bytes = 0;
    std::string fault_domain;
  };
  void WatchMembers(std::function<void(std::map<uint32_t, Member>)> on_change);
  // Leaves membership, closes the ring and the RPC server. Idempotent.
  void Close();

 private:
  explicit ClusterNode(ClusterNodeOptions options, metadata::MetadataStore& local_metadata);

  Status OpenLocal();
  Status OpenClustered();
  // Applies a configuration (backend callback thread or control thread).
  void ApplyConfig(const cluster::VersionedConfig& config);
  void OnStreamDone(uint64_t epoch);
  void RefreshConfig();

  const ClusterNodeOptions options_;
  metadata::MetadataStore& local_metadata_;
  std::unique_ptr<cluster::ClusterBackend> backend_;

  // Cluster mode: the RPC thread runs rpc_io_ (the server and the ring).
  asio::io_context rpc_io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> rpc_work_;
  std::thread rpc_thread_;
  std::unique_ptr<rpc::RpcServer> rpc_server_;
  std::unique_ptr<metadata::ring::RingService> ring_;
  // Blocking follow-ups (config CAS after a stream, re-reads) run here, off the RPC thread.
  std::unique_ptr<cluster::CallbackThread> control_;

  mutable std::mutex mutex_;
  cluster::VersionedConfig config_;  // Guarded by mutex_: the newest applied.
  std::string session_ = "connected";
  bool closed_ = false;
};

}  // namespace weft::daemon
