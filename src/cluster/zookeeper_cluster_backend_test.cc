// ZooKeeperClusterBackend against a real ZooKeeper server (one per suite; each test has its own
// root znode): config CAS and watches, membership, elections.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "cluster/cluster_test_util.h"
#include "cluster/zookeeper_test_util.h"

namespace weft::cluster {
namespace {

class ZooKeeperBackendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Result<std::unique_ptr<ZooKeeperTestServer>> server = ZooKeeperTestServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value().release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  // A root of its own for each test.
  ZooKeeperClusterOptions Options(int session_timeout_ms = 6000) {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    return TestOptions(*server_, std::string("/weft-test/") + test->name(), session_timeout_ms);
  }

  static ZooKeeperTestServer* server_;
};

ZooKeeperTestServer* ZooKeeperBackendTest::server_ = nullptr;

TEST_F(ZooKeeperBackendTest, OpenRefusesBadOptionsAndReportsNoServer) {
  ZooKeeperClusterOptions options = Options();
  options.root = "weft/";
  EXPECT_TRUE(ZooKeeperClusterBackend::Open(options).status().IsInvalidArgument());
  options = Options();
  options.connect_string = "no-port-here";
  Status status = ZooKeeperClusterBackend::Open(options).status();
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  // A port nobody listens on (a server started and stopped would be slower to find).
  options = Options();
  options.connect_string = "127.0.0.1:1";
  options.connect_timeout_ms = 300;
  status = ZooKeeperClusterBackend::Open(options).status();
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_NE(status.message().find("127.0.0.1:1"), std::string::npos);
}

TEST_F(ZooKeeperBackendTest, CreateReadAndCompareAndSet) {
  auto backend = OpenOrDie(Options());
  auto other = OpenOrDie(Options());
  EXPECT_TRUE(backend->ReadConfig().status().IsNotFound());
  EXPECT_TRUE(backend->CompareAndSetConfig(0, MakeTestConfig(1)).status().IsNotFound());
  ClusterConfig invalid = MakeTestConfig(1);
  invalid.mutable_nodes(0)->set_node_id(0);
  EXPECT_TRUE(backend->CreateConfig(invalid).status().IsInvalidArgument());

  Result<int64_t> created = backend->CreateConfig(MakeTestConfig(1, "first"));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(*created, 0);
  Status again = other->CreateConfig(MakeTestConfig(2)).status();
  EXPECT_TRUE(again.IsAlreadyExists()) << again.ToString();

  Result<VersionedConfig> read = other->ReadConfig();
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->version, 0);
  EXPECT_EQ(read->config.name(), "first");

  // Two writers both read version 0: the second loses and must re-read.
  Result<int64_t> won = other->CompareAndSetConfig(0, MakeTestConfig(2, "second"));
  ASSERT_TRUE(won.ok()) << won.status().ToString();
  EXPECT_EQ(*won, 1);
  Status lost = backend->CompareAndSetConfig(0, MakeTestConfig(3, "lost")).status();
  EXPECT_TRUE(lost.IsAborted()) << lost.ToString();
  EXPECT_NE(lost.message().find("config version is 1, expected 0"), std::string::npos);
  read = backend->ReadConfig();
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->version, 1);
  EXPECT_EQ(read->config.name(), "second");
}

TEST_F(ZooKeeperBackendTest, CorruptRecordIsReported) {
  auto backend = OpenOrDie(Options());
  ASSERT_TRUE(backend->CreateConfig(MakeTestConfig(1)).ok());
  // Damage the znode behind the backend's back, with a plain client.
  zhandle_t* raw =
      zookeeper_init(server_->connect_string().c_str(), nullptr, 6000, nullptr, nullptr, 0);
  ASSERT_NE(raw, nullptr);
  const std::string path = Options().root + "/config";
  int rc = ZCONNECTIONLOSS;
  for (int attempt = 0; attempt < 300 && rc == ZCONNECTIONLOSS; ++attempt) {
    rc = zoo_set(raw, path.c_str(), "garbage", 7, -1);
    if (rc == ZCONNECTIONLOSS) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  zookeeper_close(raw);
  ASSERT_EQ(rc, ZOK);
  Status status = backend->ReadConfig().status();
  EXPECT_TRUE(status.IsCorruption()) << status.ToString();
  EXPECT_NE(status.message().find(path), std::string::npos) << status.ToString();
}

TEST_F(ZooKeeperBackendTest, WatchSeesChangesFromAnotherClient) {
  Recorder<int64_t> versions;  // Declared first: it must outlive the backends calling it.
  Recorder<int64_t> late;
  auto watcher = OpenOrDie(Options());
  auto writer = OpenOrDie(Options());
  watcher->WatchConfig([&versions, callback = versions.Callback()](VersionedConfig config) {
    callback(config.version);
  });
  ASSERT_TRUE(writer->CreateConfig(MakeTestConfig(1)).ok());
  EXPECT_TRUE(versions.WaitForValue(0));
  for (int64_t version = 0; version < 3; ++version) {
    ASSERT_TRUE(writer->CompareAndSetConfig(version, MakeTestConfig(2)).ok());
    // Each change is seen before the next is made: none may be merged away.
    EXPECT_TRUE(versions.WaitForValue(version + 1)) << "version " << version + 1;
  }
  EXPECT_EQ(versions.values(), (std::vector<int64_t>{0, 1, 2, 3}));
  // A watcher registered late gets the current config at once.
  writer->WatchConfig(
      [callback = late.Callback()](VersionedConfig config) { callback(config.version); });
  EXPECT_TRUE(late.WaitForValue(3));
}

TEST_F(ZooKeeperBackendTest, MembershipFollowsSessions) {
  Recorder<std::map<uint32_t, std::string>> seen;  // Outlives the backends calling it.
  auto observer = OpenOrDie(Options());
  observer->WatchMembers(seen.Callback());
  EXPECT_TRUE(seen.WaitFor([](const auto& values) { return !values.empty(); }));
  EXPECT_TRUE(seen.values().front().empty());

  auto first = OpenOrDie(Options());
  auto second = OpenOrDie(Options());
  ASSERT_TRUE(first->Join(1, R"({"rpc":"10.0.0.1:7001"})").ok());
  ASSERT_TRUE(second->Join(2, R"({"rpc":"10.0.0.2:7002"})").ok());
  const std::map<uint32_t, std::string> both{{1, R"({"rpc":"10.0.0.1:7001"})"},
                                             {2, R"({"rpc":"10.0.0.2:7002"})"}};
  EXPECT_TRUE(seen.WaitForValue(both));
  Result<std::map<uint32_t, std::string>> live = observer->LiveMembers();
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(*live, both);
  // Joining again replaces the payload.
  ASSERT_TRUE(first->Join(1, "updated").ok());
  live = observer->LiveMembers();
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(live->at(1), "updated");

  second->Close();  // The session ends: its entry goes.
  EXPECT_TRUE(seen.WaitForValue({{1, "updated"}}));

  // Another live session holding node id 1: refused (after waiting out a session timeout).
  auto impostor = OpenOrDie(Options(/*session_timeout_ms=*/1000));
  Status status = impostor->Join(1, "impostor");
  EXPECT_TRUE(status.IsAlreadyExists()) << status.ToString();
}

// Candidates' leadership, and the largest number of leaders at any moment.
struct Election {
  std::atomic<int> leaders{0};
  std::atomic<int> leaders_max{0};
  std::vector<std::unique_ptr<Recorder<bool>>> recorders;

  std::function<void(bool)> Callback(size_t index) {
    return [this, callback = recorders.at(index)->Callback()](bool leader) {
      const int now = leaders.fetch_add(leader ? 1 : -1) + (leader ? 1 : -1);
      int max = leaders_max.load();
      while (now > max && !leaders_max.compare_exchange_weak(max, now)) {
      }
      callback(leader);
    };
  }
  bool IsLeader(size_t index) {
    std::vector<bool> values = recorders.at(index)->values();
    return !values.empty() && values.back();
  }
};

TEST_F(ZooKeeperBackendTest, ElectionHandsOverOnCloseAndOnExpiry) {
  Election election;  // The recorders outlive the backends calling them.
  Recorder<SessionState> session;
  std::vector<std::unique_ptr<ZooKeeperClusterBackend>> candidates;
  for (uint32_t i = 0; i < 3; ++i) {
    candidates.push_back(OpenOrDie(Options()));
    election.recorders.push_back(std::make_unique<Recorder<bool>>());
    ASSERT_TRUE(candidates[i]->Campaign("curator", i + 1, election.Callback(i)).ok());
  }
  EXPECT_TRUE(candidates[0]->Campaign("curator", 1, [](bool) {}).IsAlreadyExists());
  EXPECT_TRUE(candidates[0]->Campaign("bad/name", 1, [](bool) {}).IsInvalidArgument());
  // The first to campaign leads; the others never heard a word.
  EXPECT_TRUE(election.recorders[0]->WaitForValue(true));
  EXPECT_TRUE(election.recorders[1]->values().empty());
  EXPECT_TRUE(election.recorders[2]->values().empty());

  // The leader leaves: it hears so first, then the next in line leads.
  candidates[0]->Close();
  EXPECT_EQ(election.recorders[0]->values(), (std::vector<bool>{true, false}));
  EXPECT_TRUE(election.recorders[1]->WaitForValue(true));
  EXPECT_TRUE(election.recorders[2]->values().empty());  // It watches its predecessor only.
  EXPECT_EQ(election.leaders_max.load(), 1);

  // The new leader's session expires: the last candidate leads, the old leader hears it lost,
  // rejoins, and stands again behind the new leader.
  candidates[1]->WatchSession(session.Callback());
  ASSERT_TRUE(candidates[1]->ExpireSessionForTest().ok());
  EXPECT_TRUE(election.recorders[2]->WaitForValue(true));
  EXPECT_TRUE(election.recorders[1]->WaitFor([](const auto& v) { return v.back() == false; }));
  EXPECT_TRUE(session.WaitForValue(SessionState::kRejoined));
  EXPECT_TRUE(election.IsLeader(2));
  EXPECT_FALSE(election.IsLeader(1));
  EXPECT_EQ(election.leaders.load(), 1);

  // The last leader goes: the rejoined candidate leads again.
  candidates[2]->Close();
  EXPECT_TRUE(election.recorders[1]->WaitFor([](const auto& v) { return v.back() == true; }));
  EXPECT_EQ(election.leaders.load(), 1);
}

}  // namespace
}  // namespace weft::cluster
