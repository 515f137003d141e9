// RpcClient: calls RpcServers (docs/protocol/rpc.md, "Connections"). One connection per
// endpoint, opened by the first call and re-used; after it fails, the next call opens a new one.
//
// Completion of a call, exactly once: the reply; TimedOut (its timeout passed); Unavailable
// (cannot connect within connect_timeout_ms, or the connection was lost: every call in flight
// on it fails); Busy (more than max_requests_in_flight_per_peer calls in flight to that peer:
// the call fails at once, nothing is queued; or the server's own limit); Aborted (Cancel(),
// Close(), or the client destroyed); or the remote handler's error Status.
//
// Threading: the client runs on a caller-provided asio::io_context that exactly one thread runs.
// Call() and Cancel() may be called from any thread; Close(), stats() and the destructor on that
// thread or while no thread runs it. Completions run on that thread, never inside Call(),
// Cancel() or Close().
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "rpc/endpoint.h"
#include "rpc/frame_format.h"
#include "rpc/rpc_message.h"

namespace asio {
class io_context;
}

namespace weft::rpc {

class FaultShim;

struct RpcClientOptions {
  FrameLimits limits;
  uint32_t connect_timeout_ms = 1000;
  // Calls in flight to one endpoint (waiting for the connection, sent, or delayed by the fault
  // shim); beyond it a call fails at once with Busy (callers retry or shed load; a queue here
  // would only hide the overload from them).
  uint32_t max_requests_in_flight_per_peer = 1024;
  // Tests: frames are judged by this shim (fault_shim.h); this client is node `local_node`.
  FaultShim* fault_shim = nullptr;
  std::string local_node;
};

struct RpcClientStats {
  uint64_t calls = 0;
  uint64_t connections_opened = 0;  // Successful connects (a reconnect counts again).
  uint64_t connect_failures = 0;
  uint64_t connections_lost = 0;  // Connections closed with calls still in flight on them.
  uint64_t bad_frames = 0;        // Connections closed for a bad frame from the server.
  uint64_t frames_dropped_by_shim = 0;
};

class RpcClient {
 public:
  // `io_context` (and the fault shim, if any) must outlive the client.
  RpcClient(asio::io_context& io_context, RpcClientOptions options);
  ~RpcClient();  // Close()s.

  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // Sends `request` to `endpoint`; `done` runs once with the outcome (see above). timeout_ms 0
  // means no timeout. Returns the call id, for Cancel().
  uint64_t Call(const Endpoint& endpoint, Message request, uint32_t timeout_ms, ReplyFn done);
  // Completes the call with Aborted (if it has not completed) and tells the server, which may
  // stop working on it. Unknown or completed ids are ignored.
  void Cancel(uint64_t call_id);
  // Fails every call in flight with Aborted and closes every connection; later calls fail with
  // Aborted. Idempotent.
  void Close();

  // Open or opening connections (a lost one leaves at once).
  uint32_t connection_count() const;
  RpcClientStats stats() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace weft::rpc
