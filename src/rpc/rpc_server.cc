// RpcServer: the listener, the connection registry, and the server side of a connection
// (requests to the handler, in-flight limit, deadlines, cancels, replies).
#include "rpc/rpc_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <map>
#include <utility>

#include "rpc/error_reply.h"
#include "rpc/frame_connection.h"

namespace weft::rpc {

namespace {
class ServerConnection;
}  // namespace

struct RpcServer::State {
  State(asio::io_context& context, RpcServerOptions server_options, Handler request_handler)
      : io_context(context),
        options(std::move(server_options)),
        handler(std::move(request_handler)),
        acceptor(context) {}

  asio::io_context& io_context;
  const RpcServerOptions options;
  const Handler handler;
  asio::ip::tcp::acceptor acceptor;
  uint16_t port = 0;
  bool started = false;
  bool stopping = false;
  uint64_t next_connection_id = 1;
  std::map<uint64_t, std::shared_ptr<ServerConnection>> connections;
  RpcServerStats stats;
};

namespace {

using State = RpcServer::State;

class ServerConnection final : public FrameConnection {
 public:
  ServerConnection(std::shared_ptr<State> server, Socket socket, uint64_t id, std::string peer)
      : FrameConnection(std::move(socket), server->options.limits, "rpc server", std::move(peer)),
        server_(std::move(server)),
        id_(id) {}

 private:
  // A request the handler has not replied to yet.
  struct InFlight {
    uint16_t message_type = 0;
    std::shared_ptr<bool> abandoned = std::make_shared<bool>(false);
    bool answered = false;  // The server answered it already (cancel, deadline).
    std::unique_ptr<asio::steady_timer> deadline_timer;
  };

  Status OnFrame(Frame frame) override;
  void OnClosed(const Status& reason) override;
  Status OnRequest(Frame frame);
  void OnCancel(uint64_t request_id);
  void OnDeadline(uint64_t request_id);
  // The handler's reply (posted by its ReplyFn).
  void Finish(uint64_t request_id, Result<Message> result);
  // Marks a request answered and abandoned, and answers it with `status`.
  void Abandon(uint64_t request_id, InFlight& request, const Status& status);
  void SendError(uint64_t request_id, uint16_t message_type, const Status& status);
  ReplyFn MakeReplyFn(uint64_t request_id);

  std::shared_ptr<State> server_;
  const uint64_t id_;
  std::map<uint64_t, InFlight> in_flight_;
};

Status ServerConnection::OnFrame(Frame frame) {
  ++server_->stats.frames_received;
  const uint8_t flags = frame.header.flags;
  if ((flags & kFlagRequest) != 0) return OnRequest(std::move(frame));
  if ((flags & kFlagCancel) != 0) {
    OnCancel(frame.header.request_id);
    return Status::Ok();
  }
  return Status::Corruption(fmt::format("a {} (id {}) sent to a server", DescribeFrameKind(flags),
                                        frame.header.request_id));
}

Status ServerConnection::OnRequest(Frame frame) {
  const FrameHeader& header = frame.header;
  if (in_flight_.contains(header.request_id)) {
    return Status::Corruption(
        fmt::format("request id {} is already in flight on this connection", header.request_id));
  }
  if (in_flight_.size() >= server_->options.max_requests_in_flight_per_connection) {
    ++server_->stats.requests_busy;
    SendError(header.request_id, header.message_type,
              Status::Busy(fmt::format("{} requests in flight on this connection, the limit",
                                       in_flight_.size())));
    return Status::Ok();
  }
  IncomingContext context;
  context.request_id = header.request_id;
  context.peer = peer();
  InFlight& request = in_flight_[header.request_id];
  request.message_type = header.message_type;
  context.abandoned = request.abandoned;
  if (header.timeout_ms != 0) {
    context.deadline = IncomingContext::Clock::now() + std::chrono::milliseconds(header.timeout_ms);
    request.deadline_timer = std::make_unique<asio::steady_timer>(executor(), context.deadline);
    request.deadline_timer->async_wait(
        [weak = std::weak_ptr(std::static_pointer_cast<ServerConnection>(shared_from_this())),
         request_id = header.request_id](std::error_code error) {
          auto self = weak.lock();
          if (error || self == nullptr) return;
          self->OnDeadline(request_id);
        });
  }
  Message message;
  message.type = header.message_type;
  message.body = std::move(frame.message);
  // The one copy on the receive path: Message carries bulk data in a string.
  message.bulk.assign(reinterpret_cast<const char*>(frame.bulk.data()), frame.bulk.size());
  server_->handler(message, std::move(context), MakeReplyFn(header.request_id));
  return Status::Ok();
}

ReplyFn ServerConnection::MakeReplyFn(uint64_t request_id) {
  auto replied = std::make_shared<std::atomic<bool>>(false);
  return [weak = std::weak_ptr(std::static_pointer_cast<ServerConnection>(shared_from_this())),
          executor = executor(), request_id, replied](Result<Message> result) {
    const bool replied_before = replied->exchange(true);
    WEFT_ASSERT(!replied_before);  // A handler replies exactly once.
    asio::post(executor, [weak, request_id, result = std::move(result)]() mutable {
      if (auto self = weak.lock()) self->Finish(request_id, std::move(result));
    });
  };
}

void ServerConnection::Finish(uint64_t request_id, Result<Message> result) {
  auto found = in_flight_.find(request_id);
  if (found == in_flight_.end()) return;  // The connection closed meanwhile.
  const bool answered = found->second.answered;
  const uint16_t message_type = found->second.message_type;
  in_flight_.erase(found);
  if (answered || closed()) return;
  if (!result.ok()) {
    SendError(request_id, message_type, result.status());
    return;
  }
  Message& reply = result.value();
  const FrameFields fields{reply.type, kFlagResponse, request_id, 0};
  const size_t body_bytes = reply.body.size();
  const size_t bulk_bytes = reply.bulk.size();
  Status status = Send(fields, std::move(reply.body), std::move(reply.bulk));
  if (status.IsInvalidArgument()) {
    // The handler built a reply the limits refuse: the caller learns that instead.
    spdlog::warn("rpc server: {}: reply to request {} ({} + {} bytes) not sent: {}", peer(),
                 request_id, body_bytes, bulk_bytes, status.ToString());
    SendError(request_id, message_type,
              Status::InvalidArgument("reply refused: " + status.message()));
  }
}

void ServerConnection::OnCancel(uint64_t request_id) {
  auto found = in_flight_.find(request_id);
  // Unknown: answered already (the reply and the cancel crossed), or never sent. Both are fine.
  if (found == in_flight_.end() || found->second.answered) return;
  ++server_->stats.requests_cancelled;
  Abandon(request_id, found->second, Status::Aborted("cancelled by the caller"));
}

void ServerConnection::OnDeadline(uint64_t request_id) {
  auto found = in_flight_.find(request_id);
  if (found == in_flight_.end() || found->second.answered) return;
  ++server_->stats.requests_timed_out;
  Abandon(request_id, found->second,
          Status::TimedOut("the request's deadline passed while the server worked on it"));
}

void ServerConnection::Abandon(uint64_t request_id, InFlight& request, const Status& status) {
  WEFT_ASSERT(!request.answered);
  request.answered = true;
  *request.abandoned = true;
  // Answered now, so that the client can forget the id; the handler's reply will be dropped.
  SendError(request_id, request.message_type, status);
}

void ServerConnection::SendError(uint64_t request_id, uint16_t message_type, const Status& status) {
  WEFT_ASSERT(!status.ok());
  const FrameFields fields{message_type, kFlagResponse | kFlagError, request_id, 0};
  const Status sent = Send(fields, EncodeErrorReply(status), {});
  if (!sent.IsInvalidArgument()) return;  // Sent, or the connection is closed.
  // Only a handler's huge error message gets here: the caller still gets an answer.
  Send(fields, EncodeErrorReply(Status::IOError("error message above the frame limits")), {})
      .IgnoreError();
}

void ServerConnection::OnClosed(const Status&) {
  if (closed_for_bad_frame()) ++server_->stats.bad_frames;
  for (auto& [request_id, request] : in_flight_) *request.abandoned = true;
  in_flight_.clear();
  server_->connections.erase(id_);
}

void Admit(const std::shared_ptr<State>& state, asio::ip::tcp::socket socket) {
  std::error_code error;
  std::string peer = "unknown peer";
  const auto endpoint = socket.remote_endpoint(error);
  if (!error) peer = fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
  if (state->stopping || state->connections.size() >= state->options.max_connections) {
    ++state->stats.connections_refused;
    spdlog::warn("rpc server: {}: connection refused: {}", peer,
                 state->stopping
                     ? std::string("the server is stopping")
                     : fmt::format("{} connections already open", state->connections.size()));
    socket.close(error);
    return;
  }
  socket.set_option(asio::ip::tcp::no_delay(true), error);  // Requests wait on small replies.
  ++state->stats.connections_accepted;
  const uint64_t id = state->next_connection_id++;
  auto connection = std::make_shared<ServerConnection>(state, std::move(socket), id, peer);
  state->connections.emplace(id, connection);
  connection->StartReading();
}

asio::awaitable<void> AcceptLoop(std::shared_ptr<State> state) {
  asio::steady_timer backoff(state->io_context);
  while (!state->stopping && state->acceptor.is_open()) {
    std::error_code error;
    auto socket =
        co_await state->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, error));
    if (state->stopping || error == asio::error::operation_aborted) break;
    if (error) {
      // Out of file descriptors and the like: wait a little instead of spinning.
      spdlog::warn("rpc server: accept on port {} failed: {}", state->port, error.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, error));
      continue;
    }
    Admit(state, std::move(socket));
  }
}

}  // namespace

RpcServer::RpcServer(asio::io_context& io_context, RpcServerOptions options, Handler handler)
    : state_(std::make_shared<State>(io_context, std::move(options), std::move(handler))) {
  WEFT_ASSERT(state_->handler != nullptr);
  WEFT_ASSERT(state_->options.max_requests_in_flight_per_connection > 0);
}

RpcServer::~RpcServer() { Stop(); }

Status RpcServer::Start() {
  WEFT_ASSERT(!state_->started);
  state_->started = true;
  std::error_code error;
  const asio::ip::address address = asio::ip::make_address(state_->options.listen_host, error);
  if (error) {
    return Status::InvalidArgument(
        fmt::format("rpc listen host '{}': {}", state_->options.listen_host, error.message()));
  }
  const asio::ip::tcp::endpoint endpoint(address, state_->options.port);
  asio::ip::tcp::acceptor& acceptor = state_->acceptor;
  acceptor.open(endpoint.protocol(), error);
  // A restarted node binds its port again while old connections linger in TIME_WAIT.
  if (!error) acceptor.set_option(asio::socket_base::reuse_address(true), error);
  if (!error) acceptor.bind(endpoint, error);
  if (!error) acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    std::error_code ignored;
    acceptor.close(ignored);
    return Status::IOError(fmt::format("rpc server cannot listen on {}:{}: {}",
                                       state_->options.listen_host, state_->options.port,
                                       error.message()));
  }
  state_->port = acceptor.local_endpoint().port();
  asio::co_spawn(state_->io_context, AcceptLoop(state_), [](const std::exception_ptr& exception) {
    if (exception == nullptr) return;
    try {
      std::rethrow_exception(exception);
    } catch (const std::exception& error) {
      spdlog::error("rpc server: accepting stopped: {}", error.what());
    } catch (...) {
      spdlog::error("rpc server: accepting stopped: unknown exception");
    }
  });
  spdlog::info("rpc server: listening on {}:{}", state_->options.listen_host, state_->port);
  return Status::Ok();
}

uint16_t RpcServer::port() const { return state_->port; }

void RpcServer::Stop() {
  if (state_->stopping) return;
  state_->stopping = true;
  std::error_code ignored;
  state_->acceptor.close(ignored);
  // Copied: closing a connection removes it from the registry.
  std::vector<std::shared_ptr<ServerConnection>> connections;
  for (const auto& [id, connection] : state_->connections) connections.push_back(connection);
  for (const auto& connection : connections) connection->Close(Status::Ok());
  if (state_->started) spdlog::info("rpc server: port {} stopped", state_->port);
}

uint32_t RpcServer::connection_count() const {
  return static_cast<uint32_t>(state_->connections.size());
}

RpcServerStats RpcServer::stats() const { return state_->stats; }

}  // namespace weft::rpc
