// ZooKeeperTestServer: real ZooKeeper servers for tests (linked into tests only): one standalone
// server (`java ... org.apache.zookeeper.server.ZooKeeperServerMain zoo.cfg`), or an ensemble of
// three (`...server.quorum.QuorumPeerMain`). Each runs on 127.0.0.1 and a free port, with its data
// dir in a fresh temporary directory (removed by the destructor), and counts as started once a real
// client session is established on it (ZooKeeper answers `ruok` ~1 s before it accepts sessions; an
// ensemble member accepts them only once a quorum is up). Sessions may be 1 to 60 s long
// (tickTime 500 ms). Servers die with the test process (PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace weft::cluster {

class ZooKeeperTestServer {
 public:
  // `servers`: 1 or 3. Unavailable (with the server log's tail) if java is missing or a server
  // accepts no session within 60 s.
  static Result<std::unique_ptr<ZooKeeperTestServer>> Start(int servers = 1);
  ~ZooKeeperTestServer();  // Kills the servers that run, then removes the directory.
  ZooKeeperTestServer(const ZooKeeperTestServer&) = delete;
  ZooKeeperTestServer& operator=(const ZooKeeperTestServer&) = delete;

  // SIGTERM, and waits for the exit (SIGKILL after 20 s). All servers, or one.
  void Stop();
  void Stop(int index);
  // SIGKILL, and waits for the exit: a crash.
  void Kill();
  void Kill(int index);
  // Starts again on the same ports and data dirs (sessions and znodes survive), and waits for a
  // session on each.
  Status Restart();
  Status Restart(int index);

  int server_count() const { return static_cast<int>(servers_.size()); }
  bool running(int index = 0) const { return servers_.at(index).pid > 0; }
  std::string connect_string() const;  // "127.0.0.1:<port>[,...]": every server.
  std::string address(int index) const;
  const std::string& directory() const { return directory_; }

 private:
  struct Server {
    std::string directory;
    uint16_t client_port = 0;
    pid_t pid = -1;
  };

  explicit ZooKeeperTestServer(std::string directory);
  Status Launch(int index);
  Status WaitForSession(int index);
  std::string LogTail(int index) const;
  void Signal(int index, int signal_number);

  const std::string directory_;
  std::vector<Server> servers_;
};

}  // namespace weft::cluster
