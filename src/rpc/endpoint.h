// Endpoint: where a node's RPC server listens ("host:port"). Also the name a node goes by in the
// fault shim (fault_shim.h), so that tests and daemons partition nodes by their addresses.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace weft::rpc {

struct Endpoint {
  std::string host;  // An IPv4/IPv6 address or a host name.
  uint16_t port = 0;

  // "host:port", or "[v6address]:port" when the host holds a colon.
  std::string ToString() const;
  // The inverse of ToString(). InvalidArgument for a missing or bad port or an empty host.
  static Result<Endpoint> Parse(std::string_view text);

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

}  // namespace weft::rpc
