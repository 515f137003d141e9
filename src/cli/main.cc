// weft: the command-line client of weftd's admin API (docs/admin-api.md).
//
// Exit codes: 0 success, 1 weftd refused (its message is printed), 2 usage error, 3 weftd could
// not be reached.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "cli/commands.h"

namespace {

constexpr const char* kFooter = R"(
Examples:
  weft status
  weft vdisk create vm1 --size 10G
  weft vdisk list
  qemu-img info nbd://127.0.0.1:10809/vm1     (the URI 'weft vdisk show vm1' prints)
  weft vdisk resize vm1 --size 20G
  weft container create gold --rf 3
  weft --json vdisk show vm1
  weft meta put kv/color blue                 (creates the row: version 1)
  weft meta put kv/color green --version 1
  weft meta scan kv/
  weft cluster create --zookeeper 127.0.0.1:2181 --node 1=10.0.0.1:7100,10.0.0.1:9440 \
      --node 2=10.0.0.2:7100,10.0.0.2:9440 --node 3=10.0.0.3:7100,10.0.0.3:9440
  weft cluster show

Sizes use binary units: K, M, G, T, P (or KiB, MiB, GiB, TiB, PiB) are powers of 1024.

Exit codes:
  0  success
  1  weftd refused the request (the reason is printed), or answered unexpectedly
  2  usage error
  3  weftd cannot be reached at the admin address

Run 'weft COMMAND --help' for a command's options, or 'weft --help-all' for all of them.)";

int Run(int argc, char** argv) {
  using weft::cli::ExitCode;
  CLI::App app(
      "weft: manage a weft node's containers, vDisks, metadata and cluster through weftd's admin "
      "API.",
      "weft");
  app.set_help_all_flag("--help-all", "Print help for every command and exit");
  app.require_subcommand(1);
  // Global options may come after the subcommand too: `weft vdisk list --json`.
  app.fallthrough();

  weft::cli::GlobalOptions options;
  app.add_option("--admin", options.admin_address, "weftd's admin API address")
      ->envname("WEFT_ADMIN")
      ->type_name("HOST:PORT")
      ->default_val(weft::cli::kDefaultAdminAddress)
      ->check(weft::cli::AdminAddressValidator());
  app.add_flag("--json", options.json, "Print the API's JSON answer instead of tables");

  weft::cli::Action action;
  weft::cli::AddStatusCommand(app, options, action);
  weft::cli::AddContainerCommands(app, options, action);
  weft::cli::AddVdiskCommands(app, options, action);
  weft::cli::AddMetaCommands(app, options, action);
  weft::cli::AddClusterCommands(app, options, action);
  // After the subcommands: they copy their parent's footer when created, and the examples are
  // only worth reading once.
  app.footer(kFooter);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --help-all end here with code 0; everything else is a usage error.
    const int code = app.exit(error);
    return code == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
  }
  WEFT_ASSERT(action != nullptr);  // require_subcommand(1) at every level.
  return static_cast<int>(action());
}

}  // namespace

int main(int argc, char** argv) {
  // Libraries log (the ZooKeeper backend of `cluster create` says which session it got): keep
  // stdout for the command's output, and only warnings and errors for the user.
  spdlog::set_default_logger(spdlog::stderr_logger_st("weft"));
  spdlog::set_level(spdlog::level::warn);
  // Nothing below is expected to throw (CLI11's parse errors are caught where they happen), but a
  // bug must still end in a message and a failing exit code, not in std::terminate.
  try {
    return Run(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "weft: internal error: " << error.what() << "\n";
    return 1;
  }
}
