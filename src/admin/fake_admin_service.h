// FakeAdminService: an in-memory AdminService for tests of the HTTP API and the CLI. It keeps
// containers, vDisks and metadata rows in maps under one mutex and checks what the daemon checks
// (names, sizes, replication factors, busy containers and vDisks; metadata keys, value sizes,
// versions and scan limits as MetadataStore does), so that every error the API maps can be
// produced. Starts with the container "default" (RF 1), no metadata rows, and a fixed view of a
// healthy 3-node ZooKeeper cluster (FakeClusterView()).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "admin/admin_service.h"

namespace weft::admin {

class FakeAdminService final : public AdminService {
 public:
  // Limits the fake enforces, as the daemon would.
  static constexpr uint32_t kReplicationFactorMax = 3;
  static constexpr uint64_t kSizeAlignmentBytes = 4096;
  static constexpr uint64_t kVdiskSizeMaxBytes = uint64_t{1} << 50;  // 1 PiB.
  static constexpr size_t kNameMaxChars = 64;

  FakeAdminService();

  // The cluster view the fake starts with: 3 live nodes, RF 2, epoch 1, connected.
  static ClusterView FakeClusterView();

  // The next service call (whichever it is) fails with `status` instead of running.
  void FailNextCall(Status status);
  // Simulates NBD clients on a vDisk: deleting it is Busy while `count` > 0.
  void SetOpenConnections(const std::string& vdisk, uint32_t count);
  // Replaces a vDisk's counter groups (a new vDisk has none) and the node's cache counters
  // (the fake starts with a fixed set, see kFakeCacheCounters in the .cc).
  void SetVdiskStats(const std::string& vdisk, CounterGroups stats);
  void SetCacheStats(Counters cache);
  // Replaces what GetCluster answers.
  void SetCluster(ClusterView cluster);
  // Every GetCluster fails with `failure` (a weftd whose cluster backend is broken) until
  // called with std::nullopt.
  void FailClusterCalls(std::optional<Status> failure);
  // Number of service calls made so far (to check that bad requests never reach the service).
  uint64_t call_count();

  Result<NodeView> GetNode() override;
  Result<std::vector<ContainerView>> ListContainers() override;
  Result<ContainerView> GetContainer(const std::string& name) override;
  Result<ContainerView> CreateContainer(const std::string& name,
                                        uint32_t replication_factor) override;
  Status DeleteContainer(const std::string& name) override;
  Result<std::vector<VdiskView>> ListVdisks() override;
  Result<VdiskView> GetVdisk(const std::string& name) override;
  Result<VdiskView> CreateVdisk(const std::string& name, uint64_t size_bytes,
                                const std::string& container) override;
  Result<VdiskView> ResizeVdisk(const std::string& name, uint64_t size_bytes) override;
  Status DeleteVdisk(const std::string& name) override;
  Result<ClusterView> GetCluster() override;
  Result<MetadataRowView> MetadataGet(const std::string& key) override;
  Result<uint64_t> MetadataCompareAndSet(const std::string& key, uint64_t expected_version,
                                         const std::string& value) override;
  Status MetadataCompareAndDelete(const std::string& key, uint64_t expected_version) override;
  Result<std::vector<MetadataRowView>> MetadataScan(const std::string& prefix,
                                                    const std::string& start_after,
                                                    uint32_t limit) override;

 private:
  // Counts the call and returns the injected failure, if any. Requires mutex_.
  Status BeginCall();
  ContainerView ContainerLocked(const std::string& name) const;  // Requires mutex_.

  std::mutex mutex_;
  std::map<std::string, uint32_t> container_replication_factors_;  // Guarded by mutex_.
  std::map<std::string, VdiskView> vdisks_;                        // Guarded by mutex_.
  Counters cache_;                                                 // Guarded by mutex_.
  ClusterView cluster_;                                            // Guarded by mutex_.
  std::optional<Status> cluster_failure_;                          // Guarded by mutex_.
  std::map<std::string, MetadataRowView> rows_;                    // Guarded by mutex_.
  std::optional<Status> next_failure_;                             // Guarded by mutex_.
  uint64_t call_count_ = 0;                                        // Guarded by mutex_.
};

}  // namespace weft::admin
