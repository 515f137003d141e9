#include "cli/commands.h"

#include <fmt/format.h>

#include <iostream>

#include "base/size_format.h"

namespace weft::cli {

CLI::Validator AdminAddressValidator() {
  return CLI::Validator(
      [](std::string& text) {
        Result<AdminAddress> address = ParseAdminAddress(text);
        return address.ok() ? std::string() : address.status().message();
      },
      "");  // The option's type_name() says HOST:PORT.
}

CLI::Validator SizeTransform() {
  return CLI::Validator(
      [](std::string& text) {
        Result<uint64_t> bytes = ParseSize(text);
        if (!bytes.ok()) return bytes.status().message();
        text = std::to_string(*bytes);
        return std::string();
      },
      "");  // The option's type_name() says SIZE.
}

AdminClient MakeClient(const GlobalOptions& options) {
  Result<AdminAddress> address = ParseAdminAddress(options.admin_address);
  WEFT_ASSERT(address.ok());  // AdminAddressValidator() ran during parsing.
  return AdminClient(std::move(*address));
}

ExitCode Fail(const ApiAnswer& answer) {
  WEFT_ASSERT(!answer.ok());
  std::cerr << "weft: error: " << answer.error_message << "\n";
  return answer.exit_code;
}

ExitCode FailUnexpected(const Status& status) {
  return Fail({ExitCode::kRefused, nullptr,
               fmt::format("unexpected answer from weftd: {}", status.message())});
}

void PrintJson(const nlohmann::json& body) {
  if (body.is_null()) return;
  std::cout << body.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

std::string FormatDuration(uint64_t seconds) {
  const uint64_t days = seconds / 86400;
  const uint64_t hours = seconds / 3600 % 24;
  const uint64_t minutes = seconds / 60 % 60;
  if (days > 0) return fmt::format("{}d {}h {}m", days, hours, minutes);
  if (hours > 0) return fmt::format("{}h {}m {}s", hours, minutes, seconds % 60);
  if (minutes > 0) return fmt::format("{}m {}s", minutes, seconds % 60);
  return fmt::format("{}s", seconds);
}

}  // namespace weft::cli
