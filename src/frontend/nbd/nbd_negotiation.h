// The fixed-newstyle handshake as a sans-I/O state machine: it takes the client's flags and
// options (already framed by the caller) and returns the bytes to answer and what to do next.
// The server (nbd_connection.cc) reads and writes the socket around it; the fuzzer and the
// unit tests drive it without one.
//
// Options handled (docs/protocol/nbd.md): EXPORT_NAME, ABORT, LIST, INFO, GO,
// STRUCTURED_REPLY, LIST_META_CONTEXT and SET_META_CONTEXT (base:allocation only). Every other
// option, STARTTLS included, is answered NBD_REP_ERR_UNSUP and the handshake continues.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "frontend/nbd/nbd_export.h"
#include "frontend/nbd/nbd_protocol.h"

namespace weft::nbd {

// At most this many options per handshake; a client still haggling after that is closed.
inline constexpr uint32_t kHandshakeOptionsMax = 256;

// What the handshake settled, for the transmission phase.
struct NegotiatedSession {
  std::shared_ptr<Export> export_handle;
  ExportInfo info;  // As the export reported it at open.
  uint16_t transmission_flags = 0;
  bool structured_replies = false;
  bool base_allocation = false;  // base:allocation selected for this export.
};

// The transmission flags weft advertises for an export (the read-only flag, and no write
// commands, on a read-only export; SEND_DF only once structured replies are on).
uint16_t TransmissionFlagsFor(const ExportInfo& info, bool structured_replies);

struct NegotiationStep {
  enum class Next {
    kContinue,      // Send `reply`, then read the next option.
    kTransmission,  // Send `reply`, then start the transmission phase (session() is set).
    kClose,         // Send `reply` (may be empty), then close the connection.
  };
  Next next = Next::kContinue;
  std::vector<std::byte> reply;
  // For kClose: why. Empty when the client ended the handshake normally (NBD_OPT_ABORT).
  std::string close_reason;
};

class Negotiator {
 public:
  // `provider` must outlive the Negotiator.
  explicit Negotiator(ExportProvider& provider) : provider_(provider) {}

  // The 18 bytes the server sends first.
  static std::vector<std::byte> Greeting();

  // The client's 4-byte flags. A non-ok Status means the connection must be closed (the spec
  // requires it for unknown flags).
  Status OnClientFlags(std::span<const std::byte> bytes);

  // One option: its header (magic already checked, length within CheckOptionLength) and its
  // payload of exactly header.length_bytes bytes.
  NegotiationStep OnOption(const OptionHeader& header, std::span<const std::byte> payload);

  // After a step with Next::kTransmission: the negotiated session (moved out once).
  NegotiatedSession TakeSession();

 private:
  NegotiationStep OnInfoOrGo(uint32_t option, std::span<const std::byte> payload);
  NegotiationStep OnExportName(std::span<const std::byte> payload);
  NegotiationStep OnList(std::span<const std::byte> payload);
  NegotiationStep OnMetaContext(uint32_t option, std::span<const std::byte> payload);
  // Selects the meta contexts for the export being entered (reset when its name differs from
  // the one SET_META_CONTEXT named).
  void FinishSession(std::shared_ptr<Export> export_handle, const std::string& export_name);

  ExportProvider& provider_;
  bool no_zeroes_ = false;
  bool structured_replies_ = false;
  bool base_allocation_requested_ = false;
  std::string meta_context_export_name_;
  uint32_t options_seen_ = 0;
  bool session_ready_ = false;
  NegotiatedSession session_;
};

}  // namespace weft::nbd
