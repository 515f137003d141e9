#include "cli/cluster_change.h"

#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/cluster_create.h"
#include "cluster/config_changes.h"
#include "cluster/zookeeper_cluster_backend.h"

namespace weft::cli {
namespace {

constexpr int kZooKeeperConnectTimeoutMs = 5000;
constexpr int kCompareAndSetAttempts = 5;

struct ChangeArguments {
  std::string zookeeper;
  std::string zookeeper_root = "/weft";
  std::string node_text;  // add-node: ID=RPC,ADMIN
  uint32_t node_id = 0;   // remove-node
};

ExitCode FailWith(ExitCode code, std::string message) {
  return Fail({code, nullptr, std::move(message)});
}

ExitCode ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kUnavailable:
      return ExitCode::kUnreachable;
    case StatusCode::kInvalidArgument:
      return ExitCode::kUsage;
    default:
      return ExitCode::kRefused;
  }
}

// Reads the config, applies `change`, stores it by compare-and-set; retries when another writer
// got in between. Returns the stored config.
ExitCode ChangeConfig(
    const GlobalOptions& options, const ChangeArguments& arguments,
    const std::function<Result<cluster::ClusterConfig>(const cluster::ClusterConfig&)>& change,
    const std::function<std::string(const cluster::ClusterConfig&)>& describe) {
  cluster::ZooKeeperClusterOptions zookeeper_options;
  zookeeper_options.connect_string = arguments.zookeeper;
  zookeeper_options.root = arguments.zookeeper_root;
  zookeeper_options.connect_timeout_ms = kZooKeeperConnectTimeoutMs;
  Result<std::unique_ptr<cluster::ZooKeeperClusterBackend>> backend =
      cluster::ZooKeeperClusterBackend::Open(zookeeper_options);
  if (!backend.ok()) {
    return FailWith(ExitCodeFor(backend.status()),
                    fmt::format("cannot use ZooKeeper at {}: {}", arguments.zookeeper,
                                backend.status().message()));
  }
  Status failure;
  for (int attempt = 0; attempt < kCompareAndSetAttempts; attempt++) {
    Result<cluster::VersionedConfig> current = (*backend)->ReadConfig();
    if (!current.ok()) {
      failure = current.status();
      break;
    }
    Result<cluster::ClusterConfig> next = change(current->config);
    if (!next.ok()) {
      failure = next.status();
      break;
    }
    Result<int64_t> stored = (*backend)->CompareAndSetConfig(current->version, *next);
    if (stored.ok()) {
      (*backend)->Close();
      if (options.json) {
        PrintJson(nlohmann::json{{"config_version", *stored}, {"ring_epoch", next->ring_epoch()}});
      } else {
        std::cout << describe(*next) << "\n";
      }
      return ExitCode::kOk;
    }
    failure = stored.status();
    if (failure.code() != StatusCode::kAborted) break;  // Aborted: someone else wrote; retry.
  }
  (*backend)->Close();
  return FailWith(ExitCodeFor(failure),
                  fmt::format("cluster configuration in ZooKeeper {} under {} not changed: {}",
                              arguments.zookeeper, arguments.zookeeper_root, failure.message()));
}

void AddZooKeeperOptions(CLI::App& command, ChangeArguments& arguments) {
  command
      .add_option("--zookeeper", arguments.zookeeper,
                  "The ZooKeeper ensemble: HOST:PORT[,HOST:PORT...]")
      ->required();
  command.add_option("--zookeeper-root", arguments.zookeeper_root, "The cluster's znode")
      ->capture_default_str();
}

}  // namespace

void AddClusterChangeCommands(CLI::App& group, const GlobalOptions& options, Action& action) {
  auto add_arguments = std::make_shared<ChangeArguments>();
  CLI::App* add = group.add_subcommand(
      "add-node",
      "Add a node to the cluster as JOINING (start its weftd next: it streams its metadata ring "
      "ranges, then becomes NORMAL)");
  AddZooKeeperOptions(*add, *add_arguments);
  add->add_option("--node", add_arguments->node_text,
                  "The new member: ID=RPC_HOST:RPC_PORT,ADMIN_HOST:ADMIN_PORT")
      ->required()
      ->check([](const std::string& text) {
        Result<NodeSpec> node = ParseNodeSpec(text);
        return node.ok() ? std::string() : node.status().message();
      });
  add->callback([&options, &action, add_arguments] {
    action = [&options, add_arguments] {
      Result<NodeSpec> node = ParseNodeSpec(add_arguments->node_text);
      WEFT_ASSERT(node.ok());  // The option's validator ran during parsing.
      return ChangeConfig(
          options, *add_arguments,
          [&node](const cluster::ClusterConfig& config) {
            return cluster::AddJoiningNode(config, node->node_id, node->rpc_address,
                                           node->admin_address);
          },
          [&node](const cluster::ClusterConfig& config) {
            return fmt::format(
                "Node {} added as JOINING (ring epoch {}). Start it with: weftd --zookeeper ... "
                "--node-id {} --listen-admin {}; it becomes NORMAL once it has streamed its "
                "ranges (weft cluster show).",
                node->node_id, config.ring_epoch(), node->node_id, node->admin_address);
          });
    };
  });

  auto remove_arguments = std::make_shared<ChangeArguments>();
  CLI::App* remove = group.add_subcommand(
      "remove-node",
      "Mark a node LEAVING: its metadata ring ranges are streamed to the others, then it is "
      "removed from the configuration (stop its weftd after that)");
  AddZooKeeperOptions(*remove, *remove_arguments);
  remove->add_option("--node-id", remove_arguments->node_id, "The node to remove")
      ->required()
      ->check(CLI::Range(1u, 1000000u));
  remove->callback([&options, &action, remove_arguments] {
    action = [&options, remove_arguments] {
      const uint32_t node_id = remove_arguments->node_id;
      return ChangeConfig(
          options, *remove_arguments,
          [node_id](const cluster::ClusterConfig& config) {
            return cluster::MarkNodeLeaving(config, node_id);
          },
          [node_id](const cluster::ClusterConfig& config) {
            return fmt::format(
                "Node {} is LEAVING (ring epoch {}); it is removed once its ranges are streamed "
                "(weft cluster show), then its weftd can be stopped.",
                node_id, config.ring_epoch());
          });
    };
  });
}

}  // namespace weft::cli
