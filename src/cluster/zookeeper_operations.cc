// ZooKeeperClusterBackend: calls with retries, the config record and the membership entries.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <thread>

#include "cluster/cluster_config.h"
#include "cluster/config_record.h"
#include "cluster/zookeeper_cluster_backend.h"
#include "cluster/zookeeper_errors.h"

namespace weft::cluster {
namespace {

constexpr auto kRetryDelayMin = std::chrono::milliseconds(20);
constexpr auto kRetryDelayMax = std::chrono::milliseconds(500);

std::optional<uint32_t> ParseNodeId(std::string_view text) {
  uint32_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value == 0) return std::nullopt;
  return value;
}

}  // namespace

ZooKeeperClusterBackend::Outcome ZooKeeperClusterBackend::Run(
    const std::function<int(zhandle_t*, HandleContext*)>& call) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(options_.operation_timeout_ms);
  auto delay = kRetryDelayMin;
  bool retried = false;
  for (;;) {
    int rc = ZCLOSING;
    {
      std::shared_lock lock(handle_mutex_);
      if (handle_ != nullptr) rc = call(handle_, handle_context_.get());
    }
    if (!IsTransientZooKeeperError(rc) || Clock::now() >= deadline) return Outcome{rc, retried};
    // After a lost connection the call may or may not have happened; callers that care check.
    if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT) retried = true;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    std::this_thread::sleep_for(std::max(std::chrono::milliseconds(1), std::min(delay, left)));
    delay = std::min(delay * 2, kRetryDelayMax);
  }
}

Status ZooKeeperClusterBackend::EnsurePath(const std::string& path) {
  WEFT_ASSERT(path.size() > 1 && path.front() == '/');
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string prefix = path.substr(0, slash);
    const Outcome outcome = Run([&](zhandle_t* zh, HandleContext*) {
      return zoo_create(zh, prefix.c_str(), nullptr, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT,
                        nullptr, 0);
    });
    if (outcome.rc != ZOK && outcome.rc != ZNODEEXISTS) {
      return ZooKeeperStatus(outcome.rc, "create", prefix);
    }
    if (slash == std::string::npos) return Status::Ok();
  }
}

Result<std::pair<std::string, Stat>> ZooKeeperClusterBackend::GetRaw(const std::string& path) {
  std::string buffer(kConfigRecordBytesMax, '\0');
  Stat stat{};
  int length = 0;
  const Outcome outcome = Run([&](zhandle_t* zh, HandleContext*) {
    length = static_cast<int>(buffer.size());
    return zoo_get(zh, path.c_str(), 0, buffer.data(), &length, &stat);
  });
  if (outcome.rc != ZOK) return ZooKeeperStatus(outcome.rc, "get", path);
  buffer.resize(length < 0 ? 0 : static_cast<size_t>(length));
  return std::pair{std::move(buffer), stat};
}

Result<VersionedConfig> ZooKeeperClusterBackend::ReadConfig() {
  WEFT_ASSIGN_OR_RETURN(auto raw, GetRaw(config_path_));
  WEFT_ASSIGN_OR_RETURN(VersionedConfig config, DecodeConfigRecord(raw.first, config_path_));
  // Every write stores the version it becomes; a mismatch means someone else wrote the znode.
  if (config.version != raw.second.version) {
    return Status::Corruption(
        fmt::format("cluster config record {}: record version {}, znode "
                    "version {}",
                    config_path_, config.version, raw.second.version));
  }
  return config;
}

Result<int64_t> ZooKeeperClusterBackend::CreateConfig(const ClusterConfig& config) {
  WEFT_RETURN_IF_ERROR(ValidateClusterConfig(config));
  WEFT_ASSIGN_OR_RETURN(const std::string record, EncodeConfigRecord(config, 0));
  const Outcome outcome = Run([&](zhandle_t* zh, HandleContext*) {
    return zoo_create(zh, config_path_.c_str(), record.data(), static_cast<int>(record.size()),
                      &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, nullptr, 0);
  });
  if (outcome.rc == ZOK) return int64_t{0};
  if (outcome.rc == ZNODEEXISTS) {
    Result<std::pair<std::string, Stat>> existing = GetRaw(config_path_);
    // Our own create, answered by a lost connection and then retried.
    if (outcome.retried && existing.ok() && existing->first == record) return int64_t{0};
    return Status::AlreadyExists(
        fmt::format("{}: a cluster config exists{}", config_path_,
                    existing.ok() ? fmt::format(" (version {})", existing->second.version) : ""));
  }
  return ZooKeeperStatus(outcome.rc, "create", config_path_);
}

Result<int64_t> ZooKeeperClusterBackend::CompareAndSetConfig(int64_t expected_version,
                                                             const ClusterConfig& config) {
  WEFT_RETURN_IF_ERROR(ValidateClusterConfig(config));
  if (expected_version < 0 || expected_version >= INT32_MAX) {
    return Status::InvalidArgument(
        fmt::format("expected_version {} is outside ZooKeeper's versions", expected_version));
  }
  WEFT_ASSIGN_OR_RETURN(const std::string record, EncodeConfigRecord(config, expected_version + 1));
  Stat stat{};
  const Outcome outcome = Run([&](zhandle_t* zh, HandleContext*) {
    return zoo_set2(zh, config_path_.c_str(), record.data(), static_cast<int>(record.size()),
                    static_cast<int>(expected_version), &stat);
  });
  if (outcome.rc == ZOK) {
    WEFT_ASSERT(stat.version == expected_version + 1);
    return int64_t{stat.version};
  }
  if (outcome.rc == ZNONODE) {
    return Status::NotFound(fmt::format("{}: no cluster config to update", config_path_));
  }
  if (outcome.rc != ZBADVERSION) return ZooKeeperStatus(outcome.rc, "set", config_path_);
  Result<std::pair<std::string, Stat>> current = GetRaw(config_path_);
  WEFT_RETURN_IF_ERROR(current.status());
  // Our own set, answered by a lost connection and then retried against the new version.
  if (outcome.retried && current->second.version == expected_version + 1 &&
      current->first == record) {
    return expected_version + 1;
  }
  return Status::Aborted(fmt::format("{}: config version is {}, expected {}", config_path_,
                                     current->second.version, expected_version));
}

Result<std::optional<VersionedConfig>> ZooKeeperClusterBackend::ReadConfigArmingWatch() {
  // An exists watch fires on creation, change and deletion alike.
  Stat stat{};
  const Outcome armed = Run([&](zhandle_t* zh, HandleContext* context) {
    return zoo_wexists(zh, config_path_.c_str(), &NodeWatcher, context, &stat);
  });
  if (armed.rc == ZNONODE) return std::optional<VersionedConfig>();
  if (armed.rc != ZOK) return ZooKeeperStatus(armed.rc, "exists", config_path_);
  Result<VersionedConfig> config = ReadConfig();
  if (config.status().IsNotFound()) return std::optional<VersionedConfig>();
  WEFT_RETURN_IF_ERROR(config.status());
  return std::optional<VersionedConfig>(std::move(config).value());
}

void ZooKeeperClusterBackend::WatchConfig(std::function<void(VersionedConfig)> on_change) {
  auto watcher = std::make_shared<Watcher<VersionedConfig>>();
  watcher->on_change = std::move(on_change);
  std::lock_guard lock(mutex_);
  if (closed_) return;
  config_watchers_.push_back(std::move(watcher));
  events_.push_back(Event{Event::Kind::kConfig, generation_.load(), 0, std::string()});
  wake_.notify_all();
}

bool ZooKeeperClusterBackend::DeliverConfig() {
  {
    std::lock_guard lock(mutex_);
    if (config_watchers_.empty()) return true;  // Nobody to tell: no watch to keep.
  }
  Result<std::optional<VersionedConfig>> config = ReadConfigArmingWatch();
  if (!config.ok()) {
    spdlog::warn("cluster: config watch: {}", config.status().ToString());
    return false;
  }
  std::vector<std::shared_ptr<Watcher<VersionedConfig>>> watchers;
  {
    std::lock_guard lock(mutex_);
    watchers = config_watchers_;
  }
  const std::optional<VersionedConfig>& current = *config;
  const bool changed = current && config_version_delivered_ != current->version;
  for (const auto& watcher : watchers) {
    if (current && (changed || !watcher->initialized)) watcher->on_change(*current);
    watcher->initialized = true;
  }
  if (current) config_version_delivered_ = current->version;
  return true;
}

Status ZooKeeperClusterBackend::Join(uint32_t node_id, std::string member_payload) {
  WEFT_ASSERT(node_id != 0);
  Member member{node_id, std::move(member_payload)};
  {
    std::lock_guard lock(mutex_);
    if (member_ && member_->node_id != node_id) {
      return Status::InvalidArgument(
          fmt::format("joined as node {} already, cannot join as {}", member_->node_id, node_id));
    }
  }
  WEFT_RETURN_IF_ERROR(JoinWithSession(member, session_id()));
  std::lock_guard lock(mutex_);
  member_ = std::move(member);  // Re-created with the same payload after a session expiry.
  return Status::Ok();
}

Status ZooKeeperClusterBackend::JoinWithSession(const Member& member, int64_t session) {
  const std::string path = fmt::format("{}/{}", members_path_, member.node_id);
  const auto deadline = Clock::now() + std::chrono::milliseconds(options_.session_timeout_ms +
                                                                 options_.operation_timeout_ms);
  for (;;) {
    const Outcome created = Run([&](zhandle_t* zh, HandleContext*) {
      return zoo_create(zh, path.c_str(), member.payload.data(),
                        static_cast<int>(member.payload.size()), &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_EPHEMERAL, nullptr, 0);
    });
    if (created.rc == ZOK) return Status::Ok();
    if (created.rc != ZNODEEXISTS) return ZooKeeperStatus(created.rc, "create", path);
    Stat stat{};
    const Outcome exists =
        Run([&](zhandle_t* zh, HandleContext*) { return zoo_exists(zh, path.c_str(), 0, &stat); });
    if (exists.rc == ZNONODE) continue;  // It just went away: try again.
    if (exists.rc != ZOK) return ZooKeeperStatus(exists.rc, "exists", path);
    if (stat.ephemeralOwner == session) {
      // Ours (joined before, or our create answered by a lost connection): set the payload.
      const Outcome set = Run([&](zhandle_t* zh, HandleContext*) {
        return zoo_set(zh, path.c_str(), member.payload.data(),
                       static_cast<int>(member.payload.size()), -1);
      });
      return set.rc == ZOK ? Status::Ok() : ZooKeeperStatus(set.rc, "set", path);
    }
    bool previous = false;
    {
      std::lock_guard lock(mutex_);
      previous = previous_sessions_.contains(stat.ephemeralOwner);
    }
    if (previous) {
      // Left by one of our own ended sessions: ours to remove.
      const Outcome deleted = Run([&](zhandle_t* zh, HandleContext*) {
        return zoo_delete(zh, path.c_str(), stat.version);
      });
      if (deleted.rc != ZOK && deleted.rc != ZNONODE && deleted.rc != ZBADVERSION) {
        return ZooKeeperStatus(deleted.rc, "delete", path);
      }
      continue;
    }
    if (Clock::now() >= deadline) {
      return Status::AlreadyExists(fmt::format("{}: node {} is a live member in session {:#x}",
                                               path, member.node_id, stat.ephemeralOwner));
    }
    // Perhaps a previous process of this node whose session has not timed out yet.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Result<std::map<uint32_t, std::string>> ZooKeeperClusterBackend::ReadMembers(bool arm_watch) {
  String_vector children{};
  const Outcome listed = Run([&](zhandle_t* zh, HandleContext* context) {
    return arm_watch
               ? zoo_wget_children(zh, members_path_.c_str(), &NodeWatcher, context, &children)
               : zoo_get_children(zh, members_path_.c_str(), 0, &children);
  });
  if (listed.rc != ZOK) return ZooKeeperStatus(listed.rc, "get_children", members_path_);
  std::vector<std::string> names(children.data, children.data + children.count);
  deallocate_String_vector(&children);
  std::map<uint32_t, std::string> members;
  for (const std::string& name : names) {
    const std::optional<uint32_t> node_id = ParseNodeId(name);
    if (!node_id) continue;  // Not ours; ignore rather than fail the whole listing.
    Result<std::pair<std::string, Stat>> payload = GetRaw(members_path_ + "/" + name);
    if (payload.status().IsNotFound()) continue;  // Left while we listed.
    WEFT_RETURN_IF_ERROR(payload.status());
    members.emplace(*node_id, std::move(payload->first));
  }
  return members;
}

Result<std::map<uint32_t, std::string>> ZooKeeperClusterBackend::LiveMembers() {
  return ReadMembers(/*arm_watch=*/false);
}

void ZooKeeperClusterBackend::WatchMembers(
    std::function<void(std::map<uint32_t, std::string>)> on_change) {
  auto watcher = std::make_shared<Watcher<std::map<uint32_t, std::string>>>();
  watcher->on_change = std::move(on_change);
  std::lock_guard lock(mutex_);
  if (closed_) return;
  member_watchers_.push_back(std::move(watcher));
  events_.push_back(Event{Event::Kind::kMembers, generation_.load(), 0, std::string()});
  wake_.notify_all();
}

bool ZooKeeperClusterBackend::DeliverMembers() {
  {
    std::lock_guard lock(mutex_);
    if (member_watchers_.empty()) return true;  // Nobody to tell: no watch to keep.
  }
  Result<std::map<uint32_t, std::string>> members = ReadMembers(/*arm_watch=*/true);
  if (!members.ok()) {
    spdlog::warn("cluster: members watch: {}", members.status().ToString());
    return false;
  }
  std::vector<std::shared_ptr<Watcher<std::map<uint32_t, std::string>>>> watchers;
  {
    std::lock_guard lock(mutex_);
    watchers = member_watchers_;
  }
  // Membership is the set of ids; a payload change alone does not count.
  auto same_ids = [](const auto& a, const auto& b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(),
                      [](const auto& x, const auto& y) { return x.first == y.first; });
  };
  const bool changed = !members_delivered_ || !same_ids(*members_delivered_, *members);
  for (const auto& watcher : watchers) {
    if (changed || !watcher->initialized) watcher->on_change(*members);
    watcher->initialized = true;
  }
  members_delivered_ = std::move(members).value();
  return true;
}

}  // namespace weft::cluster
