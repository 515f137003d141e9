#include "frontend/nbd/nbd_protocol.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace weft::nbd {
namespace {

template <typename Wire>
Wire LoadWire(std::span<const std::byte> bytes) {
  WEFT_ASSERT(bytes.size() >= sizeof(Wire));
  Wire wire;
  std::memcpy(&wire, bytes.data(), sizeof(Wire));
  return wire;
}

template <typename Wire>
void AppendWire(std::vector<std::byte>& out, const Wire& wire) {
  const auto* bytes = reinterpret_cast<const std::byte*>(&wire);
  out.insert(out.end(), bytes, bytes + sizeof(Wire));
}

void AppendString(std::vector<std::byte>& out, std::string_view text) {
  const auto* bytes = reinterpret_cast<const std::byte*>(text.data());
  out.insert(out.end(), bytes, bytes + text.size());
}

// Reads fields front to back, failing (never reading past the end) when the payload is short.
class PayloadReader {
 public:
  PayloadReader(std::span<const std::byte> payload, std::string_view what)
      : payload_(payload), what_(what) {}

  size_t remaining_bytes() const { return payload_.size() - position_; }

  Result<uint32_t> U32(std::string_view field) {
    WEFT_RETURN_IF_ERROR(Need(4, field));
    const auto value = LoadWire<BigEndian<uint32_t>>(payload_.subspan(position_)).get();
    position_ += 4;
    return value;
  }
  Result<uint16_t> U16(std::string_view field) {
    WEFT_RETURN_IF_ERROR(Need(2, field));
    const auto value = LoadWire<BigEndian<uint16_t>>(payload_.subspan(position_)).get();
    position_ += 2;
    return value;
  }
  // A string of `length_bytes`: checked against the spec's 4096-byte limit before its bytes.
  Result<std::string> String(uint32_t length_bytes, std::string_view field) {
    if (length_bytes > kStringMaxBytes) {
      return Status::NoSpace(fmt::format("{}: {} is {} bytes; the limit is {}", what_, field,
                                         length_bytes, kStringMaxBytes));
    }
    WEFT_RETURN_IF_ERROR(Need(length_bytes, field));
    std::string text(reinterpret_cast<const char*>(payload_.data() + position_), length_bytes);
    position_ += length_bytes;
    if (text.find('\0') != std::string::npos) {
      return Status::InvalidArgument(fmt::format("{}: {} contains a NUL byte", what_, field));
    }
    return text;
  }
  Status ExpectEnd() const {
    if (remaining_bytes() == 0) return Status::Ok();
    return Status::InvalidArgument(
        fmt::format("{}: {} bytes left over after the last field", what_, remaining_bytes()));
  }

 private:
  Status Need(size_t length_bytes, std::string_view field) const {
    if (remaining_bytes() >= length_bytes) return Status::Ok();
    return Status::InvalidArgument(fmt::format("{}: {} needs {} bytes but only {} remain", what_,
                                               field, length_bytes, remaining_bytes()));
  }

  std::span<const std::byte> payload_;
  std::string_view what_;
  size_t position_ = 0;
};

bool IsWriteCommand(uint16_t type) {
  return type == kCmdWrite || type == kCmdTrim || type == kCmdWriteZeroes;
}

// Flags the spec documents for this command, given what the server advertised.
uint16_t AllowedFlags(uint16_t type, const TransmissionContext& context) {
  uint16_t allowed = 0;
  if (context.transmission_flags & kTransmissionSendFua) allowed |= kCmdFlagFua;
  switch (type) {
    case kCmdRead:
      if (context.structured_replies && (context.transmission_flags & kTransmissionSendDf)) {
        allowed |= kCmdFlagDf;
      }
      break;
    case kCmdWriteZeroes:
      allowed |= kCmdFlagNoHole;
      if (context.transmission_flags & kTransmissionSendFastZero) allowed |= kCmdFlagFastZero;
      break;
    case kCmdBlockStatus:
      allowed |= kCmdFlagReqOne;
      break;
    default:
      break;
  }
  return allowed;
}

RequestCheck Reject(uint32_t error, std::string message) { return {error, std::move(message)}; }

// Whether the command is known and was advertised; the read-only case is handled before.
RequestCheck CheckCommandAdvertised(const RequestHeader& request,
                                    const TransmissionContext& context) {
  const uint16_t flags = context.transmission_flags;
  switch (request.type) {
    case kCmdRead:
    case kCmdWrite:
    case kCmdDisc:
      return {};
    case kCmdFlush:
      if (!(flags & kTransmissionSendFlush)) return Reject(kEINVAL, "flush is not supported");
      if (request.offset_bytes != 0 || request.length_bytes != 0) {
        return Reject(kEINVAL, "flush with a nonzero offset or length");
      }
      return {};
    case kCmdTrim:
      if (!(flags & kTransmissionSendTrim)) return Reject(kEINVAL, "trim is not supported");
      return {};
    case kCmdWriteZeroes:
      if (!(flags & kTransmissionSendWriteZeroes)) {
        return Reject(kEINVAL, "write zeroes is not supported");
      }
      return {};
    case kCmdBlockStatus:
      if (!context.structured_replies || !context.base_allocation) {
        return Reject(kEINVAL, "block status without a negotiated metadata context");
      }
      return {};
    default:
      return Reject(kEINVAL, fmt::format("unknown command {}", request.type));
  }
}

}  // namespace

Result<uint32_t> DecodeClientFlags(std::span<const std::byte> bytes) {
  if (bytes.size() != sizeof(ClientFlagsWire)) {
    return Status::InvalidArgument(fmt::format("client flags are {} bytes, not 4", bytes.size()));
  }
  const uint32_t flags = LoadWire<ClientFlagsWire>(bytes).flags.get();
  if (flags & ~kClientFlagsKnown) {
    return Status::InvalidArgument(fmt::format("unknown client flags {:#x}", flags));
  }
  return flags;
}

Result<OptionHeader> DecodeOptionHeader(std::span<const std::byte> bytes) {
  if (bytes.size() != sizeof(OptionHeaderWire)) {
    return Status::InvalidArgument(
        fmt::format("option header is {} bytes, not {}", bytes.size(), sizeof(OptionHeaderWire)));
  }
  const auto wire = LoadWire<OptionHeaderWire>(bytes);
  if (wire.magic.get() != kOptionMagic) {
    return Status::InvalidArgument(fmt::format("bad option magic {:#018x}", wire.magic.get()));
  }
  return OptionHeader{wire.option.get(), wire.length.get()};
}

Status CheckOptionLength(const OptionHeader& header) {
  if (header.length_bytes <= kOptionPayloadMaxBytes) return Status::Ok();
  return Status::NoSpace(fmt::format("{} payload is {} bytes; the limit is {}",
                                     OptionName(header.option), header.length_bytes,
                                     kOptionPayloadMaxBytes));
}

Result<InfoRequest> DecodeInfoRequest(std::span<const std::byte> payload) {
  PayloadReader reader(payload, "GO/INFO");
  InfoRequest request;
  WEFT_ASSIGN_OR_RETURN(const uint32_t name_length_bytes, reader.U32("export name length"));
  WEFT_ASSIGN_OR_RETURN(request.export_name, reader.String(name_length_bytes, "export name"));
  WEFT_ASSIGN_OR_RETURN(const uint16_t info_count, reader.U16("info request count"));
  if (info_count > kInfoRequestsMax) {
    return Status::NoSpace(
        fmt::format("GO/INFO: {} info requests; the limit is {}", info_count, kInfoRequestsMax));
  }
  if (reader.remaining_bytes() != size_t{info_count} * 2) {
    return Status::InvalidArgument(fmt::format("GO/INFO: {} info requests need {} bytes, not {}",
                                               info_count, info_count * 2,
                                               reader.remaining_bytes()));
  }
  for (uint16_t i = 0; i < info_count; ++i) {
    WEFT_ASSIGN_OR_RETURN(const uint16_t info_type, reader.U16("info type"));
    request.info_types.push_back(info_type);
  }
  WEFT_RETURN_IF_ERROR(reader.ExpectEnd());
  return request;
}

Result<std::string> DecodeExportName(std::span<const std::byte> payload) {
  PayloadReader reader(payload, "EXPORT_NAME");
  return reader.String(static_cast<uint32_t>(std::min<size_t>(payload.size(), UINT32_MAX)),
                       "export name");
}

Status DecodeEmptyOption(std::span<const std::byte> payload) {
  if (payload.empty()) return Status::Ok();
  return Status::InvalidArgument(
      fmt::format("option takes no data but {} bytes were sent", payload.size()));
}

Result<MetaContextRequest> DecodeMetaContextRequest(std::span<const std::byte> payload) {
  PayloadReader reader(payload, "META_CONTEXT");
  MetaContextRequest request;
  WEFT_ASSIGN_OR_RETURN(const uint32_t name_length_bytes, reader.U32("export name length"));
  WEFT_ASSIGN_OR_RETURN(request.export_name, reader.String(name_length_bytes, "export name"));
  WEFT_ASSIGN_OR_RETURN(const uint32_t query_count, reader.U32("query count"));
  if (query_count > kMetaContextQueriesMax) {
    return Status::NoSpace(fmt::format("META_CONTEXT: {} queries; the limit is {}", query_count,
                                       kMetaContextQueriesMax));
  }
  for (uint32_t i = 0; i < query_count; ++i) {
    WEFT_ASSIGN_OR_RETURN(const uint32_t query_length_bytes, reader.U32("query length"));
    WEFT_ASSIGN_OR_RETURN(std::string query, reader.String(query_length_bytes, "query"));
    request.queries.push_back(std::move(query));
  }
  WEFT_RETURN_IF_ERROR(reader.ExpectEnd());
  return request;
}

Result<RequestHeader> DecodeRequestHeader(std::span<const std::byte> bytes) {
  if (bytes.size() != sizeof(RequestWire)) {
    return Status::InvalidArgument(
        fmt::format("request header is {} bytes, not {}", bytes.size(), sizeof(RequestWire)));
  }
  const auto wire = LoadWire<RequestWire>(bytes);
  if (wire.magic.get() != kRequestMagic) {
    return Status::InvalidArgument(fmt::format("bad request magic {:#010x}", wire.magic.get()));
  }
  return RequestHeader{wire.flags.get(), wire.type.get(), wire.cookie.get(), wire.offset.get(),
                       wire.length.get()};
}

RequestCheck CheckRequest(const RequestHeader& request, const TransmissionContext& context) {
  const std::string name = CommandName(request.type);
  if (request.type >= kCommandTypeCount || request.type == kCmdCache) {
    return Reject(kEINVAL, fmt::format("unknown command {}", request.type));
  }
  const uint16_t unknown_flags = request.flags & ~AllowedFlags(request.type, context);
  if (unknown_flags != 0) {
    return Reject(kEINVAL, fmt::format("{}: flags {:#x} are not valid here", name, unknown_flags));
  }
  if (IsWriteCommand(request.type) && (context.transmission_flags & kTransmissionReadOnly)) {
    return Reject(kEPERM, fmt::format("{} on a read-only export", name));
  }
  RequestCheck advertised = CheckCommandAdvertised(request, context);
  if (advertised.error != kErrorNone) return advertised;
  if (request.type == kCmdDisc || request.type == kCmdFlush) return {};

  if (request.length_bytes == 0) return Reject(kEINVAL, fmt::format("{} of length 0", name));
  const bool has_payload = request.type == kCmdRead || request.type == kCmdWrite;
  if (has_payload && request.length_bytes > context.block_size_max_bytes) {
    return Reject(kEOVERFLOW, fmt::format("{} of {} bytes; the limit is {}", name,
                                          request.length_bytes, context.block_size_max_bytes));
  }
  if (request.offset_bytes > context.size_bytes ||
      request.length_bytes > context.size_bytes - request.offset_bytes) {
    // The spec asks for ENOSPC on writes past the end (as qemu-nbd answers), EINVAL otherwise.
    const bool writes = request.type == kCmdWrite || request.type == kCmdWriteZeroes;
    return Reject(writes ? kENOSPC : kEINVAL,
                  fmt::format("{} of {} bytes at {} is past the end ({} bytes)", name,
                              request.length_bytes, request.offset_bytes, context.size_bytes));
  }
  const uint32_t minimum = context.block_size_min_bytes;
  if (minimum > 1 && request.type != kCmdBlockStatus &&
      (request.offset_bytes % minimum != 0 || request.length_bytes % minimum != 0)) {
    return Reject(kEINVAL, fmt::format("{} of {} bytes at {} is not aligned to {} bytes", name,
                                       request.length_bytes, request.offset_bytes, minimum));
  }
  return {};
}

void EncodeServerGreeting(std::vector<std::byte>& out) {
  ServerGreetingWire wire;
  wire.nbd_magic = kNbdMagic;
  wire.option_magic = kOptionMagic;
  wire.handshake_flags = static_cast<uint16_t>(kFlagFixedNewstyle | kFlagNoZeroes);
  AppendWire(out, wire);
}

void EncodeOptionReply(std::vector<std::byte>& out, uint32_t option, uint32_t reply_type,
                       std::span<const std::byte> payload) {
  WEFT_ASSERT(payload.size() <= UINT32_MAX);
  OptionReplyHeaderWire wire;
  wire.magic = kOptionReplyMagic;
  wire.option = option;
  wire.type = reply_type;
  wire.length = static_cast<uint32_t>(payload.size());
  AppendWire(out, wire);
  out.insert(out.end(), payload.begin(), payload.end());
}

void EncodeOptionError(std::vector<std::byte>& out, uint32_t option, uint32_t reply_type,
                       std::string_view message) {
  WEFT_ASSERT(reply_type & kRepErrorBit);
  message = message.substr(0, kStringMaxBytes);
  EncodeOptionReply(out, option, reply_type,
                    {reinterpret_cast<const std::byte*>(message.data()), message.size()});
}

void EncodeRepServer(std::vector<std::byte>& out, std::string_view export_name,
                     std::string_view description) {
  WEFT_ASSERT(export_name.size() <= kStringMaxBytes);
  description = description.substr(0, kStringMaxBytes);
  std::vector<std::byte> payload;
  AppendWire(payload, BigEndian<uint32_t>(static_cast<uint32_t>(export_name.size())));
  AppendString(payload, export_name);
  AppendString(payload, description);
  EncodeOptionReply(out, kOptList, kRepServer, payload);
}

void EncodeInfoExport(std::vector<std::byte>& out, uint32_t option, uint64_t size_bytes,
                      uint16_t transmission_flags) {
  InfoExportWire wire;
  wire.type = kInfoExport;
  wire.size = size_bytes;
  wire.transmission_flags = transmission_flags;
  EncodeOptionReply(out, option, kRepInfo,
                    {reinterpret_cast<const std::byte*>(&wire), sizeof(wire)});
}

void EncodeInfoString(std::vector<std::byte>& out, uint32_t option, uint16_t info_type,
                      std::string_view value) {
  WEFT_ASSERT(info_type == kInfoName || info_type == kInfoDescription);
  value = value.substr(0, kStringMaxBytes);
  std::vector<std::byte> payload;
  AppendWire(payload, BigEndian<uint16_t>(info_type));
  AppendString(payload, value);
  EncodeOptionReply(out, option, kRepInfo, payload);
}

void EncodeInfoBlockSize(std::vector<std::byte>& out, uint32_t option, uint32_t minimum_bytes,
                         uint32_t preferred_bytes, uint32_t maximum_bytes) {
  InfoBlockSizeWire wire;
  wire.type = kInfoBlockSize;
  wire.minimum = minimum_bytes;
  wire.preferred = preferred_bytes;
  wire.maximum = maximum_bytes;
  EncodeOptionReply(out, option, kRepInfo,
                    {reinterpret_cast<const std::byte*>(&wire), sizeof(wire)});
}

void EncodeMetaContext(std::vector<std::byte>& out, uint32_t option, uint32_t context_id,
                       std::string_view name) {
  std::vector<std::byte> payload;
  AppendWire(payload, BigEndian<uint32_t>(context_id));
  AppendString(payload, name);
  EncodeOptionReply(out, option, kRepMetaContext, payload);
}

void EncodeExportNameReply(std::vector<std::byte>& out, uint64_t size_bytes,
                           uint16_t transmission_flags, bool no_zeroes) {
  ExportNameReplyWire wire;
  wire.size = size_bytes;
  wire.transmission_flags = transmission_flags;
  AppendWire(out, wire);
  if (!no_zeroes) out.insert(out.end(), kHandshakeZeroesBytes, std::byte{0});
}

void EncodeSimpleReply(std::vector<std::byte>& out, uint64_t cookie, uint32_t error) {
  SimpleReplyWire wire;
  wire.magic = kSimpleReplyMagic;
  wire.error = error;
  wire.cookie = cookie;
  AppendWire(out, wire);
}

namespace {
void AppendStructuredHeader(std::vector<std::byte>& out, uint64_t cookie, uint16_t type,
                            uint32_t length_bytes) {
  StructuredReplyHeaderWire wire;
  wire.magic = kStructuredReplyMagic;
  wire.flags = kReplyFlagDone;
  wire.type = type;
  wire.cookie = cookie;
  wire.length = length_bytes;
  AppendWire(out, wire);
}
}  // namespace

void EncodeOffsetDataHeader(std::vector<std::byte>& out, uint64_t cookie, uint64_t offset_bytes,
                            uint32_t data_length_bytes) {
  WEFT_ASSERT(data_length_bytes > 0);
  WEFT_ASSERT(data_length_bytes <= UINT32_MAX - 8);
  AppendStructuredHeader(out, cookie, kReplyTypeOffsetData, data_length_bytes + 8);
  AppendWire(out, BigEndian<uint64_t>(offset_bytes));
}

void EncodeStructuredNone(std::vector<std::byte>& out, uint64_t cookie) {
  AppendStructuredHeader(out, cookie, kReplyTypeNone, 0);
}

void EncodeStructuredError(std::vector<std::byte>& out, uint64_t cookie, uint32_t error,
                           std::string_view message) {
  WEFT_ASSERT(error != kErrorNone);
  message = message.substr(0, kErrorMessageMaxBytes);
  AppendStructuredHeader(out, cookie, kReplyTypeError,
                         static_cast<uint32_t>(sizeof(StructuredErrorWire) + message.size()));
  StructuredErrorWire wire;
  wire.error = error;
  wire.message_length = static_cast<uint16_t>(message.size());
  AppendWire(out, wire);
  AppendString(out, message);
}

void EncodeBlockStatus(std::vector<std::byte>& out, uint64_t cookie, uint32_t context_id,
                       std::span<const BlockDescriptor> descriptors) {
  WEFT_ASSERT(!descriptors.empty());
  const size_t length_bytes = 4 + descriptors.size() * sizeof(BlockDescriptorWire);
  WEFT_ASSERT(length_bytes <= UINT32_MAX);
  AppendStructuredHeader(out, cookie, kReplyTypeBlockStatus, static_cast<uint32_t>(length_bytes));
  AppendWire(out, BigEndian<uint32_t>(context_id));
  for (const BlockDescriptor& descriptor : descriptors) {
    WEFT_ASSERT(descriptor.length_bytes > 0);
    BlockDescriptorWire wire;
    wire.length = descriptor.length_bytes;
    wire.status_flags = descriptor.status_flags;
    AppendWire(out, wire);
  }
}

std::string OptionName(uint32_t option) {
  switch (option) {
    case kOptExportName:
      return "NBD_OPT_EXPORT_NAME";
    case kOptAbort:
      return "NBD_OPT_ABORT";
    case kOptList:
      return "NBD_OPT_LIST";
    case kOptStartTls:
      return "NBD_OPT_STARTTLS";
    case kOptInfo:
      return "NBD_OPT_INFO";
    case kOptGo:
      return "NBD_OPT_GO";
    case kOptStructuredReply:
      return "NBD_OPT_STRUCTURED_REPLY";
    case kOptListMetaContext:
      return "NBD_OPT_LIST_META_CONTEXT";
    case kOptSetMetaContext:
      return "NBD_OPT_SET_META_CONTEXT";
    default:
      return fmt::format("option {}", option);
  }
}

std::string CommandName(uint16_t type) {
  switch (type) {
    case kCmdRead:
      return "NBD_CMD_READ";
    case kCmdWrite:
      return "NBD_CMD_WRITE";
    case kCmdDisc:
      return "NBD_CMD_DISC";
    case kCmdFlush:
      return "NBD_CMD_FLUSH";
    case kCmdTrim:
      return "NBD_CMD_TRIM";
    case kCmdCache:
      return "NBD_CMD_CACHE";
    case kCmdWriteZeroes:
      return "NBD_CMD_WRITE_ZEROES";
    case kCmdBlockStatus:
      return "NBD_CMD_BLOCK_STATUS";
    default:
      return fmt::format("command {}", type);
  }
}

std::string ErrorName(uint32_t error) {
  switch (error) {
    case kErrorNone:
      return "OK";
    case kEPERM:
      return "EPERM";
    case kEIO:
      return "EIO";
    case kENOMEM:
      return "ENOMEM";
    case kEINVAL:
      return "EINVAL";
    case kENOSPC:
      return "ENOSPC";
    case kEOVERFLOW:
      return "EOVERFLOW";
    case kENOTSUP:
      return "ENOTSUP";
    case kESHUTDOWN:
      return "ESHUTDOWN";
    default:
      return fmt::format("error {}", error);
  }
}

}  // namespace weft::nbd
