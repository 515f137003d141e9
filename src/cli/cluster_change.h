// weft cluster add-node / remove-node: ring changes, written to the cluster configuration in
// ZooKeeper (cluster/config_changes.h). The nodes follow the configuration: a joining node
// streams its ranges of the metadata ring and, once done, marks itself NORMAL; a leaving node's
// ranges are streamed by the lowest-id live NORMAL node, which then removes it
// (docs/protocol/ring.md).
#pragma once

#include "cli/commands.h"

namespace weft::cli {

void AddClusterChangeCommands(CLI::App& group, const GlobalOptions& options, Action& action);

}  // namespace weft::cli
