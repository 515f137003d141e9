// The NBD wire protocol as a sans-I/O codec: constants, packed big-endian wire structs, and pure
// functions that decode what a client sends and encode what the server answers. Nothing here
// touches a socket, so unit tests and the fuzzer (fuzz/nbd_decoder_fuzz.cc) drive it directly.
// The protocol is NetworkBlockDevice/nbd doc/proto.md; what weft implements of it, its limits
// and its error mapping are in docs/protocol/nbd.md. Every constant was checked against libnbd's
// lib/nbd-protocol.h and the python3-libnbd `nbd` module.
//
// Decoders never trust a length: each one checks the bytes it is given against the lengths they
// declare and against the limits below, and fails with a Status naming what is wrong:
//   InvalidArgument: malformed (the server answers NBD_REP_ERR_INVALID or closes),
//   NoSpace: a field is larger than weft's limit (the server answers NBD_REP_ERR_TOO_BIG).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace weft::nbd {

// A big-endian (network order) integer stored as bytes, so that structs made of them have no
// padding and no alignment: they are the wire layout exactly, whatever the host.
template <typename T>
class BigEndian {
 public:
  BigEndian() = default;
  BigEndian(T value) { set(value); }  // NOLINT(google-explicit-constructor): wire fields.
  T get() const {
    T value = 0;
    for (uint8_t byte : bytes_) value = static_cast<T>((value << 8) | byte);
    return value;
  }
  void set(T value) {
    for (size_t i = sizeof(T); i-- > 0;) {
      bytes_[i] = static_cast<uint8_t>(value & 0xff);
      value = static_cast<T>(value >> 8);
    }
  }

 private:
  std::array<uint8_t, sizeof(T)> bytes_{};
};

// Magics.
inline constexpr uint64_t kNbdMagic = 0x4e42444d41474943;          // "NBDMAGIC"
inline constexpr uint64_t kOptionMagic = 0x49484156454f5054;       // "IHAVEOPT"
inline constexpr uint64_t kOptionReplyMagic = 0x0003e889045565a9;  // Fixed newstyle replies.
inline constexpr uint32_t kRequestMagic = 0x25609513;
inline constexpr uint32_t kSimpleReplyMagic = 0x67446698;
inline constexpr uint32_t kStructuredReplyMagic = 0x668e33ef;

// Handshake flags (server) and client flags.
inline constexpr uint16_t kFlagFixedNewstyle = 1u << 0;
inline constexpr uint16_t kFlagNoZeroes = 1u << 1;
inline constexpr uint32_t kClientFlagFixedNewstyle = 1u << 0;
inline constexpr uint32_t kClientFlagNoZeroes = 1u << 1;
inline constexpr uint32_t kClientFlagsKnown = kClientFlagFixedNewstyle | kClientFlagNoZeroes;

// Transmission flags.
inline constexpr uint16_t kTransmissionHasFlags = 1u << 0;
inline constexpr uint16_t kTransmissionReadOnly = 1u << 1;
inline constexpr uint16_t kTransmissionSendFlush = 1u << 2;
inline constexpr uint16_t kTransmissionSendFua = 1u << 3;
inline constexpr uint16_t kTransmissionRotational = 1u << 4;
inline constexpr uint16_t kTransmissionSendTrim = 1u << 5;
inline constexpr uint16_t kTransmissionSendWriteZeroes = 1u << 6;
inline constexpr uint16_t kTransmissionSendDf = 1u << 7;
inline constexpr uint16_t kTransmissionCanMultiConn = 1u << 8;
inline constexpr uint16_t kTransmissionSendFastZero = 1u << 11;

// Options.
inline constexpr uint32_t kOptExportName = 1;
inline constexpr uint32_t kOptAbort = 2;
inline constexpr uint32_t kOptList = 3;
inline constexpr uint32_t kOptStartTls = 5;
inline constexpr uint32_t kOptInfo = 6;
inline constexpr uint32_t kOptGo = 7;
inline constexpr uint32_t kOptStructuredReply = 8;
inline constexpr uint32_t kOptListMetaContext = 9;
inline constexpr uint32_t kOptSetMetaContext = 10;

// Option reply types.
inline constexpr uint32_t kRepAck = 1;
inline constexpr uint32_t kRepServer = 2;
inline constexpr uint32_t kRepInfo = 3;
inline constexpr uint32_t kRepMetaContext = 4;
inline constexpr uint32_t kRepErrorBit = 1u << 31;
inline constexpr uint32_t kRepErrUnsup = kRepErrorBit | 1;
inline constexpr uint32_t kRepErrPolicy = kRepErrorBit | 2;
inline constexpr uint32_t kRepErrInvalid = kRepErrorBit | 3;
inline constexpr uint32_t kRepErrPlatform = kRepErrorBit | 4;
inline constexpr uint32_t kRepErrTlsReqd = kRepErrorBit | 5;
inline constexpr uint32_t kRepErrUnknown = kRepErrorBit | 6;
inline constexpr uint32_t kRepErrShutdown = kRepErrorBit | 7;
inline constexpr uint32_t kRepErrBlockSizeReqd = kRepErrorBit | 8;
inline constexpr uint32_t kRepErrTooBig = kRepErrorBit | 9;

// Info types (NBD_OPT_INFO / NBD_OPT_GO).
inline constexpr uint16_t kInfoExport = 0;
inline constexpr uint16_t kInfoName = 1;
inline constexpr uint16_t kInfoDescription = 2;
inline constexpr uint16_t kInfoBlockSize = 3;

// Commands.
inline constexpr uint16_t kCmdRead = 0;
inline constexpr uint16_t kCmdWrite = 1;
inline constexpr uint16_t kCmdDisc = 2;
inline constexpr uint16_t kCmdFlush = 3;
inline constexpr uint16_t kCmdTrim = 4;
inline constexpr uint16_t kCmdCache = 5;  // Not implemented: answered EINVAL like any unknown.
inline constexpr uint16_t kCmdWriteZeroes = 6;
inline constexpr uint16_t kCmdBlockStatus = 7;
inline constexpr size_t kCommandTypeCount = 8;  // Types 0..7; stats put the rest in one slot.

// Command flags.
inline constexpr uint16_t kCmdFlagFua = 1u << 0;
inline constexpr uint16_t kCmdFlagNoHole = 1u << 1;
inline constexpr uint16_t kCmdFlagDf = 1u << 2;
inline constexpr uint16_t kCmdFlagReqOne = 1u << 3;
inline constexpr uint16_t kCmdFlagFastZero = 1u << 4;

// Structured replies.
inline constexpr uint16_t kReplyFlagDone = 1u << 0;
inline constexpr uint16_t kReplyTypeNone = 0;
inline constexpr uint16_t kReplyTypeOffsetData = 1;
inline constexpr uint16_t kReplyTypeOffsetHole = 2;
inline constexpr uint16_t kReplyTypeBlockStatus = 5;
inline constexpr uint16_t kReplyTypeError = (1u << 15) | 1;
inline constexpr uint16_t kReplyTypeErrorOffset = (1u << 15) | 2;

// base:allocation states.
inline constexpr uint32_t kStateHole = 1u << 0;
inline constexpr uint32_t kStateZero = 1u << 1;

// Errors (the spec fixes these values; they are Linux errno values).
inline constexpr uint32_t kErrorNone = 0;
inline constexpr uint32_t kEPERM = 1;
inline constexpr uint32_t kEIO = 5;
inline constexpr uint32_t kENOMEM = 12;
inline constexpr uint32_t kEINVAL = 22;
inline constexpr uint32_t kENOSPC = 28;
inline constexpr uint32_t kEOVERFLOW = 75;
inline constexpr uint32_t kENOTSUP = 95;
inline constexpr uint32_t kESHUTDOWN = 108;

inline constexpr std::string_view kBaseAllocationContext = "base:allocation";
// weft's id for base:allocation (any value works; 0 is avoided so a zeroed field is caught).
inline constexpr uint32_t kBaseAllocationContextId = 1;

// Limits.
inline constexpr uint32_t kOptionPayloadMaxBytes = 64u << 10;
inline constexpr uint32_t kStringMaxBytes = 4096;  // Export names, queries, messages (spec).
inline constexpr uint32_t kInfoRequestsMax = 64;   // Info types in one GO/INFO.
inline constexpr uint32_t kMetaContextQueriesMax = 64;
inline constexpr uint32_t kErrorMessageMaxBytes = 256;  // What weft puts in error chunks.
inline constexpr uint32_t kHandshakeZeroesBytes = 124;

// Wire structs. All fields big-endian; sizes are the spec's.
struct ServerGreetingWire {
  BigEndian<uint64_t> nbd_magic;
  BigEndian<uint64_t> option_magic;
  BigEndian<uint16_t> handshake_flags;
};
static_assert(sizeof(ServerGreetingWire) == 18);

struct ClientFlagsWire {
  BigEndian<uint32_t> flags;
};
static_assert(sizeof(ClientFlagsWire) == 4);

struct OptionHeaderWire {
  BigEndian<uint64_t> magic;
  BigEndian<uint32_t> option;
  BigEndian<uint32_t> length;
};
static_assert(sizeof(OptionHeaderWire) == 16);

struct OptionReplyHeaderWire {
  BigEndian<uint64_t> magic;
  BigEndian<uint32_t> option;
  BigEndian<uint32_t> type;
  BigEndian<uint32_t> length;
};
static_assert(sizeof(OptionReplyHeaderWire) == 20);

struct ExportNameReplyWire {  // Followed by 124 zero bytes unless NO_ZEROES was negotiated.
  BigEndian<uint64_t> size;
  BigEndian<uint16_t> transmission_flags;
};
static_assert(sizeof(ExportNameReplyWire) == 10);

struct InfoExportWire {
  BigEndian<uint16_t> type;
  BigEndian<uint64_t> size;
  BigEndian<uint16_t> transmission_flags;
};
static_assert(sizeof(InfoExportWire) == 12);

struct InfoBlockSizeWire {
  BigEndian<uint16_t> type;
  BigEndian<uint32_t> minimum;
  BigEndian<uint32_t> preferred;
  BigEndian<uint32_t> maximum;
};
static_assert(sizeof(InfoBlockSizeWire) == 14);

struct RequestWire {
  BigEndian<uint32_t> magic;
  BigEndian<uint16_t> flags;
  BigEndian<uint16_t> type;
  BigEndian<uint64_t> cookie;
  BigEndian<uint64_t> offset;
  BigEndian<uint32_t> length;
};
static_assert(sizeof(RequestWire) == 28);

struct SimpleReplyWire {
  BigEndian<uint32_t> magic;
  BigEndian<uint32_t> error;
  BigEndian<uint64_t> cookie;
};
static_assert(sizeof(SimpleReplyWire) == 16);

struct StructuredReplyHeaderWire {
  BigEndian<uint32_t> magic;
  BigEndian<uint16_t> flags;
  BigEndian<uint16_t> type;
  BigEndian<uint64_t> cookie;
  BigEndian<uint32_t> length;
};
static_assert(sizeof(StructuredReplyHeaderWire) == 20);

struct StructuredErrorWire {  // Followed by the message.
  BigEndian<uint32_t> error;
  BigEndian<uint16_t> message_length;
};
static_assert(sizeof(StructuredErrorWire) == 6);

struct BlockDescriptorWire {
  BigEndian<uint32_t> length;
  BigEndian<uint32_t> status_flags;
};
static_assert(sizeof(BlockDescriptorWire) == 8);

// ---- Decoded messages ----

struct OptionHeader {
  uint32_t option = 0;
  uint32_t length_bytes = 0;  // Of the payload that follows.
};

// NBD_OPT_GO and NBD_OPT_INFO.
struct InfoRequest {
  std::string export_name;
  std::vector<uint16_t> info_types;
};

// NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT.
struct MetaContextRequest {
  std::string export_name;
  std::vector<std::string> queries;
};

struct RequestHeader {
  uint16_t flags = 0;
  uint16_t type = 0;
  uint64_t cookie = 0;  // The spec's "handle": opaque, echoed in the reply.
  uint64_t offset_bytes = 0;
  uint32_t length_bytes = 0;
};

// ---- Decoders (client to server) ----

// `bytes` must be exactly 4 bytes. InvalidArgument when a flag weft does not know is set (the
// spec then requires closing the connection).
Result<uint32_t> DecodeClientFlags(std::span<const std::byte> bytes);
// `bytes` must be exactly 16 bytes. InvalidArgument on a bad magic. The length is returned as
// sent: check it with CheckOptionLength before reading the payload.
Result<OptionHeader> DecodeOptionHeader(std::span<const std::byte> bytes);
// NoSpace when the payload is larger than kOptionPayloadMaxBytes.
Status CheckOptionLength(const OptionHeader& header);
// NBD_OPT_GO / NBD_OPT_INFO payload: name length, name, info count, info types.
Result<InfoRequest> DecodeInfoRequest(std::span<const std::byte> payload);
// NBD_OPT_EXPORT_NAME payload: the whole payload is the name.
Result<std::string> DecodeExportName(std::span<const std::byte> payload);
// NBD_OPT_LIST, NBD_OPT_STRUCTURED_REPLY and NBD_OPT_ABORT carry no payload.
Status DecodeEmptyOption(std::span<const std::byte> payload);
// NBD_OPT_{LIST,SET}_META_CONTEXT payload: name length, name, query count, (length, query)*.
Result<MetaContextRequest> DecodeMetaContextRequest(std::span<const std::byte> payload);
// `bytes` must be exactly 28 bytes. InvalidArgument on a bad magic (the stream is then lost and
// the connection must close).
Result<RequestHeader> DecodeRequestHeader(std::span<const std::byte> bytes);

// What a transmission request is checked against: the export and what was negotiated.
struct TransmissionContext {
  uint64_t size_bytes = 0;
  uint32_t block_size_min_bytes = 1;
  uint32_t block_size_max_bytes = 32u << 20;
  uint16_t transmission_flags = 0;  // As sent to the client.
  bool structured_replies = false;
  bool base_allocation = false;  // base:allocation selected.
};

// The verdict on a request header before it reaches the export.
struct RequestCheck {
  uint32_t error = kErrorNone;  // An NBD error value; kErrorNone: execute the request.
  std::string message;          // Why, for the log and the structured error chunk.
};

// Checks flags, command, read-only, zero length, range, alignment and payload size. Pure.
// A WRITE that fails here still has its payload on the wire: the caller must skip it.
RequestCheck CheckRequest(const RequestHeader& request, const TransmissionContext& context);

// ---- Encoders (server to client); each appends to `out` ----

void EncodeServerGreeting(std::vector<std::byte>& out);
void EncodeOptionReply(std::vector<std::byte>& out, uint32_t option, uint32_t reply_type,
                       std::span<const std::byte> payload = {});
// An error reply whose payload is `message` (truncated to kStringMaxBytes).
void EncodeOptionError(std::vector<std::byte>& out, uint32_t option, uint32_t reply_type,
                       std::string_view message);
void EncodeRepServer(std::vector<std::byte>& out, std::string_view export_name,
                     std::string_view description);
void EncodeInfoExport(std::vector<std::byte>& out, uint32_t option, uint64_t size_bytes,
                      uint16_t transmission_flags);
void EncodeInfoString(std::vector<std::byte>& out, uint32_t option, uint16_t info_type,
                      std::string_view value);
void EncodeInfoBlockSize(std::vector<std::byte>& out, uint32_t option, uint32_t minimum_bytes,
                         uint32_t preferred_bytes, uint32_t maximum_bytes);
void EncodeMetaContext(std::vector<std::byte>& out, uint32_t option, uint32_t context_id,
                       std::string_view name);
// The NBD_OPT_EXPORT_NAME reply: size, flags, and 124 zero bytes unless `no_zeroes`.
void EncodeExportNameReply(std::vector<std::byte>& out, uint64_t size_bytes,
                           uint16_t transmission_flags, bool no_zeroes);

void EncodeSimpleReply(std::vector<std::byte>& out, uint64_t cookie, uint32_t error);
// The header of an NBD_REPLY_TYPE_OFFSET_DATA chunk (flag DONE) carrying `data_length_bytes`
// bytes at `offset_bytes`; the data follows it on the wire.
void EncodeOffsetDataHeader(std::vector<std::byte>& out, uint64_t cookie, uint64_t offset_bytes,
                            uint32_t data_length_bytes);
void EncodeStructuredNone(std::vector<std::byte>& out, uint64_t cookie);
// An NBD_REPLY_TYPE_ERROR chunk (flag DONE); the message is truncated to kErrorMessageMaxBytes.
void EncodeStructuredError(std::vector<std::byte>& out, uint64_t cookie, uint32_t error,
                           std::string_view message);
struct BlockDescriptor {
  uint32_t length_bytes = 0;
  uint32_t status_flags = 0;
};
// An NBD_REPLY_TYPE_BLOCK_STATUS chunk (flag DONE). `descriptors` must not be empty.
void EncodeBlockStatus(std::vector<std::byte>& out, uint64_t cookie, uint32_t context_id,
                       std::span<const BlockDescriptor> descriptors);

// Human-readable names for logs ("NBD_OPT_GO", "NBD_CMD_READ", "EINVAL").
std::string OptionName(uint32_t option);
std::string CommandName(uint16_t type);
std::string ErrorName(uint32_t error);

}  // namespace weft::nbd
