// NodeAdminService: the admin API (admin/admin_service.h) over this node's StorageNode and NBD
// server. Each call comes from an HTTP worker thread; it is posted to the reactor, which owns
// everything it touches, and the worker waits for the answer (admin calls are rare and small;
// the data path never waits on them).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "admin/admin_service.h"
#include "daemon/cluster_node.h"
#include "daemon/storage_node.h"
#include "env/reactor.h"
#include "frontend/nbd/nbd_server.h"

namespace weft::daemon {

struct NodeAddresses {
  std::string nbd;    // "127.0.0.1:10809"
  std::string admin;  // "127.0.0.1:9440"
};

class NodeAdminService final : public admin::AdminService {
 public:
  // An answer not ready after this long is reported as Busy (the reactor is overloaded or
  // stopping); the operation itself may still complete.
  static constexpr std::chrono::seconds kCallTimeout{60};

  NodeAdminService(env::Reactor& reactor, StorageNode& node, nbd::NbdServer& nbd_server,
                   NodeAddresses addresses, ClusterNode& cluster);

  // From then on every call fails with Aborted ("weftd is stopping") without touching the node.
  void Shutdown() { accepting_.store(false); }

  Result<admin::NodeView> GetNode() override;
  Result<std::vector<admin::ContainerView>> ListContainers() override;
  Result<admin::ContainerView> GetContainer(const std::string& name) override;
  Result<admin::ContainerView> CreateContainer(const std::string& name,
                                               uint32_t replication_factor) override;
  Status DeleteContainer(const std::string& name) override;
  Result<std::vector<admin::VdiskView>> ListVdisks() override;
  Result<admin::VdiskView> GetVdisk(const std::string& name) override;
  Result<admin::VdiskView> CreateVdisk(const std::string& name, uint64_t size_bytes,
                                       const std::string& container) override;
  Result<admin::VdiskView> ResizeVdisk(const std::string& name, uint64_t size_bytes) override;
  Status DeleteVdisk(const std::string& name) override;

  Result<admin::ClusterView> GetCluster() override;
  // The operator's rows live under kMetadataNamespace in the global metadata, apart from the
  // system's own rows.
  Result<admin::MetadataRowView> MetadataGet(const std::string& key) override;
  Result<uint64_t> MetadataCompareAndSet(const std::string& key, uint64_t expected_version,
                                         const std::string& value) override;
  Status MetadataCompareAndDelete(const std::string& key, uint64_t expected_version) override;
  Result<std::vector<admin::MetadataRowView>> MetadataScan(const std::string& prefix,
                                                           const std::string& start_after,
                                                           uint32_t limit) override;
  static constexpr std::string_view kMetadataNamespace = "kv/";

 private:
  // Runs `work` on the reactor; `work` must call its argument exactly once (now or later, on
  // the reactor) with the result.
  template <typename T>
  Result<T> OnReactor(std::function<void(std::function<void(Result<T>)>)> work);
  Status OnReactorStatus(std::function<void(std::function<void(Status)>)> work);

  admin::VdiskView ViewOf(const vdisk::VdiskController& controller) const;
  admin::ContainerView ViewOf(const vdisk::records::Container& container) const;

  env::Reactor& reactor_;
  // Waits for a metadata store's completion (which runs on another thread).
  template <typename T>
  Result<T> WaitFor(std::function<void(std::function<void(Result<T>)>)> start);
  Result<std::string> NamespacedKey(const std::string& key) const;

  StorageNode& node_;
  nbd::NbdServer& nbd_server_;
  const NodeAddresses addresses_;
  ClusterNode& cluster_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::atomic<bool> accepting_{true};
};

}  // namespace weft::daemon
