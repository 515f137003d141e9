// weft cluster create: builds a new cluster's configuration (cluster/cluster_config.proto) from
// the command line and stores it in ZooKeeper with the backend's CreateConfig, which refuses to
// replace an existing one. The weftd processes started with --zookeeper then read it, find their
// --node-id's entry and form the cluster.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "cli/commands.h"
#include "cluster/cluster_config.pb.h"

namespace weft::cli {

// One --node argument: "ID=RPC_HOST:RPC_PORT,ADMIN_HOST:ADMIN_PORT".
struct NodeSpec {
  uint32_t node_id = 0;
  std::string rpc_address;
  std::string admin_address;
};

// InvalidArgument, naming the argument and the expected form, when `text` is not a NodeSpec
// (id 0, a missing part, an address that cluster::ParseHostPort refuses).
Result<NodeSpec> ParseNodeSpec(std::string_view text);

struct ClusterSpec {
  std::string name;
  uint32_t redundancy_factor = 2;
  uint32_t ring_tokens_per_node = 0;
  std::vector<NodeSpec> nodes;
};

// The metadata-ring replicas of each row for a redundancy factor (2 -> 3, 3 -> 5).
uint32_t RingReplicasFor(uint32_t redundancy_factor);

// The config a new cluster starts with: `cluster_id`, every node NORMAL with its ring tokens
// (cluster::MakeRingTokens, seeded from the cluster id so that two clusters differ), ring epoch
// 1. InvalidArgument if the spec has fewer nodes than a row has ring replicas, or if the result
// fails cluster::ValidateClusterConfig (duplicate ids or addresses, ...).
Result<cluster::ClusterConfig> BuildClusterConfig(const ClusterSpec& spec,
                                                  const std::string& cluster_id);

void AddClusterCreateCommand(CLI::App& group, const GlobalOptions& options, Action& action);

}  // namespace weft::cli
