#include "cluster/config_changes.h"

#include <fmt/format.h>

#include "base/assert.h"
#include "cluster/cluster_config.h"

namespace weft::cluster {

uint32_t ChangingNode(const ClusterConfig& config) {
  for (const NodeConfig& node : config.nodes()) {
    if (node.ring_state() != RING_STATE_NORMAL) return node.node_id();
  }
  return 0;
}

Result<ClusterConfig> AddJoiningNode(const ClusterConfig& config, uint32_t node_id,
                                     const std::string& rpc_address,
                                     const std::string& admin_address) {
  for (const NodeConfig& node : config.nodes()) {
    if (node.node_id() == node_id) {
      return Status::AlreadyExists(fmt::format("node {} is already in the cluster", node_id));
    }
  }
  if (const uint32_t changing = ChangingNode(config); changing != 0) {
    return Status::InvalidArgument(fmt::format(
        "node {} is still joining or leaving the ring; ring changes go one at a time", changing));
  }
  ClusterConfig next = config;
  NodeConfig* node = next.add_nodes();
  node->set_node_id(node_id);
  node->set_rpc_address(rpc_address);
  node->set_admin_address(admin_address);
  node->set_ring_state(RING_STATE_JOINING);
  const std::vector<uint64_t> existing = AllRingTokens(config);
  for (uint64_t token :
       MakeRingTokens(node_id, kDefaultRingTokensPerNode, config.ring_epoch() + 1, existing)) {
    node->add_ring_tokens(token);
  }
  next.set_ring_epoch(config.ring_epoch() + 1);
  if (Status valid = ValidateClusterConfig(next); !valid.ok()) return valid;
  WEFT_ASSERT(ChangingNode(next) == node_id);
  return next;
}

Result<ClusterConfig> MarkNodeLeaving(const ClusterConfig& config, uint32_t node_id) {
  if (const uint32_t changing = ChangingNode(config); changing != 0) {
    return Status::InvalidArgument(fmt::format(
        "node {} is still joining or leaving the ring; ring changes go one at a time", changing));
  }
  ClusterConfig next = config;
  NodeConfig* leaving = nullptr;
  for (NodeConfig& node : *next.mutable_nodes()) {
    if (node.node_id() == node_id) leaving = &node;
  }
  if (leaving == nullptr) {
    return Status::NotFound(fmt::format("node {} is not in the cluster", node_id));
  }
  if (next.nodes_size() == 1) {
    return Status::InvalidArgument("the last node of a cluster cannot leave it");
  }
  leaving->set_ring_state(RING_STATE_LEAVING);
  next.set_ring_epoch(config.ring_epoch() + 1);
  if (Status valid = ValidateClusterConfig(next); !valid.ok()) return valid;
  return next;
}

Result<ClusterConfig> CompleteRingChange(const ClusterConfig& config, uint64_t epoch) {
  const uint32_t changing = ChangingNode(config);
  if (config.ring_epoch() != epoch || changing == 0) {
    return Status::Aborted(
        fmt::format("the ring is at epoch {} (change of node {}), not the change at epoch {}",
                    config.ring_epoch(), changing, epoch));
  }
  ClusterConfig next = config;
  next.clear_nodes();
  for (const NodeConfig& node : config.nodes()) {
    if (node.node_id() != changing) {
      *next.add_nodes() = node;
      continue;
    }
    if (node.ring_state() == RING_STATE_JOINING) {
      NodeConfig* joined = next.add_nodes();
      *joined = node;
      joined->set_ring_state(RING_STATE_NORMAL);
    }
    // A LEAVING node is dropped.
  }
  next.set_ring_epoch(epoch + 1);
  if (Status valid = ValidateClusterConfig(next); !valid.ok()) return valid;
  WEFT_ASSERT(ChangingNode(next) == 0);
  return next;
}

}  // namespace weft::cluster
