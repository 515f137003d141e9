// ClusterBackend: where a node reads and changes the cluster configuration, announces itself as
// a live member and campaigns for leaderships (docs/cluster.md). Two implementations:
// ZooKeeperClusterBackend (a real ensemble, for clusters) and LocalClusterBackend (a file in the
// node's data dir, for the single-node embedded default).
//
// Thread safety: every method may be called from any thread. Calls block (they may wait for
// ZooKeeper); the daemon calls them from a helper thread, never from the data path. Callbacks run
// on one backend thread, one at a time, never with a backend lock held: a callback may call the
// backend's methods, except Close().
//
// Errors common to every call on the ZooKeeper backend: Unavailable when ZooKeeper cannot be
// reached (or the session is being re-established) within the operation timeout; IOError for
// any other ZooKeeper error. Messages name the znode.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "base/status.h"
#include "cluster/cluster_config.pb.h"

namespace weft::cluster {

struct VersionedConfig {
  ClusterConfig config;
  int64_t version = 0;  // The compare-and-set token: 0 when created, +1 on every change.
};

enum class SessionState : uint8_t {
  kConnected,     // Session up: serve.
  kDisconnected,  // Connection lost but the session may still be alive: keep serving.
  kExpired,       // The session expired (or may have): fence, stop serving writes.
  kRejoined,      // A valid session again, membership and campaigns re-created: unfence.
};

std::string_view SessionStateName(SessionState state);

class ClusterBackend {
 public:
  virtual ~ClusterBackend() = default;

  // The current config. NotFound if none was ever created; Corruption if the stored record
  // fails its checks.
  virtual Result<VersionedConfig> ReadConfig() = 0;
  // Stores the first config as version 0. AlreadyExists if there is one; InvalidArgument if
  // `config` does not pass ValidateClusterConfig.
  virtual Result<int64_t> CreateConfig(const ClusterConfig& config) = 0;
  // Replaces the config if its version is still `expected_version`; returns the new version.
  // Aborted when the version moved on (re-read and retry); NotFound if there is no config.
  virtual Result<int64_t> CompareAndSetConfig(int64_t expected_version,
                                              const ClusterConfig& config) = 0;
  // `on_change` gets the current config once (if there is one), then every later version. Fast
  // successive changes may be seen as one (the latest). Callbacks stay registered until Close.
  virtual void WatchConfig(std::function<void(VersionedConfig)> on_change) = 0;

  // Announces `node_id` as live with `member_payload` (opaque to the backend; the daemon uses
  // JSON: addresses, start time, health) until the session ends. Joining again replaces the
  // payload. AlreadyExists if another live session holds the id.
  virtual Status Join(uint32_t node_id, std::string member_payload) = 0;
  // Live members: node id -> payload.
  virtual Result<std::map<uint32_t, std::string>> LiveMembers() = 0;
  // `on_change` gets the current members once, then the member set after every change (a
  // payload change alone is not a membership change).
  virtual void WatchMembers(std::function<void(std::map<uint32_t, std::string>)> on_change) = 0;

  // Enters the election `election` (a znode-safe name: [A-Za-z0-9_.-]). `on_change(true)` when
  // this node becomes leader, `on_change(false)` when it loses the lead (session expiry, Close).
  // One campaign per election per backend: AlreadyExists for a second.
  virtual Status Campaign(std::string election, uint32_t node_id,
                          std::function<void(bool leader)> on_change) = 0;

  // `on_change` gets the current state once, then every transition.
  virtual void WatchSession(std::function<void(SessionState)> on_change) = 0;
  // True from kExpired until kRejoined: the node must not serve writes for what it may no longer
  // own.
  virtual bool fenced() const = 0;

  // Leaves: leaders get on_change(false), membership and campaign entries are removed, no
  // callback runs after Close returns. Idempotent; must not be called from a callback.
  virtual void Close() = 0;
};

}  // namespace weft::cluster
