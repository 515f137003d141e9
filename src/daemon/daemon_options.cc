#include "daemon/daemon_options.h"

#include <fmt/format.h>

#include <charconv>

#include "base/size_format.h"

namespace weft::daemon {

std::string_view DiskTierName(DiskTier tier) {
  switch (tier) {
    case DiskTier::kSsd:
      return "ssd";
    case DiskTier::kHdd:
      return "hdd";
    case DiskTier::kUnspecified:
      break;
  }
  return "";
}

Result<DiskSpec> ParseDiskSpec(const std::string& text) {
  DiskSpec spec;
  std::string rest = text;
  const size_t tier_colon = rest.rfind(':');
  if (tier_colon != std::string::npos) {
    const std::string tier = rest.substr(tier_colon + 1);
    if (tier == "ssd" || tier == "hdd") {
      spec.tier = tier == "ssd" ? DiskTier::kSsd : DiskTier::kHdd;
      rest = rest.substr(0, tier_colon);
    }
  }
  const size_t colon = rest.rfind(':');
  spec.path = colon == std::string::npos ? rest : rest.substr(0, colon);
  if (spec.path.empty()) {
    return Status::InvalidArgument(fmt::format("--disk '{}': the path is empty", text));
  }
  if (colon != std::string::npos) {
    Result<uint64_t> size = ParseSize(rest.substr(colon + 1));
    if (!size.ok()) return size.status().WithContext(fmt::format("--disk '{}'", text));
    if (*size < kMinDiskBytes) {
      return Status::InvalidArgument(
          fmt::format("--disk '{}': a disk must be at least 64 MiB", text));
    }
    spec.size_bytes = *size / 4096 * 4096;
  }
  return spec;
}

Result<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& what,
                                                       const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return Status::InvalidArgument(fmt::format("{} '{}' is not HOST:PORT", what, text));
  }
  uint32_t port = 0;
  const char* begin = text.data() + colon + 1;
  const char* end = text.data() + text.size();
  const auto [rest, error] = std::from_chars(begin, end, port);
  if (error != std::errc() || rest != end || port > 65535) {
    return Status::InvalidArgument(fmt::format("{} '{}': bad port", what, text));
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::make_pair(host, static_cast<uint16_t>(port));
}

}  // namespace weft::daemon
