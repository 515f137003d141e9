#include "cluster/zookeeper_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace weft::cluster {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr auto kSessionWaitMax = std::chrono::seconds(60);
constexpr auto kStopWaitMax = std::chrono::seconds(20);
constexpr size_t kLogTailBytes = 4000;

Result<uint16_t> FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const int error = errno;
    ::close(fd);
    return Status::FromErrno(error, "binding a free port");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

void IgnoreWatch(zhandle_t*, int, int, const char*, void*) {}
void IgnoreLog(const char*) {}  // Refused connections while the server starts are expected.

}  // namespace

Result<std::unique_ptr<ZooKeeperTestServer>> ZooKeeperTestServer::Start(int servers) {
  WEFT_ASSERT(servers == 1 || servers == 3);
  std::string pattern = (fs::temp_directory_path() / "weft-zk-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) return Status::FromErrno(errno, "mkdtemp");
  std::unique_ptr<ZooKeeperTestServer> ensemble(new ZooKeeperTestServer(pattern));
  std::vector<std::pair<uint16_t, uint16_t>> peer_ports;  // Quorum and election, per server.
  for (int i = 0; i < servers; ++i) {
    Server server;
    server.directory = fmt::format("{}/server{}", pattern, i + 1);
    WEFT_ASSIGN_OR_RETURN(server.client_port, FreePort());
    WEFT_ASSIGN_OR_RETURN(const uint16_t quorum_port, FreePort());
    WEFT_ASSIGN_OR_RETURN(const uint16_t election_port, FreePort());
    peer_ports.emplace_back(quorum_port, election_port);
    ensemble->servers_.push_back(server);
  }
  for (int i = 0; i < servers; ++i) {
    const Server& server = ensemble->servers_[i];
    fs::create_directories(fs::path(server.directory) / "data");
    std::ofstream config(fs::path(server.directory) / "zoo.cfg");
    // forceSync=no: the log survives a killed server (it is in the page cache), and fsync costs
    // would only slow the tests. preAllocSize keeps log files small.
    config << "tickTime=500\ninitLimit=20\nsyncLimit=10\n"
           << "minSessionTimeout=1000\nmaxSessionTimeout=60000\n"
           << "dataDir=" << server.directory << "/data\n"
           << "clientPort=" << server.client_port << "\nclientPortAddress=127.0.0.1\n"
           << "admin.enableServer=false\nforceSync=no\npreAllocSize=4096\n";
    if (servers > 1) {
      std::ofstream(fs::path(server.directory) / "data" / "myid") << i + 1 << "\n";
      for (int peer = 0; peer < servers; ++peer) {
        config << "server." << peer + 1 << "=127.0.0.1:" << peer_ports[peer].first << ":"
               << peer_ports[peer].second << "\n";
      }
    }
    config.close();
    if (!config) return Status::IOError("writing zoo.cfg in " + server.directory);
  }
  // All launched before any is waited for: an ensemble member serves only with a quorum.
  for (int i = 0; i < servers; ++i) WEFT_RETURN_IF_ERROR(ensemble->Launch(i));
  for (int i = 0; i < servers; ++i) WEFT_RETURN_IF_ERROR(ensemble->WaitForSession(i));
  return ensemble;
}

ZooKeeperTestServer::ZooKeeperTestServer(std::string directory)
    : directory_(std::move(directory)) {}

ZooKeeperTestServer::~ZooKeeperTestServer() {
  Kill();
  std::error_code error;
  fs::remove_all(directory_, error);
}

std::string ZooKeeperTestServer::address(int index) const {
  return fmt::format("127.0.0.1:{}", servers_.at(index).client_port);
}

std::string ZooKeeperTestServer::connect_string() const {
  std::string addresses;
  for (int i = 0; i < server_count(); ++i) addresses += (i == 0 ? "" : ",") + address(i);
  return addresses;
}

Status ZooKeeperTestServer::Launch(int index) {
  Server& server = servers_.at(index);
  WEFT_ASSERT(server.pid <= 0);
  const std::string log_path = server.directory + "/server.log";
  const std::string class_path = server.directory + ":/usr/share/java/zookeeper.jar";
  const std::string config_path = server.directory + "/zoo.cfg";
  const int servers_count = server_count();
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return Status::FromErrno(errno, "fork");
  if (pid == 0) {
    // The server must not outlive a test that crashes.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log >= 0) {
      ::dup2(log, STDOUT_FILENO);
      ::dup2(log, STDERR_FILENO);
    }
    // ZooKeeperServerMain ignores server.N lines: an ensemble member needs QuorumPeerMain.
    const char* main_class = servers_count > 1 ? "org.apache.zookeeper.server.quorum.QuorumPeerMain"
                                               : "org.apache.zookeeper.server.ZooKeeperServerMain";
    ::execlp("java", "java", "-Xmx128m", "-cp", class_path.c_str(), main_class, config_path.c_str(),
             nullptr);
    ::_exit(127);
  }
  server.pid = pid;
  return Status::Ok();
}

Status ZooKeeperTestServer::WaitForSession(int index) {
  Server& server = servers_.at(index);
  zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
  zhandle_t* handle =
      zookeeper_init2(address(index).c_str(), &IgnoreWatch, 10000, nullptr, nullptr, 0, &IgnoreLog);
  if (handle == nullptr) return Status::FromErrno(errno, "zookeeper_init");
  const auto deadline = Clock::now() + kSessionWaitMax;
  bool connected = false;
  while (Clock::now() < deadline) {
    int exit_status = 0;
    if (::waitpid(server.pid, &exit_status, WNOHANG) == server.pid) {
      server.pid = -1;
      break;
    }
    Stat stat{};
    if (zoo_state(handle) == ZOO_CONNECTED_STATE && zoo_exists(handle, "/", 0, &stat) == ZOK) {
      connected = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  zookeeper_close(handle);
  if (connected) return Status::Ok();
  Kill(index);
  return Status::Unavailable(
      fmt::format("zookeeper test server {} ({}) did not accept a session; log:\n{}", index + 1,
                  address(index), LogTail(index)));
}

void ZooKeeperTestServer::Signal(int index, int signal_number) {
  Server& server = servers_.at(index);
  if (server.pid <= 0) return;
  ::kill(server.pid, signal_number);
  const auto deadline = Clock::now() + kStopWaitMax;
  for (;;) {
    int exit_status = 0;
    const pid_t waited = ::waitpid(server.pid, &exit_status, WNOHANG);
    if (waited == server.pid || (waited < 0 && errno == ECHILD)) break;
    if (Clock::now() >= deadline) {
      ::kill(server.pid, SIGKILL);
      ::waitpid(server.pid, &exit_status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  server.pid = -1;
}

void ZooKeeperTestServer::Stop(int index) { Signal(index, SIGTERM); }

void ZooKeeperTestServer::Kill(int index) { Signal(index, SIGKILL); }

void ZooKeeperTestServer::Stop() {
  for (int i = 0; i < server_count(); ++i) Stop(i);
}

void ZooKeeperTestServer::Kill() {
  for (int i = 0; i < server_count(); ++i) Kill(i);
}

Status ZooKeeperTestServer::Restart(int index) {
  Stop(index);
  WEFT_RETURN_IF_ERROR(Launch(index));
  return WaitForSession(index);
}

Status ZooKeeperTestServer::Restart() {
  Stop();
  for (int i = 0; i < server_count(); ++i) WEFT_RETURN_IF_ERROR(Launch(i));
  for (int i = 0; i < server_count(); ++i) WEFT_RETURN_IF_ERROR(WaitForSession(i));
  return Status::Ok();
}

std::string ZooKeeperTestServer::LogTail(int index) const {
  std::ifstream log(servers_.at(index).directory + "/server.log");
  std::stringstream text;
  text << log.rdbuf();
  const std::string all = text.str();
  return all.size() > kLogTailBytes ? all.substr(all.size() - kLogTailBytes) : all;
}

}  // namespace weft::cluster
