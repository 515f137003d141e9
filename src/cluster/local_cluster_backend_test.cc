// LocalClusterBackend: persistence across restarts, compare-and-set, corrupt files, callbacks.
#include "cluster/local_cluster_backend.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "cluster/cluster_test_util.h"

namespace weft::cluster {
namespace {

namespace fs = std::filesystem;

class LocalClusterBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "weft-cluster-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
  }
  void TearDown() override { fs::remove_all(directory_); }

  std::unique_ptr<LocalClusterBackend> OpenBackend() {
    Result<std::unique_ptr<LocalClusterBackend>> backend = LocalClusterBackend::Open(directory_);
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    return backend.ok() ? std::move(backend).value() : nullptr;
  }
  std::string file() const { return (fs::path(directory_) / LocalClusterBackend::kFileName); }

  std::string directory_;
};

TEST_F(LocalClusterBackendTest, CreateCompareAndSetAndRestart) {
  auto backend = OpenBackend();
  EXPECT_TRUE(backend->ReadConfig().status().IsNotFound());
  EXPECT_TRUE(backend->CompareAndSetConfig(0, MakeTestConfig(1)).status().IsNotFound());
  Result<int64_t> created = backend->CreateConfig(MakeTestConfig(1, "first"));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(*created, 0);
  EXPECT_TRUE(backend->CreateConfig(MakeTestConfig(1)).status().IsAlreadyExists());

  Result<int64_t> set = backend->CompareAndSetConfig(0, MakeTestConfig(2, "second"));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(*set, 1);
  // A writer that read version 0 loses.
  Status stale = backend->CompareAndSetConfig(0, MakeTestConfig(3, "stale")).status();
  EXPECT_TRUE(stale.IsAborted()) << stale.ToString();
  // An invalid config is refused before anything is written.
  ClusterConfig invalid = MakeTestConfig(2);
  invalid.set_redundancy_factor(5);
  EXPECT_TRUE(backend->CompareAndSetConfig(1, invalid).status().IsInvalidArgument());

  backend.reset();
  backend = OpenBackend();
  Result<VersionedConfig> read = backend->ReadConfig();
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->version, 1);
  EXPECT_EQ(read->config.name(), "second");
  EXPECT_EQ(read->config.nodes_size(), 2);
  set = backend->CompareAndSetConfig(1, MakeTestConfig(3, "third"));
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(*set, 2);
  EXPECT_FALSE(fs::exists(file() + ".tmp"));
}

TEST_F(LocalClusterBackendTest, CorruptFileIsAClearError) {
  auto backend = OpenBackend();
  ASSERT_TRUE(backend->CreateConfig(MakeTestConfig(2)).ok());
  backend.reset();
  {
    std::fstream bytes(file(), std::ios::in | std::ios::out | std::ios::binary);
    bytes.seekp(40);
    bytes.put('\xff');
  }
  Result<std::unique_ptr<LocalClusterBackend>> reopened = LocalClusterBackend::Open(directory_);
  ASSERT_TRUE(reopened.status().IsCorruption()) << reopened.status().ToString();
  EXPECT_NE(reopened.status().message().find(file()), std::string::npos);
  EXPECT_NE(reopened.status().message().find("payload crc"), std::string::npos);

  fs::resize_file(file(), 10);
  reopened = LocalClusterBackend::Open(directory_);
  ASSERT_TRUE(reopened.status().IsCorruption()) << reopened.status().ToString();
  EXPECT_NE(reopened.status().message().find("shorter than the 32-byte header"), std::string::npos);
}

TEST_F(LocalClusterBackendTest, CallbacksMembershipAndElection) {
  auto backend = OpenBackend();
  std::promise<int64_t> first_version;
  std::promise<int64_t> second_version;
  int calls = 0;
  backend->WatchConfig([&](VersionedConfig config) {
    (++calls == 1 ? first_version : second_version).set_value(config.version);
  });
  ASSERT_TRUE(backend->CreateConfig(MakeTestConfig(1)).ok());
  ASSERT_TRUE(backend->CompareAndSetConfig(0, MakeTestConfig(2)).ok());
  EXPECT_EQ(first_version.get_future().get(), 0);
  EXPECT_EQ(second_version.get_future().get(), 1);

  ASSERT_TRUE(backend->Join(1, R"({"rpc":"127.0.0.1:7001"})").ok());
  EXPECT_TRUE(backend->Join(2, "{}").IsInvalidArgument());
  Result<std::map<uint32_t, std::string>> members = backend->LiveMembers();
  ASSERT_TRUE(members.ok());
  EXPECT_EQ(*members, (std::map<uint32_t, std::string>{{1, R"({"rpc":"127.0.0.1:7001"})"}}));
  std::promise<size_t> member_count;
  backend->WatchMembers(
      [&](std::map<uint32_t, std::string> live) { member_count.set_value(live.size()); });
  EXPECT_EQ(member_count.get_future().get(), 1u);

  std::promise<SessionState> session;
  backend->WatchSession([&](SessionState state) { session.set_value(state); });
  EXPECT_EQ(session.get_future().get(), SessionState::kConnected);
  EXPECT_FALSE(backend->fenced());

  std::vector<bool> leadership;
  ASSERT_TRUE(
      backend->Campaign("curator", 1, [&](bool leader) { leadership.push_back(leader); }).ok());
  EXPECT_TRUE(backend->Campaign("curator", 1, [](bool) {}).IsAlreadyExists());
  backend->Close();  // Runs the queued callbacks, then the loss of the lead.
  EXPECT_EQ(leadership, (std::vector<bool>{true, false}));
}

}  // namespace
}  // namespace weft::cluster
