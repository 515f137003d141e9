// What the `weft` subcommands share: the global options, how a subcommand hands its work to
// main(), and the output helpers that keep every command's errors and JSON the same.
//
// Each *_command.cc file registers one group of subcommands with CLI11. A subcommand's callback
// only stores an Action; main() runs it after parsing, so that usage errors (exit 2) are all
// reported before anything talks to weftd.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>

#include "admin/admin_json.h"
#include "cli/admin_client.h"

namespace weft::cli {

inline constexpr const char* kDefaultAdminAddress = "127.0.0.1:9440";

struct GlobalOptions {
  std::string admin_address = kDefaultAdminAddress;  // Checked by AdminAddressValidator().
  bool json = false;                                 // Print the API's JSON instead of text.
};

// The work of the subcommand the user chose; returns the process's exit code.
using Action = std::function<ExitCode()>;

// Registers subcommand `name` under `group`; when it is chosen, its callback makes
// `run(options, *arguments)` the action (the options are parsed into `arguments` first).
template <typename Arguments>
CLI::App* AddCommand(
    CLI::App& group, const char* name, const char* description, const GlobalOptions& options,
    Action& action, const std::shared_ptr<Arguments>& arguments,
    std::type_identity_t<ExitCode (*)(const GlobalOptions&, const Arguments&)> run) {
  CLI::App* command = group.add_subcommand(name, description);
  command->callback([&options, &action, arguments, run] {
    action = [&options, arguments, run] { return run(options, *arguments); };
  });
  return command;
}

void AddStatusCommand(CLI::App& app, const GlobalOptions& options, Action& action);
void AddContainerCommands(CLI::App& app, const GlobalOptions& options, Action& action);
void AddVdiskCommands(CLI::App& app, const GlobalOptions& options, Action& action);
void AddMetaCommands(CLI::App& app, const GlobalOptions& options, Action& action);
void AddClusterCommands(CLI::App& app, const GlobalOptions& options, Action& action);

// CLI11 checks for --admin (and WEFT_ADMIN) and for sizes; a size option is rewritten to its
// number of bytes, so it can be bound to a uint64_t.
CLI::Validator AdminAddressValidator();
CLI::Validator SizeTransform();

// A client for options.admin_address (already validated).
AdminClient MakeClient(const GlobalOptions& options);

// Prints "weft: error: MESSAGE" to stderr and returns the answer's exit code.
ExitCode Fail(const ApiAnswer& answer);
// For an answer that is JSON but not the expected view: prints and returns kRefused.
ExitCode FailUnexpected(const Status& status);
// Pretty-prints `body` on stdout (--json); prints nothing for a null body (204 No Content).
void PrintJson(const nlohmann::json& body);

// "3d 4h 5m", "2h 0m 7s", "42s".
std::string FormatDuration(uint64_t seconds);

}  // namespace weft::cli
