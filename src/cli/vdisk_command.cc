// weft vdisk create|list|show|resize|delete: vDisks are thin-provisioned block devices that
// weftd serves over NBD; their nbd:// URI is what qemu, nbdcopy or fio connect to.
#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/size_format.h"
#include "cli/commands.h"
#include "cli/table.h"

namespace weft::cli {
namespace {

using admin::VdiskView;
using nlohmann::json;

struct Arguments {
  std::string name;
  uint64_t size_bytes = 0;
  std::string container;
  bool allow_shrink = false;
};

std::string VdiskPath(const std::string& name) {
  return "/api/v1/vdisks/" + EncodePathSegment(name);
}

std::string FormatUnixTime(uint64_t unix_s) {
  const auto time = static_cast<std::time_t>(unix_s);
  std::tm utc{};
  gmtime_r(&time, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S UTC", &utc);
  return text;
}

std::string FormatUsed(const VdiskView& vdisk) {
  if (vdisk.size_bytes == 0) return FormatSize(vdisk.used_bytes);
  const double percent =
      100.0 * static_cast<double>(vdisk.used_bytes) / static_cast<double>(vdisk.size_bytes);
  return fmt::format("{} ({:.1f}% of its size)", FormatSize(vdisk.used_bytes), percent);
}

// The groups the daemon documents come first, in the order of the I/O path; any other group
// (from a newer weftd) follows in name order.
std::vector<std::string> GroupOrder(const admin::CounterGroups& groups) {
  std::vector<std::string> order;
  for (const char* known : {"io", "characterizer", "oplog"}) {
    if (groups.contains(known)) order.emplace_back(known);
  }
  for (const auto& [name, counters] : groups) {
    if (std::find(order.begin(), order.end(), name) == order.end()) order.push_back(name);
  }
  return order;
}

// One section per counter group: "io:" and its counters in a grid, exact values (--json for
// machines).
std::string RenderStats(const admin::CounterGroups& groups) {
  constexpr size_t kGridColumnsMax = 3;
  constexpr size_t kGridIndent = 2;
  constexpr size_t kLineWidthMax = 100;
  std::string text;
  for (const std::string& name : GroupOrder(groups)) {
    std::vector<std::pair<std::string, std::string>> pairs;
    for (const auto& [counter, value] : groups.at(name)) {
      pairs.emplace_back(counter, std::to_string(value));
    }
    text += "\n" + name + ":\n";
    text += pairs.empty() ? "  (no counters)\n"
                          : RenderPairGrid(pairs, kGridColumnsMax, kGridIndent, kLineWidthMax);
  }
  return text;
}

ExitCode RunCreate(const GlobalOptions& options, const Arguments& arguments) {
  AdminClient client = MakeClient(options);
  json request = {{"name", arguments.name}, {"size_bytes", arguments.size_bytes}};
  if (!arguments.container.empty()) request["container"] = arguments.container;
  ApiAnswer answer = client.Post("/api/v1/vdisks", request);
  if (!answer.ok()) return Fail(answer);
  Result<VdiskView> vdisk = admin::VdiskViewFromJson(answer.body);
  if (!vdisk.ok()) return FailUnexpected(vdisk.status());
  if (options.json) {
    PrintJson(answer.body);
    return ExitCode::kOk;
  }
  std::cout << fmt::format("Created vdisk '{}': {} in container '{}'.\nNBD URI: {}\n", vdisk->name,
                           FormatSize(vdisk->size_bytes), vdisk->container, vdisk->nbd_uri);
  return ExitCode::kOk;
}

ExitCode RunList(const GlobalOptions& options) {
  AdminClient client = MakeClient(options);
  ApiAnswer answer = client.Get("/api/v1/vdisks");
  if (!answer.ok()) return Fail(answer);
  if (!answer.body.is_object() || !answer.body.contains("vdisks") ||
      !answer.body["vdisks"].is_array()) {
    return FailUnexpected(Status::InvalidArgument("no \"vdisks\" array"));
  }
  using Align = Table::Align;
  Table table({{"NAME"},
               {"CONTAINER"},
               {"SIZE", Align::kRight},
               {"USED", Align::kRight},
               {"CONNECTIONS", Align::kRight},
               {"NBD URI"}});
  for (const json& item : answer.body["vdisks"]) {
    Result<VdiskView> vdisk = admin::VdiskViewFromJson(item);
    if (!vdisk.ok()) return FailUnexpected(vdisk.status());
    table.AddRow({vdisk->name, vdisk->container, FormatSize(vdisk->size_bytes),
                  FormatSize(vdisk->used_bytes), std::to_string(vdisk->open_connections),
                  vdisk->nbd_uri});
  }
  if (options.json) {
    PrintJson(answer.body);
  } else if (answer.body["vdisks"].empty()) {
    std::cout << "No vdisks. Create one with: weft vdisk create NAME --size 10G\n";
  } else {
    std::cout << table.Render();
  }
  return ExitCode::kOk;
}

ExitCode RunShow(const GlobalOptions& options, const Arguments& arguments) {
  AdminClient client = MakeClient(options);
  ApiAnswer answer = client.Get(VdiskPath(arguments.name));
  if (!answer.ok()) return Fail(answer);
  Result<VdiskView> vdisk = admin::VdiskViewFromJson(answer.body);
  if (!vdisk.ok()) return FailUnexpected(vdisk.status());
  if (options.json) {
    PrintJson(answer.body);
    return ExitCode::kOk;
  }
  std::cout << RenderFields({
      {"Name", vdisk->name},
      {"Container", vdisk->container},
      {"Size", fmt::format("{} ({} bytes)", FormatSize(vdisk->size_bytes), vdisk->size_bytes)},
      {"Used", FormatUsed(*vdisk)},
      {"Mapped vBlocks", std::to_string(vdisk->mapped_vblocks)},
      {"Created", FormatUnixTime(vdisk->created_unix_s)},
      {"Open connections", std::to_string(vdisk->open_connections)},
      {"NBD URI", vdisk->nbd_uri},
  });
  std::cout << RenderStats(vdisk->stats);
  return ExitCode::kOk;
}

// Shrinking discards data, so it needs --allow-shrink; the current size is read first to tell.
ExitCode RunResize(const GlobalOptions& options, const Arguments& arguments) {
  AdminClient client = MakeClient(options);
  ApiAnswer current = client.Get(VdiskPath(arguments.name));
  if (!current.ok()) return Fail(current);
  Result<VdiskView> before = admin::VdiskViewFromJson(current.body);
  if (!before.ok()) return FailUnexpected(before.status());
  if (arguments.size_bytes < before->size_bytes && !arguments.allow_shrink) {
    return Fail({ExitCode::kRefused, nullptr,
                 fmt::format("shrinking vdisk '{}' from {} to {} discards the data past {}; "
                             "pass --allow-shrink to do it",
                             arguments.name, FormatSize(before->size_bytes),
                             FormatSize(arguments.size_bytes), FormatSize(arguments.size_bytes))});
  }
  ApiAnswer answer = client.Post(VdiskPath(arguments.name) + "/resize",
                                 json{{"size_bytes", arguments.size_bytes}});
  if (!answer.ok()) return Fail(answer);
  Result<VdiskView> after = admin::VdiskViewFromJson(answer.body);
  if (!after.ok()) return FailUnexpected(after.status());
  if (options.json) {
    PrintJson(answer.body);
  } else {
    std::cout << fmt::format("Resized vdisk '{}' from {} to {}.\n", after->name,
                             FormatSize(before->size_bytes), FormatSize(after->size_bytes));
  }
  return ExitCode::kOk;
}

ExitCode RunDelete(const GlobalOptions& options, const Arguments& arguments) {
  AdminClient client = MakeClient(options);
  ApiAnswer answer = client.Delete(VdiskPath(arguments.name));
  if (!answer.ok()) return Fail(answer);
  if (!options.json) std::cout << fmt::format("Deleted vdisk '{}'.\n", arguments.name);
  return ExitCode::kOk;
}

}  // namespace

void AddVdiskCommands(CLI::App& app, const GlobalOptions& options, Action& action) {
  CLI::App* group = app.add_subcommand(
      "vdisk",
      "Create, list, show, resize and delete vDisks (thin-provisioned block devices "
      "served over NBD)");
  group->require_subcommand(1);
  auto arguments = std::make_shared<Arguments>();
  const std::string size_help =
      "Size in bytes or with a binary unit: 4096, 512M, 10G, 1.5T (K/M/G/T/P = KiB/MiB/GiB/TiB/"
      "PiB)";

  CLI::App* create = AddCommand(*group, "create", "Create a vDisk and print its NBD URI", options,
                                action, arguments, RunCreate);
  create->add_option("NAME", arguments->name, "Name of the new vDisk")->type_name("")->required();
  create->add_option("--size", arguments->size_bytes, size_help)
      ->type_name("SIZE")
      ->required()
      ->transform(SizeTransform());
  create
      ->add_option("--container", arguments->container,
                   "Container to create it in (default: the default container)")
      ->type_name("NAME");

  AddCommand(*group, "list", "List the vDisks", options, action, arguments,
             [](const GlobalOptions& global, const Arguments&) { return RunList(global); });

  CLI::App* show = AddCommand(*group, "show", "Show one vDisk, with its NBD URI and counters",
                              options, action, arguments, RunShow);
  show->add_option("NAME", arguments->name, "vDisk name")->type_name("")->required();

  CLI::App* resize = AddCommand(*group, "resize", "Grow (or, with --allow-shrink, shrink) a vDisk",
                                options, action, arguments, RunResize);
  resize->add_option("NAME", arguments->name, "vDisk name")->type_name("")->required();
  resize->add_option("--size", arguments->size_bytes, "New size. " + size_help)
      ->type_name("SIZE")
      ->required()
      ->transform(SizeTransform());
  resize->add_flag("--allow-shrink", arguments->allow_shrink,
                   "Allow a smaller size: the data past the new end is discarded");

  CLI::App* remove = AddCommand(*group, "delete", "Delete a vDisk and its data", options, action,
                                arguments, RunDelete);
  remove->add_option("NAME", arguments->name, "vDisk name")->type_name("")->required();
}

}  // namespace weft::cli
