// weftd's command line: what the operator gives, parsed and checked before anything starts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace weft::daemon {

inline constexpr uint64_t kDefaultDiskBytes = 16ull << 30;  // The embedded default's one disk.
inline constexpr uint64_t kMinDiskBytes = 64ull << 20;

struct DiskSpec {
  std::string path;
  uint64_t size_bytes = 0;  // For a file weftd creates; 0: kDefaultDiskBytes.
};

struct DaemonOptions {
  std::string data_dir = "weft-data";
  std::vector<DiskSpec> disks;  // Empty: the disks recorded in the data dir, or one default.
  std::string listen_nbd = "127.0.0.1:10809";
  std::string listen_nbd_unix;  // A Unix socket path as well; empty: none.
  std::string listen_admin = "127.0.0.1:9440";
  std::string log_level = "info";
  uint32_t max_nbd_connections = 128;
};

// "PATH" or "PATH:SIZE" with SIZE like 512M, 16G, 1T (base/size_format.h: binary units).
Result<DiskSpec> ParseDiskSpec(const std::string& text);
// "HOST:PORT" -> host and port; InvalidArgument naming `what` otherwise.
Result<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& what,
                                                       const std::string& text);

}  // namespace weft::daemon
