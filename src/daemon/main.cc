// weftd: one node of weft. Wiring only: options, the storage node, the NBD server, the admin
// API, signals. With no arguments it is the embedded single-node default (README.md).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <thread>

#include "admin/admin_http_server.h"
#include "base/size_format.h"
#include "daemon/cluster_node.h"
#include "daemon/daemon_options.h"
#include "daemon/node_admin_service.h"
#include "daemon/storage_node.h"
#include "daemon/vdisk_exports.h"
#include "env/reactor.h"
#include "frontend/nbd/nbd_server.h"

namespace weft::daemon {
namespace {

constexpr int kExitUsage = 2;
constexpr int kExitStartFailed = 1;

int Run(const DaemonOptions& options) {
  Result<std::pair<std::string, uint16_t>> admin_address =
      ParseHostPort("--listen-admin", options.listen_admin);
  Result<std::pair<std::string, uint16_t>> nbd_address =
      ParseHostPort("--listen-nbd", options.listen_nbd);
  for (const Status& status : {admin_address.status(), nbd_address.status()}) {
    if (!status.ok()) {
      std::fprintf(stderr, "weftd: %s\n", status.message().c_str());
      return kExitUsage;
    }
  }
  env::Reactor reactor;
  StorageNode node(reactor, options);
  if (const Status opened = node.Open(); !opened.ok()) {
    spdlog::critical("cannot start: {}", opened.ToString());
    return kExitStartFailed;
  }
  Result<std::unique_ptr<ClusterNode>> cluster = ClusterNode::Open(
      ClusterNodeOptions{.node_id = options.node_id,
                         .zookeeper = options.zookeeper,
                         .zookeeper_root = options.zookeeper_root,
                         .zookeeper_session_timeout_ms = options.zookeeper_session_timeout_ms,
                         .data_dir = options.data_dir,
                         .admin_address = options.listen_admin,
                         .rpc_address = options.listen_rpc,
                         .ring_tick_ms = options.ring_tick_ms},
      node.local_metadata());
  if (!cluster.ok()) {
    spdlog::critical("cannot join the cluster: {}", cluster.status().ToString());
    (void)node.Close();
    return kExitStartFailed;
  }
  VdiskExports exports(node.manager());
  nbd::NbdServerOptions nbd_options;
  nbd_options.tcp_listen = {options.listen_nbd};
  nbd_options.unix_socket_path = options.listen_nbd_unix;
  nbd_options.max_connections = options.max_nbd_connections;
  nbd::NbdServer nbd_server(reactor.io_context(), exports, nbd_options);
  if (const Status started = nbd_server.Start(); !started.ok()) {
    spdlog::critical("cannot start the NBD server: {}", started.ToString());
    return kExitStartFailed;
  }
  NodeAdminService service(reactor, node, nbd_server,
                           NodeAddresses{options.listen_nbd, options.listen_admin}, **cluster);
  admin::AdminHttpServerOptions admin_options;
  admin_options.host = admin_address->first;
  admin_options.port = admin_address->second;
  admin::AdminHttpServer admin_server(service, admin_options);
  if (const Status started = admin_server.Start(); !started.ok()) {
    spdlog::critical("cannot start the admin API: {}", started.ToString());
    nbd_server.Stop();
    return kExitStartFailed;
  }
  spdlog::info("weftd ready: NBD on {}{}{}, admin API on http://{}", options.listen_nbd,
               options.listen_nbd_unix.empty() ? "" : " and unix:", options.listen_nbd_unix,
               options.listen_admin);

  asio::signal_set signals(reactor.io_context(), SIGTERM, SIGINT);
  signals.async_wait([&](const asio::error_code& error, int signal_number) {
    if (error) return;
    spdlog::info("signal {}: stopping", signal_number);
    service.Shutdown();
    nbd_server.Stop();  // Answers requests already in flight, then closes connections.
    reactor.Stop();
  });
  reactor.Run();

  // Stopping: the admin server's workers may wait on the reactor, so keep it running while
  // they finish, and until the NBD connections and every vDisk's I/O are done.
  std::atomic<bool> admin_stopped{false};
  std::thread admin_stopper([&] {
    admin_server.Stop();
    admin_stopped = true;
    reactor.Post([] {});  // Wakes the loop to see the flag.
  });
  reactor.RunUntil([&] {
    return admin_stopped.load() && nbd_server.connection_count() == 0 &&
           node.manager().inflight_operations() == 0;
  });
  admin_stopper.join();
  (*cluster)->Close();
  const Status closed = node.Close();
  if (!closed.ok()) {
    spdlog::error("shutdown: {}", closed.ToString());
    return kExitStartFailed;
  }
  spdlog::info("weftd stopped cleanly");
  return 0;
}

}  // namespace
}  // namespace weft::daemon

int main(int argc, char** argv) {
  weft::daemon::DaemonOptions options;
  CLI::App app{
      "weftd: a weft storage node. With no options it runs the embedded single-node default:\n"
      "data in ./weft-data (one 16 GiB sparse disk file and a container 'default' on first\n"
      "start), NBD on 127.0.0.1:10809, admin API on 127.0.0.1:9440.",
      "weftd"};
  std::vector<std::string> disk_texts;
  app.add_option("--data-dir", options.data_dir, "Node state directory")->capture_default_str();
  app.add_option("--disk", disk_texts,
                 "A disk: PATH[:SIZE][:ssd|hdd] (file or block device; a missing file is "
                 "created with SIZE, default 16G; the OpLogs and the cache's SSD tier go to the "
                 "first ssd disk, else the first disk). Repeatable. Disks already in the data "
                 "dir are kept.");
  app.add_option("--listen-nbd", options.listen_nbd, "NBD TCP address HOST:PORT")
      ->capture_default_str();
  app.add_option("--listen-nbd-unix", options.listen_nbd_unix,
                 "Also serve NBD on this Unix socket");
  app.add_option("--listen-admin", options.listen_admin, "Admin HTTP API address HOST:PORT")
      ->capture_default_str();
  app.add_option("--log-level", options.log_level, "trace, debug, info, warn, error, critical")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--max-nbd-connections", options.max_nbd_connections,
                 "NBD connections served at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app.add_option("--node-id", options.node_id,
                 "This node's id in the cluster configuration (cluster mode)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1000000u));
  app.add_option("--zookeeper", options.zookeeper,
                 "Join the cluster whose configuration is in this ZooKeeper ensemble "
                 "(HOST:PORT[,HOST:PORT...]; written by `weft cluster create`). Without it weftd "
                 "is a single node");
  app.add_option("--zookeeper-root", options.zookeeper_root, "The cluster's znode")
      ->capture_default_str();
  app.add_option("--zookeeper-session-timeout-ms", options.zookeeper_session_timeout_ms,
                 "ZooKeeper session timeout; a node whose session expires fences itself")
      ->capture_default_str()
      ->check(CLI::Range(2000, 60000));
  app.add_option("--listen-rpc", options.listen_rpc,
                 "Single node: the RPC address recorded for it (a cluster node listens on the "
                 "address in the cluster configuration)")
      ->capture_default_str();
  app.add_option("--ring-tick-ms", options.ring_tick_ms, "Metadata ring timer tick")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  std::string oplog_switch = "on";
  std::string oplog_size_text = "128M";
  std::string sequential_text = "1.5M";
  std::string cache_size_text;
  std::string cache_ssd_text = "1G";
  app.add_option("--oplog", oplog_switch, "The per-vDisk OpLog (write buffer): on or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option("--oplog-size", oplog_size_text,
                 "OpLog space per vDisk (writes wait for the drain when it is full; at least "
                 "32M)")
      ->capture_default_str();
  app.add_option("--oplog-sequential-threshold", sequential_text,
                 "With more than this many bytes of writes outstanding on a vDisk, writes are "
                 "sequential and bypass the OpLog")
      ->capture_default_str();
  app.add_option("--cache-size", cache_size_text,
                 "Unified Cache memory (default: (RAM - 12 GiB) * 0.45, at least 256M)");
  app.add_option("--cache-ssd-size", cache_ssd_text,
                 "The cache's SSD tier on the fast disk (0: none; at most a sixteenth of the disk)")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  for (const std::string& text : disk_texts) {
    weft::Result<weft::daemon::DiskSpec> spec = weft::daemon::ParseDiskSpec(text);
    if (!spec.ok()) {
      std::fprintf(stderr, "weftd: %s\n", spec.status().message().c_str());
      return 2;
    }
    options.disks.push_back(*spec);
  }
  auto size_option = [](const char* flag, const std::string& text, uint64_t minimum,
                        uint64_t* out) {
    if (minimum == 0 && text == "0") {  // "0" turns the feature off.
      *out = 0;
      return true;
    }
    weft::Result<uint64_t> size = weft::ParseSize(text);
    if (!size.ok()) {
      std::fprintf(stderr, "weftd: %s %s: %s\n", flag, text.c_str(),
                   size.status().message().c_str());
      return false;
    }
    if (*size < minimum) {
      std::fprintf(stderr, "weftd: %s %s: at least %llu bytes\n", flag, text.c_str(),
                   static_cast<unsigned long long>(minimum));
      return false;
    }
    *out = *size;
    return true;
  };
  options.oplog = oplog_switch == "on";
  if (!size_option("--oplog-size", oplog_size_text, 2 * weft::daemon::kOplogSegmentBytes,
                   &options.oplog_size_bytes) ||
      !size_option("--oplog-sequential-threshold", sequential_text, 4096,
                   &options.oplog_sequential_threshold_bytes) ||
      (!cache_size_text.empty() &&
       !size_option("--cache-size", cache_size_text, 1 << 20, &options.cache_memory_bytes)) ||
      !size_option("--cache-ssd-size", cache_ssd_text, 0, &options.cache_ssd_bytes)) {
    return 2;
  }
  options.oplog_size_bytes = options.oplog_size_bytes / weft::daemon::kOplogSegmentBytes *
                             weft::daemon::kOplogSegmentBytes;
  spdlog::set_level(spdlog::level::from_str(options.log_level));
  // A client that disconnects mid-reply must not kill the daemon.
  std::signal(SIGPIPE, SIG_IGN);
  return weft::daemon::Run(options);
}
