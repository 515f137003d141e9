#include "daemon/cluster_node.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <nlohmann/json.hpp>

#include "base/assert.h"
#include "base/uuid.h"
#include "cluster/cluster_config.h"
#include "cluster/config_changes.h"
#include "cluster/local_cluster_backend.h"
#include "cluster/zookeeper_cluster_backend.h"

namespace weft::daemon {

namespace {

using metadata::ring::MemberState;
using metadata::ring::RingConfig;
using metadata::ring::RingMember;

std::string_view RingStateName(cluster::RingState state) {
  switch (state) {
    case cluster::RING_STATE_JOINING:
      return "joining";
    case cluster::RING_STATE_LEAVING:
      return "leaving";
    default:
      return "normal";
  }
}

Result<RingConfig> RingFrom(const cluster::ClusterConfig& config) {
  RingConfig ring{.epoch = config.ring_epoch(),
                  .replicas = config.redundancy_factor() == 3 ? 5u : 3u};
  for (const cluster::NodeConfig& node : config.nodes()) {
    RingMember member{.node = node.node_id()};
    member.tokens.assign(node.ring_tokens().begin(), node.ring_tokens().end());
    member.state = node.ring_state() == cluster::RING_STATE_JOINING   ? MemberState::kJoining
                   : node.ring_state() == cluster::RING_STATE_LEAVING ? MemberState::kLeaving
                                                                      : MemberState::kNormal;
    ring.members.push_back(std::move(member));
  }
  if (Status valid = metadata::ring::ValidateRingConfig(ring); !valid.ok()) {
    return Status::InvalidArgument(fmt::format(
        "the cluster configuration's metadata ring is not usable: {}", valid.message()));
  }
  return ring;
}

std::map<metadata::ring::NodeId, rpc::Endpoint> PeersFrom(const cluster::ClusterConfig& config) {
  std::map<metadata::ring::NodeId, rpc::Endpoint> peers;
  for (const cluster::NodeConfig& node : config.nodes()) {
    Result<rpc::Endpoint> endpoint = rpc::Endpoint::Parse(node.rpc_address());
    if (endpoint.ok()) peers[node.node_id()] = *endpoint;
  }
  return peers;
}

const cluster::NodeConfig* FindNode(const cluster::ClusterConfig& config, uint32_t node_id) {
  for (const cluster::NodeConfig& node : config.nodes()) {
    if (node.node_id() == node_id) return &node;
  }
  return nullptr;
}

}  // namespace

ClusterNode::ClusterNode(ClusterNodeOptions options, metadata::MetadataStore& local_metadata)
    : options_(std::move(options)), local_metadata_(local_metadata) {}

ClusterNode::~ClusterNode() { Close(); }

Result<std::unique_ptr<ClusterNode>> ClusterNode::Open(ClusterNodeOptions options,
                                                       metadata::MetadataStore& local_metadata) {
  if (options.node_id == 0) return Status::InvalidArgument("--node-id must be >= 1");
  std::unique_ptr<ClusterNode> node(new ClusterNode(std::move(options), local_metadata));
  Status opened = node->options_.zookeeper.empty() ? node->OpenLocal() : node->OpenClustered();
  if (!opened.ok()) {
    node->Close();
    return opened;
  }
  return node;
}

metadata::MetadataStore& ClusterNode::metadata() {
  return ring_ ? static_cast<metadata::MetadataStore&>(*ring_) : local_metadata_;
}

// ---- Single node -------------------------------------------------------------------------------

Status ClusterNode::OpenLocal() {
  Result<std::unique_ptr<cluster::LocalClusterBackend>> backend =
      cluster::LocalClusterBackend::Open(options_.data_dir);
  if (!backend.ok()) return backend.status();
  backend_ = std::move(*backend);
  Result<cluster::VersionedConfig> config = backend_->ReadConfig();
  if (config.status().code() == StatusCode::kNotFound) {
    // First start: a one-node cluster record, so that the node has the same view either way.
    cluster::ClusterConfig fresh;
    fresh.set_cluster_id(Uuid::Random().ToString());
    fresh.set_name("single-node");
    fresh.set_redundancy_factor(2);
    cluster::NodeConfig* self = fresh.add_nodes();
    self->set_node_id(options_.node_id);
    self->set_admin_address(options_.admin_address);
    // No RPC is served by a single node; the address is where it would listen in a cluster.
    self->set_rpc_address(options_.rpc_address);
    Result<int64_t> created = backend_->CreateConfig(fresh);
    if (!created.ok()) return created.status();
    config = backend_->ReadConfig();
  }
  if (!config.ok()) return config.status();
  std::lock_guard lock(mutex_);
  config_ = std::move(*config);
  return backend_->Join(options_.node_id, "{}");
}

// ---- Cluster -----------------------------------------------------------------------------------

Status ClusterNode::OpenClustered() {
  Result<std::unique_ptr<cluster::ZooKeeperClusterBackend>> backend =
      cluster::ZooKeeperClusterBackend::Open(cluster::ZooKeeperClusterOptions{
          .connect_string = options_.zookeeper,
          .root = options_.zookeeper_root,
          .session_timeout_ms = options_.zookeeper_session_timeout_ms});
  if (!backend.ok()) {
    return backend.status().WithContext(fmt::format("ZooKeeper {}", options_.zookeeper));
  }
  backend_ = std::move(*backend);
  // `weft cluster create` may still be on its way.
  Result<cluster::VersionedConfig> config = backend_->ReadConfig();
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.config_wait_ms);
  while (config.status().code() == StatusCode::kNotFound &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    config = backend_->ReadConfig();
  }
  if (config.status().code() == StatusCode::kNotFound) {
    return Status::NotFound(fmt::format(
        "no cluster configuration under {} in ZooKeeper {} (run `weft cluster create` first)",
        options_.zookeeper_root, options_.zookeeper));
  }
  if (!config.ok()) return config.status();
  const cluster::NodeConfig* self = FindNode(config->config, options_.node_id);
  if (self == nullptr) {
    return Status::NotFound(fmt::format(
        "node {} is not in the cluster configuration (nodes are added with `weft cluster "
        "create` or `weft cluster add-node`)",
        options_.node_id));
  }
  Result<RingConfig> ring = RingFrom(config->config);
  if (!ring.ok()) return ring.status();
  Result<rpc::Endpoint> rpc_address = rpc::Endpoint::Parse(self->rpc_address());
  if (!rpc_address.ok()) return rpc_address.status();

  // The RPC thread: the server and the ring run on it.
  rpc_work_.emplace(asio::make_work_guard(rpc_io_));
  rpc_thread_ = std::thread([this] { rpc_io_.run(); });
  control_ = std::make_unique<cluster::CallbackThread>();
  metadata::ring::RingServiceOptions ring_options{
      .self = options_.node_id,
      .db_path = options_.data_dir + "/ring",
      .tick_ms = options_.ring_tick_ms,
      .node = {.attempt_ticks = std::max<uint32_t>(10, 200 / options_.ring_tick_ms),
               .timeout_ticks = std::max<uint32_t>(100, 5000 / options_.ring_tick_ms)},
      // Completions only fulfil promises or post to the caller's reactor: run them in place.
      .executor = [](std::function<void()> task) { task(); },
      .on_ring_refresh_wanted = [this] { RefreshConfig(); },
      .on_stream_done = [this](uint64_t epoch) { OnStreamDone(epoch); },
  };
  Result<std::unique_ptr<metadata::ring::RingService>> service =
      metadata::ring::RingService::Open(rpc_io_, ring_options, *ring, PeersFrom(config->config));
  if (!service.ok()) return service.status();
  ring_ = std::move(*service);
  std::promise<Status> started;
  asio::post(rpc_io_, [&] {
    rpc_server_ = std::make_unique<rpc::RpcServer>(
        rpc_io_, rpc::RpcServerOptions{.listen_host = rpc_address->host, .port = rpc_address->port},
        [this](const rpc::Message& request, rpc::IncomingContext context, rpc::ReplyFn reply) {
          if (ring_ != nullptr && metadata::ring::RingService::HandlesType(request.type)) {
            ring_->HandleRpc(request, std::move(context), std::move(reply));
            return;
          }
          reply(
              Status::NotSupported(fmt::format("no service for message type {:#x}", request.type)));
        });
    started.set_value(rpc_server_->Start());
  });
  if (Status status = started.get_future().get(); !status.ok()) {
    return status.WithContext(fmt::format("RPC address {}", self->rpc_address()));
  }
  {
    std::lock_guard lock(mutex_);
    config_ = *config;
  }
  std::string data_address;
  if (options_.start_data_server) {
    const size_t colon = self->rpc_address().rfind(':');
    Result<std::string> started_data =
        options_.start_data_server(self->rpc_address().substr(0, colon));
    if (!started_data.ok()) return started_data.status().WithContext("data RPC server");
    data_address = *started_data;
  }
  nlohmann::json payload = {
      {"rpc", self->rpc_address()},
      {"data", data_address},
      {"free_bytes", options_.free_bytes},
      {"fault_domain", options_.fault_domain},
      {"admin", options_.admin_address},
      {"pid", ::getpid()},
      {"started_unix_s", std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count()}};
  if (Status joined = backend_->Join(options_.node_id, payload.dump()); !joined.ok()) {
    return joined;
  }
  backend_->WatchSession([this](cluster::SessionState state) {
    {
      std::lock_guard lock(mutex_);
      session_ = std::string(cluster::SessionStateName(state));
    }
    if (ring_ == nullptr) return;
    if (state == cluster::SessionState::kExpired) {
      spdlog::warn("cluster: ZooKeeper session expired: fencing node {}", options_.node_id);
      ring_->SetFenced(true);
    } else if (state == cluster::SessionState::kRejoined) {
      spdlog::info("cluster: node {} rejoined with a new session: unfencing", options_.node_id);
      ring_->SetFenced(false);
      RefreshConfig();
    }
  });
  (void)backend_->Campaign("maintenance", options_.node_id, [this](bool leader) {
    spdlog::info("cluster: node {} {} the maintenance leader", options_.node_id,
                 leader ? "is now" : "is no longer");
  });
  backend_->WatchConfig([this](cluster::VersionedConfig config) { ApplyConfig(config); });
  spdlog::info("cluster: node {} serving RPC on {}, ring epoch {} ({} nodes, {} copies per row)",
               options_.node_id, self->rpc_address(), ring->epoch, ring->members.size(),
               ring->replicas);
  return Status::Ok();
}

uint32_t ClusterNode::node_count() const {
  std::lock_guard lock(mutex_);
  return std::max<uint32_t>(1, static_cast<uint32_t>(config_.config.nodes_size()));
}

bool ClusterNode::fenced() const { return backend_ != nullptr && backend_->fenced(); }

void ClusterNode::WatchMembers(std::function<void(std::map<uint32_t, Member>)> on_change) {
  WEFT_ASSERT(backend_ != nullptr);
  backend_->WatchMembers(
      [on_change = std::move(on_change)](std::map<uint32_t, std::string> payloads) {
        std::map<uint32_t, Member> members;
        for (const auto& [node_id, payload] : payloads) {
          Member member;
          const nlohmann::json parsed = nlohmann::json::parse(payload, nullptr, false);
          if (parsed.is_object()) {
            if (parsed.contains("data") && parsed["data"].is_string()) {
              member.data_address = parsed["data"].get<std::string>();
            }
            if (parsed.contains("fault_domain") && parsed["fault_domain"].is_string()) {
              member.fault_domain = parsed["fault_domain"].get<std::string>();
            }
            if (parsed.contains("free_bytes") && parsed["free_bytes"].is_number_unsigned()) {
              member.free_bytes = parsed["free_bytes"].get<uint64_t>();
            }
          }
          members.emplace(node_id, std::move(member));
        }
        on_change(std::move(members));
      });
}

void ClusterNode::ApplyConfig(const cluster::VersionedConfig& config) {
  {
    std::lock_guard lock(mutex_);
    if (closed_ || ring_ == nullptr) return;
    if (config.version < config_.version) return;  // Older than what we have.
    config_ = config;
  }
  Result<RingConfig> ring = RingFrom(config.config);
  if (!ring.ok()) {
    spdlog::error("cluster: configuration version {} ignored: {}", config.version,
                  ring.status().message());
    return;
  }
  if (FindNode(config.config, options_.node_id) == nullptr) {
    spdlog::warn("cluster: node {} is no longer in the cluster configuration: fencing",
                 options_.node_id);
    ring_->SetFenced(true);
  }
  ring_->UpdateRing(*ring, PeersFrom(config.config));
  const uint32_t changing = cluster::ChangingNode(config.config);
  if (changing == 0) return;
  const cluster::NodeConfig* node = FindNode(config.config, changing);
  bool streamer = false;
  if (node->ring_state() == cluster::RING_STATE_JOINING) {
    streamer = changing == options_.node_id;  // A joining node streams its own ranges.
  } else {
    // A leaving node's ranges are streamed by the lowest-id live NORMAL node.
    Result<std::map<uint32_t, std::string>> live = backend_->LiveMembers();
    uint32_t coordinator = 0;
    for (const cluster::NodeConfig& candidate : config.config.nodes()) {
      if (candidate.ring_state() != cluster::RING_STATE_NORMAL) continue;
      if (live.ok() && !live->contains(candidate.node_id())) continue;
      if (coordinator == 0 || candidate.node_id() < coordinator) coordinator = candidate.node_id();
    }
    streamer = coordinator == options_.node_id;
  }
  if (streamer) {
    spdlog::info("cluster: node {} streams the ring change of node {} (epoch {})", options_.node_id,
                 changing, ring->epoch);
    ring_->StartStream();
  }
}

void ClusterNode::OnStreamDone(uint64_t epoch) {
  control_->Post([this, epoch] {
    for (int attempt = 0; attempt < 20; attempt++) {
      Result<cluster::VersionedConfig> current = backend_->ReadConfig();
      if (!current.ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      Result<cluster::ClusterConfig> next = cluster::CompleteRingChange(current->config, epoch);
      if (!next.ok()) {
        spdlog::info("cluster: ring change of epoch {} not completed here: {}", epoch,
                     next.status().message());
        return;
      }
      Result<int64_t> stored = backend_->CompareAndSetConfig(current->version, *next);
      if (stored.ok()) {
        spdlog::info("cluster: ring change of epoch {} complete (ring epoch {})", epoch,
                     next->ring_epoch());
        return;
      }
      if (stored.status().code() != StatusCode::kAborted) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    spdlog::error("cluster: could not complete the ring change of epoch {}", epoch);
  });
}

void ClusterNode::RefreshConfig() {
  if (control_ == nullptr) return;
  control_->Post([this] {
    Result<cluster::VersionedConfig> config = backend_->ReadConfig();
    if (config.ok()) ApplyConfig(*config);
  });
}

// ---- View and close ----------------------------------------------------------------------------

Result<admin::ClusterView> ClusterNode::View() {
  cluster::VersionedConfig config;
  admin::ClusterView view;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return Status::Aborted("weftd is stopping");
    config = config_;
    view.session = session_;
  }
  view.backend = ring_ ? "zookeeper" : "local";
  view.cluster_id = config.config.cluster_id();
  view.name = config.config.name();
  view.redundancy_factor = config.config.redundancy_factor();
  view.ring_replicas = config.config.redundancy_factor() == 3 ? 5 : 3;
  view.ring_epoch = config.config.ring_epoch();
  view.config_version = static_cast<uint64_t>(config.version);
  view.self_node_id = options_.node_id;
  view.fenced = backend_->fenced();
  Result<std::map<uint32_t, std::string>> live = backend_->LiveMembers();
  for (const cluster::NodeConfig& node : config.config.nodes()) {
    admin::ClusterNodeView node_view;
    node_view.node_id = node.node_id();
    node_view.rpc_address = node.rpc_address();
    node_view.admin_address = node.admin_address();
    node_view.live =
        live.ok() ? live->contains(node.node_id()) : node.node_id() == options_.node_id;
    node_view.ring_state = std::string(RingStateName(node.ring_state()));
    node_view.ring_tokens = static_cast<uint32_t>(node.ring_tokens_size());
    view.nodes.push_back(std::move(node_view));
  }
  if (!live.ok()) view.session += " (members unknown: " + live.status().message() + ")";
  if (ring_) {
    const metadata::ring::RingServiceSnapshot snapshot = ring_->snapshot();
    view.fenced = view.fenced || snapshot.fenced;
    view.ring = {{"epoch_applied", snapshot.epoch},
                 {"operations_started", snapshot.stats.operations_started},
                 {"operations_ok", snapshot.stats.operations_ok},
                 {"operations_failed", snapshot.stats.operations_failed},
                 {"paxos_attempts", snapshot.stats.paxos_attempts},
                 {"rows_hosted", snapshot.stats.rows_hosted},
                 {"stream_keys_repaired", snapshot.stats.stream_keys_repaired},
                 {"epoch_mismatches", snapshot.stats.epoch_mismatches},
                 {"persist_batches", snapshot.persist_batches},
                 {"persist_records", snapshot.persist_records},
                 {"rpc_errors", snapshot.rpc_errors}};
  }
  return view;
}

void ClusterNode::Close() {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
  }
  // No backend callback runs after this, so none touches what closes below.
  if (backend_) backend_->Close();
  if (control_) control_->Stop();
  if (ring_) ring_->Close();
  if (rpc_thread_.joinable()) {
    std::promise<void> stopped;
    asio::post(rpc_io_, [&] {
      if (rpc_server_) rpc_server_->Stop();
      rpc_server_.reset();
      stopped.set_value();
    });
    stopped.get_future().wait();
    rpc_work_.reset();
    rpc_io_.stop();
    rpc_thread_.join();
  }
  ring_.reset();
}

}  // namespace weft::daemon
