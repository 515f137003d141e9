// weft status: the node, its NBD and admin addresses, counts, a cache summary, and one line per
// disk.
#include <fmt/format.h>

#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "base/size_format.h"
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
  std::cout << RenderFields(fields) << "\n";
  if (node->disks.empty()) {
    std::cout << "No disks.\n";
    return ExitCode::kOk;
  }
  using Align = Table::Align;
  Table disks({{"DISK"},
               {"UUID"},
               {"SIZE", Align::kRight},
               {"USED", Align::kRight},
               {"FREE", Align::kRight},
               {"EGROUPS", Align::kRight},
               {"STATE"}});
  for (const admin::DiskView& disk : node->disks) {
    disks.AddRow({disk.path, disk.uuid, FormatSize(disk.size_bytes), FormatSize(disk.used_bytes),
                  FormatSize(disk.free_bytes), std::to_string(disk.egroups), disk.state});
  }
  std::cout << disks.Render();
  return ExitCode::kOk;
}

}  // namespace

void AddStatusCommand(CLI::App& app, const GlobalOptions& options, Action& action) {
  CLI::App* status = app.add_subcommand(
      "status",
      "Show the node: id, version, uptime, NBD and admin addresses, counts, cache, disks");
  status->callback([&options, &action] { action = [&options] { return RunStatus(options); }; });
}

}  // namespace weft::cli
