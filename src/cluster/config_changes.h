// Changes of the cluster configuration that move the metadata ring, as pure functions on a
// ClusterConfig (the caller stores the result with CompareAndSetConfig). A change moves one node
// at a time through the ring states of docs/protocol/ring.md:
//   join:  (absent) -> JOINING (epoch+1) -> streamed -> NORMAL (epoch+1)
//   leave: NORMAL -> LEAVING (epoch+1) -> streamed -> removed (epoch+1)
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "cluster/cluster_config.pb.h"

namespace weft::cluster {

// Adds a node as JOINING with fresh ring tokens. InvalidArgument if another ring change is under
// way or the result does not validate; AlreadyExists if the id is taken.
Result<ClusterConfig> AddJoiningNode(const ClusterConfig& config, uint32_t node_id,
                                     const std::string& rpc_address,
                                     const std::string& admin_address);

// Marks a NORMAL node LEAVING. InvalidArgument if another change is under way or it is the last
// NORMAL node; NotFound for an unknown id.
Result<ClusterConfig> MarkNodeLeaving(const ClusterConfig& config, uint32_t node_id);

// Completes the change whose stream finished at `epoch`: the JOINING node becomes NORMAL, or the
// LEAVING node is removed. Aborted if the config is no longer at `epoch` with that change (some
// other writer completed or replaced it).
Result<ClusterConfig> CompleteRingChange(const ClusterConfig& config, uint64_t epoch);

// The node that is joining or leaving, or 0.
uint32_t ChangingNode(const ClusterConfig& config);

}  // namespace weft::cluster
