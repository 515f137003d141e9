// weft status: the node, its NBD and admin addresses, counts, a cache summary, one line per
// disk, and the cluster as this node sees it (backend, live nodes, ring epoch, fencing, and one
// line per node).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "base/size_format.h"
#include "cli/cluster_render.h"
#include "cli/commands.h"
#include "cli/table.h"

namespace weft::cli {
namespace {

uint64_t CounterOr0(const admin::Counters& counters, const std::string& name) {
  auto it = counters.find(name);
  return it == counters.end() ? 0 : it->second;
}

// "1000 hits, 250 misses, hit ratio 80.0%, memory 12 MiB of 16 MiB, SSD tier 32 MiB". Hits are
// every "hits_*" counter (memory pools and SSD tier), so a new tier's hits count too.
std::string CacheSummary(const admin::Counters& cache) {
  uint64_t hits = 0;
  for (const auto& [name, value] : cache) {
    if (name.starts_with("hits")) hits += value;
  }
  const uint64_t misses = CounterOr0(cache, "misses");
  const std::string ratio = hits + misses == 0
                                ? "n/a"
                                : fmt::format("{:.1f}%", 100.0 * static_cast<double>(hits) /
                                                             static_cast<double>(hits + misses));
  const uint64_t ssd_bytes = CounterOr0(cache, "ssd_bytes_max");
  return fmt::format("{} hits, {} misses, hit ratio {}, memory {} of {}, {}", hits, misses, ratio,
                     FormatSize(CounterOr0(cache, "memory_bytes_used")),
                     FormatSize(CounterOr0(cache, "memory_bytes_max")),
                     ssd_bytes == 0 ? "no SSD tier" : "SSD tier " + FormatSize(ssd_bytes));
}

std::string RenderDisks(const admin::NodeView& node) {
  using Align = Table::Align;
  Table disks({{"DISK"},
               {"UUID"},
               {"SIZE", Align::kRight},
               {"USED", Align::kRight},
               {"FREE", Align::kRight},
               {"EGROUPS", Align::kRight},
               {"STATE"}});
  for (const admin::DiskView& disk : node.disks) {
    disks.AddRow({disk.path, disk.uuid, FormatSize(disk.size_bytes), FormatSize(disk.used_bytes),
                  FormatSize(disk.free_bytes), std::to_string(disk.egroups), disk.state});
  }
  return disks.Render();
}

// The cluster fields of `weft status`. A weftd that cannot say (an older one, a ZooKeeper call
// that failed) gets one line saying why: the node's own status is still worth printing.
std::vector<std::pair<std::string, std::string>> ClusterFields(
    const Result<admin::ClusterView>& cluster) {
  if (!cluster.ok()) return {{"Cluster", "unknown (" + cluster.status().message() + ")"}};
  if (cluster->backend == "local") return {{"Cluster", "single node (local backend)"}};
  return {
      {"Cluster",
       fmt::format("'{}' ({}), backend {}", cluster->name, cluster->cluster_id, cluster->backend)},
      {"Nodes", LiveNodesSummary(*cluster)},
      {"Ring", fmt::format("epoch {}, RF {} ({} replicas per row)", cluster->ring_epoch,
                           cluster->redundancy_factor, cluster->ring_replicas)},
      {"Session", fmt::format("{}, {}", cluster->session,
                              cluster->fenced ? "FENCED (serves no writes)" : "not fenced")},
  };
}

Result<admin::ClusterView> FetchCluster(AdminClient& client) {
  ApiAnswer answer = client.Get("/api/v1/cluster");
  if (!answer.ok()) return Status::Unavailable(answer.error_message);
  return admin::ClusterViewFromJson(answer.body);
}

// The replicated data path of the vDisks this node serves: how many lack copies (egroups with
// fewer replicas than their RF, OpLogs with too few peers), summed from their counters. Empty
// when no served vDisk is replicated (or the weftd predates the counters).
std::string ReplicationSummary(AdminClient& client) {
  ApiAnswer answer = client.Get("/api/v1/vdisks");
  if (!answer.ok() || !answer.body.is_object() || !answer.body.contains("vdisks")) return "";
  uint64_t replicated = 0;
  uint64_t under_replicated_egroups = 0;
  std::vector<std::string> degraded;
  for (const auto& item : answer.body["vdisks"]) {
    Result<admin::VdiskView> vdisk = admin::VdiskViewFromJson(item);
    if (!vdisk.ok()) continue;
    const auto group = vdisk->stats.find("replication");
    if (group == vdisk->stats.end()) continue;
    auto counter = [&group](const char* name) -> uint64_t {
      const auto found = group->second.find(name);
      return found == group->second.end() ? 0 : found->second;
    };
    if (counter("replication_factor") <= 1) continue;
    ++replicated;
    const uint64_t egroups = counter("under_replicated_egroups");
    const bool oplog_short = counter("oplog_peers_count") + 1 < counter("replication_factor");
    under_replicated_egroups += egroups;
    if (egroups > 0 || oplog_short) {
      degraded.push_back(fmt::format("{} ({} egroup{}{})", vdisk->name, egroups,
                                     egroups == 1 ? "" : "s",
                                     oplog_short ? ", oplog short of peers" : ""));
    }
  }
  if (replicated == 0) return "";
  if (degraded.empty()) {
    return fmt::format("{} replicated vDisk{} served here, all at full RF", replicated,
                       replicated == 1 ? "" : "s");
  }
  return fmt::format("UNDER-REPLICATED: {} egroup{} in {}", under_replicated_egroups,
                     under_replicated_egroups == 1 ? "" : "s", fmt::join(degraded, ", "));
}

ExitCode RunStatus(const GlobalOptions& options) {
  AdminClient client = MakeClient(options);
  ApiAnswer answer = client.Get("/api/v1/node");
  if (!answer.ok()) return Fail(answer);
  Result<admin::NodeView> node = admin::NodeViewFromJson(answer.body);
  if (!node.ok()) return FailUnexpected(node.status());
  if (options.json) {
    PrintJson(answer.body);
    return ExitCode::kOk;
  }
  std::vector<std::pair<std::string, std::string>> fields = {
      {"Node", node->node_id},
      {"Version", node->version},
      {"Uptime", FormatDuration(node->uptime_s)},
      {"Data dir", node->data_dir},
      {"NBD", fmt::format("{} ({} open connection{})", node->nbd_address, node->nbd_connections,
                          node->nbd_connections == 1 ? "" : "s")},
      {"Admin API", node->admin_address},
      {"Containers", std::to_string(node->container_count)},
      {"vDisks", std::to_string(node->vdisk_count)},
  };
  // A weftd from before the cache counters sends none: no line rather than a line of zeros.
  if (!node->cache.empty()) fields.emplace_back("Cache", CacheSummary(node->cache));
  const Result<admin::ClusterView> cluster = FetchCluster(client);
  for (auto& field : ClusterFields(cluster)) fields.push_back(std::move(field));
  if (std::string replication = ReplicationSummary(client); !replication.empty()) {
    fields.emplace_back("Replication", std::move(replication));
  }
  std::cout << RenderFields(fields) << "\n";
  if (node->disks.empty()) {
    std::cout << "No disks.\n";
  } else {
    std::cout << RenderDisks(*node);
  }
  if (cluster.ok() && cluster->backend != "local") {
    std::cout << "\n" << RenderClusterNodes(*cluster);
  }
  return ExitCode::kOk;
}
}  // namespace

void AddStatusCommand(CLI::App& app, const GlobalOptions& options, Action& action) {
  CLI::App* status = app.add_subcommand(
      "status",
      "Show the node (id, version, uptime, addresses, counts, cache, disks) and its cluster");
  status->callback([&options, &action] { action = [&options] { return RunStatus(options); }; });
}

}  // namespace weft::cli
