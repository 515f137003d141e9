// ZooKeeperClusterBackend's session handling against a real server that is stopped, killed and
// restarted (so each test has a server of its own): fencing, Rejoined with membership and
// campaigns re-created, Unavailable while ZooKeeper is gone.
#include <gtest/gtest.h>

#include <thread>

#include "cluster/cluster_test_util.h"
#include "cluster/zookeeper_test_util.h"

namespace weft::cluster {
namespace {

constexpr int kShortSessionMs = 2000;

std::unique_ptr<ZooKeeperTestServer> StartServer(int servers = 1) {
  Result<std::unique_ptr<ZooKeeperTestServer>> server = ZooKeeperTestServer::Start(servers);
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  WEFT_ASSERT(server.ok());
  return std::move(server).value();
}

// Expired comes with fenced() true, Rejoined with fenced() false.
struct SessionLog {
  Recorder<SessionState> states;
  std::atomic<bool> fenced_when_expired{false};
  std::atomic<bool> fenced_when_rejoined{true};

  void Watch(ZooKeeperClusterBackend& backend) {
    backend.WatchSession([this, &backend, callback = states.Callback()](SessionState state) {
      if (state == SessionState::kExpired) fenced_when_expired = backend.fenced();
      if (state == SessionState::kRejoined) fenced_when_rejoined = backend.fenced();
      callback(state);
    });
  }
};

TEST(ZooKeeperSessionTest, ExpiryFencesThenRejoinRecreatesMembershipAndCampaign) {
  SessionLog log;  // The recorders outlive the backends calling them.
  Recorder<bool> leadership;
  Recorder<std::map<uint32_t, std::string>> members;
  auto server = StartServer();
  // Expiry is forced, not waited for; a short session only makes the old connection notice the
  // takeover sooner.
  auto node = OpenOrDie(TestOptions(*server, "/weft", kShortSessionMs));
  auto observer = OpenOrDie(TestOptions(*server, "/weft"));
  log.Watch(*node);
  EXPECT_TRUE(log.states.WaitForValue(SessionState::kConnected));
  ASSERT_TRUE(node->Join(7, "node seven").ok());
  ASSERT_TRUE(node->Campaign("scrubber", 7, leadership.Callback()).ok());
  EXPECT_TRUE(leadership.WaitForValue(true));
  observer->WatchMembers(members.Callback());
  EXPECT_TRUE(members.WaitForValue({{7, "node seven"}}));
  const int64_t old_session = node->session_id();

  ASSERT_TRUE(node->ExpireSessionForTest().ok());
  EXPECT_TRUE(log.states.WaitForValue(SessionState::kExpired));
  EXPECT_TRUE(log.fenced_when_expired.load());
  EXPECT_TRUE(members.WaitForValue({}));  // The old session's entry went with it.
  EXPECT_TRUE(log.states.WaitForValue(SessionState::kRejoined));
  EXPECT_FALSE(log.fenced_when_rejoined.load());
  EXPECT_FALSE(node->fenced());
  EXPECT_NE(node->session_id(), old_session);

  // Membership and the campaign were re-created by the new session.
  EXPECT_TRUE(members.WaitFor([](const auto& values) {
    return values.size() >= 3 &&
           values.back() == std::map<uint32_t, std::string>{{7, "node seven"}};
  }));
  EXPECT_TRUE(leadership.WaitFor([](const auto& values) {
    return values == std::vector<bool>{true, false, true};
  })) << "leadership changes: "
      << leadership.values().size();
}

TEST(ZooKeeperSessionTest, ZooKeeperGoneThenBack) {
  SessionLog log;  // Outlives the backend calling it.
  auto server = StartServer();
  auto node = OpenOrDie(TestOptions(*server, "/weft", kShortSessionMs));
  ASSERT_TRUE(node->CreateConfig(MakeTestConfig(3)).ok());
  ASSERT_TRUE(node->Join(3, "three").ok());
  log.Watch(*node);
  EXPECT_TRUE(log.states.WaitForValue(SessionState::kConnected));

  server->Kill();
  EXPECT_TRUE(log.states.WaitForValue(SessionState::kDisconnected));
  Status read = node->ReadConfig().status();
  EXPECT_EQ(read.code(), StatusCode::kUnavailable) << read.ToString();
  EXPECT_NE(read.message().find("/weft/config"), std::string::npos) << read.ToString();
  Status cas = node->CompareAndSetConfig(0, MakeTestConfig(4)).status();
  EXPECT_EQ(cas.code(), StatusCode::kUnavailable) << cas.ToString();
  Status members = node->LiveMembers().status();
  EXPECT_EQ(members.code(), StatusCode::kUnavailable) << members.ToString();
  // Gone for longer than the session timeout: the node fences itself without being told.
  EXPECT_TRUE(log.states.WaitForValue(SessionState::kExpired));
  EXPECT_TRUE(node->fenced());
  std::this_thread::sleep_for(std::chrono::milliseconds(kShortSessionMs + 500));

  ASSERT_TRUE(server->Restart().ok());
  EXPECT_TRUE(log.states.WaitForValue(SessionState::kRejoined));
  EXPECT_FALSE(node->fenced());
  Result<VersionedConfig> config = node->ReadConfig();
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->config.nodes_size(), 3);
  Result<int64_t> set = node->CompareAndSetConfig(0, MakeTestConfig(4));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  Result<std::map<uint32_t, std::string>> live = node->LiveMembers();
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  EXPECT_EQ(*live, (std::map<uint32_t, std::string>{{3, "three"}}));
}

// Retries `call` while it is Unavailable (a server or the quorum is coming back), up to
// kCallbackWaitMax; returns the last Status.
Status Eventually(const std::function<Status()>& call) {
  const auto deadline = std::chrono::steady_clock::now() + kCallbackWaitMax;
  for (;;) {
    Status status = call();
    if (status.code() != StatusCode::kUnavailable || std::chrono::steady_clock::now() > deadline) {
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

TEST(ZooKeeperSessionTest, EnsembleLosesOneServerThenItsQuorum) {
  SessionLog log;  // Outlives the backend calling it.
  auto ensemble = StartServer(3);
  auto node = OpenOrDie(TestOptions(*ensemble, "/weft"));
  ASSERT_TRUE(node->CreateConfig(MakeTestConfig(3)).ok());
  ASSERT_TRUE(node->Join(5, "five").ok());
  log.Watch(*node);

  // The server the node talks to dies: the client moves to another, the two left are a quorum.
  const std::string talking_to = node->current_server();
  int index = 0;
  while (index < ensemble->server_count() && ensemble->address(index) != talking_to) ++index;
  ASSERT_LT(index, ensemble->server_count()) << "talking to " << talking_to;
  ensemble->Kill(index);
  Status set = Eventually([&] { return node->CompareAndSetConfig(0, MakeTestConfig(4)).status(); });
  EXPECT_TRUE(set.ok()) << set.ToString();
  EXPECT_NE(node->current_server(), talking_to);
  Result<std::map<uint32_t, std::string>> live = node->LiveMembers();
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  EXPECT_EQ(*live, (std::map<uint32_t, std::string>{{5, "five"}}));

  // A second server dies: no quorum, the last one stops serving.
  ensemble->Kill((index + 1) % 3);
  EXPECT_TRUE(log.states.WaitForValue(SessionState::kExpired));
  Status read = node->ReadConfig().status();
  EXPECT_EQ(read.code(), StatusCode::kUnavailable) << read.ToString();

  // A quorum again: the node rejoins and its calls work.
  ASSERT_TRUE(ensemble->Restart(index).ok());
  EXPECT_TRUE(log.states.WaitForValue(SessionState::kRejoined));
  Result<VersionedConfig> config = node->ReadConfig();
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->version, 1);
  live = node->LiveMembers();
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  EXPECT_EQ(*live, (std::map<uint32_t, std::string>{{5, "five"}}));
}

}  // namespace
}  // namespace weft::cluster
