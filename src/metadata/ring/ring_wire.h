// The ring's messages and persisted acceptor state in their encoded forms (ring.proto), and the
// checks every decoded message passes before a RingNode sees it: a peer's bytes are untrusted.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "base/status.h"
#include "metadata/paxos/paxos_types.h"
#include "metadata/ring/ring_messages.h"

namespace weft::metadata::ring {

// rpc/ message types of the ring (docs/protocol/rpc.md lists every service's range).
inline constexpr uint16_t kRingRequestType = 0x0100;
inline constexpr uint16_t kRingReplyType = 0x0101;

std::string EncodeRequest(NodeId from, const Request& request);
// InvalidArgument naming what is wrong (unparsable, no kind, a reply kind in a request, a zero
// ballot, a key or value over the limits, a state whose accepted ballot is above its promise).
Result<std::pair<NodeId, Request>> DecodeRequest(std::string_view bytes);

std::string EncodeReply(NodeId from, const Reply& reply);
Result<std::pair<NodeId, Reply>> DecodeReply(std::string_view bytes);

// The value of a row record in the node's ring database (docs/ondisk/ring.md): a 16-byte header
// (magic "WRNG", format version, payload length, payload crc32c) and the AcceptorState protobuf.
std::string EncodeAcceptorState(const paxos::AcceptorState& state);
// Corruption naming the check that failed.
Result<paxos::AcceptorState> DecodeAcceptorState(std::string_view bytes);

}  // namespace weft::metadata::ring
