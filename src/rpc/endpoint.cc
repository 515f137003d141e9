#include "rpc/endpoint.h"

#include <fmt/format.h>

#include <charconv>

namespace weft::rpc {

std::string Endpoint::ToString() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Result<Endpoint> Endpoint::Parse(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return Status::InvalidArgument(fmt::format("endpoint '{}': expected host:port", text));
  }
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) return Status::InvalidArgument(fmt::format("endpoint '{}': empty host", text));
  uint16_t port = 0;
  const auto [end, error] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || error != std::errc() || end != port_text.data() + port_text.size()) {
    return Status::InvalidArgument(fmt::format("endpoint '{}': bad port", text));
  }
  return Endpoint{std::string(host), port};
}

}  // namespace weft::rpc
