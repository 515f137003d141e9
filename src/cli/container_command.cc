// weft container create|list|show|delete: containers hold vDisks and set their replication
// factor.
#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "base/size_format.h"
#include "cli/commands.h"
#include "cli/table.h"

namespace weft::cli {
namespace {

using admin::ContainerView;
using nlohmann::json;

std::string ContainerPath(const std::string& name) {
  return "/api/v1/containers/" + EncodePathSegment(name);
}

ExitCode RunCreate(const GlobalOptions& options, const std::string& name,
                   uint32_t replication_factor) {
  AdminClient client = MakeClient(options);
  ApiAnswer answer = client.Post("/api/v1/containers",
                                 json{{"name", name}, {"replication_factor", replication_factor}});
  if (!answer.ok()) return Fail(answer);
  Result<ContainerView> container = admin::ContainerViewFromJson(answer.body);
  if (!container.ok()) return FailUnexpected(container.status());
  if (options.json) {
    PrintJson(answer.body);
  } else {
    std::cout << fmt::format("Created container '{}' (replication factor {}).\n", container->name,
                             container->replication_factor);
  }
  return ExitCode::kOk;
}

ExitCode RunList(const GlobalOptions& options) {
  AdminClient client = MakeClient(options);
  ApiAnswer answer = client.Get("/api/v1/containers");
  if (!answer.ok()) return Fail(answer);
  if (!answer.body.is_object() || !answer.body.contains("containers") ||
      !answer.body["containers"].is_array()) {
    return FailUnexpected(Status::InvalidArgument("no \"containers\" array"));
  }
  using Align = Table::Align;
  Table table({{"NAME"},
               {"RF", Align::kRight},
               {"VDISKS", Align::kRight},
               {"PROVISIONED", Align::kRight},
               {"USED", Align::kRight}});
  for (const json& item : answer.body["containers"]) {
    Result<ContainerView> container = admin::ContainerViewFromJson(item);
    if (!container.ok()) return FailUnexpected(container.status());
    table.AddRow({container->name, std::to_string(container->replication_factor),
                  std::to_string(container->vdisk_count), FormatSize(container->provisioned_bytes),
                  FormatSize(container->used_bytes)});
  }
  if (options.json) {
    PrintJson(answer.body);
  } else if (answer.body["containers"].empty()) {
    std::cout << "No containers. Create one with: weft container create NAME\n";
  } else {
    std::cout << table.Render();
  }
  return ExitCode::kOk;
}

ExitCode RunShow(const GlobalOptions& options, const std::string& name) {
  AdminClient client = MakeClient(options);
  ApiAnswer answer = client.Get(ContainerPath(name));
  if (!answer.ok()) return Fail(answer);
  Result<ContainerView> container = admin::ContainerViewFromJson(answer.body);
  if (!container.ok()) return FailUnexpected(container.status());
  if (options.json) {
    PrintJson(answer.body);
    return ExitCode::kOk;
  }
  std::cout << RenderFields({
      {"Name", container->name},
      {"Replication factor", std::to_string(container->replication_factor)},
      {"vDisks", std::to_string(container->vdisk_count)},
      {"Provisioned", FormatSize(container->provisioned_bytes)},
      {"Used", FormatSize(container->used_bytes)},
  });
  return ExitCode::kOk;
}

ExitCode RunDelete(const GlobalOptions& options, const std::string& name) {
  AdminClient client = MakeClient(options);
  ApiAnswer answer = client.Delete(ContainerPath(name));
  if (!answer.ok()) return Fail(answer);
  if (!options.json) std::cout << fmt::format("Deleted container '{}'.\n", name);
  return ExitCode::kOk;
}

}  // namespace

void AddContainerCommands(CLI::App& app, const GlobalOptions& options, Action& action) {
  CLI::App* group =
      app.add_subcommand("container",
                         "Create, list, show and delete containers (they hold vDisks and set their "
                         "replication factor)");
  group->require_subcommand(1);

  struct Arguments {
    std::string name;
    uint32_t replication_factor = 1;
  };
  auto arguments = std::make_shared<Arguments>();

  CLI::App* create = group->add_subcommand("create", "Create a container");
  create->add_option("NAME", arguments->name, "Name of the new container")
      ->type_name("")
      ->required();
  create
      ->add_option("--rf", arguments->replication_factor,
                   "Replication factor: copies kept of each vDisk's data")
      ->type_name("N")
      ->default_val(1)
      ->check(CLI::Range(1, 255));
  create->callback([&options, &action, arguments] {
    action = [&options, arguments] {
      return RunCreate(options, arguments->name, arguments->replication_factor);
    };
  });

  CLI::App* list = group->add_subcommand("list", "List the containers");
  list->callback([&options, &action] { action = [&options] { return RunList(options); }; });

  CLI::App* show = group->add_subcommand("show", "Show one container");
  show->add_option("NAME", arguments->name, "Container name")->type_name("")->required();
  show->callback([&options, &action, arguments] {
    action = [&options, arguments] { return RunShow(options, arguments->name); };
  });

  CLI::App* remove = group->add_subcommand("delete", "Delete an empty container");
  remove->add_option("NAME", arguments->name, "Container name")->type_name("")->required();
  remove->callback([&options, &action, arguments] {
    action = [&options, arguments] { return RunDelete(options, arguments->name); };
  });
}

}  // namespace weft::cli
