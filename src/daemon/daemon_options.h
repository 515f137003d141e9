// weftd's command line: what the operator gives, parsed and checked before anything starts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace weft::daemon {

inline constexpr uint64_t kDefaultDiskBytes = 16ull << 30;  // The embedded default's one disk.
inline constexpr uint64_t kMinDiskBytes = 64ull << 20;

enum class DiskTier { kUnspecified, kSsd, kHdd };

struct DiskSpec {
  std::string path;
  uint64_t size_bytes = 0;  // For a file weftd creates; 0: kDefaultDiskBytes.
  // The OpLogs and the cache's SSD tier go to the first ssd disk; with no ssd disk, to the
  // first disk. Recorded in node.json.
  DiskTier tier = DiskTier::kUnspecified;
};

std::string_view DiskTierName(DiskTier tier);  // "ssd", "hdd", "".

struct DaemonOptions {
  std::string data_dir = "weft-data";
  std::vector<DiskSpec> disks;  // Empty: the disks recorded in the data dir, or one default.
  std::string listen_nbd = "127.0.0.1:10809";
  std::string listen_nbd_unix;  // A Unix socket path as well; empty: none.
  std::string listen_admin = "127.0.0.1:9440";
  std::string log_level = "info";
  uint32_t max_nbd_connections = 128;
  bool oplog = true;
  uint64_t oplog_size_bytes = 128ull << 20;  // Per vDisk.
  uint64_t oplog_sequential_threshold_bytes = 1536 * 1024;
  uint64_t cache_memory_bytes = 0;        // 0: cache::DefaultCacheMemoryBytes(physical memory).
  uint64_t cache_ssd_bytes = 1ull << 30;  // 0: no SSD tier.
  // The cluster (docs/cluster.md). Without zookeeper: the single-node embedded default.
  uint32_t node_id = 1;
  std::string zookeeper;  // "host:port[,host:port]"
  std::string zookeeper_root = "/weft";
  int zookeeper_session_timeout_ms = 6000;
  // Single node: recorded in the local cluster record. A cluster node listens on the
  // rpc_address of its entry in the cluster configuration instead.
  std::string listen_rpc = "127.0.0.1:9441";
  // Cluster mode: the data RPC (replication) address; empty: the RPC host, a free port.
  std::string listen_data;
  // Cluster mode: the node's fault domain (a block or rack name); copies avoid sharing one.
  std::string fault_domain;
  uint32_t ring_tick_ms = 10;
};

// The OpLog segment size weftd uses; --oplog-size must hold at least two.
inline constexpr uint64_t kOplogSegmentBytes = 16ull << 20;

// "PATH", "PATH:SIZE", "PATH:SIZE:TIER" or "PATH:TIER", with SIZE like 512M, 16G, 1T
// (base/size_format.h: binary units) and TIER ssd or hdd.
Result<DiskSpec> ParseDiskSpec(const std::string& text);
// "HOST:PORT" -> host and port; InvalidArgument naming `what` otherwise.
Result<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& what,
                                                       const std::string& text);

}  // namespace weft::daemon
