#include "cluster/local_cluster_backend.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cluster/cluster_config.h"
#include "cluster/config_record.h"

namespace weft::cluster {
namespace {

namespace fs = std::filesystem;

Status WriteAll(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) return Status::FromErrno(errno, "writing " + path);
    bytes.remove_prefix(static_cast<size_t>(written));
  }
  return Status::Ok();
}

Status SyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "opening " + path);
  const int result = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (result != 0) return Status::FromErrno(error, "fsync " + path);
  return Status::Ok();
}

// Replaces `path` with `bytes` so that a crash leaves either the old file or the new, complete.
Status ReplaceFileAtomically(const std::string& path, std::string_view bytes) {
  const std::string temporary = path + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno(errno, "creating " + temporary);
  Status status = WriteAll(fd, bytes, temporary);
  if (status.ok() && ::fsync(fd) != 0) status = Status::FromErrno(errno, "fsync " + temporary);
  ::close(fd);
  WEFT_RETURN_IF_ERROR(status);
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    return Status::FromErrno(errno, fmt::format("renaming {} to {}", temporary, path));
  }
  // The rename is durable only once the directory entry is.
  return SyncPath(fs::path(path).parent_path().string(), O_RDONLY | O_DIRECTORY);
}

}  // namespace

Result<std::unique_ptr<LocalClusterBackend>> LocalClusterBackend::Open(
    const std::string& data_dir) {
  std::error_code error;
  fs::create_directories(data_dir, error);
  if (error) {
    return Status::IOError(fmt::format("creating data dir {}: {}", data_dir, error.message()));
  }
  const std::string path = (fs::path(data_dir) / kFileName).string();
  std::unique_ptr<LocalClusterBackend> backend(new LocalClusterBackend(path));
  std::ifstream input(path, std::ios::binary);
  if (!input) {
    if (fs::exists(path, error)) return Status::IOError(fmt::format("cannot read {}", path));
    return backend;  // No config yet.
  }
  std::ostringstream bytes;
  bytes << input.rdbuf();
  if (input.bad()) return Status::IOError(fmt::format("reading {}", path));
  WEFT_ASSIGN_OR_RETURN(VersionedConfig loaded, DecodeConfigRecord(bytes.str(), path));
  // A record that decodes but breaks a rule was not written by us: refuse it the same way.
  Status valid = ValidateClusterConfig(loaded.config);
  if (!valid.ok()) return Status::Corruption(fmt::format("{}: {}", path, valid.message()));
  backend->config_ = std::move(loaded);
  return backend;
}

LocalClusterBackend::LocalClusterBackend(std::string file_path)
    : file_path_(std::move(file_path)) {}

LocalClusterBackend::~LocalClusterBackend() { Close(); }

Status LocalClusterBackend::WriteRecord(const ClusterConfig& config, int64_t version) {
  WEFT_ASSIGN_OR_RETURN(const std::string record, EncodeConfigRecord(config, version));
  return ReplaceFileAtomically(file_path_, record);
}

Result<VersionedConfig> LocalClusterBackend::ReadConfig() {
  std::lock_guard lock(mutex_);
  if (!config_) return Status::NotFound(fmt::format("no cluster config in {}", file_path_));
  return *config_;
}

Result<int64_t> LocalClusterBackend::CreateConfig(const ClusterConfig& config) {
  WEFT_RETURN_IF_ERROR(ValidateClusterConfig(config));
  std::lock_guard lock(mutex_);
  if (config_) {
    return Status::AlreadyExists(
        fmt::format("{} already holds config version {}", file_path_, config_->version));
  }
  WEFT_RETURN_IF_ERROR(WriteRecord(config, 0));
  config_ = VersionedConfig{config, 0};
  NotifyConfig(*config_);
  return int64_t{0};
}

Result<int64_t> LocalClusterBackend::CompareAndSetConfig(int64_t expected_version,
                                                         const ClusterConfig& config) {
  WEFT_RETURN_IF_ERROR(ValidateClusterConfig(config));
  std::lock_guard lock(mutex_);
  if (!config_) return Status::NotFound(fmt::format("no cluster config in {}", file_path_));
  if (config_->version != expected_version) {
    return Status::Aborted(fmt::format("{}: config version is {}, expected {}", file_path_,
                                       config_->version, expected_version));
  }
  const int64_t version = expected_version + 1;
  WEFT_RETURN_IF_ERROR(WriteRecord(config, version));
  config_ = VersionedConfig{config, version};
  NotifyConfig(*config_);
  return version;
}

void LocalClusterBackend::NotifyConfig(const VersionedConfig& config) {
  for (const auto& watcher : config_watchers_) {
    callbacks_.Post([watcher, config] { watcher(config); });
  }
}

void LocalClusterBackend::NotifyMembers() {
  std::map<uint32_t, std::string> members;
  if (member_) members.insert(*member_);
  for (const auto& watcher : member_watchers_) {
    callbacks_.Post([watcher, members] { watcher(members); });
  }
}

void LocalClusterBackend::WatchConfig(std::function<void(VersionedConfig)> on_change) {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  config_watchers_.push_back(on_change);
  if (config_) callbacks_.Post([on_change, config = *config_] { on_change(config); });
}

Status LocalClusterBackend::Join(uint32_t node_id, std::string member_payload) {
  WEFT_ASSERT(node_id != 0);
  std::lock_guard lock(mutex_);
  if (member_ && member_->first != node_id) {
    return Status::InvalidArgument(fmt::format(
        "local cluster backend: node {} has joined; a local cluster has one node, not {}",
        member_->first, node_id));
  }
  const bool changed = !member_;
  member_ = std::pair{node_id, std::move(member_payload)};
  if (changed) NotifyMembers();
  return Status::Ok();
}

Result<std::map<uint32_t, std::string>> LocalClusterBackend::LiveMembers() {
  std::lock_guard lock(mutex_);
  std::map<uint32_t, std::string> members;
  if (member_) members.insert(*member_);
  return members;
}

void LocalClusterBackend::WatchMembers(
    std::function<void(std::map<uint32_t, std::string>)> on_change) {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  member_watchers_.push_back(on_change);
  std::map<uint32_t, std::string> members;
  if (member_) members.insert(*member_);
  callbacks_.Post([on_change, members] { on_change(members); });
}

Status LocalClusterBackend::Campaign(std::string election, uint32_t node_id,
                                     std::function<void(bool leader)> on_change) {
  WEFT_ASSERT(node_id != 0);
  std::lock_guard lock(mutex_);
  if (campaigns_.contains(election)) {
    return Status::AlreadyExists(fmt::format("already campaigning in election {}", election));
  }
  campaigns_.emplace(election, on_change);
  callbacks_.Post([on_change] { on_change(true); });  // The only candidate wins at once.
  return Status::Ok();
}

void LocalClusterBackend::WatchSession(std::function<void(SessionState)> on_change) {
  callbacks_.Post([on_change] { on_change(SessionState::kConnected); });
}

void LocalClusterBackend::Close() {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    for (const auto& [election, on_change] : campaigns_) {
      callbacks_.Post([on_change] { on_change(false); });
    }
    campaigns_.clear();
  }
  callbacks_.Stop();
}

}  // namespace weft::cluster
