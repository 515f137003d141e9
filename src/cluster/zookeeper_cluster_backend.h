// ZooKeeperClusterBackend: the ClusterBackend of a multi-node cluster, on a ZooKeeper ensemble
// through the libzookeeper-mt C client. Znode layout, record format and the fencing rules are in
// docs/cluster.md:
//   <root>/config                   the config record (config_record.h); stat.version is the CAS
//                                   token
//   <root>/members/<node id>        ephemeral, the member payload
//   <root>/election/<name>/n_<session>_<seq>   ephemeral sequential, the candidates
//
// Threads: the client library's I/O and completion threads, and one event thread of ours. The
// library's watchers only queue events (a synchronous call from the completion thread would
// deadlock); the event thread re-arms watches, runs elections, tracks the session and calls the
// users back.
//
// Sessions: a lost connection is kDisconnected. If it stays lost for a third of the session
// timeout the session may be expiring on the servers (the client notices a silent server only
// after two thirds of the timeout): the backend fences itself (kExpired, leaders lose the lead)
// without waiting to be told. When the servers report the session expired, the handle is replaced
// by a new one. Once connected again (same session or new), the member entry and the campaigns
// are re-created, watches re-armed, and the backend unfences (kRejoined).
#pragma once

#include <zookeeper/zookeeper.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/cluster_backend.h"

namespace weft::cluster {

struct ZooKeeperClusterOptions {
  std::string connect_string;  // "host:port[,host:port...]"
  std::string root = "/weft";  // Created (with its parents) if missing.
  int session_timeout_ms = 6000;
  int connect_timeout_ms = 10000;   // Open waits this long for the first session.
  int operation_timeout_ms = 3000;  // A call retries a lost connection this long, then Unavailable.
};

class ZooKeeperClusterBackend final : public ClusterBackend {
 public:
  // Connects, waits for a session and creates <root>, <root>/members and <root>/election.
  // Unavailable if no session comes within connect_timeout_ms; InvalidArgument for a bad
  // connect string or root.
  static Result<std::unique_ptr<ZooKeeperClusterBackend>> Open(ZooKeeperClusterOptions options);
  ~ZooKeeperClusterBackend() override;

  Result<VersionedConfig> ReadConfig() override;
  Result<int64_t> CreateConfig(const ClusterConfig& config) override;
  Result<int64_t> CompareAndSetConfig(int64_t expected_version,
                                      const ClusterConfig& config) override;
  void WatchConfig(std::function<void(VersionedConfig)> on_change) override;
  // An entry left by a previous session of another process (a restarted daemon) lingers until
  // that session times out: Join waits up to the session timeout for it to go, then
  // AlreadyExists.
  Status Join(uint32_t node_id, std::string member_payload) override;
  Result<std::map<uint32_t, std::string>> LiveMembers() override;
  void WatchMembers(std::function<void(std::map<uint32_t, std::string>)> on_change) override;
  Status Campaign(std::string election, uint32_t node_id,
                  std::function<void(bool leader)> on_change) override;
  void WatchSession(std::function<void(SessionState)> on_change) override;
  bool fenced() const override { return fenced_.load(); }
  void Close() override;

  // The current session id (0 before the first session). For logs and tests.
  int64_t session_id();
  // The "host:port" of the server the client talks to (or is connecting to). For tests.
  std::string current_server();
  // Ends this backend's session on the servers, as an expiry would: opens a second connection
  // with the session's id and password and closes it. For tests.
  Status ExpireSessionForTest();

 private:
  // What the library's watchers hand to the event thread.
  struct Event {
    enum class Kind : uint8_t { kSession, kConfig, kMembers, kElection, kWakeUp, kTask } kind;
    uint64_t generation = 0;               // Of the handle that saw it; stale ones are dropped.
    int state = 0;                         // kSession: the ZOO_*_STATE.
    std::string election;                  // kElection: which one.
    std::function<void()> task = nullptr;  // kTask: run on the event thread, any generation.
  };
  // Given to the library as the context of a handle and of its watches.
  struct HandleContext {
    ZooKeeperClusterBackend* backend;
    uint64_t generation;
  };
  template <typename T>
  struct Watcher {
    std::function<void(T)> on_change;
    bool initialized = false;  // Has had its first call. Event thread only.
  };
  struct Candidate {
    std::string election;
    uint32_t node_id = 0;
    std::function<void(bool)> on_change;
    std::string znode;    // Our n_ znode, "" while Campaign creates it. Guarded by mutex_.
    bool leader = false;  // Event thread only (and Close after the thread is gone).
  };
  struct Member {
    uint32_t node_id;
    std::string payload;
  };
  // The result of one library call: its return code, and whether a connection loss was retried
  // on the way (the call may have taken effect before the loss).
  struct Outcome {
    int rc;
    bool retried;
  };
  using Clock = std::chrono::steady_clock;

  explicit ZooKeeperClusterBackend(ZooKeeperClusterOptions options);

  // zookeeper_backend.cc: handles, the event thread, sessions.
  Status NewHandle();  // Replaces handle_ (closing the old one) with a fresh, connecting one.
  static void SessionWatcher(zhandle_t* handle, int type, int state, const char* path,
                             void* context);
  static void NodeWatcher(zhandle_t* handle, int type, int state, const char* path, void* context);
  void Post(Event event);
  void RunEvents();
  void HandleSessionEvent(int state);
  void HandleRetries();
  void Fence(std::string_view why);
  bool Rejoin();
  void Publish(SessionState state);
  std::optional<Clock::time_point> NextWakeUp();

  // zookeeper_operations.cc: calls with retries, config and membership.
  Outcome Run(const std::function<int(zhandle_t*, HandleContext*)>& call);
  Status EnsurePath(const std::string& path);
  Result<std::pair<std::string, Stat>> GetRaw(const std::string& path);
  Status JoinWithSession(const Member& member, int64_t session);
  Result<std::map<uint32_t, std::string>> ReadMembers(bool arm_watch);
  Result<std::optional<VersionedConfig>> ReadConfigArmingWatch();
  bool DeliverConfig();   // Event thread; false when the read failed (retry later).
  bool DeliverMembers();  // Event thread; false when the read failed (retry later).

  // zookeeper_election.cc.
  Result<std::string> CreateCandidateZnode(const std::string& election, uint32_t node_id);
  bool Evaluate(const std::string& election);  // Event thread; false: retry later.
  void SetLeader(Candidate& candidate, bool leader);
  std::string Znode(const Candidate& candidate);  // Reads candidate.znode under mutex_.
  void SetZnode(Candidate& candidate, std::string znode);
  std::string ElectionDir(const std::string& election) const;

  const ZooKeeperClusterOptions options_;
  const std::string config_path_;
  const std::string members_path_;
  const std::string elections_path_;

  // The handle may be replaced (session expiry) only with handle_mutex_ held exclusively; calls
  // hold it shared while they use the handle.
  std::shared_mutex handle_mutex_;
  zhandle_t* handle_ = nullptr;                    // Guarded by handle_mutex_.
  std::unique_ptr<HandleContext> handle_context_;  // Guarded by handle_mutex_.
  std::atomic<uint64_t> generation_{0};

  // Guards the event queue and the users' registrations. Never held across a library call, so
  // that a watcher (on the library's completion thread) can always take it.
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Event> events_;                                                // Guarded by mutex_.
  bool stopping_ = false;                                                   // Guarded by mutex_.
  bool closed_ = false;                                                     // Guarded by mutex_.
  bool ever_connected_ = false;                                             // Guarded by mutex_.
  SessionState state_ = SessionState::kConnected;                           // Guarded by mutex_.
  std::optional<Member> member_;                                            // Guarded by mutex_.
  std::map<std::string, std::shared_ptr<Candidate>> candidates_;            // Guarded by mutex_.
  std::vector<std::shared_ptr<Watcher<VersionedConfig>>> config_watchers_;  // Guarded by mutex_.
  std::vector<std::shared_ptr<Watcher<std::map<uint32_t, std::string>>>>
      member_watchers_;                                              // Guarded by mutex_.
  std::vector<std::function<void(SessionState)>> session_watchers_;  // Guarded by mutex_.

  std::atomic<bool> fenced_{false};
  std::set<int64_t>
      previous_sessions_;  // Ours, ended: their entries may be deleted. Guarded by mutex_.

  // Event thread only.
  int session_timeout_ms_ = options_.session_timeout_ms;  // As negotiated with the servers.
  std::optional<Clock::time_point> disconnected_since_;
  std::optional<Clock::time_point> retry_at_;
  bool rejoin_pending_ = false;
  bool config_pending_ = false;
  bool members_pending_ = false;
  std::set<std::string> elections_pending_;
  std::optional<int64_t> config_version_delivered_;
  std::optional<std::map<uint32_t, std::string>> members_delivered_;

  std::thread event_thread_;
};

}  // namespace weft::cluster
