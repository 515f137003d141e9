#include "cluster/zookeeper_errors.h"

#include <fmt/format.h>
#include <zookeeper/zookeeper.h>

#include <string>

namespace weft::cluster {

bool IsTransientZooKeeperError(int rc) {
  return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZINVALIDSTATE ||
         rc == ZSESSIONEXPIRED || rc == ZSESSIONMOVED;
}

Status ZooKeeperStatus(int rc, std::string_view call, std::string_view path) {
  WEFT_ASSERT(rc != ZOK);
  const std::string where = fmt::format("zookeeper {} {}", call, path);
  if (rc == ZNONODE) return Status::NotFound(where + ": no such znode");
  if (rc == ZNODEEXISTS) return Status::AlreadyExists(where + ": the znode exists");
  if (rc == ZBADVERSION) return Status::Aborted(where + ": version mismatch");
  if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT) {
    return Status::Unavailable(fmt::format("{}: {} (ZooKeeper unreachable)", where, zerror(rc)));
  }
  if (rc == ZINVALIDSTATE || rc == ZSESSIONEXPIRED || rc == ZSESSIONMOVED) {
    return Status::Unavailable(where + ": the session expired; a new one is being opened");
  }
  if (rc == ZCLOSING) return Status::Unavailable(where + ": the cluster backend is closed");
  return Status::IOError(fmt::format("{}: {} ({})", where, zerror(rc), rc));
}

}  // namespace weft::cluster
