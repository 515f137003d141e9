// Text forms of the cluster view (GET /api/v1/cluster) shared by `weft cluster show` and
// `weft status`.
#pragma once

#include <string>

#include "admin/admin_service.h"

namespace weft::cli {

// "cluster 'prod' (8a3f...): backend zookeeper, RF 2 (3 ring replicas), ring epoch 1, config
// version 0, not fenced, session connected". A single node: "single node: backend local, ...".
std::string ClusterHeadline(const admin::ClusterView& cluster);

// "3 of 3 live".
std::string LiveNodesSummary(const admin::ClusterView& cluster);

// One row per node: NODE (the node answering is marked "(self)"), RPC, ADMIN, LIVE, RING,
// TOKENS. "" when the view has no nodes.
std::string RenderClusterNodes(const admin::ClusterView& cluster);

}  // namespace weft::cli
