#include "cli/admin_client.h"

#include <fmt/format.h>
#include <httplib.h>

#include <cctype>
#include <charconv>

#include "admin/admin_json.h"

namespace weft::cli {
namespace {

using nlohmann::json;

std::string UnreachableMessage(const AdminAddress& address, httplib::Error error) {
  std::string why;
  switch (error) {
    case httplib::Error::Connection:
      why = "connection refused or host unreachable";
      break;
    case httplib::Error::ConnectionTimeout:
      why = fmt::format("no connection within {} s", AdminClient::kConnectTimeoutSeconds);
      break;
    case httplib::Error::Read:
      why = fmt::format("no complete answer within {} s", AdminClient::kReadTimeoutSeconds);
      break;
    default:
      why = httplib::to_string(error);
      break;
  }
  return fmt::format(
      "cannot reach weftd at {} ({}). Is weftd running? Start it with 'weftd' (or 'make run' in "
      "the source tree), or point --admin or WEFT_ADMIN at its admin API.",
      address.ToString(), why);
}

// The answer of something that is not weft's admin API (another server on that port).
ApiAnswer NotTheApi(const AdminAddress& address, int status, std::string_view what) {
  return {ExitCode::kRefused, nullptr,
          fmt::format("unexpected answer from {}: HTTP {} with {}; is --admin pointing at weftd's "
                      "admin API?",
                      address.ToString(), status, what)};
}

ApiAnswer Interpret(const AdminAddress& address, const httplib::Result& result) {
  if (!result)
    return {ExitCode::kUnreachable, nullptr, UnreachableMessage(address, result.error())};
  const int status = result->status;
  if (status == 204) return {ExitCode::kOk, nullptr, ""};
  Result<json> body = admin::ParseJson(result->body);
  if (!body.ok()) return NotTheApi(address, status, "a body that is not JSON");
  if (status >= 200 && status < 300) return {ExitCode::kOk, std::move(*body), ""};
  // The API's error form: {"error":{"code":...,"message":...}}.
  const json* message = nullptr;
  if (body->is_object() && body->contains("error") && (*body)["error"].is_object()) {
    auto it = (*body)["error"].find("message");
    if (it != (*body)["error"].end() && it->is_string()) message = &*it;
  }
  if (message == nullptr) return NotTheApi(address, status, "no error message");
  return {ExitCode::kRefused, nullptr, message->get<std::string>()};
}

}  // namespace

std::string AdminAddress::ToString() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Result<AdminAddress> ParseAdminAddress(std::string_view text) {
  const std::string_view original = text;
  auto invalid = [&](std::string_view why) {
    return Status::InvalidArgument(fmt::format(
        "invalid admin address '{}': {} (expected HOST:PORT, like 127.0.0.1:9440)", original, why));
  };
  if (text.starts_with("http://")) text.remove_prefix(7);
  if (text.ends_with("/")) text.remove_suffix(1);
  AdminAddress address;
  size_t colon;
  if (text.starts_with("[")) {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return invalid("no ']' after the IPv6 address");
    address.host = std::string(text.substr(1, close - 1));
    colon = close + 1;
    if (colon >= text.size() || text[colon] != ':') return invalid("no ':PORT' after ']'");
  } else {
    colon = text.rfind(':');
    if (colon == std::string_view::npos) return invalid("no ':PORT'");
    address.host = std::string(text.substr(0, colon));
    if (address.host.find(':') != std::string::npos) {
      return invalid("an IPv6 address needs brackets: [::1]:9440");
    }
  }
  if (address.host.empty()) return invalid("no host");
  for (char c : address.host) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == '/' || c == '@') {
      return invalid("the host has a space, '/' or '@'");
    }
  }
  std::string_view port = text.substr(colon + 1);
  unsigned value = 0;
  auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || error != std::errc() || end != port.data() + port.size() || value == 0 ||
      value > 65535) {
    return invalid("the port must be a number from 1 to 65535");
  }
  address.port = static_cast<uint16_t>(value);
  return address;
}

std::string EncodePathSegment(std::string_view segment) {
  std::string encoded;
  for (char c : segment) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) || c == '-' || c == '.' || c == '_' || c == '~') {
      encoded += c;
    } else {
      encoded += fmt::format("%{:02X}", byte);
    }
  }
  return encoded;
}

AdminClient::AdminClient(AdminAddress address)
    : address_(std::move(address)), client_(new httplib::Client(address_.host, address_.port)) {
  client_->set_connection_timeout(kConnectTimeoutSeconds, 0);
  client_->set_read_timeout(kReadTimeoutSeconds, 0);
  client_->set_write_timeout(kConnectTimeoutSeconds, 0);
  client_->set_url_encode(false);  // Paths come encoded (EncodePathSegment).
}

AdminClient::~AdminClient() = default;

ApiAnswer AdminClient::Get(const std::string& path) {
  return Interpret(address_, client_->Get(path.c_str()));
}

ApiAnswer AdminClient::Post(const std::string& path, const json& body) {
  return Interpret(
      address_,
      client_->Post(path.c_str(), body.dump(-1, ' ', false, json::error_handler_t::replace),
                    "application/json"));
}

ApiAnswer AdminClient::Put(const std::string& path, const json& body) {
  return Interpret(address_, client_->Put(path.c_str(),
                                          body.dump(-1, ' ', false, json::error_handler_t::replace),
                                          "application/json"));
}

ApiAnswer AdminClient::Delete(const std::string& path) {
  return Interpret(address_, client_->Delete(path.c_str()));
}

}  // namespace weft::cli
