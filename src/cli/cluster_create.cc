#include "cli/cluster_create.h"

#include <fmt/format.h>

#include <charconv>
#include <iostream>
#include <memory>

#include "base/uuid.h"
#include "cluster/cluster_config.h"
#include "cluster/zookeeper_cluster_backend.h"

namespace weft::cli {
namespace {

using nlohmann::json;

// How long `create` waits for a ZooKeeper session before giving up (exit 3).
constexpr int kZooKeeperConnectTimeoutMs = 5000;

struct CreateArguments {
  std::string zookeeper;
  std::string zookeeper_root = "/weft";
  ClusterSpec spec{.name = "weft",
                   .redundancy_factor = 2,
                   .ring_tokens_per_node = cluster::kDefaultRingTokensPerNode,
                   .nodes = {}};
  std::vector<std::string> node_texts;  // Checked by ParseNodeSpec during parsing.
};

// FNV-1a: a token seed that depends on every character of the cluster id and on nothing else.
uint64_t SeedFrom(const std::string& cluster_id) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : cluster_id) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

json ConfigJson(const cluster::ClusterConfig& config, int64_t version,
                const CreateArguments& arguments) {
  json nodes = json::array();
  for (const cluster::NodeConfig& node : config.nodes()) {
    nodes.push_back({{"node_id", node.node_id()},
                     {"rpc_address", node.rpc_address()},
                     {"admin_address", node.admin_address()},
                     {"ring_tokens", node.ring_tokens_size()}});
  }
  return {{"cluster_id", config.cluster_id()},
          {"name", config.name()},
          {"redundancy_factor", config.redundancy_factor()},
          {"ring_replicas", RingReplicasFor(config.redundancy_factor())},
          {"ring_epoch", config.ring_epoch()},
          {"config_version", version},
          {"zookeeper", arguments.zookeeper},
          {"zookeeper_root", arguments.zookeeper_root},
          {"nodes", std::move(nodes)}};
}

ExitCode FailWith(ExitCode code, std::string message) {
  return Fail({code, nullptr, std::move(message)});
}

ExitCode RunCreate(const GlobalOptions& options, CreateArguments& arguments) {
  for (const std::string& text : arguments.node_texts) {
    Result<NodeSpec> node = ParseNodeSpec(text);
    WEFT_ASSERT(node.ok());  // The option's validator ran during parsing.
    arguments.spec.nodes.push_back(std::move(*node));
  }
  const std::string cluster_id = Uuid::Random().ToString();
  Result<cluster::ClusterConfig> config = BuildClusterConfig(arguments.spec, cluster_id);
  if (!config.ok()) return FailWith(ExitCode::kUsage, config.status().message());

  cluster::ZooKeeperClusterOptions zookeeper_options;
  zookeeper_options.connect_string = arguments.zookeeper;
  zookeeper_options.root = arguments.zookeeper_root;
  zookeeper_options.connect_timeout_ms = kZooKeeperConnectTimeoutMs;
  Result<std::unique_ptr<cluster::ZooKeeperClusterBackend>> backend =
      cluster::ZooKeeperClusterBackend::Open(zookeeper_options);
  if (!backend.ok()) {
    const ExitCode code =
        backend.status().IsInvalidArgument() ? ExitCode::kUsage : ExitCode::kUnreachable;
    return FailWith(code, fmt::format("cannot use ZooKeeper at {}: {}", arguments.zookeeper,
                                      backend.status().message()));
  }
  Result<int64_t> version = (*backend)->CreateConfig(*config);
  if (!version.ok() && version.status().IsAlreadyExists()) {
    Result<cluster::VersionedConfig> existing = (*backend)->ReadConfig();
    (*backend)->Close();
    const std::string which =
        existing.ok() ? fmt::format("cluster '{}' ({}, {} nodes, config version {})",
                                    existing->config.name(), existing->config.cluster_id(),
                                    existing->config.nodes_size(), existing->version)
                      : std::string("a cluster");
    return FailWith(ExitCode::kRefused,
                    fmt::format("{} already exists under {} in ZooKeeper {}; refusing to replace "
                                "it (use another --zookeeper-root for a second cluster)",
                                which, arguments.zookeeper_root, arguments.zookeeper));
  }
  (*backend)->Close();
  if (!version.ok()) {
    const ExitCode code = version.status().code() == StatusCode::kUnavailable
                              ? ExitCode::kUnreachable
                              : ExitCode::kRefused;
    return FailWith(code, fmt::format("cannot store the cluster config in ZooKeeper {}: {}",
                                      arguments.zookeeper, version.status().message()));
  }
  if (options.json) {
    PrintJson(ConfigJson(*config, *version, arguments));
    return ExitCode::kOk;
  }
  std::cout << fmt::format(
      "Created cluster '{}' ({}): {} nodes, RF {} ({} ring replicas), {} ring tokens per node, "
      "ring epoch {}, in ZooKeeper {} under {}.\n",
      config->name(), config->cluster_id(), config->nodes_size(), config->redundancy_factor(),
      RingReplicasFor(config->redundancy_factor()), arguments.spec.ring_tokens_per_node,
      config->ring_epoch(), arguments.zookeeper, arguments.zookeeper_root);
  std::cout << "Start each node with: weftd --zookeeper " << arguments.zookeeper
            << " --zookeeper-root " << arguments.zookeeper_root
            << " --node-id ID --listen-admin ITS_ADMIN_ADDRESS ...\n";
  return ExitCode::kOk;
}

}  // namespace

Result<NodeSpec> ParseNodeSpec(std::string_view text) {
  auto invalid = [&](std::string_view why) {
    return Status::InvalidArgument(
        fmt::format("invalid --node '{}': {} (expected ID=RPC_HOST:RPC_PORT,ADMIN_HOST:ADMIN_PORT, "
                    "like 1=127.0.0.1:7101,127.0.0.1:9441)",
                    text, why));
  };
  const size_t equals = text.find('=');
  if (equals == std::string_view::npos) return invalid("no '='");
  const std::string_view id = text.substr(0, equals);
  NodeSpec node;
  auto [end, error] = std::from_chars(id.data(), id.data() + id.size(), node.node_id);
  if (id.empty() || error != std::errc() || end != id.data() + id.size() || node.node_id == 0) {
    return invalid("the node id must be a number from 1 to 4294967295");
  }
  const std::string_view addresses = text.substr(equals + 1);
  const size_t comma = addresses.find(',');
  if (comma == std::string_view::npos) return invalid("no ',' between the two addresses");
  node.rpc_address = std::string(addresses.substr(0, comma));
  node.admin_address = std::string(addresses.substr(comma + 1));
  for (const std::string* address : {&node.rpc_address, &node.admin_address}) {
    Result<cluster::HostPort> parsed = cluster::ParseHostPort(*address);
    if (!parsed.ok()) return invalid(parsed.status().message());
  }
  return node;
}

uint32_t RingReplicasFor(uint32_t redundancy_factor) { return 2 * redundancy_factor - 1; }

Result<cluster::ClusterConfig> BuildClusterConfig(const ClusterSpec& spec,
                                                  const std::string& cluster_id) {
  WEFT_ASSERT(spec.ring_tokens_per_node > 0);
  const uint32_t replicas = RingReplicasFor(spec.redundancy_factor);
  if (spec.nodes.size() < replicas) {
    return Status::InvalidArgument(fmt::format(
        "redundancy factor {} keeps {} replicas of every metadata row on distinct nodes: give at "
        "least {} --node arguments ({} given)",
        spec.redundancy_factor, replicas, replicas, spec.nodes.size()));
  }
  cluster::ClusterConfig config;
  config.set_cluster_id(cluster_id);
  config.set_name(spec.name);
  config.set_redundancy_factor(spec.redundancy_factor);
  config.set_ring_epoch(1);
  std::vector<uint64_t> tokens_so_far;
  for (const NodeSpec& spec_node : spec.nodes) {
    cluster::NodeConfig* node = config.add_nodes();
    node->set_node_id(spec_node.node_id);
    node->set_rpc_address(spec_node.rpc_address);
    node->set_admin_address(spec_node.admin_address);
    node->set_ring_state(cluster::RING_STATE_NORMAL);
    for (uint64_t token : cluster::MakeRingTokens(spec_node.node_id, spec.ring_tokens_per_node,
                                                  SeedFrom(cluster_id), tokens_so_far)) {
      node->add_ring_tokens(token);
      tokens_so_far.push_back(token);
    }
  }
  WEFT_RETURN_IF_ERROR(cluster::ValidateClusterConfig(config));
  WEFT_ASSERT(config.nodes_size() == static_cast<int>(spec.nodes.size()));
  return config;
}

void AddClusterCreateCommand(CLI::App& group, const GlobalOptions& options, Action& action) {
  auto arguments = std::make_shared<CreateArguments>();
  CLI::App* create = group.add_subcommand(
      "create",
      "Write a new cluster's configuration to ZooKeeper (nodes, addresses, ring tokens); "
      "refuses if one exists");
  create->callback([&options, &action, arguments] {
    action = [&options, arguments] { return RunCreate(options, *arguments); };
  });
  create
      ->add_option("--zookeeper", arguments->zookeeper,
                   "The ZooKeeper ensemble: HOST:PORT[,HOST:PORT...]")
      ->type_name("HOSTS")
      ->required();
  create
      ->add_option("--zookeeper-root", arguments->zookeeper_root,
                   "The cluster's znode (one cluster per root)")
      ->type_name("PATH")
      ->default_val("/weft");
  create->add_option("--name", arguments->spec.name, "A name for people")
      ->type_name("NAME")
      ->default_val("weft");
  create
      ->add_option("--redundancy-factor", arguments->spec.redundancy_factor,
                   "Failures survived + 1: 2 (3 ring replicas per metadata row) or 3 (5)")
      ->type_name("2|3")
      ->default_val(2)
      ->check(CLI::IsMember({2u, 3u}));
  create
      ->add_option("--ring-tokens-per-node", arguments->spec.ring_tokens_per_node,
                   "Virtual tokens of each node on the metadata ring")
      ->type_name("N")
      ->default_val(cluster::kDefaultRingTokensPerNode)
      ->check(CLI::Range(1u, 1024u));
  create
      ->add_option("--node", arguments->node_texts,
                   "A member: ID=RPC_HOST:RPC_PORT,ADMIN_HOST:ADMIN_PORT (repeat per node)")
      ->type_name("SPEC")
      ->required()
      ->check(CLI::Validator(
          [](std::string& text) {
            Result<NodeSpec> node = ParseNodeSpec(text);
            return node.ok() ? std::string() : node.status().message();
          },
          ""));
}

}  // namespace weft::cli
