// A connection's lifecycle and its handshake; the transmission phase is nbd_transmission.cc.
#include "frontend/nbd/nbd_connection.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <utility>

namespace weft::nbd {

namespace {
constexpr auto kUseAwaitable = asio::use_awaitable;
}  // namespace

uint32_t NbdErrorFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return kErrorNone;
    case StatusCode::kInvalidArgument:
      return kEINVAL;
    case StatusCode::kNoSpace:
      return kENOSPC;
    case StatusCode::kNotSupported:
      return kENOTSUP;
    case StatusCode::kNotFound:
      return kESHUTDOWN;  // The export was deleted under the connection.
    case StatusCode::kBusy:
      return kENOMEM;  // The spec's "try again later".
    default:
      return kEIO;
  }
}

Connection::Connection(std::shared_ptr<NbdServer::State> server, Socket socket, uint64_t id,
                       std::string peer)
    : server_(std::move(server)),
      socket_(std::move(socket)),
      id_(id),
      peer_(std::move(peer)),
      handshake_timer_(server_->io_context),
      capacity_timer_(server_->io_context),
      drain_timer_(server_->io_context) {}

const std::string& Connection::export_name() const {
  static const std::string kNone;
  return session_.has_value() ? session_->info.name : kNone;
}

void Connection::Start() {
  handshake_timer_.expires_after(server_->options.handshake_timeout);
  handshake_timer_.async_wait([weak = weak_from_this()](std::error_code error) {
    auto self = weak.lock();
    if (error || self == nullptr || self->in_transmission()) return;
    self->Close(fmt::format("no complete handshake within {} ms",
                            self->server_->options.handshake_timeout.count()));
  });
  asio::co_spawn(server_->io_context, Run(shared_from_this()),
                 [](const std::exception_ptr& exception) {
                   if (exception == nullptr) return;
                   try {
                     std::rethrow_exception(exception);
                   } catch (const std::exception& error) {
                     spdlog::error("nbd: connection coroutine failed: {}", error.what());
                   }
                 });
}

asio::awaitable<void> Connection::Run(std::shared_ptr<Connection> self) {
  Status status;
  try {
    status = co_await self->Handshake();
    if (status.ok()) {
      self->handshake_timer_.cancel();
      spdlog::debug("nbd: {}: export '{}' opened", self->peer_, self->export_name());
      status = co_await self->Transmission();
    }
  } catch (const std::exception& error) {  // Allocation failures: this connection only.
    status = Status::IOError(fmt::format("unexpected exception: {}", error.what()));
  }
  self->reading_stopped_ = true;
  if (status.ok() || status.code() == StatusCode::kAborted) {
    self->MaybeFinish();  // A normal end: answer what is in flight, then close.
  } else {
    self->Close(status.ToString());
  }
}

asio::awaitable<Status> Connection::ReadExact(std::span<std::byte> buffer) {
  std::error_code error;
  const size_t read_bytes =
      co_await asio::async_read(socket_, asio::buffer(buffer.data(), buffer.size()),
                                asio::redirect_error(kUseAwaitable, error));
  server_->stats.bytes_received += read_bytes;
  if (!error) co_return Status::Ok();
  if (error == asio::error::eof && read_bytes == 0) {
    co_return Status::Aborted("connection closed by the client");
  }
  co_return Status::IOError(fmt::format("read of {} bytes failed after {}: {}", buffer.size(),
                                        read_bytes, error.message()));
}

asio::awaitable<Status> Connection::WriteAll(std::span<const std::byte> bytes) {
  std::error_code error;
  const size_t written_bytes =
      co_await asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()),
                                 asio::redirect_error(kUseAwaitable, error));
  server_->stats.bytes_sent += written_bytes;
  if (!error) co_return Status::Ok();
  co_return Status::IOError(fmt::format("write failed: {}", error.message()));
}

asio::awaitable<Status> Connection::SkipPayload(uint64_t length_bytes) {
  std::array<std::byte, 64 << 10> scratch;
  while (length_bytes > 0) {
    const size_t chunk_bytes =
        static_cast<size_t>(std::min<uint64_t>(length_bytes, scratch.size()));
    Status status = co_await ReadExact({scratch.data(), chunk_bytes});
    if (!status.ok()) co_return Status::IOError("payload cut short: " + status.message());
    length_bytes -= chunk_bytes;
  }
  co_return Status::Ok();
}

asio::awaitable<Status> Connection::Handshake() {
  const std::vector<std::byte> greeting = Negotiator::Greeting();
  WEFT_CO_RETURN_IF_ERROR(co_await WriteAll(greeting));
  if (server_->provider == nullptr) co_return Status::Aborted("server destroyed");
  Negotiator negotiator(*server_->provider);
  std::array<std::byte, sizeof(ClientFlagsWire)> flags;
  Status status = co_await ReadExact(flags);
  if (!status.ok()) co_return Status::InvalidArgument("handshake cut short: " + status.message());
  WEFT_CO_RETURN_IF_ERROR(negotiator.OnClientFlags(flags));
  for (;;) {
    std::array<std::byte, sizeof(OptionHeaderWire)> header_bytes;
    status = co_await ReadExact(header_bytes);
    if (status.code() == StatusCode::kAborted) co_return status;  // Gone between options.
    if (!status.ok()) co_return Status::InvalidArgument("option cut short: " + status.message());
    WEFT_CO_ASSIGN_OR_RETURN(const OptionHeader header, DecodeOptionHeader(header_bytes));
    if (Status length = CheckOptionLength(header); !length.ok()) {
      // Reading the payload is not worth it: say why, then close.
      std::vector<std::byte> reply;
      EncodeOptionError(reply, header.option, kRepErrTooBig, length.message());
      (co_await WriteAll(reply)).IgnoreError();  // Closing anyway.
      co_return Status::InvalidArgument(length.message());
    }
    std::vector<std::byte> payload(header.length_bytes);
    status = co_await ReadExact(payload);
    if (!status.ok()) co_return Status::InvalidArgument("option cut short: " + status.message());
    if (closed_ || server_->provider == nullptr) co_return Status::Aborted("connection closed");
    NegotiationStep step = negotiator.OnOption(header, payload);
    if (!step.reply.empty()) WEFT_CO_RETURN_IF_ERROR(co_await WriteAll(step.reply));
    switch (step.next) {
      case NegotiationStep::Next::kContinue:
        break;
      case NegotiationStep::Next::kTransmission:
        session_ = negotiator.TakeSession();
        co_return Status::Ok();
      case NegotiationStep::Next::kClose:
        if (step.close_reason.empty()) co_return Status::Aborted("client ended the handshake");
        co_return Status::InvalidArgument(step.close_reason);
    }
  }
}

void Connection::BeginShutdown(bool drain) {
  if (closed_) return;
  if (!drain || !in_transmission()) {
    Close("");
    return;
  }
  stopping_ = true;
  std::error_code ignored;
  // Wakes the reader with end-of-file; replies still go out.
  socket_.shutdown(asio::socket_base::shutdown_receive, ignored);
  capacity_timer_.cancel();  // Requests waiting for room get ESHUTDOWN.
  drain_timer_.expires_after(server_->options.shutdown_drain_timeout);
  drain_timer_.async_wait([weak = weak_from_this()](std::error_code error) {
    auto self = weak.lock();
    if (error || self == nullptr) return;
    self->Close(fmt::format("{} requests still in flight at the end of the shutdown drain",
                            self->inflight_requests_));
  });
  MaybeFinish();
}

void Connection::MaybeFinish() {
  if (closed_ || !reading_stopped_) return;
  if (inflight_requests_ > 0 || writing_ || !write_queue_.empty()) return;
  Close(finish_reason_);
}

void Connection::Close(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  auto self = shared_from_this();  // The registry may hold the last reference.
  if (reason.empty()) {
    spdlog::debug("nbd: {}: connection closed", peer_);
  } else {
    spdlog::warn("nbd: {}: closing connection: {}", peer_, reason);
    ++server_->stats.connections_closed_on_error;
  }
  std::error_code ignored;
  socket_.shutdown(asio::socket_base::shutdown_both, ignored);
  socket_.close(ignored);
  handshake_timer_.cancel();
  capacity_timer_.cancel();
  drain_timer_.cancel();
  write_queue_.clear();
  server_->connections.erase(id_);
}

}  // namespace weft::nbd
