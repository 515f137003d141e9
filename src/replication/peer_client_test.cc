// PeerClient against a DataService behind a real RpcServer on loopback TCP: every PeerIo call
// round-trips as the data RPC (data_rpc.proto), errors keep their codes across the wire, and the
// client's own checks (membership, the read bulk's crc) hold. The io_context runs on the test
// thread, interleaved with the node's executor queue and extent-store polls.
#include "replication/peer_client.h"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <cstring>
#include <optional>
#include <string>

#include "replication/replication_test_util.h"
#include "rpc/rpc_server.h"

namespace weft::replication {
namespace {

using testing::Loop;
using testing::Node;
using testing::PatternBuffer;

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kVdisk = 9;

class PeerClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ =
        StartServer([this](const rpc::Message& request, rpc::IncomingContext, rpc::ReplyFn reply) {
          node_.service().Handle(request, std::move(reply));
        });
    client_ = std::make_unique<PeerClient>(
        io_, PeerClientOptions{.local_node_id = 1, .call_timeout_ms = 5000});
    client_->SetMembers({{1, PeerMember{Endpoint(0), 1}},  // This node: skipped.
                         {2, PeerMember{Endpoint(server_->port()), 1ull << 30}}});
  }
  void TearDown() override {
    client_->Close();
    for (auto& server : servers_) server->Stop();
    while (loop_.RunOnce() + io_.poll() > 0) {
    }
    client_.reset();
    servers_.clear();
  }

  rpc::RpcServer* StartServer(rpc::Handler handler) {
    servers_.push_back(std::make_unique<rpc::RpcServer>(
        io_, rpc::RpcServerOptions{.listen_host = "127.0.0.1"}, std::move(handler)));
    EXPECT_TRUE(servers_.back()->Start().ok());
    return servers_.back().get();
  }
  static rpc::Endpoint Endpoint(uint16_t port) { return rpc::Endpoint{"127.0.0.1", port}; }

  // Runs the io_context and the node's loop until `done`; false after about 10 s of nothing.
  bool RunUntil(const std::function<bool()>& done) {
    for (int idle = 0; !done();) {
      size_t progress = loop_.RunOnce() + io_.poll();
      if (progress == 0) progress = io_.run_one_for(std::chrono::milliseconds(1));
      idle = progress == 0 ? idle + 1 : 0;
      if (idle > 10000) return false;
    }
    return true;
  }
  Status WaitStatus(const std::function<void(vdisk::PeerCompletion)>& start) {
    std::optional<Status> result;
    start([&](Status status) { result = status; });
    EXPECT_TRUE(RunUntil([&] { return result.has_value(); })) << "no completion";
    return result.value_or(Status::Aborted("no completion"));
  }
  Result<vdisk::EgroupReadReply> ReadFrom(uint32_t node, uint64_t egroup, uint64_t offset,
                                          std::span<std::byte> buffer) {
    std::optional<Result<vdisk::EgroupReadReply>> result;
    client_->EgroupRead(node, egroup, offset, buffer, [&](auto reply) { result = reply; });
    EXPECT_TRUE(RunUntil([&] { return result.has_value(); })) << "no completion";
    return result.value_or(Status::Aborted("no completion"));
  }
  Result<std::string> Create(uint32_t node, uint64_t egroup, uint64_t epoch) {
    std::optional<Result<std::string>> result;
    client_->EgroupCreate(node, {egroup, kVdisk, epoch}, 0, [&](auto uuid) { result = uuid; });
    EXPECT_TRUE(RunUntil([&] { return result.has_value(); })) << "no completion";
    return result.value_or(Status::Aborted("no completion"));
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  Loop loop_;
  Node node_{loop_, 2};
  std::vector<std::unique_ptr<rpc::RpcServer>> servers_;
  rpc::RpcServer* server_ = nullptr;
  std::unique_ptr<PeerClient> client_;
};

TEST_F(PeerClientTest, EveryCallRoundTripsThroughTheDataService) {
  ASSERT_EQ(client_->LivePeers().size(), 1u);
  EXPECT_EQ(client_->LivePeers()[0].node_id, 2u);

  Result<std::string> uuid = Create(2, 5, 1);
  ASSERT_TRUE(uuid.ok()) << uuid.status().ToString();
  EXPECT_EQ(*uuid, node_.disk_uuid());
  AlignedBuffer data = PatternBuffer(64 * 1024, 1);
  ASSERT_TRUE(WaitStatus([&](auto done) {
                client_->EgroupWrite(2, {5, kVdisk, 1}, 1, kBlock, data.span(), done);
              }).ok());
  AlignedBuffer read(64 * 1024);
  Result<vdisk::EgroupReadReply> reply = ReadFrom(2, 5, kBlock, read.span());
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->replica_version, 1u);
  EXPECT_EQ(std::memcmp(read.data(), data.data(), data.size()), 0);
  ASSERT_TRUE(WaitStatus([&](auto done) {
                client_->EgroupTrim(2, {5, kVdisk, 1}, 2, kBlock, kBlock, done);
              }).ok());
  reply = ReadFrom(2, 5, kBlock, read.span().first(kBlock));
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->replica_version, 2u);
  EXPECT_EQ(read.data()[0], std::byte{0});

  // OpLog records with the owner's seqs, and the owner's drain.
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    vdisk::OplogRecordHeader header{
        kVdisk, 1, seq, 1, seq * kBlock, kBlock, Crc32c(data.span().first(kBlock)), 0};
    ASSERT_TRUE(WaitStatus([&](auto done) {
                  client_->OplogAppend(2, header, data.span().first(kBlock), done);
                }).ok());
  }
  ASSERT_TRUE(WaitStatus([&](auto done) { client_->OplogTrim(2, kVdisk, 1, 2, done); }).ok());
  EXPECT_EQ(node_.service().stats().oplog_appends, 3u);
  EXPECT_EQ(node_.service().stats().oplog_trims, 1u);

  // Fenced at epoch 2: epoch 1 is refused, with its code and words intact across the wire.
  ASSERT_TRUE(WaitStatus([&](auto done) { client_->Fence(2, kVdisk, 2, done); }).ok());
  Status stale = WaitStatus([&](auto done) {
    client_->EgroupWrite(2, {5, kVdisk, 1}, 3, 0, data.span(), done);
  });
  EXPECT_TRUE(stale.IsAborted()) << stale.ToString();
  EXPECT_NE(stale.message().find("stale epoch"), std::string::npos) << stale.ToString();
  EXPECT_NE(stale.message().find("node 2"), std::string::npos) << stale.ToString();
  // A storage error too: an egroup the node does not have.
  Status missing = WaitStatus([&](auto done) {
    client_->EgroupWrite(2, {6, kVdisk, 2}, 1, 0, data.span(), done);
  });
  EXPECT_EQ(missing.code(), StatusCode::kNotFound) << missing.ToString();

  ASSERT_TRUE(WaitStatus([&](auto done) { client_->EgroupDelete(2, 5, done); }).ok());
  EXPECT_FALSE(node_.store().GetEgroup(5).ok());
}

TEST_F(PeerClientTest, NodeThatIsNotAMemberIsUnavailable) {
  Status status = WaitStatus([&](auto done) { client_->Fence(3, kVdisk, 1, done); });
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  AlignedBuffer buffer(kBlock);
  EXPECT_EQ(ReadFrom(3, 5, 0, buffer.span()).status().code(), StatusCode::kUnavailable);
  // A member that leaves is unreachable from then on.
  client_->SetMembers({});
  EXPECT_TRUE(client_->LivePeers().empty());
  status = WaitStatus([&](auto done) { client_->Fence(2, kVdisk, 1, done); });
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_EQ(node_.service().stats().stale_epoch_refusals + node_.service().stats().bad_requests,
            0u);
}

TEST_F(PeerClientTest, StoppedServerFailsCallsWithUnavailableOrTimedOut) {
  ASSERT_TRUE(Create(2, 5, 1).ok());  // A connection is open.
  server_->Stop();
  for (int call = 0; call < 2; ++call) {  // On the lost connection, then on a refused connect.
    Status status = WaitStatus([&](auto done) { client_->Fence(2, kVdisk, 1, done); });
    EXPECT_TRUE(status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kTimedOut)
        << status.ToString();
  }
}

// The bulk of a read is checked against the crc the replica computed: bytes changed on the way
// (here by the server's handler, after the service answered) are Corruption, never data.
TEST_F(PeerClientTest, EgroupReadDetectsACorruptedBulk) {
  ASSERT_TRUE(Create(2, 5, 1).ok());
  AlignedBuffer data = PatternBuffer(2 * kBlock, 3);
  ASSERT_TRUE(WaitStatus([&](auto done) {
                client_->EgroupWrite(2, {5, kVdisk, 1}, 1, 0, data.span(), done);
              }).ok());
  int mode = 0;  // 0: one bit flipped; 1: one byte short.
  rpc::RpcServer* bad =
      StartServer([&](const rpc::Message& request, rpc::IncomingContext, rpc::ReplyFn reply) {
        node_.service().Handle(request, [&mode, reply](Result<rpc::Message> answer) {
          if (answer.ok() && !answer->bulk.empty()) {
            if (mode == 0) {
              answer->bulk[10] ^= 0x04;
            } else {
              answer->bulk.pop_back();
            }
          }
          reply(std::move(answer));
        });
      });
  client_->SetMembers({{2, PeerMember{Endpoint(bad->port()), 1}}});
  for (mode = 0; mode < 2; ++mode) {
    AlignedBuffer buffer(2 * kBlock);
    std::memset(buffer.data(), 0x5A, buffer.size());
    Result<vdisk::EgroupReadReply> reply = ReadFrom(2, 5, 0, buffer.span());
    EXPECT_EQ(reply.status().code(), StatusCode::kCorruption) << reply.status().ToString();
    EXPECT_EQ(buffer.data()[0], std::byte{0x5A}) << "bad bytes reached the caller's buffer";
  }
}

}  // namespace
}  // namespace weft::replication
