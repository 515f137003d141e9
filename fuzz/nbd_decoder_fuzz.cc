// libFuzzer harness for the NBD server's sans-I/O code: the option and request decoders, the
// request checks, and the whole handshake (Negotiator) fed a byte stream framed as a socket
// would frame it. Built with clang (-fsanitize=fuzzer,address,undefined) by fuzz/run-nbd-fuzz;
// the seed corpus is fuzz/corpus/nbd/.
//
// The first input byte picks the target; the rest is its input. Besides memory errors and
// undefined behaviour, the harness traps when a decoder's output breaks its documented limits.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "frontend/nbd/nbd_negotiation.h"
#include "frontend/nbd/nbd_protocol.h"

namespace weft::nbd {
namespace {

#define FUZZ_CHECK(condition)           \
  do {                                  \
    if (!(condition)) __builtin_trap(); \
  } while (false)

// An export for the handshake: the Negotiator only reads its info; I/O is never called.
class InfoOnlyExport : public Export {
 public:
  explicit InfoOnlyExport(ExportInfo info) : info_(std::move(info)) {}
  const ExportInfo& info() const override { return info_; }
  void Read(uint64_t, std::span<std::byte>, Completion) override { __builtin_trap(); }
  void Write(uint64_t, std::span<const std::byte>, bool, Completion) override { __builtin_trap(); }
  void Flush(Completion) override { __builtin_trap(); }
  void Trim(uint64_t, uint64_t, Completion) override { __builtin_trap(); }
  void WriteZeroes(uint64_t, uint64_t, bool, bool, Completion) override { __builtin_trap(); }
  void BlockStatus(uint64_t, uint64_t, BlockStatusCompletion) override { __builtin_trap(); }

 private:
  ExportInfo info_;
};

class FuzzProvider : public ExportProvider {
 public:
  FuzzProvider() {
    ExportInfo disk;
    disk.name = "disk";
    disk.description = "fuzz disk";
    disk.size_bytes = 1 << 20;
    exports_.push_back(disk);
    ExportInfo read_only;
    read_only.name = "";  // The default export.
    read_only.read_only = true;
    read_only.size_bytes = 4096;
    exports_.push_back(read_only);
  }
  std::vector<ExportInfo> ListExports() override { return exports_; }
  Result<std::shared_ptr<Export>> OpenExport(std::string_view name) override {
    for (const ExportInfo& info : exports_) {
      if (info.name == name) return std::shared_ptr<Export>(std::make_shared<InfoOnlyExport>(info));
    }
    return Status::NotFound(std::string(name));
  }

 private:
  std::vector<ExportInfo> exports_;
};

// Checks that option replies are well framed: magic, and lengths that add up.
void CheckOptionReplies(const std::vector<std::byte>& bytes) {
  size_t offset = 0;
  while (offset < bytes.size()) {
    FUZZ_CHECK(offset + sizeof(OptionReplyHeaderWire) <= bytes.size());
    OptionReplyHeaderWire header;
    std::memcpy(&header, bytes.data() + offset, sizeof(header));
    FUZZ_CHECK(header.magic.get() == kOptionReplyMagic);
    offset += sizeof(header) + header.length.get();
  }
  FUZZ_CHECK(offset == bytes.size());
}

void FuzzHeaders(std::span<const std::byte> input) {
  if (input.size() >= 4) DecodeClientFlags(input.first(4)).status().IgnoreError();
  if (input.size() < sizeof(OptionHeaderWire)) return;
  Result<OptionHeader> header = DecodeOptionHeader(input.first(sizeof(OptionHeaderWire)));
  if (header.ok()) CheckOptionLength(*header).IgnoreError();
}

void FuzzOptionPayloads(std::span<const std::byte> input) {
  Result<InfoRequest> info = DecodeInfoRequest(input);
  if (info.ok()) {
    FUZZ_CHECK(info->export_name.size() <= kStringMaxBytes);
    FUZZ_CHECK(info->info_types.size() <= kInfoRequestsMax);
  }
  Result<MetaContextRequest> meta = DecodeMetaContextRequest(input);
  if (meta.ok()) {
    FUZZ_CHECK(meta->export_name.size() <= kStringMaxBytes);
    FUZZ_CHECK(meta->queries.size() <= kMetaContextQueriesMax);
    for (const std::string& query : meta->queries) FUZZ_CHECK(query.size() <= kStringMaxBytes);
  }
  Result<std::string> name = DecodeExportName(input);
  if (name.ok()) FUZZ_CHECK(name->size() <= kStringMaxBytes);
  DecodeEmptyOption(input).IgnoreError();
}

void FuzzRequest(std::span<const std::byte> input) {
  if (input.size() < sizeof(RequestWire) + 1) return;
  Result<RequestHeader> request = DecodeRequestHeader(input.first(sizeof(RequestWire)));
  if (!request.ok()) return;
  const auto knobs = static_cast<uint8_t>(input[sizeof(RequestWire)]);
  ExportInfo info;
  info.size_bytes = 1 << 20;
  info.read_only = (knobs & 4) != 0;
  info.can_fast_zero = (knobs & 16) != 0;
  const bool structured = (knobs & 1) != 0;
  const TransmissionContext context{info.size_bytes, (knobs & 8) ? 512u : 1u,
                                    64u << 10,       TransmissionFlagsFor(info, structured),
                                    structured,      structured && (knobs & 2) != 0};
  const RequestCheck check = CheckRequest(*request, context);
  if (check.error != kErrorNone) return;
  // What passes the checks is safe to hand to an export.
  FUZZ_CHECK(request->type < kCommandTypeCount && request->type != kCmdCache);
  if (request->type == kCmdDisc || request->type == kCmdFlush) return;
  FUZZ_CHECK(request->length_bytes > 0);
  FUZZ_CHECK(request->offset_bytes + request->length_bytes <= context.size_bytes);
  if (request->type == kCmdRead || request->type == kCmdWrite) {
    FUZZ_CHECK(request->length_bytes <= context.block_size_max_bytes);
  }
  FUZZ_CHECK(!info.read_only || request->type == kCmdRead || request->type == kCmdBlockStatus);
}

// The handshake as a stream: 4 bytes of client flags, then options framed by their headers.
void FuzzHandshake(std::span<const std::byte> input) {
  FuzzProvider provider;
  Negotiator negotiator(provider);
  if (input.size() < 4 || !negotiator.OnClientFlags(input.first(4)).ok()) return;
  input = input.subspan(4);
  while (input.size() >= sizeof(OptionHeaderWire)) {
    Result<OptionHeader> header = DecodeOptionHeader(input.first(sizeof(OptionHeaderWire)));
    if (!header.ok() || !CheckOptionLength(*header).ok()) return;
    input = input.subspan(sizeof(OptionHeaderWire));
    if (input.size() < header->length_bytes) return;  // The client went away mid-payload.
    const NegotiationStep step = negotiator.OnOption(*header, input.first(header->length_bytes));
    input = input.subspan(header->length_bytes);
    if (header->option != kOptExportName) CheckOptionReplies(step.reply);
    if (step.next == NegotiationStep::Next::kClose) return;
    if (step.next == NegotiationStep::Next::kTransmission) {
      const NegotiatedSession session = negotiator.TakeSession();
      FUZZ_CHECK(session.export_handle != nullptr);
      FUZZ_CHECK(!session.base_allocation || session.structured_replies);
      return;
    }
  }
}

}  // namespace
}  // namespace weft::nbd

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      weft::nbd::FuzzHeaders(input);
      break;
    case 1:
      weft::nbd::FuzzOptionPayloads(input);
      break;
    case 2:
      weft::nbd::FuzzRequest(input);
      break;
    default:
      weft::nbd::FuzzHandshake(input);
      break;
  }
  return 0;
}
