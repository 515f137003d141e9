#include "daemon/node_admin_service.h"

#include <fmt/format.h>

#include <future>
#include <memory>

namespace weft::daemon {

namespace {
constexpr const char* kVersion = "0.3.0";
}

NodeAdminService::NodeAdminService(env::Reactor& reactor, StorageNode& node,
                                   nbd::NbdServer& nbd_server, NodeAddresses addresses,
                                   ClusterNode& cluster)
    : reactor_(reactor),
      node_(node),
      nbd_server_(nbd_server),
      addresses_(std::move(addresses)),
      cluster_(cluster) {}

template <typename T>
Result<T> NodeAdminService::OnReactor(std::function<void(std::function<void(Result<T>)>)> work) {
  if (!accepting_.load()) return Status::Aborted("weftd is stopping");
  // Shared: the reactor may answer after this thread gave up waiting.
  auto promise = std::make_shared<std::promise<Result<T>>>();
  std::future<Result<T>> future = promise->get_future();
  reactor_.Post([this, promise, work = std::move(work)] {
    if (!accepting_.load()) {
      promise->set_value(Status::Aborted("weftd is stopping"));
      return;
    }
    work([promise](Result<T> result) { promise->set_value(std::move(result)); });
  });
  if (future.wait_for(kCallTimeout) != std::future_status::ready) {
    return Status::Busy("weftd did not answer in time; the operation may still complete");
  }
  return future.get();
}

Status NodeAdminService::OnReactorStatus(std::function<void(std::function<void(Status)>)> work) {
  Result<bool> result = OnReactor<bool>([work = std::move(work)](auto done) {
    work([done = std::move(done)](Status status) {
      if (status.ok()) return done(true);
      done(status);
    });
  });
  return result.status();
}

admin::VdiskView NodeAdminService::ViewOf(const vdisk::VdiskController& controller) const {
  const vdisk::records::Vdisk& record = controller.record();
  const vdisk::VdiskControllerStats stats = controller.stats();
  admin::VdiskView view;
  view.name = record.name();
  view.container = record.container();
  view.size_bytes = record.size_bytes();
  view.used_bytes = stats.used_bytes;
  view.mapped_vblocks = stats.vblocks_mapped;
  view.created_unix_s = record.created_unix_s();
  view.nbd_uri = fmt::format("nbd://{}/{}", addresses_.nbd, record.name());
  view.open_connections = nbd_server_.ConnectionsTo(record.name());
  view.stats = controller.StatGroups();
  return view;
}

admin::ContainerView NodeAdminService::ViewOf(const vdisk::records::Container& container) const {
  admin::ContainerView view;
  view.name = container.name();
  view.replication_factor = container.replication_factor();
  for (const vdisk::VdiskController* controller : node_.manager().ListVdisks()) {
    if (controller->record().container() != container.name()) continue;
    ++view.vdisk_count;
    view.provisioned_bytes += controller->size_bytes();
    view.used_bytes += controller->stats().used_bytes;
  }
  return view;
}

Result<admin::NodeView> NodeAdminService::GetNode() {
  return OnReactor<admin::NodeView>([this](auto done) {
    admin::NodeView view;
    view.node_id = node_.node_id();
    view.version = kVersion;
    view.uptime_s = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                              std::chrono::steady_clock::now() - started_)
                                              .count());
    view.data_dir = node_.options().data_dir;
    view.nbd_address = addresses_.nbd;
    view.admin_address = addresses_.admin;
    view.nbd_connections = nbd_server_.connection_count();
    view.vdisk_count = node_.manager().ListVdisks().size();
    view.container_count = node_.manager().ListContainers().size();
    for (const vdisk::NodeDisk& disk : node_.disks()) {
      const extent_store::ExtentStoreStats stats = disk.store->stats();
      admin::DiskView disk_view;
      disk_view.path = disk.path;
      disk_view.uuid = disk.uuid;
      disk_view.size_bytes = stats.blockstore.data_blocks * stats.blockstore.block_size_bytes;
      disk_view.free_bytes = stats.blockstore.free_blocks * stats.blockstore.block_size_bytes;
      disk_view.used_bytes = stats.blockstore.client_blocks * stats.blockstore.block_size_bytes;
      disk_view.egroups = stats.egroups;
      disk_view.state = "online";
      view.disks.push_back(std::move(disk_view));
    }
    view.cache = node_.CacheStats();
    done(std::move(view));
  });
}

Result<std::vector<admin::ContainerView>> NodeAdminService::ListContainers() {
  return OnReactor<std::vector<admin::ContainerView>>([this](auto done) {
    std::vector<admin::ContainerView> views;
    for (const auto& container : node_.manager().ListContainers()) {
      views.push_back(ViewOf(container));
    }
    done(std::move(views));
  });
}

Result<admin::ContainerView> NodeAdminService::GetContainer(const std::string& name) {
  return OnReactor<admin::ContainerView>([this, name](auto done) {
    Result<vdisk::records::Container> container = node_.manager().GetContainer(name);
    if (!container.ok()) return done(container.status());
    done(ViewOf(*container));
  });
}

Result<admin::ContainerView> NodeAdminService::CreateContainer(const std::string& name,
                                                               uint32_t replication_factor) {
  return OnReactor<admin::ContainerView>([this, name, replication_factor](auto done) {
    node_.manager().CreateContainer(name, replication_factor,
                                    [this, done](Result<vdisk::records::Container> created) {
                                      if (!created.ok()) return done(created.status());
                                      done(ViewOf(*created));
                                    });
  });
}

Status NodeAdminService::DeleteContainer(const std::string& name) {
  return OnReactorStatus(
      [this, name](auto done) { node_.manager().DeleteContainer(name, std::move(done)); });
}

Result<std::vector<admin::VdiskView>> NodeAdminService::ListVdisks() {
  return OnReactor<std::vector<admin::VdiskView>>([this](auto done) {
    std::vector<admin::VdiskView> views;
    for (const vdisk::VdiskController* controller : node_.manager().ListVdisks()) {
      views.push_back(ViewOf(*controller));
    }
    done(std::move(views));
  });
}

Result<admin::VdiskView> NodeAdminService::GetVdisk(const std::string& name) {
  return OnReactor<admin::VdiskView>([this, name](auto done) {
    const vdisk::VdiskController* controller = node_.manager().FindVdisk(name);
    if (controller == nullptr) {
      return done(Status::NotFound(fmt::format("vdisk '{}' not found", name)));
    }
    done(ViewOf(*controller));
  });
}

Result<admin::VdiskView> NodeAdminService::CreateVdisk(const std::string& name, uint64_t size_bytes,
                                                       const std::string& container) {
  return OnReactor<admin::VdiskView>([this, name, size_bytes, container](auto done) {
    node_.manager().CreateVdisk(name, size_bytes, container,
                                [this, done](Result<vdisk::records::Vdisk> created) {
                                  if (!created.ok()) return done(created.status());
                                  done(ViewOf(*node_.manager().FindVdisk(created->name())));
                                });
  });
}

Result<admin::VdiskView> NodeAdminService::ResizeVdisk(const std::string& name,
                                                       uint64_t size_bytes) {
  return OnReactor<admin::VdiskView>([this, name, size_bytes](auto done) {
    node_.manager().ResizeVdisk(
        name, size_bytes, [this, done](Result<vdisk::records::Vdisk> resized) {
          if (!resized.ok()) return done(resized.status());
          const vdisk::VdiskController* controller = node_.manager().FindVdisk(resized->name());
          if (controller == nullptr) {
            return done(Status::NotFound("vdisk deleted meanwhile"));
          }
          done(ViewOf(*controller));
        });
  });
}

Status NodeAdminService::DeleteVdisk(const std::string& name) {
  return OnReactorStatus([this, name](auto done) {
    // An NBD connection in transmission holds the vDisk open (the manager checks the handles;
    // this check names the cause).
    const uint32_t connections = nbd_server_.ConnectionsTo(name);
    if (connections > 0) {
      return done(Status::Busy(fmt::format(
          "vdisk '{}' has {} open NBD connection(s); disconnect them first", name, connections)));
    }
    node_.manager().DeleteVdisk(name, std::move(done));
  });
}

// ---- Cluster and global metadata ---------------------------------------------------------------

Result<admin::ClusterView> NodeAdminService::GetCluster() {
  if (!accepting_.load()) return Status::Aborted("weftd is stopping");
  return cluster_.View();
}

template <typename T>
Result<T> NodeAdminService::WaitFor(std::function<void(std::function<void(Result<T>)>)> start) {
  if (!accepting_.load()) return Status::Aborted("weftd is stopping");
  // Shared: the store may answer after this thread gave up waiting.
  auto promise = std::make_shared<std::promise<Result<T>>>();
  std::future<Result<T>> future = promise->get_future();
  start([promise](Result<T> result) { promise->set_value(std::move(result)); });
  if (future.wait_for(kCallTimeout) != std::future_status::ready) {
    return Status::TimedOut("the metadata store did not answer in time");
  }
  return future.get();
}

Result<std::string> NodeAdminService::NamespacedKey(const std::string& key) const {
  if (key.empty()) return Status::InvalidArgument("empty metadata key");
  if (key.size() + kMetadataNamespace.size() > metadata::kMaxKeyBytes) {
    return Status::InvalidArgument(fmt::format("metadata key of {} bytes is longer than {}",
                                               key.size(),
                                               metadata::kMaxKeyBytes - kMetadataNamespace.size()));
  }
  return std::string(kMetadataNamespace) + key;
}

Result<admin::MetadataRowView> NodeAdminService::MetadataGet(const std::string& key) {
  Result<std::string> full = NamespacedKey(key);
  if (!full.ok()) return full.status();
  Result<metadata::Row> row = WaitFor<metadata::Row>([&](auto done) {
    cluster_.metadata().Get(*full, [done](Result<metadata::Row> r) { done(std::move(r)); });
  });
  if (!row.ok()) {
    if (row.status().code() == StatusCode::kNotFound) {
      return Status::NotFound(fmt::format("metadata key '{}' not found", key));
    }
    return row.status();
  }
  return admin::MetadataRowView{.key = key, .value = row->value, .version = row->version};
}

Result<uint64_t> NodeAdminService::MetadataCompareAndSet(const std::string& key,
                                                         uint64_t expected_version,
                                                         const std::string& value) {
  Result<std::string> full = NamespacedKey(key);
  if (!full.ok()) return full.status();
  return WaitFor<uint64_t>([&](auto done) {
    cluster_.metadata().CompareAndSet(*full, expected_version, value,
                                      [done](Result<uint64_t> r) { done(std::move(r)); });
  });
}

Status NodeAdminService::MetadataCompareAndDelete(const std::string& key,
                                                  uint64_t expected_version) {
  Result<std::string> full = NamespacedKey(key);
  if (!full.ok()) return full.status();
  Result<bool> deleted = WaitFor<bool>([&](auto done) {
    cluster_.metadata().CompareAndDelete(*full, expected_version, [done](Status status) {
      if (status.ok()) {
        done(true);
      } else {
        done(std::move(status));
      }
    });
  });
  return deleted.status();
}

Result<std::vector<admin::MetadataRowView>> NodeAdminService::MetadataScan(
    const std::string& prefix, const std::string& start_after, uint32_t limit) {
  const std::string full_prefix = std::string(kMetadataNamespace) + prefix;
  const std::string full_start =
      start_after.empty() ? "" : std::string(kMetadataNamespace) + start_after;
  Result<std::vector<metadata::Row>> rows = WaitFor<std::vector<metadata::Row>>([&](auto done) {
    cluster_.metadata().Scan(full_prefix, full_start, limit,
                             [done](Result<std::vector<metadata::Row>> r) { done(std::move(r)); });
  });
  if (!rows.ok()) return rows.status();
  std::vector<admin::MetadataRowView> views;
  for (metadata::Row& row : *rows) {
    views.push_back(admin::MetadataRowView{.key = row.key.substr(kMetadataNamespace.size()),
                                           .value = std::move(row.value),
                                           .version = row.version});
  }
  return views;
}

}  // namespace weft::daemon
