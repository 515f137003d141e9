// The transmission phase of a connection: read requests (pipelined, within the in-flight
// limits), hand them to the export, and write each reply when its completion runs.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <utility>

#include "frontend/nbd/nbd_connection.h"

namespace weft::nbd {

asio::awaitable<Status> Connection::Transmission() {
  WEFT_ASSERT(session_.has_value());
  const ExportInfo& info = session_->info;
  context_ = TransmissionContext{info.size_bytes,
                                 info.block_size_min_bytes,
                                 info.block_size_max_bytes,
                                 session_->transmission_flags,
                                 session_->structured_replies,
                                 session_->base_allocation};
  for (;;) {
    if (stopping_ || closed_) co_return Status::Ok();
    std::array<std::byte, sizeof(RequestWire)> header_bytes;
    Status status = co_await ReadExact(header_bytes);
    if (status.code() == StatusCode::kAborted || (!status.ok() && stopping_)) {
      co_return Status::Ok();  // The client left, or the server stopped reading.
    }
    WEFT_CO_RETURN_IF_ERROR(status);
    // A bad magic means the stream is lost: nothing after it can be framed.
    WEFT_CO_ASSIGN_OR_RETURN(const RequestHeader request, DecodeRequestHeader(header_bytes));
    ++server_->stats.requests_by_command[std::min<size_t>(request.type, kCommandTypeCount)];
    if (request.type == kCmdDisc) co_return Status::Ok();  // Answer what is in flight, close.
    WEFT_CO_RETURN_IF_ERROR(co_await HandleRequest(request));
  }
}

asio::awaitable<Status> Connection::HandleRequest(const RequestHeader& request) {
  const bool has_write_payload = request.type == kCmdWrite;
  RequestCheck check = CheckRequest(request, context_);
  if (check.error == kErrorNone && stopping_) check = {kESHUTDOWN, "the server is shutting down"};
  if (check.error == kErrorNone) {
    const bool has_payload = has_write_payload || request.type == kCmdRead;
    const uint64_t payload_bytes = has_payload ? request.length_bytes : 0;
    co_await WaitForCapacity(payload_bytes);
    if (closed_) co_return Status::Aborted("connection closed");
    if (stopping_) check = {kESHUTDOWN, "the server is shutting down"};
    if (check.error == kErrorNone) {
      ++inflight_requests_;
      inflight_bytes_ += payload_bytes;
      std::shared_ptr<AlignedBuffer> data;
      if (has_write_payload) {
        data = std::make_shared<AlignedBuffer>(request.length_bytes);
        Status status = co_await ReadExact(data->span());
        if (!status.ok()) co_return Status::IOError("write payload cut short: " + status.message());
      }
      Execute(request, data);
      co_return Status::Ok();
    }
  }
  // Rejected: the payload of a WRITE is still on the wire and must be skipped to stay framed.
  if (has_write_payload) {
    const uint64_t skip_max_bytes =
        std::max<uint64_t>(kWriteDiscardMaxBytes, context_.block_size_max_bytes);
    if (request.length_bytes > skip_max_bytes) {
      ReplyError(request, 0, false, check.error, check.message);
      finish_reason_ = fmt::format("{}, and its {}-byte payload is too large to skip",
                                   check.message, request.length_bytes);
      co_return Status::Aborted(finish_reason_);  // Send the error reply, then close.
    }
    WEFT_CO_RETURN_IF_ERROR(co_await SkipPayload(request.length_bytes));
  }
  ReplyError(request, 0, false, check.error, check.message);
  co_return Status::Ok();
}

asio::awaitable<void> Connection::WaitForCapacity(uint64_t payload_bytes) {
  const NbdServerOptions& options = server_->options;
  auto has_room = [&] {
    if (inflight_requests_ >= options.max_inflight_requests_per_connection) return false;
    // A request larger than the byte limit still runs, alone.
    return inflight_bytes_ == 0 ||
           inflight_bytes_ + payload_bytes <= options.max_inflight_bytes_per_connection;
  };
  while (!closed_ && !stopping_ && !has_room()) {
    capacity_timer_.expires_at(asio::steady_timer::time_point::max());
    std::error_code ignored;  // Cancellation is the wake-up signal.
    co_await capacity_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
}

void Connection::Execute(const RequestHeader& request,
                         const std::shared_ptr<AlignedBuffer>& write_data) {
  auto self = shared_from_this();
  Export& target = *session_->export_handle;
  const bool fua = (request.flags & kCmdFlagFua) != 0;
  const uint64_t length_bytes = request.length_bytes;
  auto done = [self, request](uint64_t inflight_bytes) {
    return [self, request, inflight_bytes](const Status& status) {
      self->ReplyDone(request, inflight_bytes, status);
    };
  };
  switch (request.type) {
    case kCmdRead: {
      auto buffer = std::make_shared<AlignedBuffer>(length_bytes);
      target.Read(request.offset_bytes, buffer->span(),
                  [self, request, buffer](const Status& status) {
                    self->ReplyRead(request, buffer, status);
                  });
      return;
    }
    case kCmdWrite:
      WEFT_ASSERT(write_data != nullptr && write_data->size() == length_bytes);
      target.Write(request.offset_bytes, write_data->span(), fua,
                   [self, request, write_data](const Status& status) {
                     self->ReplyDone(request, request.length_bytes, status);
                   });
      return;
    case kCmdFlush:
      target.Flush(done(0));
      return;
    case kCmdTrim:
      target.Trim(request.offset_bytes, length_bytes, done(0));
      return;
    case kCmdWriteZeroes:
      target.WriteZeroes(request.offset_bytes, length_bytes, (request.flags & kCmdFlagNoHole) != 0,
                         fua, done(0));
      return;
    case kCmdBlockStatus:
      target.BlockStatus(request.offset_bytes, length_bytes,
                         [self, request](Result<std::vector<AllocationExtent>> extents) {
                           self->ReplyBlockStatus(request, std::move(extents));
                         });
      return;
    default:
      // CheckRequest lets only the commands above through.
      WEFT_ASSERT(false && "unchecked command reached Execute");
  }
}

void Connection::ReplyDone(const RequestHeader& request, uint64_t inflight_bytes,
                           const Status& status) {
  if (!status.ok()) {
    ReplyError(request, inflight_bytes, true, NbdErrorFor(status), status.ToString());
    return;
  }
  OutgoingReply reply;
  EncodeSimpleReply(reply.header, request.cookie, kErrorNone);
  reply.inflight = true;
  reply.inflight_bytes = inflight_bytes;
  Enqueue(std::move(reply));
}

void Connection::ReplyRead(const RequestHeader& request, std::shared_ptr<AlignedBuffer> data,
                           const Status& status) {
  if (!status.ok()) {
    ReplyError(request, request.length_bytes, true, NbdErrorFor(status), status.ToString());
    return;
  }
  OutgoingReply reply;
  if (context_.structured_replies) {
    EncodeOffsetDataHeader(reply.header, request.cookie, request.offset_bytes,
                           request.length_bytes);
  } else {
    EncodeSimpleReply(reply.header, request.cookie, kErrorNone);
  }
  reply.payload = std::move(data);
  reply.payload_bytes = request.length_bytes;
  reply.inflight = true;
  reply.inflight_bytes = request.length_bytes;
  Enqueue(std::move(reply));
}

void Connection::ReplyBlockStatus(const RequestHeader& request,
                                  Result<std::vector<AllocationExtent>> extents) {
  if (!extents.ok()) {
    ReplyError(request, 0, true, NbdErrorFor(extents.status()), extents.status().ToString());
    return;
  }
  // Clip to the request (the export may overshoot), merge equal neighbours, obey REQ_ONE.
  const bool one = (request.flags & kCmdFlagReqOne) != 0;
  std::vector<BlockDescriptor> descriptors;
  uint64_t remaining_bytes = request.length_bytes;
  for (const AllocationExtent& extent : *extents) {
    if (remaining_bytes == 0) break;
    const auto length_bytes = static_cast<uint32_t>(std::min(extent.length_bytes, remaining_bytes));
    if (length_bytes == 0) continue;
    const uint32_t flags = (extent.hole ? kStateHole : 0) | (extent.zero ? kStateZero : 0);
    if (!descriptors.empty() && descriptors.back().status_flags == flags) {
      descriptors.back().length_bytes += length_bytes;  // Sum stays within the u32 request.
    } else if (descriptors.empty() || (!one && descriptors.size() < kBlockStatusDescriptorsMax)) {
      descriptors.push_back({length_bytes, flags});
    } else {
      break;
    }
    remaining_bytes -= length_bytes;
  }
  if (descriptors.empty()) {
    ReplyError(request, 0, true, kEIO, "the export reported no extents");
    return;
  }
  OutgoingReply reply;
  EncodeBlockStatus(reply.header, request.cookie, kBaseAllocationContextId, descriptors);
  reply.inflight = true;
  Enqueue(std::move(reply));
}

void Connection::ReplyError(const RequestHeader& request, uint64_t inflight_bytes, bool inflight,
                            uint32_t error, std::string_view message) {
  WEFT_ASSERT(error != kErrorNone);
  ++server_->stats.errors_by_errno[error];
  spdlog::debug("nbd: {}: {} at {} length {}: {}: {}", peer_, CommandName(request.type),
                request.offset_bytes, request.length_bytes, ErrorName(error), message);
  OutgoingReply reply;
  if (context_.structured_replies) {
    EncodeStructuredError(reply.header, request.cookie, error, message);
  } else {
    EncodeSimpleReply(reply.header, request.cookie, error);  // Never with a payload.
  }
  reply.inflight = inflight;
  reply.inflight_bytes = inflight_bytes;
  Enqueue(std::move(reply));
}

void Connection::Enqueue(OutgoingReply reply) {
  if (closed_) return;  // Completions after close: nobody to answer.
  write_queue_.push_back(std::move(reply));
  if (writing_) return;
  writing_ = true;
  asio::co_spawn(server_->io_context, WriteLoop(shared_from_this()), asio::detached);
}

asio::awaitable<void> Connection::WriteLoop(std::shared_ptr<Connection> self) {
  std::vector<OutgoingReply> batch;
  std::vector<asio::const_buffer> buffers;
  while (!self->closed_ && !self->write_queue_.empty()) {
    batch.clear();
    buffers.clear();
    while (!self->write_queue_.empty() && batch.size() < kWriteBatchRepliesMax) {
      batch.push_back(std::move(self->write_queue_.front()));
      self->write_queue_.pop_front();
    }
    for (const OutgoingReply& reply : batch) {
      buffers.push_back(asio::buffer(reply.header));
      if (reply.payload_bytes > 0) {
        buffers.push_back(asio::buffer(reply.payload->data(), reply.payload_bytes));
      }
    }
    std::error_code error;
    const size_t written_bytes = co_await asio::async_write(
        self->socket_, buffers, asio::redirect_error(asio::use_awaitable, error));
    self->server_->stats.bytes_sent += written_bytes;
    for (const OutgoingReply& reply : batch) self->Release(reply);
    if (error) {
      self->writing_ = false;
      self->Close(fmt::format("writing replies failed: {}", error.message()));
      co_return;
    }
  }
  self->writing_ = false;
  self->MaybeFinish();
}

void Connection::Release(const OutgoingReply& reply) {
  if (reply.inflight) {
    WEFT_ASSERT(inflight_requests_ > 0);
    --inflight_requests_;
  }
  WEFT_ASSERT(inflight_bytes_ >= reply.inflight_bytes);
  inflight_bytes_ -= reply.inflight_bytes;
  capacity_timer_.cancel();
}

}  // namespace weft::nbd
