#include "vdisk/vdisk_manager.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <set>

namespace weft::vdisk {

namespace {

constexpr uint32_t kScanBatchRows = 1000;
constexpr uint64_t kVdiskIdBatch = 16;
constexpr uint64_t kEgroupIdBatch = 1024;

uint64_t NowUnixSeconds() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::string ContainerTicket(const std::string& name) { return "container:" + name; }
std::string VdiskTicket(const std::string& name) { return "vdisk:" + name; }

}  // namespace

VdiskManager::VdiskManager(VdiskManagerOptions options)
    : options_(std::move(options)),
      vdisk_ids_(*options_.metadata, "vdisk", kVdiskIdBatch),
      egroup_ids_(*options_.metadata, "egroup", kEgroupIdBatch) {
  WEFT_ASSERT(options_.metadata != nullptr && options_.disks != nullptr);
  WEFT_ASSERT(options_.executor != nullptr && options_.node_count >= 1);
}

VdiskManager::~VdiskManager() {
  for (const auto& [name, entry] : vdisks_)
    WEFT_ASSERT(entry.controller->inflight_operations() == 0);
}

ControllerContext VdiskManager::controller_context() {
  return ControllerContext{options_.metadata, options_.executor, options_.disks,
                           &egroup_ids_,      options_.io,       options_.peers};
}

bool VdiskManager::OwnedHere(const records::Vdisk& record) const {
  if (options_.peers == nullptr || record.owner_node() == 0) return true;
  return record.owner_node() == options_.peers->local_node_id();
}

void VdiskManager::Quiesce(Completion done) {
  std::vector<VdiskController*> controllers;
  for (auto& [name, entry] : vdisks_) controllers.push_back(entry.controller.get());
  for (auto& controller : deleting_) controllers.push_back(controller.get());
  if (controllers.empty()) {
    options_.executor([done = std::move(done)] { done(Status::Ok()); });
    return;
  }
  auto remaining = std::make_shared<size_t>(controllers.size());
  auto shared_done = std::make_shared<Completion>(std::move(done));
  for (VdiskController* controller : controllers) {
    controller->Quiesce([remaining, shared_done](Status) {
      if (--*remaining == 0) (*shared_done)(Status::Ok());
    });
  }
}

uint64_t VdiskManager::inflight_operations() const {
  uint64_t total = 0;
  for (const auto& [name, entry] : vdisks_) total += entry.controller->inflight_operations();
  return total;
}

// ---- Open ----

void VdiskManager::Open(Completion done) {
  LoadContainers("", [this, done = std::move(done)](Status status) mutable {
    if (!status.ok()) return done(status);
    LoadVdisks("", {}, [this, done = std::move(done)](Status loaded) mutable {
      if (loaded.ok()) {
        loaded_ = true;
        std::deque<std::function<void()>> waiting = std::move(load_waiters_);
        load_waiters_.clear();
        for (auto& run : waiting) options_.executor(std::move(run));
        // Membership news that came while loading: act on it now.
        if (options_.peers != nullptr && !live_nodes_.empty()) OnMembersChanged(live_nodes_);
      }
      done(std::move(loaded));
    });
  });
}

void VdiskManager::WhenLoaded(std::function<void()> run) {
  // Changes asked for while the catalogue loads (a cluster node whose ring has no quorum yet)
  // wait for it, in order; the caller's own timeout bounds the wait.
  load_waiters_.push_back(std::move(run));
}

void VdiskManager::LoadContainers(std::string start_after, Completion done) {
  options_.metadata->Scan(
      std::string(kContainerPrefix), std::move(start_after), kScanBatchRows,
      [this, done = std::move(done)](Result<std::vector<metadata::Row>> rows) mutable {
        if (!rows.ok()) return done(rows.status());
        for (const metadata::Row& row : *rows) {
          records::Container record;
          const Status decoded = Decode(row.key, row.value, record);
          if (!decoded.ok()) return done(decoded);
          containers_[record.name()] = ContainerEntry{record, row.version};
        }
        if (rows->size() < kScanBatchRows) return done(Status::Ok());
        LoadContainers(rows->back().key, std::move(done));
      });
}

void VdiskManager::LoadVdisks(std::string start_after, std::vector<metadata::Row> loaded,
                              Completion done) {
  options_.metadata->Scan(
      std::string(kVdiskPrefix), std::move(start_after), kScanBatchRows,
      [this, loaded = std::move(loaded),
       done = std::move(done)](Result<std::vector<metadata::Row>> rows) mutable {
        if (!rows.ok()) return done(rows.status());
        const bool more = rows->size() == kScanBatchRows;
        for (metadata::Row& row : *rows) loaded.push_back(std::move(row));
        if (more) {
          std::string last = loaded.back().key;
          return LoadVdisks(std::move(last), std::move(loaded), std::move(done));
        }
        OpenLoadedVdisks(std::move(loaded), 0, std::move(done));
      });
}

void VdiskManager::OpenLoadedVdisks(std::vector<metadata::Row> rows, size_t index,
                                    Completion done) {
  if (index == rows.size()) return done(Status::Ok());
  records::Vdisk record;
  const metadata::Row& row = rows[index];
  const Status decoded = Decode(row.key, row.value, record);
  if (!decoded.ok()) return done(decoded);
  if (!OwnedHere(record) || vdisks_.contains(record.name())) {
    // Another node serves it (this node may hold copies of its data, served to that node), or
    // an earlier attempt of Open loaded it already.
    return OpenLoadedVdisks(std::move(rows), index + 1, std::move(done));
  }
  // One vDisk loads at a time; it waits here until its block map is in.
  WEFT_ASSERT(loading_ == nullptr);
  loading_ = std::make_unique<VdiskController>(controller_context(), record);
  loading_->Load(
      [this, rows = std::move(rows), index, done = std::move(done)](Status status) mutable {
        std::unique_ptr<VdiskController> controller = std::move(loading_);
        const metadata::Row& row = rows[index];
        if (!status.ok()) {
          return done(status.WithContext(fmt::format("loading vdisk row {}", row.key)));
        }
        const records::Vdisk& record = controller->record();
        if (record.state() == records::VDISK_STATE_DELETING) {
          spdlog::info("vdisk {}: finishing its deletion", record.name());
          std::string key = row.key;
          const uint64_t version = row.version;
          auto next = [this, rows = std::move(rows), index,
                       done = std::move(done)](Status deleted) mutable {
            if (!deleted.ok()) return done(deleted);
            OpenLoadedVdisks(std::move(rows), index + 1, std::move(done));
          };
          return FinishDeletion(std::move(controller), std::move(key), version, std::move(next));
        }
        controller->set_row_version(row.version);
        vdisks_[record.name()] = VdiskEntry{std::move(controller), row.version};
        OpenLoadedVdisks(std::move(rows), index + 1, std::move(done));
      });
}

// ---- Containers ----

void VdiskManager::CreateContainer(const std::string& name, uint32_t replication_factor,
                                   ResultCompletion<records::Container> done) {
  auto fail = [this, &done](Status status) {
    options_.executor([done = std::move(done), status] { done(status); });
  };
  if (!loaded_) {
    return WhenLoaded([this, name, replication_factor, done = std::move(done)]() mutable {
      CreateContainer(name, replication_factor, std::move(done));
    });
  }
  Status valid = ValidateName("container", name);
  if (!valid.ok()) return fail(valid);
  if (replication_factor < 1 || replication_factor > kReplicationFactorMax) {
    return fail(Status::InvalidArgument(fmt::format("replication factor {} is not between 1 and {}",
                                                    replication_factor, kReplicationFactorMax)));
  }
  if (replication_factor > options_.node_count) {
    return fail(Status::InvalidArgument(
        fmt::format("replication factor {} needs at least {} nodes, and this cluster has {}",
                    replication_factor, replication_factor, options_.node_count)));
  }
  if (containers_.contains(name) || names_in_progress_.contains(ContainerTicket(name))) {
    return fail(Status::AlreadyExists(fmt::format("container '{}' already exists", name)));
  }
  records::Container record;
  record.set_format_version(1);
  record.set_name(name);
  record.set_replication_factor(replication_factor);
  record.set_created_unix_s(NowUnixSeconds());
  names_in_progress_.insert(ContainerTicket(name));
  options_.metadata->CompareAndSet(ContainerKey(name), 0, Encode(record),
                                   [this, record, done = std::move(done)](Result<uint64_t> set) {
                                     names_in_progress_.erase(ContainerTicket(record.name()));
                                     if (set.status().IsAborted()) {
                                       return done(Status::AlreadyExists(fmt::format(
                                           "container '{}' already exists", record.name())));
                                     }
                                     if (!set.ok()) return done(set.status());
                                     containers_[record.name()] = ContainerEntry{record, *set};
                                     spdlog::info("container {} created (replication factor {})",
                                                  record.name(), record.replication_factor());
                                     done(record);
                                   });
}

void VdiskManager::DeleteContainer(const std::string& name, Completion done) {
  auto fail = [this, &done](Status status) {
    options_.executor([done = std::move(done), status] { done(status); });
  };
  if (!loaded_) {
    return WhenLoaded(
        [this, name, done = std::move(done)]() mutable { DeleteContainer(name, std::move(done)); });
  }
  const auto found = containers_.find(name);
  if (found == containers_.end() || names_in_progress_.contains(ContainerTicket(name))) {
    return fail(Status::NotFound(fmt::format("container '{}' not found", name)));
  }
  uint64_t vdisks = 0;
  for (const auto& [vdisk_name, entry] : vdisks_) {
    if (entry.controller->record().container() == name) ++vdisks;
  }
  for (const auto& controller : deleting_) {
    if (controller->record().container() == name) ++vdisks;
  }
  if (vdisks > 0) {
    return fail(Status::Busy(
        fmt::format("container '{}' still holds {} vdisk(s); delete them first", name, vdisks)));
  }
  names_in_progress_.insert(ContainerTicket(name));
  options_.metadata->CompareAndDelete(ContainerKey(name), found->second.version,
                                      [this, name, done = std::move(done)](Status status) {
                                        names_in_progress_.erase(ContainerTicket(name));
                                        if (status.ok()) {
                                          containers_.erase(name);
                                          spdlog::info("container {} deleted", name);
                                        }
                                        done(status);
                                      });
}

std::vector<records::Container> VdiskManager::ListContainers() const {
  std::vector<records::Container> list;
  for (const auto& [name, entry] : containers_) list.push_back(entry.record);
  return list;
}

Result<records::Container> VdiskManager::GetContainer(const std::string& name) const {
  const auto found = containers_.find(name);
  if (found == containers_.end()) {
    return Status::NotFound(fmt::format("container '{}' not found", name));
  }
  return found->second.record;
}

// ---- vDisks ----

Status VdiskManager::CheckNewVdisk(const std::string& name, uint64_t size_bytes,
                                   const std::string& container) const {
  WEFT_RETURN_IF_ERROR(ValidateName("vdisk", name));
  WEFT_RETURN_IF_ERROR(ValidateVdiskSize(size_bytes));
  if (!containers_.contains(container)) {
    return Status::NotFound(fmt::format("container '{}' not found", container));
  }
  if (vdisks_.contains(name) || names_in_progress_.contains(VdiskTicket(name))) {
    return Status::AlreadyExists(fmt::format("vdisk '{}' already exists", name));
  }
  for (const auto& controller : deleting_) {
    if (controller->record().name() == name) {
      return Status::Busy(fmt::format("vdisk '{}' is still being deleted", name));
    }
  }
  return Status::Ok();
}

void VdiskManager::CreateVdisk(const std::string& name, uint64_t size_bytes,
                               const std::string& container_name,
                               ResultCompletion<records::Vdisk> done, bool reloaded_containers) {
  if (!loaded_) {
    return WhenLoaded([this, name, size_bytes, container_name, done = std::move(done)]() mutable {
      CreateVdisk(name, size_bytes, container_name, std::move(done));
    });
  }
  const std::string container = container_name.empty() ? kDefaultContainer : container_name;
  if (options_.peers != nullptr && !containers_.contains(container) && !reloaded_containers) {
    // Cluster mode: another node may have created the container.
    LoadContainers("", [this, name, size_bytes, container_name,
                        done = std::move(done)](Status status) mutable {
      if (!status.ok()) return done(status);
      CreateVdisk(name, size_bytes, container_name, std::move(done), true);
    });
    return;
  }
  const Status valid = CheckNewVdisk(name, size_bytes, container);
  if (!valid.ok()) {
    options_.executor([done = std::move(done), valid] { done(valid); });
    return;
  }
  names_in_progress_.insert(VdiskTicket(name));
  vdisk_ids_.Allocate([this, name, size_bytes, container,
                       done = std::move(done)](Result<uint64_t> vdisk_id) mutable {
    if (!vdisk_id.ok()) {
      names_in_progress_.erase(VdiskTicket(name));
      return done(vdisk_id.status());
    }
    records::Vdisk record;
    record.set_format_version(1);
    record.set_name(name);
    record.set_id(*vdisk_id);
    record.set_container(container);
    record.set_size_bytes(size_bytes);
    record.set_created_unix_s(NowUnixSeconds());
    record.set_state(records::VDISK_STATE_ACTIVE);
    if (options_.peers != nullptr) {
      const uint32_t replication_factor = containers_.at(container).record.replication_factor();
      record.set_replication_factor(replication_factor);
      record.set_owner_node(options_.peers->local_node_id());
      record.set_owner_epoch(1);
      std::vector<PeerNode> peers = options_.peers->LivePeers();
      std::erase_if(peers, [this](const PeerNode& peer) {
        return peer.node_id == options_.peers->local_node_id();
      });
      if (peers.size() + 1 < replication_factor) {
        names_in_progress_.erase(VdiskTicket(name));
        return done(Status::Unavailable(
            fmt::format("vdisk {}: replication factor {} needs {} live nodes, {} are live", name,
                        replication_factor, replication_factor, peers.size() + 1)));
      }
      // OpLog peers: a rotation by vDisk id spreads them over the cluster; never two copies in
      // one fault domain.
      std::sort(peers.begin(), peers.end(),
                [](const PeerNode& a, const PeerNode& b) { return a.node_id < b.node_id; });
      std::set<std::string> domains;
      if (!options_.peers->local_fault_domain().empty()) {
        domains.insert(options_.peers->local_fault_domain());
      }
      for (size_t index = 0; index < peers.size() &&
                             record.oplog_peers_size() + 1 < static_cast<int>(replication_factor);
           ++index) {
        const PeerNode& peer = peers[(*vdisk_id + index) % peers.size()];
        if (!peer.fault_domain.empty() && !domains.insert(peer.fault_domain).second) continue;
        record.add_oplog_peers(peer.node_id);
      }
      if (record.oplog_peers_size() + 1 < static_cast<int>(replication_factor)) {
        names_in_progress_.erase(VdiskTicket(name));
        return done(Status::Unavailable(
            fmt::format("vdisk {}: replication factor {} needs live nodes in {} fault domains",
                        name, replication_factor, replication_factor)));
      }
    }
    options_.metadata->CompareAndSet(
        VdiskKey(name), 0, Encode(record),
        [this, record, done = std::move(done)](Result<uint64_t> set) mutable {
          names_in_progress_.erase(VdiskTicket(record.name()));
          if (set.status().IsAborted()) {
            return done(
                Status::AlreadyExists(fmt::format("vdisk '{}' already exists", record.name())));
          }
          if (!set.ok()) return done(set.status());
          // A new vDisk has no block map or egroups yet: nothing to load.
          vdisks_[record.name()] =
              VdiskEntry{std::make_unique<VdiskController>(controller_context(), record), *set};
          vdisks_.at(record.name()).controller->set_row_version(*set);
          vdisks_.at(record.name()).controller->Start();
          spdlog::info("vdisk {} created: {} bytes in container {}", record.name(),
                       record.size_bytes(), record.container());
          done(record);
        });
  });
}

void VdiskManager::ResizeVdisk(const std::string& name, uint64_t size_bytes,
                               ResultCompletion<records::Vdisk> done) {
  auto fail = [this, &done](Status status) {
    options_.executor([done = std::move(done), status] { done(status); });
  };
  if (!loaded_) {
    return WhenLoaded([this, name, size_bytes, done = std::move(done)]() mutable {
      ResizeVdisk(name, size_bytes, std::move(done));
    });
  }
  const auto found = vdisks_.find(name);
  if (found == vdisks_.end())
    return fail(Status::NotFound(fmt::format("vdisk '{}' not found", name)));
  const Status valid = ValidateVdiskSize(size_bytes);
  if (!valid.ok()) return fail(valid);
  if (names_in_progress_.contains(VdiskTicket(name))) {
    return fail(Status::Busy(fmt::format("vdisk '{}' is being changed; try again", name)));
  }
  records::Vdisk record = found->second.controller->record();
  record.set_size_bytes(size_bytes);
  names_in_progress_.insert(VdiskTicket(name));
  const uint64_t version = std::max(found->second.version, found->second.controller->row_version());
  options_.metadata->CompareAndSet(
      VdiskKey(name), version, Encode(record),
      [this, record, done = std::move(done)](Result<uint64_t> set) mutable {
        const auto entry = vdisks_.find(record.name());
        WEFT_ASSERT(entry != vdisks_.end());  // Deletion waits for names_in_progress_.
        if (!set.ok()) {
          names_in_progress_.erase(VdiskTicket(record.name()));
          return done(set.status());
        }
        entry->second.version = *set;
        entry->second.controller->set_row_version(*set);
        entry->second.controller->Resize(
            record, [this, record, done = std::move(done)](Status status) {
              names_in_progress_.erase(VdiskTicket(record.name()));
              if (!status.ok()) return done(status);
              spdlog::info("vdisk {} resized to {} bytes", record.name(), record.size_bytes());
              done(record);
            });
      });
}

void VdiskManager::DeleteVdisk(const std::string& name, Completion done) {
  auto fail = [this, &done](Status status) {
    options_.executor([done = std::move(done), status] { done(status); });
  };
  if (!loaded_) {
    return WhenLoaded(
        [this, name, done = std::move(done)]() mutable { DeleteVdisk(name, std::move(done)); });
  }
  const auto found = vdisks_.find(name);
  if (found == vdisks_.end())
    return fail(Status::NotFound(fmt::format("vdisk '{}' not found", name)));
  VdiskController& controller = *found->second.controller;
  if (names_in_progress_.contains(VdiskTicket(name))) {
    return fail(Status::Busy(fmt::format("vdisk '{}' is being changed; try again", name)));
  }
  if (controller.open_handles() > 0) {
    return fail(Status::Busy(
        fmt::format("vdisk '{}' has {} open NBD connection(s)", name, controller.open_handles())));
  }
  if (controller.inflight_operations() > 0) {
    return fail(Status::Busy(fmt::format("vdisk '{}' has I/O in flight", name)));
  }
  records::Vdisk record = controller.record();
  record.set_state(records::VDISK_STATE_DELETING);
  names_in_progress_.insert(VdiskTicket(name));
  const uint64_t version = std::max(found->second.version, controller.row_version());
  options_.metadata->CompareAndSet(
      VdiskKey(name), version, Encode(record),
      [this, name, done = std::move(done)](Result<uint64_t> set) mutable {
        names_in_progress_.erase(VdiskTicket(name));
        if (!set.ok()) return done(set.status());
        auto entry = vdisks_.extract(name);
        WEFT_ASSERT(!entry.empty());
        spdlog::info("vdisk {}: deleting", name);
        FinishDeletion(std::move(entry.mapped().controller), VdiskKey(name), *set, std::move(done));
      });
}

void VdiskManager::FinishDeletion(std::unique_ptr<VdiskController> controller, std::string key,
                                  uint64_t version, Completion done) {
  VdiskController* raw = controller.get();
  deleting_.push_back(std::move(controller));
  raw->DestroyData(
      [this, raw, key = std::move(key), version, done = std::move(done)](Status status) mutable {
        auto finish = [this, raw, done = std::move(done)](Status status) mutable {
          const std::string name = raw->record().name();
          if (status.ok()) {
            std::erase_if(deleting_, [raw](const auto& owned) { return owned.get() == raw; });
            spdlog::info("vdisk {} deleted", name);
          } else {
            // The row stays DELETING: the next start tries again.
            spdlog::error("vdisk {}: deletion failed, to be retried at the next start: {}", name,
                          status.ToString());
          }
          done(status);
        };
        if (!status.ok()) return finish(status);
        options_.metadata->CompareAndDelete(key, version, std::move(finish));
      });
}

std::vector<VdiskController*> VdiskManager::ListVdisks() const {
  std::vector<VdiskController*> list;
  for (const auto& [name, entry] : vdisks_) {
    if (!entry.controller->relinquished()) list.push_back(entry.controller.get());
  }
  return list;
}

void VdiskManager::RetireRelinquished(const std::string& name) {
  const auto found = vdisks_.find(name);
  if (found == vdisks_.end() || !found->second.controller->relinquished()) return;
  VdiskController& controller = *found->second.controller;
  if (controller.open_handles() > 0 || controller.inflight_operations() > 0) {
    // NBD clients still hold it (their I/O fails): look again in a second.
    if (options_.io.schedule) {
      options_.io.schedule(std::chrono::seconds(1), [this, name] { RetireRelinquished(name); });
    }
    return;
  }
  controller.Quiesce([this, name](Status) {
    const auto entry = vdisks_.find(name);
    if (entry == vdisks_.end() || entry->second.controller->inflight_operations() > 0 ||
        entry->second.controller->open_handles() > 0) {
      return;
    }
    vdisks_.erase(entry);  // Its OpLog closes with it; the files stay for the node as a peer.
    spdlog::info("vdisk {}: no longer served here", name);
  });
}

bool VdiskManager::ServesVdisk(uint64_t vdisk_id) const {
  for (const auto& [name, entry] : vdisks_) {
    if (entry.controller->id() == vdisk_id) return true;
  }
  for (const auto& [name, controller] : takeovers_) {
    if (controller != nullptr && controller->id() == vdisk_id) return true;
  }
  return false;
}

VdiskController* VdiskManager::FindVdisk(const std::string& name) const {
  const auto found = vdisks_.find(name);
  if (found == vdisks_.end() || found->second.controller->relinquished()) return nullptr;
  return found->second.controller.get();
}

// ---- Ownership (cluster mode) ----

void VdiskManager::OnMembersChanged(std::vector<uint32_t> live_nodes) {
  if (options_.peers == nullptr) return;
  std::sort(live_nodes.begin(), live_nodes.end());
  live_nodes_ = live_nodes;
  if (!loaded_) return;  // Open() acts on the newest members once the catalogue is in.
  for (auto& [name, entry] : vdisks_) entry.controller->OnMembersChanged(live_nodes_);
  if (!unlisted_replicas_checked_) {
    unlisted_replicas_checked_ = true;
    DeleteUnlistedReplicas("");
  }
  // One scan of the vDisk rows; each takeover then runs on its own.
  options_.metadata->Scan(
      std::string(kVdiskPrefix), "", kScanBatchRows,
      [this](Result<std::vector<metadata::Row>> rows) {
        if (!rows.ok()) {
          spdlog::warn("ownership: scanning vdisk rows: {}", rows.status().ToString());
          return;
        }
        const uint32_t self = options_.peers->local_node_id();
        for (const metadata::Row& row : *rows) {
          records::Vdisk record;
          if (!Decode(row.key, row.value, record).ok()) continue;
          if (record.state() != records::VDISK_STATE_ACTIVE || record.owner_node() == 0 ||
              record.owner_node() == self || record.replication_factor() <= 1) {
            continue;
          }
          if (auto served = vdisks_.find(record.name()); served != vdisks_.end()) {
            // This node served it and another took it over (this node was away): stop serving.
            if (!served->second.controller->relinquished()) {
              spdlog::warn("vdisk {}: node {} owns it now (epoch {}); no longer serving it here",
                           record.name(), record.owner_node(), record.owner_epoch());
              served->second.controller->Relinquish();
              RetireRelinquished(record.name());
            }
            continue;
          }
          const auto live = [this](uint32_t node) {
            return std::binary_search(live_nodes_.begin(), live_nodes_.end(), node);
          };
          if (live(record.owner_node())) continue;
          // The successor: the lowest live OpLog peer (only they hold every acknowledged record).
          uint32_t successor = 0;
          for (uint32_t peer : record.oplog_peers()) {
            if (live(peer) && (successor == 0 || peer < successor)) successor = peer;
          }
          if (successor != self || takeovers_.contains(record.name()) ||
              vdisks_.contains(record.name())) {
            continue;
          }
          TakeOver(record, row.version);
        }
      });
}

void VdiskManager::DeleteUnlistedReplicas(std::string start_after) {
  options_.metadata->Scan(
      "egroup/", std::move(start_after), kScanBatchRows,
      [this](Result<std::vector<metadata::Row>> rows) {
        if (!rows.ok()) {
          spdlog::warn("stale replicas: scanning egroup rows: {}", rows.status().ToString());
          return;
        }
        const uint32_t self = options_.peers->local_node_id();
        for (const metadata::Row& row : *rows) {
          records::Egroup record;
          if (!Decode(row.key, row.value, record).ok() || record.replicas().empty()) continue;
          const bool listed =
              std::any_of(record.replicas().begin(), record.replicas().end(),
                          [self](const records::EgroupReplica& r) { return r.node_id() == self; });
          if (listed) continue;
          for (NodeDisk& disk : *options_.disks) {
            if (!disk.store->GetEgroup(record.egroup_id()).ok()) continue;
            const Status deleted = disk.store->DeleteEgroup(record.egroup_id());
            if (deleted.ok()) {
              ++stale_replicas_deleted_;
              spdlog::info("egroup {}: stale replica deleted (the row lists other nodes)",
                           record.egroup_id());
            }
          }
        }
        if (rows->size() == kScanBatchRows) DeleteUnlistedReplicas(rows->back().key);
      });
}

void VdiskManager::TakeOver(records::Vdisk record, uint64_t row_version) {
  const std::string name = record.name();
  const uint32_t previous_owner = record.owner_node();
  record.set_owner_node(options_.peers->local_node_id());
  record.set_owner_epoch(record.owner_epoch() + 1);
  // This node is the owner now, not a peer; the other old peers stay listed (they hold the
  // records too, should this node die before it has chosen new peers).
  std::vector<uint32_t> peers(record.oplog_peers().begin(), record.oplog_peers().end());
  std::erase(peers, options_.peers->local_node_id());
  record.clear_oplog_peers();
  for (uint32_t peer : peers) record.add_oplog_peers(peer);
  spdlog::warn("vdisk {}: owner node {} is gone; taking it over at epoch {}", name, previous_owner,
               record.owner_epoch());
  const auto started = std::chrono::steady_clock::now();
  takeovers_[name] = nullptr;
  auto fail = [this, name](Status status) {
    spdlog::error("vdisk {}: takeover failed: {}", name, status.ToString());
    std::unique_ptr<VdiskController> controller = std::move(takeovers_.at(name));
    takeovers_.erase(name);
    if (controller != nullptr) {
      // Nothing of it may be in flight when it goes: quiesce, then drop it on the executor.
      VdiskController* raw = controller.release();
      raw->Quiesce([this, raw](Status) { options_.executor([raw] { delete raw; }); });
    }
  };
  options_.metadata->CompareAndSet(
      VdiskKey(name), row_version, Encode(record),
      [this, record, name, started, fail](Result<uint64_t> set) {
        if (!set.ok()) return fail(set.status());  // Another node won, or the row moved.
        const uint64_t version = *set;
        auto open = [this, record, name, version, started, fail](Status prepared) {
          if (!prepared.ok()) return fail(prepared);
          auto controller = std::make_unique<VdiskController>(controller_context(), record);
          controller->set_row_version(version);
          VdiskController* raw = controller.get();
          takeovers_.at(name) = std::move(controller);
          raw->Load([this, raw, name, started, fail](Status loaded) {
            if (!loaded.ok()) return fail(loaded);
            raw->RecoverAfterTakeover([this, raw, name, started, fail](Status recovered) {
              if (!recovered.ok()) return fail(recovered);
              std::unique_ptr<VdiskController> owned = std::move(takeovers_.at(name));
              takeovers_.erase(name);
              WEFT_ASSERT(owned.get() == raw);
              const uint64_t version = raw->row_version();
              vdisks_[name] = VdiskEntry{std::move(owned), version};
              const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - started);
              spdlog::warn("vdisk {}: taken over in {} ms; serving it (epoch {}, oplog peers {})",
                           name, elapsed.count(), raw->record().owner_epoch(),
                           fmt::join(raw->record().oplog_peers(), ","));
            });
          });
        };
        if (options_.prepare_takeover) {
          options_.prepare_takeover(record.id(), record.owner_epoch(), std::move(open));
        } else {
          open(Status::Ok());
        }
      });
}

}  // namespace weft::vdisk
