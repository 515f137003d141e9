// What the RPC transport carries and hands to its users (rpc_client.h, rpc_server.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"

namespace weft::rpc {

// One request or response. `type` says which protobuf message `body` holds (the services choose
// the numbers; the transport does not look). `bulk` (block contents) travels after the body on
// the wire and is gather-written from this string as it is, never copied into protobuf.
struct Message {
  uint16_t type = 0;
  std::string body;  // A serialized protobuf message.
  std::string bulk;
};

using ReplyFn = std::function<void(Result<Message>)>;

// What a server handler knows about a request besides its message.
struct IncomingContext {
  using Clock = std::chrono::steady_clock;

  uint64_t request_id = 0;  // The caller's id; unique per connection while in flight.
  std::string peer;         // The caller's address, for logs.
  // When the caller stops waiting (the server's clock, started when the request arrived);
  // Clock::time_point::max() when the caller set no timeout.
  Clock::time_point deadline = Clock::time_point::max();
  // Set (on the server's thread) when the caller cancelled the request, its deadline passed or
  // the connection closed: the reply will be dropped, so the handler may skip its work.
  std::shared_ptr<const bool> abandoned;

  bool is_abandoned() const { return abandoned != nullptr && *abandoned; }
  bool expired() const { return Clock::now() >= deadline; }
};

}  // namespace weft::rpc
