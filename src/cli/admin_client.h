// AdminClient: the CLI's side of the admin HTTP API (docs/admin-api.md). Every call returns an
// ApiAnswer that already says which exit code the CLI must end with and what to print, so that
// commands only decide what to show on success.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/status.h"

namespace httplib {
class Client;
}  // namespace httplib

namespace weft::cli {

// The CLI's exit codes (documented in `weft --help`).
enum class ExitCode : int {
  kOk = 0,
  kRefused = 1,      // weftd answered with an error (or with something that is not its API).
  kUsage = 2,        // The command line is wrong.
  kUnreachable = 3,  // weftd could not be reached, or did not answer in time.
};

struct AdminAddress {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const;  // "127.0.0.1:9440", "[::1]:9440".
};

// "HOST:PORT" or "[IPV6]:PORT", with an optional "http://" in front and "/" behind.
Result<AdminAddress> ParseAdminAddress(std::string_view text);

// One path segment with everything but unreserved characters percent-encoded, so that a name
// can never change the path's shape.
std::string EncodePathSegment(std::string_view segment);

struct ApiAnswer {
  ExitCode exit_code = ExitCode::kOk;
  nlohmann::json body;        // When ok(): the answer's JSON, null for 204 No Content.
  std::string error_message;  // Otherwise: what to print after "weft: error: ".
  bool ok() const { return exit_code == ExitCode::kOk; }
};

class AdminClient {
 public:
  static constexpr int kConnectTimeoutSeconds = 3;
  // Resizes and deletes may free a lot of data before weftd answers.
  static constexpr int kReadTimeoutSeconds = 120;

  explicit AdminClient(AdminAddress address);
  ~AdminClient();
  AdminClient(const AdminClient&) = delete;
  AdminClient& operator=(const AdminClient&) = delete;

  // `path` is absolute ("/api/v1/vdisks/vm1"), with names and query values already encoded.
  ApiAnswer Get(const std::string& path);
  ApiAnswer Post(const std::string& path, const nlohmann::json& body);
  ApiAnswer Put(const std::string& path, const nlohmann::json& body);
  ApiAnswer Delete(const std::string& path);

 private:
  AdminAddress address_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace weft::cli
