// NbdServer: listeners, accepting, the connection registry and shutdown. The protocol itself is
// in nbd_connection.cc (handshake) and nbd_transmission.cc (requests).
#include "frontend/nbd/nbd_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "frontend/nbd/nbd_connection.h"

namespace weft::nbd {
namespace {

using State = NbdServer::State;

Result<asio::ip::tcp::endpoint> ParseTcpAddress(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return Status::InvalidArgument(fmt::format("listen address '{}': expected host:port", text));
  }
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  uint16_t port = 0;
  const auto [end, error] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || error != std::errc() || end != port_text.data() + port_text.size()) {
    return Status::InvalidArgument(fmt::format("listen address '{}': bad port", text));
  }
  std::error_code address_error;
  const asio::ip::address address = asio::ip::make_address(std::string(host), address_error);
  if (address_error) {
    return Status::InvalidArgument(
        fmt::format("listen address '{}': bad host: {}", text, address_error.message()));
  }
  return asio::ip::tcp::endpoint(address, port);
}

// Opens, binds and listens; errors name `what` (the configured address).
template <typename Acceptor, typename Endpoint>
Status Listen(Acceptor& acceptor, const Endpoint& endpoint, std::string_view what) {
  std::error_code error;
  acceptor.open(endpoint.protocol(), error);
  if (!error && std::is_same_v<Endpoint, asio::ip::tcp::endpoint>) {
    acceptor.set_option(asio::socket_base::reuse_address(true), error);
  }
  if (!error) acceptor.bind(endpoint, error);
  if (!error) acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (!error) return Status::Ok();
  return Status::IOError(fmt::format("cannot listen on {}: {}", what, error.message()));
}

void Admit(const std::shared_ptr<State>& state, Connection::Socket socket, std::string peer) {
  if (state->stopping || state->connections.size() >= state->options.max_connections) {
    ++state->stats.connections_refused;
    spdlog::warn("nbd: {}: connection refused: {}", peer,
                 state->stopping
                     ? "the server is stopping"
                     : fmt::format("{} connections already open", state->connections.size()));
    std::error_code ignored;
    socket.close(ignored);
    return;
  }
  ++state->stats.connections_accepted;
  const uint64_t id = state->next_connection_id++;
  auto connection = std::make_shared<Connection>(state, std::move(socket), id, std::move(peer));
  state->connections.emplace(id, connection);
  connection->Start();
}

// Accepts until the acceptor is closed. `acceptor` lives in `state`, which the frame holds.
template <typename Acceptor>
asio::awaitable<void> AcceptLoop(std::shared_ptr<State> state, Acceptor* acceptor,
                                 std::string address) {
  asio::steady_timer backoff(state->io_context);
  while (!state->stopping && acceptor->is_open()) {
    std::error_code error;
    auto socket = co_await acceptor->async_accept(asio::redirect_error(asio::use_awaitable, error));
    if (state->stopping || error == asio::error::operation_aborted) break;
    if (error) {
      // Out of file descriptors and the like: wait a little instead of spinning.
      spdlog::warn("nbd: accept on {} failed: {}", address, error.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, error));
      continue;
    }
    std::string peer = address;
    if constexpr (std::is_same_v<Acceptor, asio::ip::tcp::acceptor>) {
      socket.set_option(asio::ip::tcp::no_delay(true), error);  // Replies are small and urgent.
      std::error_code peer_error;
      const auto endpoint = socket.remote_endpoint(peer_error);
      if (!peer_error) peer = fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
    }
    Admit(state, Connection::Socket(std::move(socket)), std::move(peer));
  }
}

}  // namespace

NbdServer::NbdServer(asio::io_context& io_context, ExportProvider& provider,
                     NbdServerOptions options)
    : state_(std::make_shared<State>(io_context, provider, std::move(options))) {}

NbdServer::~NbdServer() {
  Shutdown(/*drain=*/false);
  state_->provider = nullptr;  // Coroutines still suspended must not reach it.
}

Status NbdServer::Start() {
  WEFT_ASSERT(!state_->started);
  state_->started = true;
  for (const std::string& address : state_->options.tcp_listen) {
    WEFT_ASSIGN_OR_RETURN(const asio::ip::tcp::endpoint endpoint, ParseTcpAddress(address));
    auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(state_->io_context);
    if (Status status = Listen(*acceptor, endpoint, address); !status.ok()) {
      Shutdown(/*drain=*/false);
      return status;
    }
    state_->tcp_ports.push_back(acceptor->local_endpoint().port());
    state_->tcp_acceptors.push_back(std::move(acceptor));
  }
  const std::string& path = state_->options.unix_socket_path;
  if (!path.empty()) {
    struct stat file_status {};
    if (::lstat(path.c_str(), &file_status) == 0) {
      if (!S_ISSOCK(file_status.st_mode)) {
        Shutdown(/*drain=*/false);
        return Status::AlreadyExists(
            fmt::format("unix socket {}: a file that is not a socket is "
                        "in the way",
                        path));
      }
      ::unlink(path.c_str());  // A stale socket from an earlier run.
    }
    state_->unix_acceptor =
        std::make_unique<asio::local::stream_protocol::acceptor>(state_->io_context);
    if (Status status =
            Listen(*state_->unix_acceptor, asio::local::stream_protocol::endpoint(path), path);
        !status.ok()) {
      state_->unix_acceptor.reset();
      Shutdown(/*drain=*/false);
      return status;
    }
  }
  for (size_t i = 0; i < state_->tcp_acceptors.size(); ++i) {
    asio::co_spawn(
        state_->io_context,
        AcceptLoop(state_, state_->tcp_acceptors[i].get(), state_->options.tcp_listen[i]),
        asio::detached);
    spdlog::info("nbd: listening on {} (port {})", state_->options.tcp_listen[i],
                 state_->tcp_ports[i]);
  }
  if (state_->unix_acceptor != nullptr) {
    asio::co_spawn(state_->io_context, AcceptLoop(state_, state_->unix_acceptor.get(), path),
                   asio::detached);
    spdlog::info("nbd: listening on unix socket {}", path);
  }
  return Status::Ok();
}

std::vector<uint16_t> NbdServer::tcp_ports() const { return state_->tcp_ports; }

void NbdServer::Stop() { Shutdown(/*drain=*/true); }

void NbdServer::Shutdown(bool drain) {
  if (state_->stopping && drain) return;  // Stop() twice: the first one is draining already.
  const bool first = !state_->stopping;
  state_->stopping = true;
  std::error_code ignored;
  for (auto& acceptor : state_->tcp_acceptors) acceptor->close(ignored);
  if (state_->unix_acceptor != nullptr && state_->unix_acceptor->is_open()) {
    state_->unix_acceptor->close(ignored);
    ::unlink(state_->options.unix_socket_path.c_str());
  }
  // Copied: closing a connection removes it from the registry.
  std::vector<std::shared_ptr<Connection>> connections;
  for (const auto& [id, connection] : state_->connections) connections.push_back(connection);
  for (const auto& connection : connections) connection->BeginShutdown(drain);
  if (first && state_->started) spdlog::info("nbd: server stopping");
}

uint32_t NbdServer::connection_count() const {
  return static_cast<uint32_t>(state_->connections.size());
}

uint32_t NbdServer::ConnectionsTo(std::string_view export_name) const {
  uint32_t count = 0;
  for (const auto& [id, connection] : state_->connections) {
    if (connection->in_transmission() && connection->export_name() == export_name) ++count;
  }
  return count;
}

NbdServerStats NbdServer::stats() const { return state_->stats; }

}  // namespace weft::nbd
