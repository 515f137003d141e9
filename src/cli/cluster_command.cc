// weft cluster show: the cluster as the --admin node sees it (GET /api/v1/cluster). `weft cluster
// create` (cluster_create.cc) writes a new cluster's configuration to ZooKeeper directly.
#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "cli/cluster_change.h"
#include "cli/cluster_create.h"
#include "cli/cluster_render.h"
#include "cli/commands.h"

namespace weft::cli {
namespace {

ExitCode RunShow(const GlobalOptions& options) {
  AdminClient client = MakeClient(options);
  ApiAnswer answer = client.Get("/api/v1/cluster");
  if (!answer.ok()) return Fail(answer);
  Result<admin::ClusterView> cluster = admin::ClusterViewFromJson(answer.body);
  if (!cluster.ok()) return FailUnexpected(cluster.status());
  if (options.json) {
    PrintJson(answer.body);
    return ExitCode::kOk;
  }
  std::cout << ClusterHeadline(*cluster) << "\n";
  std::cout << fmt::format("Nodes: {}\n\n", LiveNodesSummary(*cluster));
  std::cout << RenderClusterNodes(*cluster);
  return ExitCode::kOk;
}

}  // namespace

void AddClusterCommands(CLI::App& app, const GlobalOptions& options, Action& action) {
  CLI::App* group = app.add_subcommand(
      "cluster", "Create a cluster in ZooKeeper, or show the cluster a node belongs to");
  group->require_subcommand(1);

  CLI::App* show = group->add_subcommand(
      "show", "Show the cluster as the --admin node sees it: nodes, liveness, ring, fencing");
  show->callback([&options, &action] { action = [&options] { return RunShow(options); }; });

  AddClusterCreateCommand(*group, options, action);
  AddClusterChangeCommands(*group, options, action);
}

}  // namespace weft::cli
