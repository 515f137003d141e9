#include "rpc/frame_connection.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <utility>
#include <vector>

namespace weft::rpc {

FrameConnection::FrameConnection(Socket socket, FrameLimits limits, std::string log_name,
                                 std::string peer)
    : socket_(std::move(socket)),
      executor_(socket_.get_executor()),
      log_name_(std::move(log_name)),
      peer_(std::move(peer)),
      encoder_(limits),
      decoder_(limits),
      read_wakeup_(executor_) {}

void FrameConnection::StartReading() {
  WEFT_ASSERT(!reading_);
  reading_ = true;
  Spawn(ReadLoop(shared_from_this()));
}

void FrameConnection::Spawn(asio::awaitable<void> coroutine) {
  asio::co_spawn(executor_, std::move(coroutine),
                 [self = shared_from_this()](const std::exception_ptr& exception) {
                   if (exception == nullptr) return;
                   std::string what = "unknown";
                   try {
                     std::rethrow_exception(exception);
                   } catch (const std::exception& error) {
                     what = error.what();
                   } catch (...) {
                   }
                   self->Close(Status::IOError(fmt::format("unexpected exception: {}", what)));
                 });
}

Status FrameConnection::Send(const FrameFields& fields, std::string message, std::string bulk) {
  if (closed_) return Status::Aborted(fmt::format("connection to {} is closed", peer_));
  auto header = encoder_.EncodeHeader(fields, std::as_bytes(std::span(message)),
                                      std::as_bytes(std::span(bulk)));
  if (!header.ok()) return header.status();
  queued_bytes_ += header->bytes().size() + message.size() + bulk.size();
  write_queue_.push_back({*header, std::move(message), std::move(bulk)});
  if (!writing_) {
    writing_ = true;
    Spawn(WriteLoop(shared_from_this()));
  }
  return Status::Ok();
}

void FrameConnection::Close(const Status& reason) {
  if (closed_) return;
  closed_ = true;
  auto self = shared_from_this();  // OnClosed may drop the owner's last reference.
  if (reason.ok()) {
    spdlog::debug("{}: {}: connection closed", log_name_, peer_);
  } else {
    spdlog::warn("{}: {}: closing connection: {}", log_name_, peer_, reason.ToString());
  }
  std::error_code ignored;
  socket_.shutdown(asio::socket_base::shutdown_both, ignored);
  socket_.close(ignored);
  read_wakeup_.cancel();
  OnClosed(reason);
}

asio::awaitable<void> FrameConnection::ReadLoop(std::shared_ptr<FrameConnection> self) {
  std::vector<std::byte> chunk(kReadChunkBytes);
  Status status;
  while (!self->closed_) {
    // Back-pressure: while our replies pile up, stop taking requests off the socket.
    while (self->queued_bytes_ > kQueuedBytesMax && !self->closed_) {
      self->read_wakeup_.expires_at(asio::steady_timer::time_point::max());
      std::error_code ignored;
      co_await self->read_wakeup_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    if (self->closed_) break;
    std::error_code error;
    const size_t read_bytes = co_await self->socket_.async_read_some(
        asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, error));
    if (self->closed_) break;
    if (error == asio::error::eof) {
      // A clean end between frames is not worth a warning; one inside a frame is.
      if (read_bytes == 0 && !self->decoder_.between_frames()) {
        status =
            Status::Unavailable(fmt::format("connection closed by the peer in a frame, at "
                                            "stream offset {}",
                                            self->decoder_.stream_offset()));
      }
      break;
    }
    if (error) {
      status = Status::Unavailable(fmt::format("read failed: {}", error.message()));
      break;
    }
    status = self->ConsumeChunk(std::span(chunk).first(read_bytes));
    if (!status.ok()) {
      self->closed_for_bad_frame_ = true;
      break;
    }
  }
  self->Close(status);
}

Status FrameConnection::ConsumeChunk(std::span<const std::byte> chunk) {
  while (!chunk.empty()) {
    Result<size_t> consumed = decoder_.Consume(chunk);
    if (!consumed.ok()) return consumed.status();
    WEFT_ASSERT(*consumed <= chunk.size());
    chunk = chunk.subspan(*consumed);
    if (!decoder_.has_frame()) {
      WEFT_ASSERT(chunk.empty());  // The decoder stops early only at a complete frame.
      break;
    }
    ++frames_received_;
    WEFT_RETURN_IF_ERROR(OnFrame(decoder_.TakeFrame()));
    if (closed_) return Status::Ok();  // OnFrame closed it (a server stopping, say).
  }
  return Status::Ok();
}

asio::awaitable<void> FrameConnection::WriteLoop(std::shared_ptr<FrameConnection> self) {
  std::vector<asio::const_buffer> buffers;
  while (!self->closed_ && !self->write_queue_.empty()) {
    buffers.clear();
    const size_t batch_frames = std::min(self->write_queue_.size(), kWriteBatchFramesMax);
    size_t batch_bytes = 0;
    for (size_t i = 0; i < batch_frames; ++i) {
      const OutgoingFrame& frame = self->write_queue_[i];
      buffers.push_back(asio::buffer(frame.header.bytes().data(), frame.header.bytes().size()));
      if (!frame.message.empty()) buffers.push_back(asio::buffer(frame.message));
      if (!frame.bulk.empty()) buffers.push_back(asio::buffer(frame.bulk));
      batch_bytes += frame.header.bytes().size() + frame.message.size() + frame.bulk.size();
    }
    std::error_code error;
    co_await asio::async_write(self->socket_, buffers,
                               asio::redirect_error(asio::use_awaitable, error));
    if (self->closed_) break;
    if (error) {
      self->Close(Status::Unavailable(fmt::format("write failed: {}", error.message())));
      break;
    }
    for (size_t i = 0; i < batch_frames; ++i) self->write_queue_.pop_front();
    WEFT_ASSERT(self->queued_bytes_ >= batch_bytes);
    self->queued_bytes_ -= batch_bytes;
    if (self->queued_bytes_ <= kQueuedBytesMax) self->read_wakeup_.cancel();
  }
  self->writing_ = false;
  if (self->closed_) {
    self->write_queue_.clear();
    self->queued_bytes_ = 0;
  }
}

}  // namespace weft::rpc
