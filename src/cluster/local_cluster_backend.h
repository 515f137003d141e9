// LocalClusterBackend: the ClusterBackend of a single-node cluster without ZooKeeper (the
// embedded default). The config is a record file (config_record.h) in the node's data dir,
// replaced atomically (temporary file, fsync, rename, fsync of the directory), so a restart
// finds the last config and version. The only member is this node, every campaign wins at once
// and the session is always kConnected: nothing can fence a node that is the whole cluster.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cluster/callback_thread.h"
#include "cluster/cluster_backend.h"

namespace weft::cluster {

class LocalClusterBackend final : public ClusterBackend {
 public:
  static constexpr const char* kFileName = "cluster_config.weft";

  // Loads `data_dir`/cluster_config.weft if present. Corruption (naming the file) when the file
  // fails its checks: the node must not start with a config it cannot trust.
  static Result<std::unique_ptr<LocalClusterBackend>> Open(const std::string& data_dir);
  ~LocalClusterBackend() override;

  Result<VersionedConfig> ReadConfig() override;
  Result<int64_t> CreateConfig(const ClusterConfig& config) override;
  Result<int64_t> CompareAndSetConfig(int64_t expected_version,
                                      const ClusterConfig& config) override;
  void WatchConfig(std::function<void(VersionedConfig)> on_change) override;
  // InvalidArgument if another node id has already joined: a local cluster has one node.
  Status Join(uint32_t node_id, std::string member_payload) override;
  Result<std::map<uint32_t, std::string>> LiveMembers() override;
  void WatchMembers(std::function<void(std::map<uint32_t, std::string>)> on_change) override;
  Status Campaign(std::string election, uint32_t node_id,
                  std::function<void(bool leader)> on_change) override;
  void WatchSession(std::function<void(SessionState)> on_change) override;
  bool fenced() const override { return false; }
  void Close() override;

 private:
  explicit LocalClusterBackend(std::string file_path);
  Status WriteRecord(const ClusterConfig& config, int64_t version);
  void NotifyConfig(const VersionedConfig& config);  // Called with mutex_ held.
  void NotifyMembers();                              // Called with mutex_ held.

  const std::string file_path_;
  std::mutex mutex_;
  std::optional<VersionedConfig> config_;                              // Guarded by mutex_.
  std::optional<std::pair<uint32_t, std::string>> member_;             // Guarded by mutex_.
  std::map<std::string, std::function<void(bool)>> campaigns_;         // Guarded by mutex_.
  std::vector<std::function<void(VersionedConfig)>> config_watchers_;  // Guarded by mutex_.
  std::vector<std::function<void(std::map<uint32_t, std::string>)>> member_watchers_;  // Ditto.
  bool closed_ = false;  // Guarded by mutex_.
  CallbackThread callbacks_;
};

}  // namespace weft::cluster
