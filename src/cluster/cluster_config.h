// The cluster configuration (cluster_config.proto): its validation and the metadata-ring token
// helper. Both backends (cluster_backend.h) refuse to store a config that does not validate.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "cluster/cluster_config.pb.h"

namespace weft::cluster {

// Ring tokens a node gets by default: enough for an even spread on small clusters.
inline constexpr uint32_t kDefaultRingTokensPerNode = 16;

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// Parses "host:port" (a name, an IPv4 address or "[v6]"); the port must be 1..65535.
Result<HostPort> ParseHostPort(std::string_view address);

// Checks every rule of docs/cluster.md: a uuid cluster id, redundancy factor 2 or 3, node ids
// >= 1 and unique, addresses that parse and are unique, disks with a path and a tier of "ssd" or
// "hdd", ring tokens unique across nodes, containers with unique names and a replication factor
// of 1..3. InvalidArgument names the offending field ("nodes[1].rpc_address: ...").
Status ValidateClusterConfig(const ClusterConfig& config);

// `count` ring tokens for `node_id`: deterministic in (node_id, count, seed), spread over the
// whole 64-bit ring (one token in each of `count` equal arcs, at a hashed offset within it), and
// never equal to one of `existing` nor to each other.
std::vector<uint64_t> MakeRingTokens(uint32_t node_id, uint32_t count, uint64_t seed,
                                     std::span<const uint64_t> existing = {});

// Every token of every node in `config`, for MakeRingTokens' `existing`.
std::vector<uint64_t> AllRingTokens(const ClusterConfig& config);

}  // namespace weft::cluster
