#include "frontend/nbd/nbd_negotiation.h"

#include <fmt/format.h>

#include <utility>

namespace weft::nbd {
namespace {

using Next = NegotiationStep::Next;

// The option error reply a decode failure deserves (nbd_protocol.h: NoSpace means too big).
uint32_t ReplyTypeFor(const Status& status) {
  return status.IsNoSpace() ? kRepErrTooBig : kRepErrInvalid;
}

NegotiationStep ErrorStep(uint32_t option, uint32_t reply_type, std::string_view message) {
  NegotiationStep step;
  EncodeOptionError(step.reply, option, reply_type, message);
  return step;
}

NegotiationStep CloseStep(std::string reason) {
  NegotiationStep step;
  step.next = Next::kClose;
  step.close_reason = std::move(reason);
  return step;
}

// Whether a query selects base:allocation. LIST accepts the bare namespace "base:" too (the
// spec lets LIST match every context of a namespace; SET needs full names).
bool QuerySelectsBaseAllocation(std::string_view query, bool listing) {
  if (query == kBaseAllocationContext) return true;
  return listing && query == "base:";
}

}  // namespace

uint16_t TransmissionFlagsFor(const ExportInfo& info, bool structured_replies) {
  uint16_t flags = kTransmissionHasFlags;
  if (info.can_flush) flags |= kTransmissionSendFlush;
  if (info.can_multi_conn) flags |= kTransmissionCanMultiConn;
  if (structured_replies) flags |= kTransmissionSendDf;  // weft sends reads in one chunk.
  if (info.read_only) return flags | kTransmissionReadOnly;
  if (info.can_fua) flags |= kTransmissionSendFua;
  if (info.can_trim) flags |= kTransmissionSendTrim;
  if (info.can_write_zeroes) {
    flags |= kTransmissionSendWriteZeroes;
    if (info.can_fast_zero) flags |= kTransmissionSendFastZero;
  }
  return flags;
}

std::vector<std::byte> Negotiator::Greeting() {
  std::vector<std::byte> out;
  EncodeServerGreeting(out);
  return out;
}

Status Negotiator::OnClientFlags(std::span<const std::byte> bytes) {
  WEFT_ASSIGN_OR_RETURN(const uint32_t flags, DecodeClientFlags(bytes));
  // A client without FIXED_NEWSTYLE is served as fixed newstyle anyway (the spec allows it).
  no_zeroes_ = (flags & kClientFlagNoZeroes) != 0;
  return Status::Ok();
}

NegotiationStep Negotiator::OnOption(const OptionHeader& header,
                                     std::span<const std::byte> payload) {
  WEFT_ASSERT(payload.size() == header.length_bytes);
  WEFT_ASSERT(!session_ready_);
  if (++options_seen_ > kHandshakeOptionsMax) {
    return CloseStep(fmt::format("more than {} options in one handshake", kHandshakeOptionsMax));
  }
  switch (header.option) {
    case kOptExportName:
      return OnExportName(payload);
    case kOptAbort: {
      // The spec asks for an ACK whatever the payload; the client then closes.
      NegotiationStep step;
      step.next = Next::kClose;
      EncodeOptionReply(step.reply, kOptAbort, kRepAck);
      return step;
    }
    case kOptList:
      return OnList(payload);
    case kOptInfo:
    case kOptGo:
      return OnInfoOrGo(header.option, payload);
    case kOptStructuredReply: {
      if (Status status = DecodeEmptyOption(payload); !status.ok()) {
        return ErrorStep(header.option, kRepErrInvalid, status.message());
      }
      structured_replies_ = true;
      NegotiationStep step;
      EncodeOptionReply(step.reply, header.option, kRepAck);
      return step;
    }
    case kOptListMetaContext:
    case kOptSetMetaContext:
      return OnMetaContext(header.option, payload);
    default:
      return ErrorStep(header.option, kRepErrUnsup,
                       fmt::format("{} is not supported", OptionName(header.option)));
  }
}

NegotiationStep Negotiator::OnList(std::span<const std::byte> payload) {
  if (Status status = DecodeEmptyOption(payload); !status.ok()) {
    return ErrorStep(kOptList, kRepErrInvalid, status.message());
  }
  NegotiationStep step;
  for (const ExportInfo& info : provider_.ListExports()) {
    if (info.name.size() > kStringMaxBytes) continue;  // Not reachable by any client anyway.
    EncodeRepServer(step.reply, info.name, info.description);
  }
  EncodeOptionReply(step.reply, kOptList, kRepAck);
  return step;
}

NegotiationStep Negotiator::OnInfoOrGo(uint32_t option, std::span<const std::byte> payload) {
  Result<InfoRequest> request = DecodeInfoRequest(payload);
  if (!request.ok()) {
    return ErrorStep(option, ReplyTypeFor(request.status()), request.status().message());
  }
  Result<std::shared_ptr<Export>> opened = provider_.OpenExport(request->export_name);
  if (!opened.ok()) {
    const uint32_t reply_type = opened.status().IsNotFound() ? kRepErrUnknown : kRepErrPlatform;
    return ErrorStep(option, reply_type, opened.status().ToString());
  }
  const ExportInfo& info = (*opened)->info();
  NegotiationStep step;
  EncodeInfoExport(step.reply, option, info.size_bytes,
                   TransmissionFlagsFor(info, structured_replies_));
  for (uint16_t info_type : request->info_types) {
    if (info_type == kInfoName) EncodeInfoString(step.reply, option, kInfoName, info.name);
    if (info_type == kInfoDescription && !info.description.empty()) {
      EncodeInfoString(step.reply, option, kInfoDescription, info.description);
    }
  }
  // Sent whether asked or not (the spec allows it), so a client always learns the limits.
  EncodeInfoBlockSize(step.reply, option, info.block_size_min_bytes,
                      info.block_size_preferred_bytes, info.block_size_max_bytes);
  EncodeOptionReply(step.reply, option, kRepAck);
  if (option == kOptGo) {
    FinishSession(std::move(*opened), request->export_name);
    step.next = Next::kTransmission;
  }
  return step;
}

NegotiationStep Negotiator::OnExportName(std::span<const std::byte> payload) {
  // This option cannot be answered with an error: every failure closes the connection.
  Result<std::string> name = DecodeExportName(payload);
  if (!name.ok()) return CloseStep(name.status().ToString());
  Result<std::shared_ptr<Export>> opened = provider_.OpenExport(*name);
  if (!opened.ok()) {
    return CloseStep(fmt::format("export '{}': {}", *name, opened.status().ToString()));
  }
  const ExportInfo& info = (*opened)->info();
  NegotiationStep step;
  step.next = Next::kTransmission;
  EncodeExportNameReply(step.reply, info.size_bytes,
                        TransmissionFlagsFor(info, structured_replies_), no_zeroes_);
  FinishSession(std::move(*opened), *name);
  return step;
}

NegotiationStep Negotiator::OnMetaContext(uint32_t option, std::span<const std::byte> payload) {
  if (!structured_replies_) {
    return ErrorStep(option, kRepErrInvalid, "structured replies must be negotiated first");
  }
  Result<MetaContextRequest> request = DecodeMetaContextRequest(payload);
  if (!request.ok()) {
    return ErrorStep(option, ReplyTypeFor(request.status()), request.status().message());
  }
  bool known = false;
  for (const ExportInfo& info : provider_.ListExports()) known |= info.name == request->export_name;
  if (!known) {
    return ErrorStep(option, kRepErrUnknown,
                     fmt::format("no export named '{}'", request->export_name));
  }
  const bool listing = option == kOptListMetaContext;
  bool selected = listing && request->queries.empty();  // An empty LIST lists everything.
  for (const std::string& query : request->queries) {
    selected |= QuerySelectsBaseAllocation(query, listing);
  }
  NegotiationStep step;
  if (selected)
    EncodeMetaContext(step.reply, option, kBaseAllocationContextId, kBaseAllocationContext);
  EncodeOptionReply(step.reply, option, kRepAck);
  if (!listing) {
    // SET replaces whatever an earlier SET selected.
    base_allocation_requested_ = selected;
    meta_context_export_name_ = request->export_name;
  }
  return step;
}

void Negotiator::FinishSession(std::shared_ptr<Export> export_handle,
                               const std::string& export_name) {
  session_.info = export_handle->info();
  session_.export_handle = std::move(export_handle);
  session_.structured_replies = structured_replies_;
  session_.base_allocation =
      structured_replies_ && base_allocation_requested_ && meta_context_export_name_ == export_name;
  session_.transmission_flags = TransmissionFlagsFor(session_.info, structured_replies_);
  session_ready_ = true;
}

NegotiatedSession Negotiator::TakeSession() {
  WEFT_ASSERT(session_ready_);
  WEFT_ASSERT(session_.export_handle != nullptr);
  return std::move(session_);
}

}  // namespace weft::nbd
