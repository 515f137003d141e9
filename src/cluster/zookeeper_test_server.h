// ZooKeeperTestServer: a real, standalone ZooKeeper server for tests (linked into tests only).
// It runs `java ... org.apache.zookeeper.server.ZooKeeperServerMain zoo.cfg` on 127.0.0.1 and a
// free port, with its data dir in a fresh temporary directory (removed by the destructor), and
// counts as started once a real client session is established (ZooKeeper answers `ruok` ~1 s
// before it accepts sessions). Sessions may be 1 to 60 s long (tickTime 500 ms).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"

namespace weft::cluster {

class ZooKeeperTestServer {
 public:
  // Unavailable (with the server log's tail) if java is missing or no session comes in 60 s.
  static Result<std::unique_ptr<ZooKeeperTestServer>> Start();
  ~ZooKeeperTestServer();  // Kills the server if it runs, then removes its directory.
  ZooKeeperTestServer(const ZooKeeperTestServer&) = delete;
  ZooKeeperTestServer& operator=(const ZooKeeperTestServer&) = delete;

  // SIGTERM, and waits for the exit (SIGKILL after 20 s).
  void Stop();
  // SIGKILL, and waits for the exit: a crash.
  void Kill();
  // Starts again on the same port and data dir (sessions and znodes survive), and waits for a
  // session.
  Status Restart();

  bool running() const { return pid_ > 0; }
  std::string connect_string() const;  // "127.0.0.1:<port>"
  const std::string& directory() const { return directory_; }

 private:
  ZooKeeperTestServer(std::string directory, uint16_t port);
  Status Launch();
  Status WaitForSession();
  std::string LogTail() const;
  void Signal(int signal_number);

  const std::string directory_;
  const uint16_t port_;
  pid_t pid_ = -1;
};

}  // namespace weft::cluster
