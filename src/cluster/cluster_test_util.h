// Valid cluster configs for the cluster tests.
#pragma once

#include <fmt/format.h>

#include "cluster/cluster_config.h"

namespace weft::cluster {

// `node_count` nodes (ids 1..n, ports 7000+id and 8000+id, one ssd, 16 ring tokens each), rf 3,
// one container.
inline ClusterConfig MakeTestConfig(uint32_t node_count, std::string name = "test") {
  ClusterConfig config;
  config.set_cluster_id("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9");
  config.set_name(std::move(name));
  config.set_redundancy_factor(3);
  for (uint32_t id = 1; id <= node_count; ++id) {
    NodeConfig* node = config.add_nodes();
    node->set_node_id(id);
    node->set_rpc_address(fmt::format("10.0.0.{}:{}", id, 7000 + id));
    node->set_admin_address(fmt::format("10.0.0.{}:{}", id, 8000 + id));
    DiskConfig* disk = node->add_disks();
    disk->set_path(fmt::format("/var/lib/weft/disk{}", id));
    disk->set_size_bytes(uint64_t{1} << 30);
    disk->set_tier("ssd");
    for (uint64_t token : MakeRingTokens(id, kDefaultRingTokensPerNode, 7, AllRingTokens(config))) {
      node->add_ring_tokens(token);
    }
  }
  ContainerConfig* container = config.add_containers();
  container->set_name("default");
  container->set_replication_factor(2);
  return config;
}

}  // namespace weft::cluster
