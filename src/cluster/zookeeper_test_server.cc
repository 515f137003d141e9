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

Result<std::unique_ptr<ZooKeeperTestServer>> ZooKeeperTestServer::Start() {
  std::string pattern = (fs::temp_directory_path() / "weft-zk-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) return Status::FromErrno(errno, "mkdtemp");
  WEFT_ASSIGN_OR_RETURN(const uint16_t port, FreePort());
  std::unique_ptr<ZooKeeperTestServer> server(new ZooKeeperTestServer(pattern, port));
  fs::create_directories(fs::path(pattern) / "data");
  std::ofstream config(fs::path(pattern) / "zoo.cfg");
  // forceSync=no: the test server's log survives a killed process (it is in the page cache), and
  // fsync costs would only slow the tests. preAllocSize keeps log files small.
  config << "tickTime=500\n"
         << "minSessionTimeout=1000\nmaxSessionTimeout=60000\n"
         << "dataDir=" << (fs::path(pattern) / "data").string() << "\n"
         << "clientPort=" << port << "\nclientPortAddress=127.0.0.1\n"
         << "admin.enableServer=false\nforceSync=no\npreAllocSize=4096\n";
  config.close();
  if (!config) return Status::IOError("writing zoo.cfg in " + pattern);
  WEFT_RETURN_IF_ERROR(server->Launch());
  return server;
}

ZooKeeperTestServer::ZooKeeperTestServer(std::string directory, uint16_t port)
    : directory_(std::move(directory)), port_(port) {}

ZooKeeperTestServer::~ZooKeeperTestServer() {
  if (running()) Kill();
  std::error_code error;
  fs::remove_all(directory_, error);
}

std::string ZooKeeperTestServer::connect_string() const {
  return fmt::format("127.0.0.1:{}", port_);
}

Status ZooKeeperTestServer::Launch() {
  WEFT_ASSERT(!running());
  const std::string log_path = directory_ + "/server.log";
  const std::string class_path = directory_ + ":/usr/share/java/zookeeper.jar";
  const std::string config_path = directory_ + "/zoo.cfg";
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
    ::execlp("java", "java", "-Xmx128m", "-cp", class_path.c_str(),
             "org.apache.zookeeper.server.ZooKeeperServerMain", config_path.c_str(), nullptr);
    ::_exit(127);
  }
  pid_ = pid;
  return WaitForSession();
}

Status ZooKeeperTestServer::WaitForSession() {
  zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
  zhandle_t* handle = zookeeper_init2(connect_string().c_str(), &IgnoreWatch, 10000, nullptr,
                                      nullptr, 0, &IgnoreLog);
  if (handle == nullptr) return Status::FromErrno(errno, "zookeeper_init");
  const auto deadline = Clock::now() + kSessionWaitMax;
  bool connected = false;
  while (Clock::now() < deadline) {
    int exit_status = 0;
    if (::waitpid(pid_, &exit_status, WNOHANG) == pid_) {
      pid_ = -1;
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
  if (running()) Kill();
  return Status::Unavailable(fmt::format(
      "zookeeper test server on port {} did not accept a session; log:\n{}", port_, LogTail()));
}

void ZooKeeperTestServer::Signal(int signal_number) {
  if (!running()) return;
  ::kill(pid_, signal_number);
  const auto deadline = Clock::now() + kStopWaitMax;
  for (;;) {
    int exit_status = 0;
    const pid_t waited = ::waitpid(pid_, &exit_status, WNOHANG);
    if (waited == pid_ || (waited < 0 && errno == ECHILD)) break;
    if (Clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &exit_status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
}

void ZooKeeperTestServer::Stop() { Signal(SIGTERM); }

void ZooKeeperTestServer::Kill() { Signal(SIGKILL); }

Status ZooKeeperTestServer::Restart() {
  if (running()) Stop();
  return Launch();
}

std::string ZooKeeperTestServer::LogTail() const {
  std::ifstream log(directory_ + "/server.log");
  std::stringstream text;
  text << log.rdbuf();
  const std::string all = text.str();
  return all.size() > kLogTailBytes ? all.substr(all.size() - kLogTailBytes) : all;
}

}  // namespace weft::cluster
