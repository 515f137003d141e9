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
#include "metadata/posting_metadata_store.h"
#include "replication/data_rpc.h"
#include "replication/data_service.h"
#include "replication/peer_client.h"
#include "rpc/rpc_server.h"

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
  // Cluster mode: the data RPC server and the peer client run on the reactor (no thread
  // hand-off on the replicated write path); the data service serves other owners' copies.
  std::unique_ptr<replication::DataService> data_service;
  std::unique_ptr<rpc::RpcServer> data_server;
  std::unique_ptr<replication::PeerClient> peer_client;
  uint64_t free_bytes = 0;
  for (const vdisk::NodeDisk& disk : node.disks()) free_bytes += disk.free_bytes();
  auto start_data_server = [&](const std::string& rpc_host) -> Result<std::string> {
    std::string listen = options.listen_data.empty() ? rpc_host + ":0" : options.listen_data;
    WEFT_ASSIGN_OR_RETURN(rpc::Endpoint endpoint, rpc::Endpoint::Parse(listen));
    replication::DataServiceOptions service_options;
    service_options.disks = &node.disks();
    service_options.oplog_files = node.oplog_files();
    service_options.oplog = node.io_options().oplog;
    service_options.executor = [&reactor](std::function<void()> task) {
      reactor.Post(std::move(task));
    };
    service_options.owns_vdisk = [&node](uint64_t vdisk_id) {
      return node.manager_open() && node.manager().ServesVdisk(vdisk_id);
    };
    data_service = std::make_unique<replication::DataService>(std::move(service_options));
    data_server = std::make_unique<rpc::RpcServer>(
        reactor.io_context(),
        rpc::RpcServerOptions{.listen_host = endpoint.host, .port = endpoint.port},
        [&data_service](const rpc::Message& request, rpc::IncomingContext, rpc::ReplyFn reply) {
          data_service->Handle(request, std::move(reply));
        });
    WEFT_RETURN_IF_ERROR(data_server->Start());
    endpoint.port = data_server->port();
    spdlog::info("data RPC on {}", endpoint.ToString());
    return endpoint.ToString();
  };
  Result<std::unique_ptr<ClusterNode>> cluster = ClusterNode::Open(
      ClusterNodeOptions{.node_id = options.node_id,
                         .zookeeper = options.zookeeper,
                         .zookeeper_root = options.zookeeper_root,
                         .zookeeper_session_timeout_ms = options.zookeeper_session_timeout_ms,
                         .data_dir = options.data_dir,
                         .admin_address = options.listen_admin,
                         .rpc_address = options.listen_rpc,
                         .ring_tick_ms = options.ring_tick_ms,
                         .start_data_server = start_data_server,
                         .free_bytes = free_bytes,
                         .fault_domain = options.fault_domain},
      node.local_metadata());
  if (!cluster.ok()) {
    spdlog::critical("cannot join the cluster: {}", cluster.status().ToString());
    (void)node.Close();
    return kExitStartFailed;
  }
  ClusterNode& cluster_node = **cluster;
  std::unique_ptr<metadata::PostingMetadataStore> catalogue_metadata;
  Status catalogue;
  if (cluster_node.clustered()) {
    catalogue_metadata = std::make_unique<metadata::PostingMetadataStore>(
        cluster_node.metadata(),
        [&reactor](std::function<void()> task) { reactor.Post(std::move(task)); });
    peer_client = std::make_unique<replication::PeerClient>(
        reactor.io_context(), replication::PeerClientOptions{.local_node_id = options.node_id,
                                                             .may_acknowledge = [&cluster_node] {
                                                               return !cluster_node.fenced();
                                                             }});
    // A takeover first closes this node's replica OpLog of the vDisk and fences the old owner
    // everywhere it can reach (docs/protocol/replication.md).
    auto prepare_takeover = [&](uint64_t vdisk_id, uint64_t epoch, vdisk::Completion done) {
      data_service->ReleaseOplog(vdisk_id, [&, vdisk_id, epoch, done](Status released) mutable {
        if (!released.ok()) return done(released);
        data_service->Fence(vdisk_id, epoch);
        std::vector<vdisk::PeerNode> peers = peer_client->LivePeers();
        auto remaining = std::make_shared<size_t>(peers.size() + 1);
        auto one = [remaining, done](Status) mutable {
          if (--*remaining == 0) done(Status::Ok());
        };
        for (const vdisk::PeerNode& peer : peers) {
          peer_client->Fence(peer.node_id, vdisk_id, epoch, one);
        }
        one(Status::Ok());
      });
    };
    catalogue = node.OpenCatalogue(*catalogue_metadata, peer_client.get(),
                                   cluster_node.node_count(), prepare_takeover);
  } else {
    catalogue = node.OpenCatalogue(node.local_metadata(), nullptr, 1, nullptr);
  }
  if (!catalogue.ok()) {
    spdlog::critical("cannot start: {}", catalogue.ToString());
    cluster_node.Close();
    (void)node.Close();
    return kExitStartFailed;
  }
  if (cluster_node.clustered()) {
    // Members come on a backend thread; the peer list and takeovers live on the reactor.
    cluster_node.WatchMembers([&](std::map<uint32_t, ClusterNode::Member> members) {
      reactor.Post([&, members = std::move(members)] {
        std::map<uint32_t, replication::PeerMember> peers;
        std::vector<uint32_t> live;
        for (const auto& [node_id, member] : members) {
          live.push_back(node_id);
          Result<rpc::Endpoint> endpoint = rpc::Endpoint::Parse(member.data_address);
          if (!endpoint.ok()) continue;  // A node of an older version: not a data peer.
          peers.emplace(node_id,
                        replication::PeerMember{*endpoint, member.free_bytes, member.fault_domain});
        }
        peer_client->SetMembers(std::move(peers));
        node.manager().OnMembersChanged(std::move(live));
      });
    });
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
                           NodeAddresses{options.listen_nbd, options.listen_admin}, cluster_node);
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
  if (data_server != nullptr) data_server->Stop();  // No more requests from peers.
  if (data_service != nullptr) {
    bool released = false;
    data_service->Close([&released] { released = true; });
    reactor.RunUntil([&released] { return released; });
  }
  // The catalogue first: a drain in flight may still need the ring and the peers.
  const Status closed = node.Close();
  cluster_node.Close();
  if (peer_client != nullptr) peer_client->Close();
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
  app.add_option("--listen-data", options.listen_data,
                 "Cluster mode: the data RPC address HOST:PORT (replication between nodes; "
                 "default: the RPC address's host and a free port, published to the cluster)");
  app.add_option("--fault-domain", options.fault_domain,
                 "Cluster mode: this node's fault domain (block or rack name); no two copies of "
                 "a vDisk's data go to nodes of one domain");
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
