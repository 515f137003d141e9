// RPC transport tests on loopback: RpcClient against RpcServer, and raw sockets playing a broken
// peer. Ports are picked by the OS. Nothing here asserts on timing: a call "completes with
// TimedOut", never "within N ms"; every wait has a generous upper bound that only a hang hits.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "rpc/error_reply.h"
#include "rpc/fault_shim.h"
#include "rpc/frame_connection.h"
#include "rpc/frame_encoder.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_server.h"

namespace weft::rpc {
namespace {

using namespace std::chrono_literals;

constexpr auto kWaitMax = 10s;  // Only a hang reaches this.

// Echoes the request back, type + 1.
void Echo(const Message& request, IncomingContext, ReplyFn reply) {
  reply(Message{static_cast<uint16_t>(request.type + 1), request.body, request.bulk});
}

std::string Pattern(size_t size_bytes, uint32_t seed) {
  std::string bytes(size_bytes, '\0');
  for (size_t i = 0; i < size_bytes; ++i) bytes[i] = static_cast<char>((i * 131 + seed) >> 3);
  return bytes;
}

// A raw TCP peer for the tests that break the protocol.
class RawPeer {
 public:
  explicit RawPeer(asio::io_context& io) : socket_(io) {}

  void Connect(uint16_t port) { socket_.connect({asio::ip::make_address("127.0.0.1"), port}); }
  asio::ip::tcp::socket& socket() { return socket_; }

  void Write(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }

  // Reads (asynchronously, driven by RunUntil) until the peer closes; returns what arrived.
  void StartReadingToEnd() {
    socket_.async_read_some(asio::buffer(chunk_), [this](std::error_code error, size_t bytes) {
      received_.append(chunk_.data(), bytes);
      if (error) {
        ended_ = true;
        return;
      }
      StartReadingToEnd();
    });
  }
  bool ended() const { return ended_; }
  const std::string& received() const { return received_; }

 private:
  asio::ip::tcp::socket socket_;
  std::array<char, 4096> chunk_{};
  std::string received_;
  bool ended_ = false;
};

std::string EncodeFrame(const FrameFields& fields, const std::string& message,
                        const std::string& bulk, FrameLimits limits = {}) {
  FrameEncoder encoder(limits);
  Result<EncodedFrameHeader> header = encoder.EncodeHeader(
      fields, std::as_bytes(std::span(message)), std::as_bytes(std::span(bulk)));
  WEFT_ASSERT(header.ok());
  std::string frame(reinterpret_cast<const char*>(header->bytes().data()), header->bytes().size());
  return frame + message + bulk;
}

// Rewrites header fields of an encoded frame and fixes the header crc.
std::string Patched(std::string frame, const std::function<void(FrameHeader&)>& patch) {
  FrameHeader header;
  std::memcpy(&header, frame.data(), sizeof(header));
  patch(header);
  header.header_crc32c = 0;
  std::memcpy(frame.data(), &header, sizeof(header));
  header.header_crc32c =
      ComputeHeaderCrc32c(std::as_bytes(std::span(frame.data(), sizeof(FrameHeader))));
  std::memcpy(frame.data(), &header, sizeof(header));
  return frame;
}

class RpcTransportTest : public ::testing::Test {
 protected:
  // Runs the io_context until `done` holds; fails the test if it never does.
  void RunUntil(const std::function<bool()>& done) {
    const auto give_up = std::chrono::steady_clock::now() + kWaitMax;
    while (!done()) {
      ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "gave up waiting";
      io_.restart();
      io_.run_for(5ms);
    }
  }

  // Lets queued work run for a while (for "nothing else happens" checks).
  void RunFor(std::chrono::milliseconds duration) {
    io_.restart();
    io_.run_for(duration);
  }

  RpcServer& StartServer(Handler handler, RpcServerOptions options = {}) {
    servers_.push_back(std::make_unique<RpcServer>(io_, options, std::move(handler)));
    const Status status = servers_.back()->Start();
    EXPECT_TRUE(status.ok()) << status.ToString();
    return *servers_.back();
  }

  static Endpoint EndpointOf(const RpcServer& server) { return {"127.0.0.1", server.port()}; }

  // A call whose outcome lands in the returned slot.
  std::shared_ptr<std::optional<Result<Message>>> Start(RpcClient& client, const Endpoint& to,
                                                        Message request, uint32_t timeout_ms = 0,
                                                        uint64_t* call_id = nullptr) {
    auto slot = std::make_shared<std::optional<Result<Message>>>();
    const uint64_t id =
        client.Call(to, std::move(request), timeout_ms, [slot](Result<Message> result) {
          EXPECT_FALSE(slot->has_value()) << "completed twice";
          slot->emplace(std::move(result));
        });
    if (call_id != nullptr) *call_id = id;
    return slot;
  }

  Result<Message> CallAndWait(RpcClient& client, const Endpoint& to, Message request,
                              uint32_t timeout_ms = 0) {
    auto slot = Start(client, to, std::move(request), timeout_ms);
    RunUntil([&] { return slot->has_value(); });
    if (!slot->has_value()) return Status::IOError("the call never completed");
    return std::move(**slot);
  }

  asio::io_context io_;
  std::vector<std::unique_ptr<RpcServer>> servers_;
};

TEST(EndpointTest, ParsesAndPrints) {
  Result<Endpoint> endpoint = Endpoint::Parse("10.1.2.3:7001");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status().ToString();
  EXPECT_EQ(endpoint->host, "10.1.2.3");
  EXPECT_EQ(endpoint->port, 7001);
  EXPECT_EQ(endpoint->ToString(), "10.1.2.3:7001");
  Result<Endpoint> v6 = Endpoint::Parse("[::1]:80");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->ToString(), "[::1]:80");
  for (const char* bad : {"", "host", "host:", ":80", "host:65536", "host:8x", "[]:1"}) {
    EXPECT_TRUE(Endpoint::Parse(bad).status().IsInvalidArgument()) << bad;
  }
}

TEST(ErrorReplyTest, RoundTripsEveryCodeAndRefusesBrokenOnes) {
  for (const Status& status : {Status::NotFound("a"), Status::Busy("b"), Status::TimedOut("c"),
                               Status::Unavailable("d"), Status::Corruption("e")}) {
    Result<RemoteStatus> decoded = DecodeErrorReply(EncodeErrorReply(status));
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(decoded->status.code(), status.code());
    EXPECT_EQ(decoded->status.message(), status.message());
  }
  EXPECT_TRUE(DecodeErrorReply("").status().IsCorruption());  // Code 0.
  EXPECT_TRUE(DecodeErrorReply("\xff\xff").status().IsCorruption());
  // A code from a newer build: an error all the same, not a broken peer.
  const std::string future_code = "\x08\x63";  // Field 1, varint 99.
  Result<RemoteStatus> future = DecodeErrorReply(future_code);
  ASSERT_TRUE(future.ok());
  EXPECT_TRUE(future->status.IsIOError());
}

TEST_F(RpcTransportTest, EchoesBulkDataOfEverySizeUpToTheLimit) {
  FrameLimits limits{.message_bytes_max = 64u << 10, .bulk_bytes_max = 2u << 20};
  RpcServer& server = StartServer(Echo, {.limits = limits});
  RpcClient client(io_, {.limits = limits});
  const std::vector<size_t> sizes = {0, 1, 1u << 20, limits.bulk_bytes_max};
  for (size_t i = 0; i < sizes.size(); ++i) {
    Message request{7, Pattern(100, i), Pattern(sizes[i], i + 1)};
    Result<Message> reply = CallAndWait(client, EndpointOf(server), request);
    ASSERT_TRUE(reply.ok()) << sizes[i] << ": " << reply.status().ToString();
    EXPECT_EQ(reply->type, 8);
    EXPECT_EQ(reply->body, request.body);
    EXPECT_TRUE(reply->bulk == request.bulk) << "bulk of " << sizes[i] << " bytes differs";
  }
  // One byte over: refused before anything is sent.
  Result<Message> too_big = CallAndWait(
      client, EndpointOf(server), Message{7, "", std::string(limits.bulk_bytes_max + 1, 'x')});
  EXPECT_TRUE(too_big.status().IsInvalidArgument()) << too_big.status().ToString();
  Result<Message> body_too_big = CallAndWait(
      client, EndpointOf(server), Message{7, std::string(limits.message_bytes_max + 1, 'x'), ""});
  EXPECT_TRUE(body_too_big.status().IsInvalidArgument());
  EXPECT_EQ(client.stats().connections_opened, 1u);  // One connection, re-used.
  EXPECT_EQ(server.stats().bad_frames, 0u);
}

TEST_F(RpcTransportTest, ServerWithSmallerLimitsClosesTheConnectionOnAnOversizedRequest) {
  RpcServer& server =
      StartServer(Echo, {.limits = {.message_bytes_max = 1024, .bulk_bytes_max = 4096}});
  RpcClient client(io_, {});
  Result<Message> reply =
      CallAndWait(client, EndpointOf(server), Message{1, "", std::string(4097, 'x')});
  EXPECT_EQ(reply.status().code(), StatusCode::kUnavailable) << reply.status().ToString();
  RunUntil([&] { return server.stats().bad_frames == 1; });
  // The next call reconnects and, within the limits, works.
  Result<Message> small = CallAndWait(client, EndpointOf(server), Message{1, "", "abc"});
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_EQ(small->bulk, "abc");
  EXPECT_EQ(client.stats().connections_opened, 2u);
}

TEST_F(RpcTransportTest, ManyConcurrentCallsEachGetTheirOwnReply) {
  // Within both in-flight limits (the limits have tests of their own).
  RpcServer& server = StartServer(Echo, {.max_requests_in_flight_per_connection = 1024});
  RpcClient client(io_, {});
  constexpr int kCalls = 1000;
  std::vector<std::shared_ptr<std::optional<Result<Message>>>> slots;
  for (int i = 0; i < kCalls; ++i) {
    slots.push_back(
        Start(client, EndpointOf(server),
              Message{1, std::to_string(i), Pattern(static_cast<size_t>(i % 5000), i)}));
  }
  RunUntil(
      [&] { return std::ranges::all_of(slots, [](auto& slot) { return slot->has_value(); }); });
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE((*slots[i])->ok()) << i << ": " << (*slots[i])->status().ToString();
    EXPECT_EQ((**slots[i])->body, std::to_string(i));
    EXPECT_TRUE((**slots[i])->bulk == Pattern(static_cast<size_t>(i % 5000), i)) << i;
  }
  EXPECT_EQ(client.stats().connections_opened, 1u);
}

TEST_F(RpcTransportTest, RepliesInReverseOrderReachTheirCallers) {
  constexpr int kCalls = 50;
  std::vector<std::pair<std::string, ReplyFn>> held;
  RpcServer& server = StartServer([&](const Message& request, IncomingContext, ReplyFn reply) {
    held.emplace_back(request.body, std::move(reply));
    if (held.size() < kCalls) return;
    for (auto it = held.rbegin(); it != held.rend(); ++it) it->second(Message{2, it->first, ""});
  });
  RpcClient client(io_, {});
  std::vector<std::shared_ptr<std::optional<Result<Message>>>> slots;
  for (int i = 0; i < kCalls; ++i) {
    slots.push_back(Start(client, EndpointOf(server), Message{1, "call " + std::to_string(i), ""}));
  }
  RunUntil(
      [&] { return std::ranges::all_of(slots, [](auto& slot) { return slot->has_value(); }); });
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE((*slots[i])->ok()) << (*slots[i])->status().ToString();
    EXPECT_EQ((**slots[i])->body, "call " + std::to_string(i));
  }
}

TEST_F(RpcTransportTest, HandlerErrorsReachTheCallerAsTheirStatus) {
  RpcServer& server = StartServer(
      [](const Message& request, IncomingContext, ReplyFn reply) {
        if (request.body == "missing") {
          reply(Status::NotFound("no row 7"));
        } else {
          reply(Message{1, "", std::string(5000, 'x')});  // Over the server's bulk limit.
        }
      },
      {.limits = {.message_bytes_max = 1024, .bulk_bytes_max = 4096}});
  RpcClient client(io_, {});
  Result<Message> missing = CallAndWait(client, EndpointOf(server), Message{1, "missing", ""});
  EXPECT_TRUE(missing.status().IsNotFound()) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("no row 7"), std::string::npos);
  Result<Message> too_big = CallAndWait(client, EndpointOf(server), Message{1, "big", ""});
  EXPECT_TRUE(too_big.status().IsInvalidArgument()) << too_big.status().ToString();
  EXPECT_EQ(client.stats().connections_opened, 1u);  // Errors do not cost the connection.
}

TEST_F(RpcTransportTest, DeadlineExpiresAtTheClientAndTheServer) {
  std::vector<ReplyFn> held;
  std::vector<IncomingContext> contexts;
  RpcServer& server =
      StartServer([&](const Message& request, IncomingContext context, ReplyFn reply) {
        if (request.body == "hold") {
          contexts.push_back(context);
          held.push_back(std::move(reply));
          return;
        }
        Echo(request, context, std::move(reply));
      });
  RpcClient client(io_, {});
  Result<Message> slow = CallAndWait(client, EndpointOf(server), Message{1, "hold", ""}, 50);
  EXPECT_EQ(slow.status().code(), StatusCode::kTimedOut) << slow.status().ToString();
  // The client cancels what it gave up on, and the server's own clock runs out as well: the
  // handler learns either way.
  RunUntil([&] { return contexts.size() == 1 && contexts[0].is_abandoned(); });
  EXPECT_NE(contexts[0].deadline, IncomingContext::Clock::time_point::max());
  RunUntil([&] { return contexts[0].expired(); });
  // The late reply is dropped; the connection serves on.
  held[0](Message{2, "late", ""});
  Result<Message> next = CallAndWait(client, EndpointOf(server), Message{1, "next", ""}, 5000);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(next->body, "next");
  EXPECT_EQ(client.stats().connections_opened, 1u);
  EXPECT_EQ(client.stats().bad_frames, 0u);
  EXPECT_EQ(server.stats().bad_frames, 0u);
}

TEST_F(RpcTransportTest, ServerAnswersTimedOutWhenTheDeadlinePassesInTheHandler) {
  std::vector<ReplyFn> held;
  std::vector<IncomingContext> contexts;
  RpcServer& server = StartServer([&](const Message&, IncomingContext context, ReplyFn reply) {
    contexts.push_back(context);
    held.push_back(std::move(reply));
  });
  // A raw caller that never cancels: only the server's clock can answer.
  RawPeer peer(io_);
  peer.Connect(server.port());
  peer.StartReadingToEnd();
  peer.Write(EncodeFrame({3, kFlagRequest, 11, 30}, "", ""));
  RunUntil([&] { return peer.received().size() >= sizeof(FrameHeader); });
  FrameHeader header;
  std::memcpy(&header, peer.received().data(), sizeof(header));
  EXPECT_EQ(header.request_id, 11u);
  EXPECT_EQ(header.flags, kFlagResponse | kFlagError);
  RunUntil([&] { return peer.received().size() == sizeof(FrameHeader) + header.message_bytes; });
  Result<RemoteStatus> status = DecodeErrorReply(peer.received().substr(sizeof(FrameHeader)));
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->status.code(), StatusCode::kTimedOut) << status->status.ToString();
  EXPECT_TRUE(contexts[0].is_abandoned());
  EXPECT_EQ(server.stats().requests_timed_out, 1u);
  // The handler's late reply is dropped: nothing more arrives.
  held[0](Message{4, "late", ""});
  RunFor(20ms);
  EXPECT_EQ(peer.received().size(), sizeof(FrameHeader) + header.message_bytes);
}

TEST_F(RpcTransportTest, CancelCompletesAbortedAndTellsTheServer) {
  std::vector<ReplyFn> held;
  std::vector<IncomingContext> contexts;
  RpcServer& server =
      StartServer([&](const Message& request, IncomingContext context, ReplyFn reply) {
        if (request.body == "hold") {
          contexts.push_back(context);
          held.push_back(std::move(reply));
          return;
        }
        Echo(request, context, std::move(reply));
      });
  RpcClient client(io_, {});
  uint64_t call_id = 0;
  auto slot = Start(client, EndpointOf(server), Message{1, "hold", ""}, 0, &call_id);
  RunUntil([&] { return contexts.size() == 1; });
  EXPECT_FALSE(contexts[0].is_abandoned());
  EXPECT_EQ(contexts[0].deadline, IncomingContext::Clock::time_point::max());
  client.Cancel(call_id);
  EXPECT_FALSE(slot->has_value());  // Completions never run inside the call.
  RunUntil([&] { return slot->has_value(); });
  EXPECT_TRUE((*slot)->status().IsAborted()) << (*slot)->status().ToString();
  RunUntil([&] { return contexts[0].is_abandoned(); });
  EXPECT_EQ(server.stats().requests_cancelled, 1u);
  held[0](Message{2, "late", ""});
  client.Cancel(call_id);  // Completed already: ignored.
  Result<Message> next = CallAndWait(client, EndpointOf(server), Message{1, "next", ""});
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(client.stats().connections_opened, 1u);
  EXPECT_EQ(client.stats().bad_frames, 0u);
}

TEST_F(RpcTransportTest, ServerAnswersBusyBeyondItsInFlightLimit) {
  std::vector<ReplyFn> held;
  RpcServer& server = StartServer(
      [&](const Message& request, IncomingContext, ReplyFn reply) {
        held.push_back([reply, body = request.body](Result<Message>) {
          reply(Message{2, body, ""});
        });
      },
      {.max_requests_in_flight_per_connection = 4});
  RpcClient client(io_, {});
  std::vector<std::shared_ptr<std::optional<Result<Message>>>> slots;
  for (int i = 0; i < 6; ++i) {
    slots.push_back(Start(client, EndpointOf(server), Message{1, std::to_string(i), ""}));
  }
  RunUntil([&] { return held.size() == 4 && server.stats().requests_busy == 2; });
  RunUntil([&] { return slots[4]->has_value() && slots[5]->has_value(); });
  EXPECT_TRUE((*slots[4])->status().IsBusy()) << (*slots[4])->status().ToString();
  EXPECT_TRUE((*slots[5])->status().IsBusy());
  for (auto& reply : held) reply(Status::Aborted("unused"));
  RunUntil(
      [&] { return std::ranges::all_of(slots, [](auto& slot) { return slot->has_value(); }); });
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE((*slots[i])->ok()) << (*slots[i])->status().ToString();
    EXPECT_EQ((**slots[i])->body, std::to_string(i));
  }
  // Slots freed: the next one reaches the handler.
  auto next = Start(client, EndpointOf(server), Message{1, "next", ""});
  RunUntil([&] { return held.size() == 5; });
  EXPECT_EQ(server.stats().requests_busy, 2u);
  held[4](Message{});
  RunUntil([&] { return next->has_value(); });
}

TEST_F(RpcTransportTest, ClientFailsFastWithBusyBeyondItsPerPeerLimit) {
  std::vector<ReplyFn> held;
  RpcServer& server = StartServer(
      [&](const Message&, IncomingContext, ReplyFn reply) { held.push_back(std::move(reply)); });
  RpcClient client(io_, {.max_requests_in_flight_per_peer = 2});
  auto first = Start(client, EndpointOf(server), Message{1, "a", ""});
  auto second = Start(client, EndpointOf(server), Message{1, "b", ""});
  auto third = Start(client, EndpointOf(server), Message{1, "c", ""});
  RunUntil([&] { return third->has_value(); });
  EXPECT_TRUE((*third)->status().IsBusy()) << (*third)->status().ToString();
  RunUntil([&] { return held.size() == 2; });
  for (auto& reply : held) reply(Message{2, "ok", ""});
  RunUntil([&] { return first->has_value() && second->has_value(); });
  EXPECT_TRUE((*first)->ok());
  EXPECT_TRUE((*second)->ok());
}

TEST_F(RpcTransportTest, ClientReconnectsToARestartedServer) {
  auto server = std::make_unique<RpcServer>(io_, RpcServerOptions{}, Echo);
  ASSERT_TRUE(server->Start().ok());
  const Endpoint endpoint = EndpointOf(*server);
  RpcClient client(io_, {});
  ASSERT_TRUE(CallAndWait(client, endpoint, Message{1, "before", ""}).ok());
  server->Stop();
  server.reset();
  RunUntil([&] { return client.connection_count() == 0; });  // It noticed the close.
  // Nothing listens: the next call fails and leaves no connection behind.
  Result<Message> down = CallAndWait(client, endpoint, Message{1, "down", ""});
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status().ToString();
  server = std::make_unique<RpcServer>(io_, RpcServerOptions{.port = endpoint.port}, Echo);
  ASSERT_TRUE(server->Start().ok());
  Result<Message> after = CallAndWait(client, endpoint, Message{1, "after", ""});
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->body, "after");
  EXPECT_EQ(client.stats().connections_opened, 2u);
  EXPECT_EQ(client.stats().connect_failures, 1u);
}

TEST_F(RpcTransportTest, ConnectionLossFailsEveryCallInFlight) {
  std::vector<ReplyFn> held;
  RpcServer& server = StartServer(
      [&](const Message&, IncomingContext, ReplyFn reply) { held.push_back(std::move(reply)); });
  RpcClient client(io_, {});
  std::vector<std::shared_ptr<std::optional<Result<Message>>>> slots;
  for (int i = 0; i < 3; ++i)
    slots.push_back(Start(client, EndpointOf(server), Message{1, "", ""}));
  RunUntil([&] { return held.size() == 3; });
  server.Stop();
  RunUntil(
      [&] { return std::ranges::all_of(slots, [](auto& slot) { return slot->has_value(); }); });
  for (auto& slot : slots) {
    EXPECT_EQ((*slot)->status().code(), StatusCode::kUnavailable) << (*slot)->status().ToString();
  }
  for (auto& reply : held) reply(Message{});  // Replies after the close are dropped.
  RunFor(20ms);
  EXPECT_EQ(client.stats().connections_lost, 1u);
}

TEST_F(RpcTransportTest, CloseAbortsCallsAndLaterCalls) {
  std::vector<ReplyFn> held;
  RpcServer& server = StartServer(
      [&](const Message&, IncomingContext, ReplyFn reply) { held.push_back(std::move(reply)); });
  RpcClient client(io_, {});
  auto pending = Start(client, EndpointOf(server), Message{1, "", ""});
  RunUntil([&] { return held.size() == 1; });
  client.Close();
  EXPECT_FALSE(pending->has_value());
  RunUntil([&] { return pending->has_value(); });
  EXPECT_TRUE((*pending)->status().IsAborted());
  Result<Message> later = CallAndWait(client, EndpointOf(server), Message{1, "", ""});
  EXPECT_TRUE(later.status().IsAborted());
  held[0](Message{});
}

TEST_F(RpcTransportTest, ConnectToAClosedPortFailsUnavailable) {
  asio::ip::tcp::acceptor probe(io_, {asio::ip::make_address("127.0.0.1"), 0});
  const uint16_t port = probe.local_endpoint().port();
  probe.close();
  RpcClient client(io_, {.connect_timeout_ms = 2000});
  Result<Message> result = CallAndWait(client, {"127.0.0.1", port}, Message{1, "", ""});
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable) << result.status().ToString();
  EXPECT_EQ(client.connection_count(), 0u);
}

TEST_F(RpcTransportTest, BadFramesCloseOnlyTheirConnection) {
  RpcServer& server = StartServer(Echo);
  RpcClient client(io_, {});
  ASSERT_TRUE(CallAndWait(client, EndpointOf(server), Message{1, "first", ""}).ok());
  const std::string good = EncodeFrame({1, kFlagRequest, 77, 0}, "hello", "bulk");
  std::string bad_crc = good;
  bad_crc[sizeof(FrameHeader) + 1] ^= 0x10;  // In the message: message crc mismatch.
  std::string bad_header_crc = good;
  bad_header_crc[20] ^= 0x01;  // In the request id: header crc mismatch.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"garbage", std::string(200, '\x5a')},
      {"oversized message", Patched(good, [](FrameHeader& h) { h.message_bytes = 1u << 30; })},
      {"oversized bulk", Patched(good, [](FrameHeader& h) { h.bulk_bytes = 0xffffffffu; })},
      {"bad message crc", bad_crc},
      {"bad header crc", bad_header_crc},
      {"wrong version", Patched(good, [](FrameHeader& h) { h.version_major = 2; })},
      {"unknown flags", Patched(good, [](FrameHeader& h) { h.flags = kFlagRequest | 0x40; })},
      {"response to a server", EncodeFrame({1, kFlagResponse, 5, 0}, "", "")},
      {"cut short", good.substr(0, 30)},
  };
  // The echo of `good`: header, "hello", "bulk".
  const size_t good_reply_bytes = sizeof(FrameHeader) + 5 + 4;
  uint64_t expected_bad_frames = 0;
  for (const auto& [name, bytes] : cases) {
    RawPeer peer(io_);
    peer.Connect(server.port());
    peer.StartReadingToEnd();
    peer.Write(good);  // A good frame first: the connection works until the bad one.
    RunUntil([&] { return peer.received().size() == good_reply_bytes; });
    peer.Write(bytes);
    if (name == "cut short") peer.socket().shutdown(asio::socket_base::shutdown_send);
    RunUntil([&] { return peer.ended(); });
    // A stream cut inside a frame closes the connection too, but as a lost peer.
    if (name != "cut short") ++expected_bad_frames;
    EXPECT_EQ(server.stats().bad_frames, expected_bad_frames) << name;
    EXPECT_EQ(peer.received().size(), good_reply_bytes) << name;
    // The server keeps serving others, on the connection it had.
    Result<Message> other = CallAndWait(client, EndpointOf(server), Message{1, name, ""});
    ASSERT_TRUE(other.ok()) << name << ": " << other.status().ToString();
  }
  EXPECT_EQ(client.stats().connections_opened, 1u);
}

TEST_F(RpcTransportTest, DuplicateRequestIdInFlightClosesTheConnection) {
  std::vector<ReplyFn> held;
  RpcServer& server = StartServer(
      [&](const Message&, IncomingContext, ReplyFn reply) { held.push_back(std::move(reply)); });
  RawPeer peer(io_);
  peer.Connect(server.port());
  peer.Write(EncodeFrame({1, kFlagRequest, 9, 0}, "", "") +
             EncodeFrame({1, kFlagRequest, 9, 0}, "", ""));
  peer.StartReadingToEnd();
  RunUntil([&] { return peer.ended(); });
  EXPECT_EQ(server.stats().bad_frames, 1u);
  EXPECT_EQ(held.size(), 1u);
  held[0](Message{});  // After the close: dropped.
  RunFor(10ms);
}

TEST_F(RpcTransportTest, ResponseToAnUnknownIdClosesTheClientConnection) {
  // A fake server that answers every request with a response to another id.
  asio::ip::tcp::acceptor acceptor(io_, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket fake(io_);
  bool accepted = false;
  acceptor.async_accept(fake, [&](std::error_code error) { accepted = !error; });
  RpcClient client(io_, {});
  auto slot = Start(client, {"127.0.0.1", acceptor.local_endpoint().port()}, Message{1, "", ""});
  RunUntil([&] { return accepted && fake.available() >= sizeof(FrameHeader); });
  FrameHeader request{};
  asio::read(fake, asio::buffer(&request, sizeof(request)));
  asio::write(fake,
              asio::buffer(EncodeFrame({1, kFlagResponse, request.request_id + 1000, 0}, "", "")));
  RunUntil([&] { return slot->has_value(); });
  EXPECT_EQ((*slot)->status().code(), StatusCode::kUnavailable) << (*slot)->status().ToString();
  EXPECT_NE((*slot)->status().message().find("not outstanding"), std::string::npos);
  EXPECT_EQ(client.stats().bad_frames, 1u);
}

TEST_F(RpcTransportTest, UnparsableErrorReplyClosesTheClientConnection) {
  asio::ip::tcp::acceptor acceptor(io_, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket fake(io_);
  bool accepted = false;
  acceptor.async_accept(fake, [&](std::error_code error) { accepted = !error; });
  RpcClient client(io_, {});
  auto slot = Start(client, {"127.0.0.1", acceptor.local_endpoint().port()}, Message{1, "", ""});
  RunUntil([&] { return accepted && fake.available() >= sizeof(FrameHeader); });
  FrameHeader request{};
  asio::read(fake, asio::buffer(&request, sizeof(request)));
  asio::write(fake, asio::buffer(EncodeFrame({1, kFlagResponse | kFlagError, request.request_id, 0},
                                             "\xff\xff\xff", "")));
  RunUntil([&] { return slot->has_value(); });
  EXPECT_EQ((*slot)->status().code(), StatusCode::kUnavailable) << (*slot)->status().ToString();
  EXPECT_EQ(client.stats().bad_frames, 1u);
}

TEST_F(RpcTransportTest, CallsAndRepliesFromOtherThreads) {
  // The handler replies from a thread of its own, as after a disk sync.
  std::vector<std::thread> repliers;
  RpcServer& server = StartServer([&](const Message& request, IncomingContext, ReplyFn reply) {
    repliers.emplace_back([reply, body = request.body] { reply(Message{2, body, ""}); });
  });
  const Endpoint endpoint = EndpointOf(server);
  RpcClient client(io_, {});
  constexpr int kCalls = 100;
  std::atomic<int> succeeded = 0;
  std::atomic<int> completed = 0;
  std::thread caller([&] {
    for (int i = 0; i < kCalls; ++i) {
      client.Call(endpoint, Message{1, std::to_string(i), ""}, 0, [&, i](Result<Message> reply) {
        if (reply.ok() && reply->body == std::to_string(i)) ++succeeded;
        ++completed;
      });
    }
  });
  RunUntil([&] { return completed == kCalls; });
  caller.join();
  for (auto& replier : repliers) replier.join();
  EXPECT_EQ(succeeded, kCalls);
}

TEST_F(RpcTransportTest, ServerRefusesConnectionsBeyondItsLimit) {
  RpcServer& server = StartServer(Echo, {.max_connections = 1});
  RpcClient first(io_, {});
  RpcClient second(io_, {});
  ASSERT_TRUE(CallAndWait(first, EndpointOf(server), Message{1, "", ""}).ok());
  Result<Message> refused = CallAndWait(second, EndpointOf(server), Message{1, "", ""});
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status().ToString();
  EXPECT_EQ(server.stats().connections_refused, 1u);
  EXPECT_EQ(server.connection_count(), 1u);
}

class FaultShimTest : public RpcTransportTest {
 protected:
  // Two nodes, each with a server (counting the requests its handler sees) and a client named
  // after that server.
  void SetUp() override {
    for (int node = 0; node < 2; ++node) {
      RpcServer& server =
          StartServer([this, node](const Message& request, IncomingContext context, ReplyFn reply) {
            ++handled_[node];
            Echo(request, context, std::move(reply));
          });
      names_[node] = EndpointOf(server).ToString();
      endpoints_[node] = EndpointOf(server);
    }
    for (int node = 0; node < 2; ++node) {
      clients_[node] = std::make_unique<RpcClient>(
          io_, RpcClientOptions{.fault_shim = &shim_, .local_node = names_[node]});
    }
  }

  Result<Message> Call(int from, int to, uint32_t timeout_ms = 100) {
    return CallAndWait(*clients_[from], endpoints_[to], Message{1, "ping", ""}, timeout_ms);
  }

  FaultShim shim_{42};
  std::array<std::string, 2> names_;
  std::array<Endpoint, 2> endpoints_;
  std::array<int, 2> handled_{};
  std::array<std::unique_ptr<RpcClient>, 2> clients_;
};

TEST_F(FaultShimTest, DropsEverythingAtProbabilityOne) {
  ASSERT_TRUE(Call(0, 1).ok());
  shim_.SetDropProbability(1);
  EXPECT_EQ(Call(0, 1).status().code(), StatusCode::kTimedOut);
  EXPECT_EQ(handled_[1], 1);  // The request never arrived.
  shim_.SetDropProbability(0);
  ASSERT_TRUE(Call(0, 1).ok());
  EXPECT_GE(clients_[0]->stats().frames_dropped_by_shim, 1u);
}

TEST_F(FaultShimTest, DelayedAndReorderedFramesStillMatchTheirCalls) {
  shim_.SetDelayMs(0, 20);
  std::vector<std::shared_ptr<std::optional<Result<Message>>>> slots;
  for (int i = 0; i < 100; ++i) {
    slots.push_back(Start(*clients_[0], endpoints_[1], Message{1, std::to_string(i), ""}, 5000));
  }
  RunUntil(
      [&] { return std::ranges::all_of(slots, [](auto& slot) { return slot->has_value(); }); });
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE((*slots[i])->ok()) << (*slots[i])->status().ToString();
    EXPECT_EQ((**slots[i])->body, std::to_string(i));
  }
  EXPECT_GE(shim_.stats().frames_delayed, 200u);  // Each request and each response.
}

TEST_F(FaultShimTest, OneWayPartitionDropsOneDirectionOnly) {
  shim_.Partition(endpoints_[0], endpoints_[1], /*one_way=*/true);  // 0 -> 1 cut.
  // 0 calls 1: the request is lost on the way.
  EXPECT_EQ(Call(0, 1).status().code(), StatusCode::kTimedOut);
  EXPECT_EQ(handled_[1], 0);
  // 1 calls 0: the request arrives and runs, the response is lost on the way back.
  EXPECT_EQ(Call(1, 0).status().code(), StatusCode::kTimedOut);
  EXPECT_EQ(handled_[0], 1);
  shim_.Heal();
  EXPECT_TRUE(Call(0, 1).ok());
  EXPECT_TRUE(Call(1, 0).ok());
}

TEST_F(FaultShimTest, TwoWayPartitionDropsBothDirections) {
  shim_.Partition(names_[0], names_[1], /*one_way=*/false);
  EXPECT_EQ(Call(0, 1).status().code(), StatusCode::kTimedOut);
  EXPECT_EQ(Call(1, 0).status().code(), StatusCode::kTimedOut);
  EXPECT_EQ(handled_[0] + handled_[1], 0);
  EXPECT_EQ(shim_.stats().frames_dropped_partition, 2u);
  shim_.Heal();
  EXPECT_TRUE(Call(0, 1).ok());
}

TEST(FaultShimDecisionTest, SameSeedSameFaults) {
  auto decisions = [](uint64_t seed) {
    FaultShim shim(seed);
    shim.SetDropProbability(0.3);
    shim.SetDelayMs(1, 50);
    std::vector<std::pair<bool, uint32_t>> out;
    for (int i = 0; i < 200; ++i) {
      const FaultDecision decision = shim.Decide("a", "b");
      out.emplace_back(decision.drop, decision.delay_ms);
    }
    return out;
  };
  EXPECT_EQ(decisions(7), decisions(7));
  EXPECT_NE(decisions(7), decisions(8));
  const auto sample = decisions(7);
  EXPECT_TRUE(std::ranges::any_of(sample, [](auto& d) { return d.first; }));
  EXPECT_TRUE(std::ranges::any_of(sample, [](auto& d) { return !d.first && d.second >= 1; }));
}

TEST(FaultShimSpecTest, ParsesEveryItemAndRefusesBadOnes) {
  Result<std::unique_ptr<FaultShim>> shim =
      FaultShim::FromSpec("drop=0,delay=0-0,seed=9,partition=a:1>b:2,partition=c:3<>d:4");
  ASSERT_TRUE(shim.ok()) << shim.status().ToString();
  EXPECT_TRUE((*shim)->Decide("a:1", "b:2").drop);
  EXPECT_FALSE((*shim)->Decide("b:2", "a:1").drop);  // One way.
  EXPECT_TRUE((*shim)->Decide("c:3", "d:4").drop);
  EXPECT_TRUE((*shim)->Decide("d:4", "c:3").drop);
  EXPECT_EQ((*shim)->Decide("a:1", "c:3").delay_ms, 0u);
  Result<std::unique_ptr<FaultShim>> dropping = FaultShim::FromSpec("drop=1,delay=5-5");
  ASSERT_TRUE(dropping.ok());
  EXPECT_TRUE((*dropping)->Decide("x", "y").drop);
  Result<std::unique_ptr<FaultShim>> delaying = FaultShim::FromSpec("delay=5-5");
  ASSERT_TRUE(delaying.ok());
  EXPECT_EQ((*delaying)->Decide("x", "y").delay_ms, 5u);
  EXPECT_TRUE(FaultShim::FromSpec("").ok());
  for (const char* bad : {"drop", "drop=2", "drop=0.5x", "delay=5", "delay=9-1", "seed=-1",
                          "partition=>b", "partition=a>", "speed=1"}) {
    EXPECT_TRUE(FaultShim::FromSpec(bad).status().IsInvalidArgument()) << bad;
  }
}

}  // namespace
}  // namespace weft::rpc
