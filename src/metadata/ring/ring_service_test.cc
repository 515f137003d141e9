// Three RingServices in one process over loopback TCP (real RpcServer/RpcClient, real RocksDB
// with synced writes), one io thread.
#include "metadata/ring/ring_service.h"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <filesystem>
#include <future>
#include <random>

#include "metadata/ring/ring_wire.h"
#include "rpc/rpc_server.h"

namespace weft::metadata::ring {
namespace {

class RingServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ring_service_test." + std::to_string(::getpid()) + "." +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::mt19937_64 random(5);
    ring_ = RingConfig{.epoch = 1, .replicas = 3};
    for (NodeId node = 1; node <= 3; node++) {
      RingMember member{.node = node};
      for (int i = 0; i < 8; i++) member.tokens.push_back(random());
      ring_.members.push_back(member);
    }
    thread_ = std::thread([this] { io_.run(); });
    for (NodeId node = 1; node <= 3; node++) StartServer(node);
    for (NodeId node = 1; node <= 3; node++) ASSERT_TRUE(OpenService(node).ok());
  }

  void TearDown() override {
    for (NodeId node = 1; node <= 3; node++) StopNode(node);
    work_.reset();
    io_.stop();
    thread_.join();
    std::filesystem::remove_all(dir_);
  }

  template <typename F>
  void OnIo(F f) {
    std::promise<void> done;
    asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  void StartServer(NodeId node) {
    OnIo([&] {
      servers_[node] = std::make_unique<rpc::RpcServer>(
          io_, rpc::RpcServerOptions{.port = ports_[node]},
          [this, node](const rpc::Message& request, rpc::IncomingContext context,
                       rpc::ReplyFn reply) {
            RingService* service = services_[node].get();
            if (service == nullptr || !RingService::HandlesType(request.type)) {
              reply(Status::Unavailable("not serving"));
              return;
            }
            service->HandleRpc(request, std::move(context), std::move(reply));
          });
      ASSERT_TRUE(servers_[node]->Start().ok());
      ports_[node] = servers_[node]->port();
    });
  }

  Status OpenService(NodeId node) {
    std::map<NodeId, rpc::Endpoint> peers;
    for (auto& [id, port] : ports_) peers[id] = rpc::Endpoint{"127.0.0.1", port};
    RingServiceOptions options{
        .self = node,
        .db_path = (dir_ / ("node" + std::to_string(node))).string(),
        .tick_ms = 5,
        .node = {.attempt_ticks = 20, .timeout_ticks = 600},
        .executor = [](std::function<void()> task) { task(); },
    };
    Result<std::unique_ptr<RingService>> service = RingService::Open(io_, options, ring_, peers);
    if (!service.ok()) return service.status();
    std::unique_ptr<RingService> owned = std::move(*service);
    OnIo([&] { services_[node] = std::move(owned); });
    return Status::Ok();
  }

  // Kills a node: its service closes (nothing more is written) and its port stops answering.
  void StopNode(NodeId node) {
    std::unique_ptr<RingService> service;
    OnIo([&] {
      service = std::move(services_[node]);
      if (servers_[node]) servers_[node]->Stop();
      servers_[node].reset();
    });
    if (service) service->Close();
  }

  Result<uint64_t> Cas(NodeId node, const std::string& key, uint64_t expected,
                       const std::string& value) {
    std::promise<Result<uint64_t>> result;
    services_[node]->CompareAndSet(key, expected, value,
                                   [&](Result<uint64_t> r) { result.set_value(std::move(r)); });
    return result.get_future().get();
  }
  Result<Row> Get(NodeId node, const std::string& key) {
    std::promise<Result<Row>> result;
    services_[node]->Get(key, [&](Result<Row> r) { result.set_value(std::move(r)); });
    return result.get_future().get();
  }
  Result<std::vector<Row>> Scan(NodeId node, const std::string& prefix) {
    std::promise<Result<std::vector<Row>>> result;
    services_[node]->Scan(prefix, "", 100,
                          [&](Result<std::vector<Row>> r) { result.set_value(std::move(r)); });
    return result.get_future().get();
  }

  std::filesystem::path dir_;
  RingConfig ring_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      asio::make_work_guard(io_)};
  std::thread thread_;
  std::map<NodeId, uint16_t> ports_{{1, 0}, {2, 0}, {3, 0}};
  std::map<NodeId, std::unique_ptr<rpc::RpcServer>> servers_;
  std::map<NodeId, std::unique_ptr<RingService>> services_;
};

TEST_F(RingServiceTest, WritesFromEveryNodeReadFromEveryOther) {
  for (NodeId node = 1; node <= 3; node++) {
    Result<uint64_t> version =
        Cas(node, "kv/" + std::to_string(node), 0, "from " + std::to_string(node));
    ASSERT_TRUE(version.ok()) << version.status().ToString();
    EXPECT_EQ(*version, 1u);
  }
  for (NodeId reader = 1; reader <= 3; reader++) {
    for (NodeId writer = 1; writer <= 3; writer++) {
      Result<Row> row = Get(reader, "kv/" + std::to_string(writer));
      ASSERT_TRUE(row.ok()) << row.status().ToString();
      EXPECT_EQ(row->value, "from " + std::to_string(writer));
    }
  }
  Result<std::vector<Row>> rows = Scan(2, "kv/");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 3u);
  EXPECT_EQ(Cas(3, "kv/1", 0, "x").status().code(), StatusCode::kAborted);
  EXPECT_EQ(Get(1, "kv/none").status().code(), StatusCode::kNotFound);
}

TEST_F(RingServiceTest, KilledNodeCatchesUpAndTwoDownRefusesClearly) {
  ASSERT_TRUE(Cas(1, "kv/a", 0, "1").ok());
  StopNode(3);
  ASSERT_TRUE(Cas(1, "kv/a", 1, "2").ok());
  ASSERT_TRUE(Cas(2, "kv/b", 0, "b").ok());
  // Node 3 returns from its own database; then node 1 goes: the quorum is {2, 3}.
  StartServer(3);
  ASSERT_TRUE(OpenService(3).ok());
  StopNode(1);
  Result<Row> a = Get(3, "kv/a");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->value, "2");
  EXPECT_EQ(a->version, 2u);
  ASSERT_TRUE(Cas(3, "kv/a", 2, "3").ok());
  // Two of three down.
  StopNode(2);
  Result<uint64_t> refused = Cas(3, "kv/a", 3, "4");
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("no quorum"), std::string::npos)
      << refused.status().ToString();
}

TEST_F(RingServiceTest, FencedNodeRefusesUpdatesButServesReads) {
  ASSERT_TRUE(Cas(1, "kv/a", 0, "1").ok());
  services_[2]->SetFenced(true);
  Result<uint64_t> refused = Cas(2, "kv/a", 1, "2");
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("fenced"), std::string::npos);
  EXPECT_TRUE(Get(2, "kv/a").ok());
  ASSERT_TRUE(Cas(1, "kv/a", 1, "2").ok());  // Node 2 still accepts as a replica.
  services_[2]->SetFenced(false);
  EXPECT_TRUE(Cas(2, "kv/a", 2, "3").ok());
}

TEST_F(RingServiceTest, GarbageRingRequestIsRefusedWithoutHarm) {
  std::promise<Result<rpc::Message>> reply;
  rpc::RpcClient client(io_, {});
  OnIo([&] {
    client.Call(rpc::Endpoint{"127.0.0.1", ports_[1]},
                rpc::Message{.type = kRingRequestType, .body = "\x01\x02garbage"}, 1000,
                [&](Result<rpc::Message> r) { reply.set_value(std::move(r)); });
  });
  Result<rpc::Message> result = reply.get_future().get();
  EXPECT_FALSE(result.ok());
  OnIo([&] { client.Close(); });
  EXPECT_TRUE(Cas(1, "kv/after", 0, "ok").ok());
}

}  // namespace
}  // namespace weft::metadata::ring
