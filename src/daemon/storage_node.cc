#include "daemon/storage_node.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <asio/steady_timer.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "base/uuid.h"

namespace weft::daemon {

namespace {

namespace fs = std::filesystem;

// Both superblock copies live in the first 128 KiB (docs/ondisk/blockstore.md).
constexpr uint64_t kSuperblockRegionBytes = 128 * 1024;
// Most writes one extent store may hold: NBD connections bound what reaches it in total.
constexpr uint32_t kExtentStoreInflightWritesMax = 16384;

Result<bool> RegionIsAllZeros(env::BlockDevice& device) {
  AlignedBuffer buffer(kSuperblockRegionBytes);
  WEFT_RETURN_IF_ERROR(env::ReadSync(device, 0, buffer.span()));
  return std::all_of(buffer.span().begin(), buffer.span().end(),
                     [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace

StorageNode::StorageNode(env::Reactor& reactor, DaemonOptions options)
    : reactor_(reactor), options_(std::move(options)) {}

StorageNode::~StorageNode() {
  const Status closed = Close();
  if (!closed.ok()) spdlog::error("closing the node: {}", closed.ToString());
}

Status StorageNode::LoadOrCreateNodeFile() {
  const fs::path file = fs::path(options_.data_dir) / "node.json";
  std::error_code error;
  if (!fs::exists(file, error)) {
    node_id_ = Uuid::Random().ToString();
    return Status::Ok();
  }
  std::ifstream input(file);
  const nlohmann::json node = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (node.is_discarded() || !node.is_object() || !node.contains("node_id") ||
      !node["node_id"].is_string() || !node.contains("disks") || !node["disks"].is_array()) {
    return Status::Corruption(fmt::format("{}: not a valid weft node file", file.string()));
  }
  node_id_ = node["node_id"].get<std::string>();
  for (const nlohmann::json& disk : node["disks"]) {
    if (!disk.is_object() || !disk.contains("path") || !disk["path"].is_string()) {
      return Status::Corruption(fmt::format("{}: a disk entry has no path", file.string()));
    }
    DiskSpec spec{disk["path"].get<std::string>(), 0};
    if (disk.contains("tier") && disk["tier"].is_string()) {
      const std::string tier = disk["tier"].get<std::string>();
      if (tier == "ssd") spec.tier = DiskTier::kSsd;
      if (tier == "hdd") spec.tier = DiskTier::kHdd;
    }
    known_disks_.push_back(spec);
  }
  return Status::Ok();
}

Status StorageNode::SaveNodeFile() const {
  nlohmann::json node;
  node["node_id"] = node_id_;
  node["format_version"] = 1;
  node["disks"] = nlohmann::json::array();
  for (const auto& disk : disks_) {
    nlohmann::json entry = {{"path", disk->path}, {"uuid", disk->uuid}};
    if (disk->tier != DiskTier::kUnspecified) entry["tier"] = std::string(DiskTierName(disk->tier));
    node["disks"].push_back(std::move(entry));
  }
  // Written to a temporary file, synced and renamed: a crash leaves the old file or the new.
  const fs::path file = fs::path(options_.data_dir) / "node.json";
  const fs::path temporary = fs::path(options_.data_dir) / "node.json.tmp";
  {
    std::ofstream output(temporary, std::ios::trunc);
    output << node.dump(2) << "\n";
    output.flush();
    if (!output) return Status::IOError(fmt::format("writing {}", temporary.string()));
  }
  std::error_code error;
  fs::rename(temporary, file, error);
  if (error)
    return Status::IOError(fmt::format("renaming to {}: {}", file.string(), error.message()));
  return Status::Ok();
}

Status StorageNode::OpenDisk(const DiskSpec& spec) {
  auto disk = std::make_unique<Disk>();
  disk->path = fs::absolute(spec.path).lexically_normal().string();
  disk->tier = spec.tier;
  for (const auto& open : disks_) {
    if (open->path == disk->path) {
      // Given twice (node.json and --disk): a tier on the command line wins.
      if (spec.tier != DiskTier::kUnspecified) open->tier = spec.tier;
      return Status::Ok();
    }
  }
  std::error_code error;
  const bool created = !fs::exists(disk->path, error);
  env::UringDeviceOptions device_options;
  if (created) {
    uint64_t size_bytes = spec.size_bytes != 0 ? spec.size_bytes : kDefaultDiskBytes;
    fs::create_directories(fs::path(disk->path).parent_path(), error);
    struct statvfs file_system {};
    if (spec.size_bytes == 0 &&
        ::statvfs(fs::path(disk->path).parent_path().c_str(), &file_system) == 0) {
      // The default disk is sparse, but do not promise much more than the file system holds.
      const uint64_t available = uint64_t{file_system.f_bavail} * file_system.f_frsize;
      size_bytes = std::max(kMinDiskBytes, std::min(size_bytes, available / 2 / 4096 * 4096));
    }
    device_options.file_size_bytes = size_bytes;
  }
  Result<std::unique_ptr<env::UringDevice>> device =
      env::UringDevice::Open(disk->path, device_options);
  if (!device.ok()) return device.status().WithContext(fmt::format("disk {}", disk->path));
  disk->device = std::move(device).value();
  WEFT_ASSIGN_OR_RETURN(const bool blank, RegionIsAllZeros(*disk->device));
  if (created || blank) {
    spdlog::info("disk {}: formatting {} bytes", disk->path, disk->device->size_bytes());
    WEFT_RETURN_IF_ERROR(blockstore::Blockstore::Format(*disk->device, {}));
  }
  Result<std::unique_ptr<blockstore::Blockstore>> opened =
      blockstore::Blockstore::Open(*disk->device);
  if (!opened.ok()) {
    return opened.status().WithContext(fmt::format(
        "disk {} is not a weft disk (and is not blank, so weftd will not format it)", disk->path));
  }
  disk->blockstore = std::move(opened).value();
  disk->uuid = disk->blockstore->uuid().ToString();
  const fs::path aes = fs::path(options_.data_dir) / "disks" / disk->uuid / "aes";
  fs::create_directories(aes, error);
  if (error) return Status::IOError(fmt::format("creating {}: {}", aes.string(), error.message()));
  extent_store::ExtentStoreOptions store_options;
  store_options.metadata_path = aes.string();
  store_options.disk_name = disk->path;
  store_options.max_inflight_writes = kExtentStoreInflightWritesMax;
  Result<std::unique_ptr<extent_store::ExtentStore>> store =
      extent_store::ExtentStore::Open(*disk->blockstore, store_options);
  if (!store.ok()) return store.status().WithContext(fmt::format("disk {}", disk->path));
  disk->store = std::move(store).value();
  extent_store::ExtentStore* raw_store = disk->store.get();
  reactor_.AddPoller([raw_store] { return raw_store->Poll(/*wait=*/false); });
  reactor_.WatchNotifyFd(disk->device->completion_notify_fd());
  spdlog::info("disk {}: online (uuid {}, {} bytes, {} egroups)", disk->path, disk->uuid,
               disk->device->size_bytes(), raw_store->stats().egroups);
  disks_.push_back(std::move(disk));
  return Status::Ok();
}

Status StorageNode::Open() {
  std::error_code error;
  fs::create_directories(options_.data_dir, error);
  if (error) {
    return Status::IOError(
        fmt::format("creating data dir {}: {}", options_.data_dir, error.message()));
  }
  WEFT_RETURN_IF_ERROR(LoadOrCreateNodeFile());
  std::vector<DiskSpec> disks = known_disks_;
  for (const DiskSpec& spec : options_.disks) disks.push_back(spec);
  if (disks.empty()) {
    disks.push_back(DiskSpec{(fs::path(options_.data_dir) / "disks" / "disk0.img").string(), 0});
  }
  for (const DiskSpec& spec : disks) WEFT_RETURN_IF_ERROR(OpenDisk(spec));
  WEFT_RETURN_IF_ERROR(SaveNodeFile());
  for (const auto& disk : disks_) {
    node_disks_.push_back(vdisk::NodeDisk{disk->uuid, disk->path, disk->store.get()});
  }

  metadata::LocalMetadataStoreOptions metadata_options;
  metadata_options.path = (fs::path(options_.data_dir) / "metadata").string();
  env::Reactor* reactor = &reactor_;
  metadata_options.executor = [reactor](std::function<void()> task) {
    reactor->Post(std::move(task));
  };
  WEFT_ASSIGN_OR_RETURN(metadata_, metadata::LocalMetadataStore::Open(metadata_options));
  Disk& fast_disk = FastDisk();
  WEFT_RETURN_IF_ERROR(OpenCache(fast_disk));
  vdisk::VdiskIoOptions io;
  if (options_.oplog) {
    io.oplog_files = &fast_disk.blockstore->files();
    io.oplog.segment_bytes = kOplogSegmentBytes;
    io.oplog.size_bytes_max = options_.oplog_size_bytes;
  }
  io.sequential_threshold_bytes = options_.oplog_sequential_threshold_bytes;
  io.cache = cache_.get();
  io.schedule = [reactor](std::chrono::microseconds delay, std::function<void()> task) {
    auto timer = std::make_shared<asio::steady_timer>(reactor->io_context(), delay);
    timer->async_wait([timer, task = std::move(task)](const std::error_code& error) {
      if (!error) task();
    });
  };
  spdlog::info("oplog: {} (fast disk {}), cache: {} MiB in memory, {} MiB on SSD",
               options_.oplog ? fmt::format("{} MiB per vdisk", options_.oplog_size_bytes >> 20)
                              : std::string("off"),
               fast_disk.path, cache_->stats().memory_bytes_max >> 20,
               cache_->stats().ssd_bytes_max >> 20);
  io_options_ = io;
  return Status::Ok();
}

Status StorageNode::OpenCatalogue(
    metadata::MetadataStore& metadata, vdisk::PeerIo* peers, uint32_t node_count,
    std::function<void(uint64_t, uint64_t, vdisk::Completion)> prepare_takeover) {
  WEFT_ASSERT(manager_ == nullptr && !disks_.empty());
  env::Reactor* reactor = &reactor_;
  vdisk::VdiskManagerOptions manager_options{
      &metadata, [reactor](std::function<void()> task) { reactor->Post(std::move(task)); },
      &node_disks_, node_count, io_options_};
  manager_options.peers = peers;
  manager_options.prepare_takeover = std::move(prepare_takeover);
  manager_ = std::make_unique<vdisk::VdiskManager>(std::move(manager_options));
  if (peers != nullptr) {
    // A cluster node starts even while the ring has no quorum (its peers may be starting too):
    // the catalogue loads in the background and its vDisks appear once it is in.
    LoadCatalogueInBackground(0);
    return Status::Ok();
  }
  std::optional<Status> opened;
  manager_->Open([&opened](Status status) { opened = status; });
  reactor_.RunUntil([&opened] { return opened.has_value(); });
  WEFT_RETURN_IF_ERROR(*opened);
  WEFT_RETURN_IF_ERROR(EnsureDefaultContainer());
  spdlog::info("node {}: {} disk(s), {} container(s), {} vdisk(s)", node_id_, disks_.size(),
               manager_->ListContainers().size(), manager_->ListVdisks().size());
  return Status::Ok();
}

StorageNode::Disk& StorageNode::FastDisk() {
  WEFT_ASSERT(!disks_.empty());
  for (auto& disk : disks_) {
    if (disk->tier == DiskTier::kSsd) return *disk;
  }
  return *disks_.front();
}

Status StorageNode::OpenCache(Disk& fast_disk) {
  cache::UnifiedCacheOptions cache_options;
  cache_options.memory_bytes = options_.cache_memory_bytes;
  if (cache_options.memory_bytes == 0) {
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long page_bytes = ::sysconf(_SC_PAGE_SIZE);
    cache_options.memory_bytes = cache::DefaultCacheMemoryBytes(
        pages > 0 && page_bytes > 0 ? uint64_t(pages) * uint64_t(page_bytes) : 0);
  }
  // The SSD tier takes at most a sixteenth of the fast disk: data comes first.
  cache_options.ssd_bytes =
      std::min(options_.cache_ssd_bytes, fast_disk.device->size_bytes() / 16 / 4096 * 4096);
  cache_options.ssd_files = &fast_disk.blockstore->files();
  cache_ = std::make_unique<cache::UnifiedCache>(cache_options);
  std::optional<Status> opened;
  cache_->Open([&opened](Status status) { opened = status; });
  reactor_.RunUntil([&opened] { return opened.has_value(); });
  if (!opened->ok()) {
    // A cache is not worth refusing to start for: it runs from memory alone.
    spdlog::warn("unified cache: no SSD tier on {}: {}", fast_disk.path, opened->ToString());
  }
  return Status::Ok();
}

std::map<std::string, uint64_t> StorageNode::CacheStats() const {
  if (cache_ == nullptr) return {};
  const cache::UnifiedCacheStats stats = cache_->stats();
  return {{"hits_memory_single", stats.hits_memory_single},
          {"hits_memory_multi", stats.hits_memory_multi},
          {"hits_ssd", stats.hits_ssd},
          {"misses", stats.misses},
          {"fills", stats.fills},
          {"fills_dropped_stale", stats.fills_dropped_stale},
          {"promotions", stats.promotions},
          {"promotions_from_ssd", stats.promotions_from_ssd},
          {"evictions_single", stats.evictions_single},
          {"evictions_multi_to_ssd", stats.evictions_multi_to_ssd},
          {"evictions_multi", stats.evictions_multi},
          {"evictions_ssd", stats.evictions_ssd},
          {"invalidations", stats.invalidations},
          {"ssd_read_errors", stats.ssd_read_errors},
          {"ssd_write_errors", stats.ssd_write_errors},
          {"single_blocks", stats.single_blocks},
          {"multi_blocks", stats.multi_blocks},
          {"ssd_blocks", stats.ssd_blocks},
          {"memory_bytes_used", stats.memory_bytes_used},
          {"memory_bytes_max", stats.memory_bytes_max},
          {"ssd_bytes_max", stats.ssd_bytes_max}};
}

void StorageNode::LoadCatalogueInBackground(uint32_t attempt) {
  if (closing_ || manager_ == nullptr) return;
  manager_->Open([this, attempt](Status status) {
    if (closing_) return;
    if (!status.ok()) {
      if (attempt % 10 == 0) {
        spdlog::warn("vdisk catalogue: {}; retrying every second", status.ToString());
      }
      io_options_.schedule(std::chrono::seconds(1),
                           [this, attempt] { LoadCatalogueInBackground(attempt + 1); });
      return;
    }
    spdlog::info("node {}: catalogue loaded: {} container(s), {} vdisk(s)", node_id_,
                 manager_->ListContainers().size(), manager_->ListVdisks().size());
    if (known_disks_.empty() && manager_->ListContainers().empty()) {
      CreateDefaultContainerInBackground(0);
    }
  });
}

void StorageNode::CreateDefaultContainerInBackground(uint32_t attempt) {
  if (closing_ || manager_ == nullptr) return;
  manager_->CreateContainer(
      vdisk::VdiskManager::kDefaultContainer, 1,
      [this, attempt](Result<vdisk::records::Container> created) {
        const StatusCode code = created.status().code();
        if (created.ok() || code == StatusCode::kAlreadyExists) return;
        // An unknown outcome (another node raced it) or no quorum: ask again.
        if ((code == StatusCode::kUnavailable || code == StatusCode::kTimedOut) && attempt < 30) {
          io_options_.schedule(std::chrono::seconds(1), [this, attempt] {
            CreateDefaultContainerInBackground(attempt + 1);
          });
          return;
        }
        spdlog::warn("default container: {}", created.status().ToString());
      });
}

Status StorageNode::EnsureDefaultContainer() {
  // Only on a fresh data dir: an operator who deleted the default container meant it.
  if (!known_disks_.empty() || !manager_->ListContainers().empty()) return Status::Ok();
  Status status;
  // In a cluster every fresh node tries at once: one creates it, the others find it there
  // (AlreadyExists), and one whose attempt lost a race with an unknown outcome tries again.
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::optional<Result<vdisk::records::Container>> created;
    manager_->CreateContainer(
        vdisk::VdiskManager::kDefaultContainer, 1,
        [&created](Result<vdisk::records::Container> result) { created = std::move(result); });
    reactor_.RunUntil([&created] { return created.has_value(); });
    status = created->status();
    if (status.ok() || status.code() == StatusCode::kAlreadyExists) return Status::Ok();
    if (status.code() != StatusCode::kUnavailable && status.code() != StatusCode::kTimedOut) {
      break;
    }
  }
  return status;
}

Status StorageNode::Close() {
  Status result;
  closing_ = true;  // Background retries stop.
  if (manager_ != nullptr) {
    reactor_.RunUntil([this] { return manager_->inflight_operations() == 0; });
    // The OpLog drains stop; what is not drained yet is replayed at the next start.
    bool quiesced = false;
    manager_->Quiesce([&quiesced](Status) { quiesced = true; });
    reactor_.RunUntil([&quiesced] { return quiesced; });
    manager_.reset();
  }
  if (cache_ != nullptr) {
    // SSD-tier I/O in flight finishes before the blockstores close.
    reactor_.RunUntil([this] {
      const cache::UnifiedCacheStats stats = cache_->stats();
      return stats.ssd_reads_in_flight == 0 && stats.ssd_writes_in_flight == 0;
    });
    cache_.reset();
  }
  if (metadata_ != nullptr) {
    const Status closed = metadata_->Close();
    if (!closed.ok() && result.ok()) result = closed;
    metadata_.reset();
  }
  node_disks_.clear();
  for (auto& disk : disks_) {
    disk->store.reset();  // Waits for its in-flight I/O.
    if (disk->blockstore != nullptr) {
      const Status closed = disk->blockstore->Close();
      if (!closed.ok() && result.ok()) result = closed.WithContext(disk->path);
    }
    disk->blockstore.reset();
    disk->device.reset();
  }
  disks_.clear();
  return result;
}

}  // namespace weft::daemon
