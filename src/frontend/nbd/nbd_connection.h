// Internal to the NBD server: the state NbdServer shares with its connections, and one client
// connection. The handshake lives in nbd_connection.cc, the transmission phase (requests,
// replies, in-flight limits) in nbd_transmission.cc.
//
// Lifetimes: a Connection is owned by the server's registry while it is open and by every
// coroutine and export completion that refers to it (shared_ptr), so a completion arriving
// after Stop() (or after the NbdServer is gone) finds a closed connection and drops its reply.
// Connections hold the shared State, never the NbdServer.
#pragma once

// asio 1.22 enables coroutines under clang only with libc++'s <experimental/coroutine>; clang 14
// handles libstdc++'s <coroutine> fine (clang-tidy and clang builds parse these files).
#if defined(__clang__) && !defined(ASIO_HAS_CO_AWAIT)
#define ASIO_HAS_CO_AWAIT 1
#define ASIO_HAS_STD_COROUTINE 1
#endif

#include <asio.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/status.h"
#include "frontend/nbd/nbd_negotiation.h"
#include "frontend/nbd/nbd_server.h"

// WEFT_RETURN_IF_ERROR / WEFT_ASSIGN_OR_RETURN for coroutines (co_return instead of return).
#define WEFT_CO_RETURN_IF_ERROR(expression)         \
  do {                                              \
    ::weft::Status weft_status_ = (expression);     \
    if (!weft_status_.ok()) co_return weft_status_; \
  } while (false)

#define WEFT_CO_ASSIGN_OR_RETURN(lhs, expression)                  \
  auto WEFT_STATUS_CONCAT(weft_result_, __LINE__) = (expression);  \
  if (!WEFT_STATUS_CONCAT(weft_result_, __LINE__).ok())            \
    co_return WEFT_STATUS_CONCAT(weft_result_, __LINE__).status(); \
  lhs = std::move(WEFT_STATUS_CONCAT(weft_result_, __LINE__)).value()  // NOLINT: a declaration

namespace weft::nbd {

class Connection;

struct NbdServer::State {
  State(asio::io_context& context, ExportProvider& export_provider, NbdServerOptions server_options)
      : io_context(context), provider(&export_provider), options(std::move(server_options)) {}

  asio::io_context& io_context;
  ExportProvider* provider;  // nullptr once the NbdServer is destroyed.
  NbdServerOptions options;
  NbdServerStats stats;
  bool started = false;
  bool stopping = false;
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> tcp_acceptors;
  std::unique_ptr<asio::local::stream_protocol::acceptor> unix_acceptor;
  std::vector<uint16_t> tcp_ports;
  uint64_t next_connection_id = 1;
  std::map<uint64_t, std::shared_ptr<Connection>> connections;  // Open connections.
};

// Largest WRITE payload skipped (read and dropped) after the request was rejected; a larger
// one closes the connection instead, since reading it would cost more than it is worth.
inline constexpr uint64_t kWriteDiscardMaxBytes = 64ull << 20;
// Most replies gathered into one socket write.
inline constexpr size_t kWriteBatchRepliesMax = 64;
// Most descriptors in one block status reply (the export may return more).
inline constexpr size_t kBlockStatusDescriptorsMax = 1024;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Socket = asio::generic::stream_protocol::socket;

  Connection(std::shared_ptr<NbdServer::State> server, Socket socket, uint64_t id,
             std::string peer);

  // Runs the connection in the background until it closes.
  void Start();
  // Server shutdown: cut a handshake at once; in transmission, stop reading, answer what is in
  // flight and close when done (`drain`), or close at once.
  void BeginShutdown(bool drain);

  bool in_transmission() const { return session_.has_value(); }
  const std::string& export_name() const;

 private:
  // One reply on its way to the socket.
  struct OutgoingReply {
    std::vector<std::byte> header;
    std::shared_ptr<AlignedBuffer> payload;  // READ data, or null.
    size_t payload_bytes = 0;                // Of `payload` to send.
    uint64_t inflight_bytes = 0;             // Released once written.
    bool inflight = false;                   // Counted in inflight_requests_.
  };

  static asio::awaitable<void> Run(std::shared_ptr<Connection> self);
  asio::awaitable<Status> Handshake();
  asio::awaitable<Status> Transmission();  // nbd_transmission.cc
  asio::awaitable<Status> ReadExact(std::span<std::byte> buffer);
  asio::awaitable<Status> WriteAll(std::span<const std::byte> bytes);
  asio::awaitable<Status> SkipPayload(uint64_t length_bytes);

  // Transmission helpers (nbd_transmission.cc).
  asio::awaitable<Status> HandleRequest(const RequestHeader& request);
  asio::awaitable<void> WaitForCapacity(uint64_t payload_bytes);
  void Execute(const RequestHeader& request, const std::shared_ptr<AlignedBuffer>& write_data);
  void ReplyDone(const RequestHeader& request, uint64_t inflight_bytes, const Status& status);
  void ReplyRead(const RequestHeader& request, std::shared_ptr<AlignedBuffer> data,
                 const Status& status);
  void ReplyBlockStatus(const RequestHeader& request,
                        Result<std::vector<AllocationExtent>> extents);
  void ReplyError(const RequestHeader& request, uint64_t inflight_bytes, bool inflight,
                  uint32_t error, std::string_view message);
  void Enqueue(OutgoingReply reply);
  static asio::awaitable<void> WriteLoop(std::shared_ptr<Connection> self);
  void Release(const OutgoingReply& reply);
  // Closes once reading has stopped and nothing is in flight or queued.
  void MaybeFinish();
  // Closes the socket now; `reason` empty for a normal end, else logged as a warning.
  void Close(const std::string& reason);

  std::shared_ptr<NbdServer::State> server_;
  Socket socket_;
  const uint64_t id_;
  const std::string peer_;
  asio::steady_timer handshake_timer_;
  asio::steady_timer capacity_timer_;  // Wakes WaitForCapacity (cancelled as a signal).
  asio::steady_timer drain_timer_;
  std::optional<NegotiatedSession> session_;
  TransmissionContext context_;
  bool closed_ = false;
  bool reading_stopped_ = false;  // No more requests will be read.
  bool stopping_ = false;         // Server shutdown: new requests get ESHUTDOWN.
  bool writing_ = false;          // WriteLoop is running.
  std::string finish_reason_;     // Why MaybeFinish closes, when it is not a normal end.
  uint32_t inflight_requests_ = 0;
  uint64_t inflight_bytes_ = 0;
  std::deque<OutgoingReply> write_queue_;
};

// Status from an export to the NBD error it is answered with (nbd_export.h).
uint32_t NbdErrorFor(const Status& status);

}  // namespace weft::nbd
