#include "cli/cluster_render.h"

#include <fmt/format.h>

#include "cli/table.h"

namespace weft::cli {

std::string ClusterHeadline(const admin::ClusterView& cluster) {
  const std::string who = cluster.backend == "local"
                              ? std::string("single node")
                              : fmt::format("cluster '{}' ({})", cluster.name, cluster.cluster_id);
  return fmt::format(
      "{}: backend {}, RF {} ({} ring replicas), ring epoch {}, config version {}, {}, session {}",
      who, cluster.backend, cluster.redundancy_factor, cluster.ring_replicas, cluster.ring_epoch,
      cluster.config_version, cluster.fenced ? "FENCED (serves no writes)" : "not fenced",
      cluster.session.empty() ? "n/a" : cluster.session);
}

std::string LiveNodesSummary(const admin::ClusterView& cluster) {
  size_t live = 0;
  for (const admin::ClusterNodeView& node : cluster.nodes) live += node.live ? 1 : 0;
  return fmt::format("{} of {} live", live, cluster.nodes.size());
}

std::string RenderClusterNodes(const admin::ClusterView& cluster) {
  if (cluster.nodes.empty()) return "";
  using Align = Table::Align;
  Table table({{"NODE"}, {"RPC"}, {"ADMIN"}, {"LIVE"}, {"RING"}, {"TOKENS", Align::kRight}});
  for (const admin::ClusterNodeView& node : cluster.nodes) {
    const std::string id = node.node_id == cluster.self_node_id
                               ? fmt::format("{} (self)", node.node_id)
                               : std::to_string(node.node_id);
    table.AddRow({id, node.rpc_address, node.admin_address, node.live ? "yes" : "NO",
                  node.ring_state, std::to_string(node.ring_tokens)});
  }
  return table.Render();
}

}  // namespace weft::cli
