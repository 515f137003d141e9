// RpcServer: serves RPC requests (docs/protocol/rpc.md, "Connections") on a TCP port. Every
// request goes to one Handler, which replies exactly once, now or later.
//
// Threading: the server runs on a caller-provided asio::io_context that exactly one thread runs;
// Start(), Stop(), stats() and the destructor must be called on that thread, or while no thread
// runs it. The handler runs on that thread. Its ReplyFn may be called from any thread (it posts
// to the io_context).
//
// Per connection: at most max_requests_in_flight_per_connection requests are in the handler;
// more are answered Busy at once. A bad frame closes that connection only (logged).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "rpc/frame_format.h"
#include "rpc/rpc_message.h"

namespace asio {
class io_context;
}

namespace weft::rpc {

struct RpcServerOptions {
  std::string listen_host = "127.0.0.1";
  uint16_t port = 0;  // 0 picks a free port (see port()).
  FrameLimits limits;
  uint32_t max_requests_in_flight_per_connection = 256;
  uint32_t max_connections = 256;  // Connections beyond this are closed at accept.
};

struct RpcServerStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_refused = 0;  // Over max_connections or while stopping.
  uint64_t bad_frames = 0;           // Connections closed for a bad frame (see the log).
  uint64_t frames_received = 0;
  uint64_t requests_busy = 0;       // Answered Busy: the connection had too many in flight.
  uint64_t requests_timed_out = 0;  // Answered TimedOut: the deadline passed in the handler.
  uint64_t requests_cancelled = 0;  // Answered Aborted: the client sent a cancel.
};

// Called for every request; must call `reply` exactly once (it may be later, e.g. after a disk
// sync). An error Status is sent as an error response (ErrorReply) that the caller receives as
// that Status. When the client cancels the request or its deadline passes first, the server
// answers Aborted or TimedOut itself, sets ctx.abandoned, and drops the handler's later reply;
// the request still counts as in flight until the handler replies.
using Handler = std::function<void(const Message& request, IncomingContext ctx, ReplyFn reply)>;

class RpcServer {
 public:
  // `io_context` must outlive the server. Nothing happens until Start().
  RpcServer(asio::io_context& io_context, RpcServerOptions options, Handler handler);
  ~RpcServer();  // Stop()s.

  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  // Binds and listens, then accepts in the background. InvalidArgument for a bad listen_host,
  // IOError when the bind fails. Call once.
  Status Start();
  // The bound port (after a successful Start()).
  uint16_t port() const;
  // Stops accepting and closes every connection at once; replies arriving later are dropped.
  // Idempotent.
  void Stop();

  uint32_t connection_count() const;
  RpcServerStats stats() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace weft::rpc
