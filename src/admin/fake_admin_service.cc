#include "admin/fake_admin_service.h"

#include <fmt/format.h>

#include <utility>

#include "metadata/metadata_store.h"

namespace weft::admin {
namespace {

constexpr uint64_t kFakeCreatedUnixSeconds = 1'800'000'000;  // A fixed time: outputs repeat.

// A cache that has seen some traffic: 1000 hits (100 from the SSD tier), 250 misses, 12 of its
// 16 MiB of memory used, a 32 MiB SSD tier.
Counters FakeCacheCounters() {
  return {{"hits_memory_single", 600},
          {"hits_memory_multi", 300},
          {"hits_ssd", 100},
          {"misses", 250},
          {"fills", 250},
          {"promotions", 120},
          {"evictions_single", 40},
          {"evictions_multi_to_ssd", 30},
          {"memory_bytes_used", uint64_t{12} << 20},
          {"memory_bytes_max", uint64_t{16} << 20},
          {"ssd_bytes_max", uint64_t{32} << 20}};
}

Status ValidateName(std::string_view kind, const std::string& name) {
  bool valid = !name.empty() && name.size() <= FakeAdminService::kNameMaxChars &&
               name.front() != '.' && name.front() != '-';
  for (char c : name) {
    bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_' || c == '.';
    valid = valid && allowed;
  }
  if (valid) return Status::Ok();
  return Status::InvalidArgument(fmt::format(
      "invalid {} name '{}': use 1 to {} letters, digits, '-', '_' or '.', not starting with '-' "
      "or '.'",
      kind, name, FakeAdminService::kNameMaxChars));
}

Status ValidateSize(uint64_t size_bytes) {
  if (size_bytes == 0 || size_bytes % FakeAdminService::kSizeAlignmentBytes != 0 ||
      size_bytes > FakeAdminService::kVdiskSizeMaxBytes) {
    return Status::InvalidArgument(fmt::format(
        "invalid vdisk size {}: must be a positive multiple of {} bytes, at most {}", size_bytes,
        FakeAdminService::kSizeAlignmentBytes, FakeAdminService::kVdiskSizeMaxBytes));
  }
  return Status::Ok();
}

// What MetadataStore refuses with InvalidArgument (metadata_store.h).
Status ValidateMetadataKey(const std::string& key) {
  if (key.empty() || key.size() > metadata::kMaxKeyBytes) {
    return Status::InvalidArgument(fmt::format("invalid metadata key: {} bytes, must be 1 to {}",
                                               key.size(), metadata::kMaxKeyBytes));
  }
  return Status::Ok();
}

Status VersionConflict(uint64_t expected_version, uint64_t found_version) {
  return Status::Aborted(
      fmt::format("version conflict: expected {}, found {}", expected_version, found_version));
}

}  // namespace

ClusterView FakeAdminService::FakeClusterView() {
  ClusterView cluster;
  cluster.backend = "zookeeper";
  cluster.cluster_id = "8a3f6c2e-1d4b-4e5f-9a7b-3c2d1e0f9a8b";
  cluster.name = "fake";
  cluster.redundancy_factor = 2;
  cluster.ring_replicas = 3;
  cluster.ring_epoch = 1;
  cluster.config_version = 0;
  cluster.self_node_id = 1;
  cluster.session = "connected";
  for (uint32_t id = 1; id <= 3; ++id) {
    cluster.nodes.push_back({.node_id = id,
                             .rpc_address = fmt::format("127.0.0.1:710{}", id),
                             .admin_address = fmt::format("127.0.0.1:944{}", id),
                             .live = true,
                             .ring_state = "normal",
                             .ring_tokens = 16});
  }
  cluster.ring = {{"operations", 42}, {"attempts", 45}};
  return cluster;
}

FakeAdminService::FakeAdminService() : cache_(FakeCacheCounters()), cluster_(FakeClusterView()) {
  container_replication_factors_["default"] = 1;
}

void FakeAdminService::FailNextCall(Status status) {
  std::lock_guard lock(mutex_);
  next_failure_ = std::move(status);
}

void FakeAdminService::SetOpenConnections(const std::string& vdisk, uint32_t count) {
  std::lock_guard lock(mutex_);
  auto it = vdisks_.find(vdisk);
  WEFT_ASSERT(it != vdisks_.end());
  it->second.open_connections = count;
}

void FakeAdminService::SetVdiskStats(const std::string& vdisk, CounterGroups stats) {
  std::lock_guard lock(mutex_);
  auto it = vdisks_.find(vdisk);
  WEFT_ASSERT(it != vdisks_.end());
  it->second.stats = std::move(stats);
}

void FakeAdminService::SetCacheStats(Counters cache) {
  std::lock_guard lock(mutex_);
  cache_ = std::move(cache);
}

void FakeAdminService::SetCluster(ClusterView cluster) {
  std::lock_guard lock(mutex_);
  cluster_ = std::move(cluster);
}

void FakeAdminService::FailClusterCalls(std::optional<Status> failure) {
  std::lock_guard lock(mutex_);
  cluster_failure_ = std::move(failure);
}

uint64_t FakeAdminService::call_count() {
  std::lock_guard lock(mutex_);
  return call_count_;
}

Status FakeAdminService::BeginCall() {
  ++call_count_;
  if (!next_failure_.has_value()) return Status::Ok();
  Status failure = std::move(*next_failure_);
  next_failure_.reset();
  return failure;
}

ContainerView FakeAdminService::ContainerLocked(const std::string& name) const {
  ContainerView view;
  view.name = name;
  view.replication_factor = container_replication_factors_.at(name);
  for (const auto& [vdisk_name, vdisk] : vdisks_) {
    if (vdisk.container != name) continue;
    ++view.vdisk_count;
    view.provisioned_bytes += vdisk.size_bytes;
    view.used_bytes += vdisk.used_bytes;
  }
  return view;
}

Result<NodeView> FakeAdminService::GetNode() {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  NodeView node;
  node.node_id = "5f0c8d1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f";
  node.version = "0.1.0-fake";
  node.uptime_s = 3723;
  node.data_dir = "/var/lib/weft";
  node.nbd_address = "127.0.0.1:10809";
  node.admin_address = "127.0.0.1:9440";
  node.vdisk_count = vdisks_.size();
  node.container_count = container_replication_factors_.size();
  for (const auto& [name, vdisk] : vdisks_) node.nbd_connections += vdisk.open_connections;
  node.disks.push_back({.path = "/dev/vdb",
                        .uuid = "0d4e9a52-7c1b-4f3e-9d2a-6b8c1e0f7a34",
                        .size_bytes = uint64_t{100} << 30,
                        .used_bytes = uint64_t{3} << 30,
                        .free_bytes = uint64_t{97} << 30,
                        .egroups = 768,
                        .state = "online"});
  node.cache = cache_;
  return node;
}

Result<std::vector<ContainerView>> FakeAdminService::ListContainers() {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  std::vector<ContainerView> containers;
  for (const auto& [name, rf] : container_replication_factors_) {
    containers.push_back(ContainerLocked(name));
  }
  return containers;
}

Result<ContainerView> FakeAdminService::GetContainer(const std::string& name) {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  if (!container_replication_factors_.contains(name)) {
    return Status::NotFound(fmt::format("container '{}' not found", name));
  }
  return ContainerLocked(name);
}

Result<ContainerView> FakeAdminService::CreateContainer(const std::string& name,
                                                        uint32_t replication_factor) {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  WEFT_RETURN_IF_ERROR(ValidateName("container", name));
  if (replication_factor == 0 || replication_factor > kReplicationFactorMax) {
    return Status::InvalidArgument(fmt::format("invalid replication factor {}: must be 1 to {}",
                                               replication_factor, kReplicationFactorMax));
  }
  if (!container_replication_factors_.emplace(name, replication_factor).second) {
    return Status::AlreadyExists(fmt::format("container '{}' already exists", name));
  }
  return ContainerLocked(name);
}

Status FakeAdminService::DeleteContainer(const std::string& name) {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  if (!container_replication_factors_.contains(name)) {
    return Status::NotFound(fmt::format("container '{}' not found", name));
  }
  ContainerView view = ContainerLocked(name);
  if (view.vdisk_count > 0) {
    return Status::Busy(
        fmt::format("container '{}' still holds {} vdisk(s)", name, view.vdisk_count));
  }
  container_replication_factors_.erase(name);
  return Status::Ok();
}

Result<std::vector<VdiskView>> FakeAdminService::ListVdisks() {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  std::vector<VdiskView> vdisks;
  for (const auto& [name, vdisk] : vdisks_) vdisks.push_back(vdisk);
  return vdisks;
}

Result<VdiskView> FakeAdminService::GetVdisk(const std::string& name) {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  auto it = vdisks_.find(name);
  if (it == vdisks_.end()) return Status::NotFound(fmt::format("vdisk '{}' not found", name));
  return it->second;
}

Result<VdiskView> FakeAdminService::CreateVdisk(const std::string& name, uint64_t size_bytes,
                                                const std::string& container) {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  WEFT_RETURN_IF_ERROR(ValidateName("vdisk", name));
  WEFT_RETURN_IF_ERROR(ValidateSize(size_bytes));
  const std::string container_name = container.empty() ? "default" : container;
  if (!container_replication_factors_.contains(container_name)) {
    return Status::NotFound(fmt::format("container '{}' not found", container_name));
  }
  if (vdisks_.contains(name)) {
    return Status::AlreadyExists(fmt::format("vdisk '{}' already exists", name));
  }
  VdiskView vdisk;
  vdisk.name = name;
  vdisk.container = container_name;
  vdisk.size_bytes = size_bytes;
  vdisk.created_unix_s = kFakeCreatedUnixSeconds;
  vdisk.nbd_uri = "nbd://127.0.0.1:10809/" + name;
  vdisks_.emplace(name, vdisk);
  return vdisk;
}

Result<VdiskView> FakeAdminService::ResizeVdisk(const std::string& name, uint64_t size_bytes) {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  auto it = vdisks_.find(name);
  if (it == vdisks_.end()) return Status::NotFound(fmt::format("vdisk '{}' not found", name));
  WEFT_RETURN_IF_ERROR(ValidateSize(size_bytes));
  it->second.size_bytes = size_bytes;
  return it->second;
}

Status FakeAdminService::DeleteVdisk(const std::string& name) {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  auto it = vdisks_.find(name);
  if (it == vdisks_.end()) return Status::NotFound(fmt::format("vdisk '{}' not found", name));
  if (it->second.open_connections > 0) {
    return Status::Busy(
        fmt::format("vdisk '{}' has {} open NBD connection(s)", name, it->second.open_connections));
  }
  vdisks_.erase(it);
  return Status::Ok();
}

Result<ClusterView> FakeAdminService::GetCluster() {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  if (cluster_failure_.has_value()) return *cluster_failure_;
  return cluster_;
}

Result<MetadataRowView> FakeAdminService::MetadataGet(const std::string& key) {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  WEFT_RETURN_IF_ERROR(ValidateMetadataKey(key));
  auto it = rows_.find(key);
  if (it == rows_.end()) return Status::NotFound(fmt::format("metadata row '{}' not found", key));
  return it->second;
}

Result<uint64_t> FakeAdminService::MetadataCompareAndSet(const std::string& key,
                                                         uint64_t expected_version,
                                                         const std::string& value) {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  WEFT_RETURN_IF_ERROR(ValidateMetadataKey(key));
  if (value.size() > metadata::kMaxValueBytes) {
    return Status::InvalidArgument(fmt::format("metadata value of {} bytes is over the {} allowed",
                                               value.size(), metadata::kMaxValueBytes));
  }
  auto it = rows_.find(key);
  const uint64_t found_version = it == rows_.end() ? 0 : it->second.version;
  if (found_version != expected_version) return VersionConflict(expected_version, found_version);
  MetadataRowView& row = rows_[key];
  row = {key, value, found_version + 1};
  WEFT_ASSERT(row.version >= 1);
  return row.version;
}

Status FakeAdminService::MetadataCompareAndDelete(const std::string& key,
                                                  uint64_t expected_version) {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  WEFT_RETURN_IF_ERROR(ValidateMetadataKey(key));
  auto it = rows_.find(key);
  const uint64_t found_version = it == rows_.end() ? 0 : it->second.version;
  if (found_version != expected_version) return VersionConflict(expected_version, found_version);
  // Deleting an absent row at version 0 is the conflict-free no-op MetadataStore allows.
  if (it != rows_.end()) rows_.erase(it);
  return Status::Ok();
}

Result<std::vector<MetadataRowView>> FakeAdminService::MetadataScan(const std::string& prefix,
                                                                    const std::string& start_after,
                                                                    uint32_t limit) {
  std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(BeginCall());
  if (limit == 0 || limit > metadata::kMaxScanRows) {
    return Status::InvalidArgument(
        fmt::format("invalid scan limit {}: must be 1 to {}", limit, metadata::kMaxScanRows));
  }
  std::vector<MetadataRowView> rows;
  auto it = start_after.empty() || start_after < prefix ? rows_.lower_bound(prefix)
                                                        : rows_.upper_bound(start_after);
  for (; it != rows_.end() && rows.size() < limit && it->first.starts_with(prefix); ++it) {
    rows.push_back(it->second);
  }
  WEFT_ASSERT(rows.size() <= limit);
  return rows;
}

}  // namespace weft::admin
