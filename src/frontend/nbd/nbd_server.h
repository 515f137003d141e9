// NbdServer: serves the exports of an ExportProvider over NBD (fixed newstyle handshake,
// structured replies, base:allocation block status) on TCP and/or a Unix socket. What it
// implements of the protocol, its limits and its error mapping: docs/protocol/nbd.md.
//
// Threading: the server runs on a caller-provided asio::io_context that exactly one thread runs
// (the reactor); every method must be called on that thread, or while no thread runs it. Export
// calls and their completions happen on that thread too (nbd_export.h).
//
// Each connection reads requests while earlier ones are still in the export (pipelining), up
// to per-connection limits on requests and bytes in flight, and writes replies in completion
// order. A client that breaks the protocol loses its own connection, logged with the reason;
// no input can crash the server or disturb other connections.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "frontend/nbd/nbd_export.h"
#include "frontend/nbd/nbd_protocol.h"

namespace asio {
class io_context;
}

namespace weft::nbd {

struct NbdServerOptions {
  // "host:port" or "[ipv6]:port"; port 0 picks a free port (see tcp_ports()).
  std::vector<std::string> tcp_listen = {"127.0.0.1:10809"};
  std::string unix_socket_path;    // Empty: no Unix socket.
  uint32_t max_connections = 128;  // Connections beyond this are closed at accept.
  uint32_t max_inflight_requests_per_connection = 128;
  // READ/WRITE payload bytes held per connection (a single larger request still runs alone).
  uint64_t max_inflight_bytes_per_connection = 64ull << 20;
  // A connection that has not finished its handshake by then is closed.
  std::chrono::milliseconds handshake_timeout{10'000};
  // Stop() lets requests already in the export finish and answers them for this long, then
  // closes what is left.
  std::chrono::milliseconds shutdown_drain_timeout{5'000};
};

struct NbdServerStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_refused = 0;          // Over max_connections or while stopping.
  uint64_t connections_closed_on_error = 0;  // Protocol violations, timeouts, socket errors.
  // Requests received, indexed by NBD command type; the last slot counts unknown types.
  std::array<uint64_t, kCommandTypeCount + 1> requests_by_command{};
  std::map<uint32_t, uint64_t> errors_by_errno;  // NBD error value -> replies carrying it.
  uint64_t bytes_received = 0;  // Everything read from sockets, handshakes included.
  uint64_t bytes_sent = 0;
};

class NbdServer {
 public:
  // `io_context` and `provider` must outlive the server. Nothing happens until Start().
  NbdServer(asio::io_context& io_context, ExportProvider& provider, NbdServerOptions options);
  ~NbdServer();  // Stop()s, closing every connection at once (no drain).

  NbdServer(const NbdServer&) = delete;
  NbdServer& operator=(const NbdServer&) = delete;

  // Binds and listens on every configured address, then accepts in the background. Errors
  // (InvalidArgument for an unparsable address, IOError for a failed bind) name the address;
  // on error nothing is left listening. A stale Unix socket file is removed first; any other
  // kind of file at that path is an error. Call once.
  Status Start();
  // The bound TCP ports, in tcp_listen order (valid after a successful Start()).
  std::vector<uint16_t> tcp_ports() const;
  // Closes the listeners (and unlinks the Unix socket) and ends every connection: handshakes
  // are cut at once; connections in transmission stop reading, get their in-flight requests
  // answered (new ones get ESHUTDOWN) and are closed when none remain or after
  // shutdown_drain_timeout. Export completions that arrive later are safe. Idempotent.
  void Stop();

  uint32_t connection_count() const;
  // Connections in the transmission phase on this export.
  uint32_t ConnectionsTo(std::string_view export_name) const;
  NbdServerStats stats() const;

  struct State;

 private:
  void Shutdown(bool drain);

  std::shared_ptr<State> state_;
};

}  // namespace weft::nbd
