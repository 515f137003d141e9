// weft status: the node, its NBD and admin addresses, counts, and one line per disk.
#include <fmt/format.h>

#include <iostream>

#include "base/size_format.h"
#include "cli/commands.h"
#include "cli/table.h"

namespace weft::cli {
namespace {

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
  std::cout << RenderFields({
      {"Node", node->node_id},
      {"Version", node->version},
      {"Uptime", FormatDuration(node->uptime_s)},
      {"Data dir", node->data_dir},
      {"NBD", fmt::format("{} ({} open connection{})", node->nbd_address, node->nbd_connections,
                          node->nbd_connections == 1 ? "" : "s")},
      {"Admin API", node->admin_address},
      {"Containers", std::to_string(node->container_count)},
      {"vDisks", std::to_string(node->vdisk_count)},
  });
  std::cout << "\n";
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
      "status", "Show the node: id, version, uptime, NBD and admin addresses, counts, disks");
  status->callback([&options, &action] { action = [&options] { return RunStatus(options); }; });
}

}  // namespace weft::cli
