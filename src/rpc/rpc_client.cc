// RpcClient: calls, their timers and completion; the client side of a connection (connect,
// requests through the fault shim, responses matched to outstanding request ids).
#include "rpc/rpc_client.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "rpc/error_reply.h"
#include "rpc/fault_shim.h"
#include "rpc/frame_connection.h"

namespace weft::rpc {

namespace {

using Clock = std::chrono::steady_clock;
class ClientConnection;

// One call that has not completed.
struct PendingCall {
  std::string peer;
  ReplyFn done;
  Clock::time_point deadline = Clock::time_point::max();
  uint32_t timeout_ms = 0;
  std::unique_ptr<asio::steady_timer> timer;  // Only with a timeout.
  std::weak_ptr<ClientConnection> connection;
  bool sent = false;  // The request went on the wire, so a cancel is worth sending.
};

}  // namespace

struct RpcClient::State {
  State(asio::io_context& context, RpcClientOptions client_options)
      : io_context(context), options(std::move(client_options)) {}

  asio::io_context& io_context;
  const RpcClientOptions options;
  std::atomic<uint64_t> next_call_id{1};  // Call ids are the request ids on the wire.
  bool closed = false;
  std::map<std::string, std::shared_ptr<ClientConnection>> connections;  // By endpoint.
  std::map<uint64_t, PendingCall> calls;
  RpcClientStats stats;
};

namespace {

using State = RpcClient::State;

// Completes a call once: later attempts (a reply after a timeout, say) find nothing.
void Complete(State& state, uint64_t call_id, Result<Message> result);

class ClientConnection final : public FrameConnection {
 public:
  ClientConnection(std::shared_ptr<State> client, Endpoint endpoint)
      : FrameConnection(Socket(client->io_context), client->options.limits, "rpc client",
                        endpoint.ToString()),
        client_(std::move(client)),
        endpoint_(std::move(endpoint)),
        connect_timer_(executor()) {}

  void Connect();
  // Sends `request` for call `call_id` once connected (through the fault shim, if any).
  void Submit(uint64_t call_id, Message request);
  // The call was abandoned (timeout, Cancel()): tell the server, if it has the request.
  void SendCancel(uint64_t call_id);
  // The call completed.
  void Forget(uint64_t call_id) { live_.erase(call_id); }
  size_t live_calls() const { return live_.size(); }

 private:
  static asio::awaitable<void> RunConnect(std::shared_ptr<ClientConnection> self);
  Status OnFrame(Frame frame) override;
  void OnClosed(const Status& reason) override;
  // Runs `action` now, later (delayed by the shim) or never (dropped); `from`/`to` name nodes.
  template <typename Action>
  void ThroughShim(const std::string& from, const std::string& to, Action action);
  // Sends now (through the shim) if the call is still live.
  void SendLive(uint64_t call_id, Message request);
  void WriteRequest(uint64_t call_id, Message request);
  std::shared_ptr<ClientConnection> self() {
    return std::static_pointer_cast<ClientConnection>(shared_from_this());
  }

  std::shared_ptr<State> client_;
  const Endpoint endpoint_;
  asio::steady_timer connect_timer_;
  bool connected_ = false;
  std::deque<std::pair<uint64_t, Message>> waiting_for_connect_;
  std::set<uint64_t> live_;  // Calls on this connection that have not completed.
  // Request ids on the wire and not answered yet: live calls and abandoned ones (the server
  // answers those too). A response to any other id is a protocol violation.
  std::set<uint64_t> outstanding_;
};

void ClientConnection::Connect() {
  connect_timer_.expires_after(std::chrono::milliseconds(client_->options.connect_timeout_ms));
  connect_timer_.async_wait([weak = std::weak_ptr(self())](std::error_code error) {
    auto connection = weak.lock();
    if (error || connection == nullptr || connection->connected_) return;
    connection->Close(Status::Unavailable(fmt::format(
        "cannot connect within {} ms", connection->client_->options.connect_timeout_ms)));
  });
  Spawn(RunConnect(self()));
}

asio::awaitable<void> ClientConnection::RunConnect(std::shared_ptr<ClientConnection> self) {
  std::error_code error;
  std::vector<asio::ip::tcp::endpoint> addresses;
  const asio::ip::address address = asio::ip::make_address(self->endpoint_.host, error);
  if (!error) {
    addresses.emplace_back(address, self->endpoint_.port);
  } else {
    // A host name: resolve it (asio's resolver thread does the blocking part).
    asio::ip::tcp::resolver resolver(self->executor());
    const auto results =
        co_await resolver.async_resolve(self->endpoint_.host, std::to_string(self->endpoint_.port),
                                        asio::redirect_error(asio::use_awaitable, error));
    if (self->closed()) co_return;
    if (error) {
      self->Close(Status::Unavailable(fmt::format("cannot resolve: {}", error.message())));
      co_return;
    }
    for (const auto& entry : results) addresses.push_back(entry.endpoint());
  }
  co_await asio::async_connect(self->socket(), addresses,
                               asio::redirect_error(asio::use_awaitable, error));
  if (self->closed()) co_return;  // The connect timer fired, or the client closed.
  if (error) {
    self->Close(Status::Unavailable(fmt::format("cannot connect: {}", error.message())));
    co_return;
  }
  self->connected_ = true;
  self->connect_timer_.cancel();
  self->socket().set_option(asio::ip::tcp::no_delay(true), error);  // Small, urgent requests.
  ++self->client_->stats.connections_opened;
  self->StartReading();
  std::deque<std::pair<uint64_t, Message>> waiting = std::move(self->waiting_for_connect_);
  for (auto& [call_id, request] : waiting) self->SendLive(call_id, std::move(request));
}

void ClientConnection::Submit(uint64_t call_id, Message request) {
  live_.insert(call_id);
  if (!connected_) {
    waiting_for_connect_.emplace_back(call_id, std::move(request));
    return;
  }
  SendLive(call_id, std::move(request));
}

void ClientConnection::SendLive(uint64_t call_id, Message request) {
  if (!live_.contains(call_id)) return;  // Completed while waiting for the connection.
  ThroughShim(client_->options.local_node, peer(),
              [call_id, request = std::move(request)](ClientConnection& connection) mutable {
                connection.WriteRequest(call_id, std::move(request));
              });
}

void ClientConnection::WriteRequest(uint64_t call_id, Message request) {
  auto call = client_->calls.find(call_id);
  if (call == client_->calls.end() || closed()) return;  // Completed while delayed.
  uint32_t timeout_ms = 0;
  if (call->second.timeout_ms != 0) {
    // What is left of the caller's timeout; at least 1 ms, since 0 would mean none.
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(call->second.deadline - Clock::now());
    timeout_ms = static_cast<uint32_t>(std::max<int64_t>(1, left.count()));
  }
  const FrameFields fields{request.type, kFlagRequest, call_id, timeout_ms};
  Status status = Send(fields, std::move(request.body), std::move(request.bulk));
  if (!status.ok()) {
    Complete(*client_, call_id, std::move(status));  // Refused by the encoder.
    return;
  }
  call->second.sent = true;
  outstanding_.insert(call_id);
}

void ClientConnection::SendCancel(uint64_t call_id) {
  if (!outstanding_.contains(call_id)) return;  // The server does not have it.
  // Abandoned requests stay outstanding until answered; a server that never answers them
  // would make the set grow without bound, so it loses the connection instead.
  const size_t abandoned = outstanding_.size() - std::min(outstanding_.size(), live_.size());
  if (abandoned > client_->options.max_requests_in_flight_per_peer) {
    Close(Status::Unavailable(
        fmt::format("the server leaves {} cancelled requests unanswered", abandoned)));
    return;
  }
  ThroughShim(client_->options.local_node, peer(), [call_id](ClientConnection& connection) {
    connection.Send({0, kFlagCancel, call_id, 0}, {}, {}).IgnoreError();  // Closed: moot.
  });
}

template <typename Action>
void ClientConnection::ThroughShim(const std::string& from, const std::string& to, Action action) {
  FaultShim* shim = client_->options.fault_shim;
  const FaultDecision decision = shim == nullptr ? FaultDecision{} : shim->Decide(from, to);
  if (decision.drop) {
    ++client_->stats.frames_dropped_by_shim;
    return;
  }
  if (decision.delay_ms == 0) {
    action(*this);
    return;
  }
  auto timer = std::make_shared<asio::steady_timer>(executor(),
                                                    std::chrono::milliseconds(decision.delay_ms));
  timer->async_wait([timer, weak = std::weak_ptr(self()),
                     action = std::move(action)](std::error_code error) mutable {
    auto connection = weak.lock();
    if (error || connection == nullptr || connection->closed()) return;
    action(*connection);
  });
}

Status ClientConnection::OnFrame(Frame frame) {
  const FrameHeader& header = frame.header;
  if ((header.flags & kFlagResponse) == 0) {
    return Status::Corruption(fmt::format("a {} (id {}) sent to a client",
                                          DescribeFrameKind(header.flags), header.request_id));
  }
  const uint64_t call_id = header.request_id;
  if (outstanding_.erase(call_id) == 0) {
    return Status::Corruption(fmt::format(
        "response to request id {}, which is not outstanding on this connection", call_id));
  }
  Result<Message> result = Status::Aborted("unset");
  if ((header.flags & kFlagError) != 0) {
    Result<RemoteStatus> remote = DecodeErrorReply(frame.message);
    if (!remote.ok()) return remote.status();  // The peer is broken: close.
    result = remote->status.WithContext(fmt::format("rpc {}", peer()));
  } else {
    Message reply;
    reply.type = header.message_type;
    reply.body = std::move(frame.message);
    // The one copy on the receive path: Message carries bulk data in a string.
    reply.bulk.assign(reinterpret_cast<const char*>(frame.bulk.data()), frame.bulk.size());
    result = std::move(reply);
  }
  if (!live_.contains(call_id)) return Status::Ok();  // Abandoned: the answer to a cancel.
  ThroughShim(peer(), client_->options.local_node,
              [call_id, result = std::move(result)](ClientConnection& connection) mutable {
                Complete(*connection.client_, call_id, std::move(result));
              });
  return Status::Ok();
}

void ClientConnection::OnClosed(const Status& reason) {
  State& client = *client_;
  auto entry = client.connections.find(peer());
  if (entry != client.connections.end() && entry->second.get() == this) {
    client.connections.erase(entry);  // The next call connects again.
  }
  connect_timer_.cancel();
  if (closed_for_bad_frame()) ++client.stats.bad_frames;
  Status failure;
  if (!connected_) {
    if (!reason.ok()) ++client.stats.connect_failures;
    failure = Status::Unavailable(
        fmt::format("cannot connect to {}: {}", peer(), reason.ok() ? "closed" : reason.message()));
  } else {
    if (!live_.empty()) ++client.stats.connections_lost;
    failure =
        Status::Unavailable(fmt::format("connection to {} lost: {}", peer(),
                                        reason.ok() ? "closed by the peer" : reason.ToString()));
  }
  const std::vector<uint64_t> calls(live_.begin(), live_.end());
  for (const uint64_t call_id : calls) Complete(client, call_id, failure);
  live_.clear();
  waiting_for_connect_.clear();
  outstanding_.clear();
}

void Complete(State& state, uint64_t call_id, Result<Message> result) {
  auto found = state.calls.find(call_id);
  if (found == state.calls.end()) return;
  ReplyFn done = std::move(found->second.done);
  if (auto connection = found->second.connection.lock()) connection->Forget(call_id);
  state.calls.erase(found);  // Destroys the timer, which cancels its wait.
  asio::post(state.io_context, [done = std::move(done), result = std::move(result)]() mutable {
    done(std::move(result));
  });
}

// Completes a call the caller gave up on (`status`: TimedOut or Aborted), telling the server.
void Abandon(State& state, uint64_t call_id, Status status) {
  auto found = state.calls.find(call_id);
  if (found == state.calls.end()) return;
  auto connection = found->second.connection.lock();
  const bool sent = found->second.sent;
  Complete(state, call_id, std::move(status));
  if (sent && connection != nullptr && !connection->closed()) connection->SendCancel(call_id);
}

void StartCall(const std::shared_ptr<State>& state, uint64_t call_id, const Endpoint& endpoint,
               Message request, uint32_t timeout_ms, ReplyFn done) {
  ++state->stats.calls;
  PendingCall call;
  call.peer = endpoint.ToString();
  call.done = std::move(done);
  call.timeout_ms = timeout_ms;
  auto [entry, inserted] = state->calls.emplace(call_id, std::move(call));
  WEFT_ASSERT(inserted);
  PendingCall& pending = entry->second;
  const FrameLimits& limits = state->options.limits;
  if (state->closed) {
    Complete(*state, call_id, Status::Aborted("the rpc client is closed"));
    return;
  }
  if (request.body.size() > limits.message_bytes_max ||
      request.bulk.size() > limits.bulk_bytes_max) {
    Complete(*state, call_id,
             Status::InvalidArgument(fmt::format(
                 "request of {} + {} bytes exceeds the frame limits ({} + {})", request.body.size(),
                 request.bulk.size(), limits.message_bytes_max, limits.bulk_bytes_max)));
    return;
  }
  std::shared_ptr<ClientConnection>& connection = state->connections[pending.peer];
  if (connection == nullptr) {
    connection = std::make_shared<ClientConnection>(state, endpoint);
    connection->Connect();
  }
  if (connection->live_calls() >= state->options.max_requests_in_flight_per_peer) {
    Complete(*state, call_id,
             Status::Busy(fmt::format("{} calls in flight to {}, the limit",
                                      connection->live_calls(), pending.peer)));
    return;
  }
  pending.connection = connection;
  if (timeout_ms != 0) {
    pending.deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    pending.timer = std::make_unique<asio::steady_timer>(state->io_context, pending.deadline);
    pending.timer->async_wait([weak = std::weak_ptr(state), call_id,
                               timeout_ms](std::error_code error) {
      auto locked = weak.lock();
      if (error || locked == nullptr) return;
      Abandon(*locked, call_id, Status::TimedOut(fmt::format("no reply within {} ms", timeout_ms)));
    });
  }
  connection->Submit(call_id, std::move(request));
}

}  // namespace

RpcClient::RpcClient(asio::io_context& io_context, RpcClientOptions options)
    : state_(std::make_shared<State>(io_context, std::move(options))) {
  WEFT_ASSERT(state_->options.max_requests_in_flight_per_peer > 0);
}

RpcClient::~RpcClient() { Close(); }

uint64_t RpcClient::Call(const Endpoint& endpoint, Message request, uint32_t timeout_ms,
                         ReplyFn done) {
  WEFT_ASSERT(done != nullptr);
  const uint64_t call_id = state_->next_call_id.fetch_add(1);
  asio::post(state_->io_context, [state = state_, call_id, endpoint, request = std::move(request),
                                  timeout_ms, done = std::move(done)]() mutable {
    StartCall(state, call_id, endpoint, std::move(request), timeout_ms, std::move(done));
  });
  return call_id;
}

void RpcClient::Cancel(uint64_t call_id) {
  asio::post(state_->io_context, [state = state_, call_id] {
    Abandon(*state, call_id, Status::Aborted("cancelled by the caller"));
  });
}

void RpcClient::Close() {
  State& state = *state_;
  if (state.closed) return;
  state.closed = true;
  std::vector<uint64_t> calls;
  for (const auto& [call_id, call] : state.calls) calls.push_back(call_id);
  for (const uint64_t call_id : calls) {
    Complete(state, call_id, Status::Aborted("the rpc client is closed"));
  }
  // Copied: closing a connection removes it from the map.
  std::vector<std::shared_ptr<ClientConnection>> connections;
  for (const auto& [peer, connection] : state.connections) connections.push_back(connection);
  for (const auto& connection : connections) connection->Close(Status::Ok());
}

uint32_t RpcClient::connection_count() const {
  return static_cast<uint32_t>(state_->connections.size());
}

RpcClientStats RpcClient::stats() const { return state_->stats; }

}  // namespace weft::rpc
