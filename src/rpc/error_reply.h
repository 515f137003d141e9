// Statuses on the wire: the message of an error response is an ErrorReply (rpc.proto).
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace weft::rpc {

// The serialized ErrorReply for a non-ok `status` (asserted).
std::string EncodeErrorReply(const Status& status);

// A Status received from a peer (a wrapper: Result<Status> would be ambiguous).
struct RemoteStatus {
  Status status;  // Never ok.
};

// The Status an ErrorReply carries. Corruption when the bytes do not parse or carry code 0 (the
// connection then closes: the peer is broken). A code this build does not know becomes IOError,
// so that a newer peer's error still fails the call without closing anything.
Result<RemoteStatus> DecodeErrorReply(std::string_view bytes);

}  // namespace weft::rpc
