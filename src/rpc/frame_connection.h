// FrameConnection: one TCP connection carrying RPC frames (frame_format.h), the part the client
// and the server share. It reads the socket through a FrameDecoder and hands each complete frame
// to OnFrame(); it queues outgoing frames and gather-writes them (header, message, bulk data
// straight from their strings: one writev for up to kWriteBatchFramesMax frames, no copy).
//
// A bad frame (a decoder error, or a frame OnFrame() refuses) closes this connection only, with
// the reason logged; nothing a peer sends asserts. Reading pauses while more than
// kQueuedBytesMax wait to be written, so a peer that sends without reading is slowed by TCP flow
// control instead of growing our queue.
//
// Threading: everything runs on the socket's executor (one io_context, one thread). Lifetime:
// shared_ptr; the read and write coroutines hold a reference until they end.
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
#include <memory>
#include <string>

#include "base/status.h"
#include "rpc/frame_decoder.h"
#include "rpc/frame_encoder.h"
#include "rpc/rpc_message.h"

namespace weft::rpc {

// Bytes queued for writing above which a connection stops reading.
inline constexpr size_t kQueuedBytesMax = 64u << 20;
// Most frames gathered into one socket write (3 buffers each; asio passes 64 to writev).
inline constexpr size_t kWriteBatchFramesMax = 16;
// Bytes asked of the socket per read.
inline constexpr size_t kReadChunkBytes = 64u << 10;

class FrameConnection : public std::enable_shared_from_this<FrameConnection> {
 public:
  using Socket = asio::ip::tcp::socket;

  // `log_name` prefixes log lines ("rpc server", "rpc client"); `peer` names the other end.
  FrameConnection(Socket socket, FrameLimits limits, std::string log_name, std::string peer);
  virtual ~FrameConnection() = default;

  FrameConnection(const FrameConnection&) = delete;
  FrameConnection& operator=(const FrameConnection&) = delete;

  // Starts reading (once the socket is connected). Call once.
  void StartReading();

  // Queues one frame. InvalidArgument when the encoder refuses the fields or the sizes (nothing
  // is queued; the connection stays open); Aborted once the connection is closed.
  Status Send(const FrameFields& fields, std::string message, std::string bulk);

  // Closes the socket now and calls OnClosed(reason) once. An ok reason is a normal end (debug
  // log); any other is logged as a warning with the peer. Idempotent.
  void Close(const Status& reason);

  bool closed() const { return closed_; }
  // Closed because the peer sent a frame the decoder or OnFrame() refused.
  bool closed_for_bad_frame() const { return closed_for_bad_frame_; }
  const std::string& peer() const { return peer_; }
  uint64_t frames_received() const { return frames_received_; }

 protected:
  Socket& socket() { return socket_; }
  const asio::any_io_executor& executor() const { return executor_; }
  // Runs `coroutine` on the executor; an exception escaping it (an allocation failure, say)
  // closes this connection with the exception as the reason instead of leaving io_context::run.
  void Spawn(asio::awaitable<void> coroutine);

  // One complete, decoded frame. A non-ok result closes the connection with it as the reason.
  virtual Status OnFrame(Frame frame) = 0;
  // The connection closed (once, from Close()).
  virtual void OnClosed(const Status& reason) = 0;

 private:
  struct OutgoingFrame {
    EncodedFrameHeader header;
    std::string message;
    std::string bulk;
  };

  static asio::awaitable<void> ReadLoop(std::shared_ptr<FrameConnection> self);
  static asio::awaitable<void> WriteLoop(std::shared_ptr<FrameConnection> self);
  // Feeds one chunk read from the socket to the decoder, dispatching complete frames.
  Status ConsumeChunk(std::span<const std::byte> chunk);

  Socket socket_;
  asio::any_io_executor executor_;
  const std::string log_name_;
  const std::string peer_;
  FrameEncoder encoder_;
  FrameDecoder decoder_;
  asio::steady_timer read_wakeup_;         // Cancelled to wake a reader paused on a full queue.
  std::deque<OutgoingFrame> write_queue_;  // A deque: queued frames never move while written.
  size_t queued_bytes_ = 0;
  uint64_t frames_received_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool closed_ = false;
  bool closed_for_bad_frame_ = false;
};

}  // namespace weft::rpc
