// Library return codes (ZOK, ZNONODE, ...) as Statuses. Internal to the ZooKeeper backend.
#pragma once

#include <string_view>

#include "base/status.h"

namespace weft::cluster {

// A lost connection, a timed-out call or an expired handle: worth retrying a little later.
bool IsTransientZooKeeperError(int rc);

// "zookeeper <call> <path>: ..." with NotFound, AlreadyExists, Aborted (a version mismatch),
// Unavailable (unreachable, or the session is being replaced) or IOError (anything else).
Status ZooKeeperStatus(int rc, std::string_view call, std::string_view path);

}  // namespace weft::cluster
