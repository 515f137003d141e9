#include "admin/admin_router.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "admin/admin_json.h"

namespace weft::admin {
namespace {

using nlohmann::json;

enum class Route {
  kUnknown,
  kHealth,       // /healthz
  kNode,         // /api/v1/node
  kContainers,   // /api/v1/containers
  kContainer,    // /api/v1/containers/{name}
  kVdisks,       // /api/v1/vdisks
  kVdisk,        // /api/v1/vdisks/{name}
  kVdiskResize,  // /api/v1/vdisks/{name}/resize
  kCluster,      // /api/v1/cluster
  kMetadata,     // /api/v1/metadata (scan)
  kMetadataRow   // /api/v1/metadata/{key}
};

struct RouteMatch {
  Route route = Route::kUnknown;
  std::string name;  // The {name} segment (the row's key for kMetadataRow).
};

// The scan size when the client gives no limit: a page a terminal can show.
constexpr uint32_t kScanDefaultRows = 100;

// A request's query parameters, percent-decoded, in the order sent.
using QueryParameters = std::map<std::string, std::string>;

// The JSON text of `value`. Invalid UTF-8 (a name decoded from a path like /vdisks/%FF ends up
// in error messages) is replaced instead of making dump() throw.
std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "a%2Fb" -> "a/b". InvalidArgument for a '%' not followed by two hex digits.
Result<std::string> PercentDecode(std::string_view segment) {
  std::string decoded;
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] != '%') {
      decoded += segment[i];
      continue;
    }
    int high = i + 2 < segment.size() ? HexValue(segment[i + 1]) : -1;
    int low = i + 2 < segment.size() ? HexValue(segment[i + 2]) : -1;
    if (high < 0 || low < 0) {
      return Status::InvalidArgument(
          fmt::format("malformed percent-encoding in path segment '{}'", segment));
    }
    decoded += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return decoded;
}

// "a=1&b=x%20y" -> {a: "1", b: "x y"}. '+' is a space, as in HTML forms (curl --data-urlencode
// and Python's urlencode send it so); a literal '+' travels as %2B. A parameter without '=', an
// empty name or a repeated name is InvalidArgument: guessing what was meant would hide a mistake.
Result<QueryParameters> ParseQuery(std::string_view query) {
  QueryParameters parameters;
  while (!query.empty()) {
    const size_t end = query.find('&');
    std::string_view pair = query.substr(0, end);
    query = end == std::string_view::npos ? std::string_view() : query.substr(end + 1);
    const size_t equals = pair.find('=');
    if (equals == std::string_view::npos || equals == 0) {
      return Status::InvalidArgument(
          fmt::format("malformed query parameter '{}': expected NAME=VALUE", pair));
    }
    std::string plus_as_space(pair.substr(equals + 1));
    std::replace(plus_as_space.begin(), plus_as_space.end(), '+', ' ');
    WEFT_ASSIGN_OR_RETURN(std::string name, PercentDecode(pair.substr(0, equals)));
    WEFT_ASSIGN_OR_RETURN(std::string value, PercentDecode(plus_as_space));
    if (!parameters.emplace(name, std::move(value)).second) {
      return Status::InvalidArgument(fmt::format("query parameter '{}' is repeated", name));
    }
  }
  return parameters;
}

// "/api/v1/vdisks/a%2Fb" -> {"api", "v1", "vdisks", "a/b"}. Empty segments (a doubled or trailing
// slash) are kept, so that such a path matches no route instead of a different one.
Result<std::vector<std::string>> SplitPath(std::string_view path) {
  std::vector<std::string> segments;
  if (path.empty() || path.front() != '/') return segments;
  path.remove_prefix(1);
  while (true) {
    size_t slash = path.find('/');
    WEFT_ASSIGN_OR_RETURN(std::string segment, PercentDecode(path.substr(0, slash)));
    segments.push_back(std::move(segment));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return segments;
}

RouteMatch MatchRoute(const std::vector<std::string>& segments) {
  if (segments.size() == 1 && segments[0] == "healthz") return {Route::kHealth, ""};
  if (segments.size() < 3 || segments[0] != "api" || segments[1] != "v1") return {};
  const std::string& collection = segments[2];
  if (segments.size() == 3) {
    if (collection == "node") return {Route::kNode, ""};
    if (collection == "containers") return {Route::kContainers, ""};
    if (collection == "vdisks") return {Route::kVdisks, ""};
    if (collection == "cluster") return {Route::kCluster, ""};
    if (collection == "metadata") return {Route::kMetadata, ""};
    return {};
  }
  if (collection == "metadata") {
    // A key may hold '/', sent as is or as %2F: the key is the whole rest of the path.
    std::string key = segments[3];
    for (size_t i = 4; i < segments.size(); ++i) key += "/" + segments[i];
    if (key.empty()) return {};
    return {Route::kMetadataRow, std::move(key)};
  }
  const std::string& name = segments[3];
  if (name.empty()) return {};
  if (segments.size() == 4 && collection == "containers") return {Route::kContainer, name};
  if (segments.size() == 4 && collection == "vdisks") return {Route::kVdisk, name};
  if (segments.size() == 5 && collection == "vdisks" && segments[4] == "resize") {
    return {Route::kVdiskResize, name};
  }
  return {};
}

std::string_view AllowedMethods(Route route) {
  switch (route) {
    case Route::kHealth:
    case Route::kNode:
    case Route::kCluster:
    case Route::kMetadata:
      return "GET";
    case Route::kMetadataRow:
      return "GET, PUT, DELETE";
    case Route::kContainers:
    case Route::kVdisks:
      return "GET, POST";
    case Route::kContainer:
    case Route::kVdisk:
      return "GET, DELETE";
    case Route::kVdiskResize:
      return "POST";
    case Route::kUnknown:
      break;
  }
  return "";
}

bool IsAllowed(Route route, std::string_view method) {
  std::string_view allowed = AllowedMethods(route);
  for (size_t start = 0; start < allowed.size();) {
    size_t end = allowed.find(", ", start);
    if (allowed.substr(start, end - start) == method) return true;
    if (end == std::string_view::npos) break;
    start = end + 2;
  }
  return false;
}

// The query parameters `method` on `route` accepts; every other one is refused.
std::vector<std::string_view> AcceptedParameters(Route route, std::string_view method) {
  if (route == Route::kMetadata) return {"prefix", "start_after", "limit"};
  if (route == Route::kMetadataRow && method == "DELETE") return {"expected_version"};
  return {};
}

Status CheckParameters(const QueryParameters& parameters,
                       const std::vector<std::string_view>& accepted) {
  for (const auto& [name, value] : parameters) {
    if (std::find(accepted.begin(), accepted.end(), name) != accepted.end()) continue;
    std::string expected;
    for (std::string_view known : accepted)
      expected += (expected.empty() ? "" : ", ") + std::string(known);
    return Status::InvalidArgument(
        fmt::format("unknown query parameter '{}' (expected: {})", name, expected));
  }
  return Status::Ok();
}

// A decimal integer query parameter: `fallback` when absent, InvalidArgument when it is not a
// number that fits.
template <typename T>
Result<T> IntegerParameter(const QueryParameters& parameters, const std::string& name,
                           std::optional<T> fallback) {
  auto it = parameters.find(name);
  if (it == parameters.end()) {
    if (fallback.has_value()) return *fallback;
    return Status::InvalidArgument(fmt::format("missing required query parameter '{}'", name));
  }
  const std::string& text = it->second;
  T value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return Status::InvalidArgument(
        fmt::format("query parameter '{}' must be an integer from 0 to {}, got '{}'", name,
                    std::numeric_limits<T>::max(), text));
  }
  return value;
}

std::string ParameterOr(const QueryParameters& parameters, const std::string& name) {
  auto it = parameters.find(name);
  return it == parameters.end() ? std::string() : it->second;
}

HttpReply ErrorReply(const Status& status) {
  WEFT_ASSERT(!status.ok());
  return {HttpStatusFor(status.code()), ErrorBody(StatusCodeName(status.code()), status.message()),
          ""};
}

template <typename T>
HttpReply ViewReply(const Result<T>& result, int success_status) {
  if (!result.ok()) return ErrorReply(result.status());
  return {success_status, Dump(ToJson(*result)), ""};
}

template <typename T>
HttpReply ListReply(const Result<std::vector<T>>& result, const char* key) {
  if (!result.ok()) return ErrorReply(result.status());
  json items = json::array();
  for (const T& view : *result) items.push_back(ToJson(view));
  return {200, Dump(json{{key, std::move(items)}}), ""};
}

HttpReply DeleteReply(const Status& status) {
  if (!status.ok()) return ErrorReply(status);
  return {204, "", ""};
}

HttpReply MetadataScanReply(AdminService& service, const QueryParameters& parameters) {
  Result<uint32_t> limit =
      IntegerParameter<uint32_t>(parameters, "limit", std::optional<uint32_t>(kScanDefaultRows));
  if (!limit.ok()) return ErrorReply(limit.status());
  return ListReply(service.MetadataScan(ParameterOr(parameters, "prefix"),
                                        ParameterOr(parameters, "start_after"), *limit),
                   "rows");
}

HttpReply MetadataRowReply(AdminService& service, std::string_view method, const std::string& key,
                           const QueryParameters& parameters, std::string_view body) {
  if (method == "GET") return ViewReply(service.MetadataGet(key), 200);
  if (method == "DELETE") {
    Result<uint64_t> version =
        IntegerParameter<uint64_t>(parameters, "expected_version", std::nullopt);
    if (!version.ok()) return ErrorReply(version.status());
    return DeleteReply(service.MetadataCompareAndDelete(key, *version));
  }
  WEFT_ASSERT(method == "PUT");
  Result<MetadataPutRequest> request = ParseMetadataPutRequest(body);
  if (!request.ok()) return ErrorReply(request.status());
  Result<uint64_t> version =
      service.MetadataCompareAndSet(key, request->expected_version, request->value);
  if (!version.ok()) return ErrorReply(version.status());
  return {200, Dump(ToJson(MetadataRowView{key, request->value, *version})), ""};
}

// Serves a request whose method the route accepts (HEAD already turned into GET).
HttpReply Dispatch(AdminService& service, std::string_view method, const RouteMatch& match,
                   const QueryParameters& parameters, std::string_view body) {
  const bool get = method == "GET";
  switch (match.route) {
    case Route::kHealth:
      return {200, Dump(json{{"status", "ok"}}), ""};
    case Route::kNode:
      return ViewReply(service.GetNode(), 200);
    case Route::kContainers: {
      if (get) return ListReply(service.ListContainers(), "containers");
      Result<CreateContainerRequest> request = ParseCreateContainerRequest(body);
      if (!request.ok()) return ErrorReply(request.status());
      return ViewReply(service.CreateContainer(request->name, request->replication_factor), 201);
    }
    case Route::kContainer:
      if (get) return ViewReply(service.GetContainer(match.name), 200);
      return DeleteReply(service.DeleteContainer(match.name));
    case Route::kVdisks: {
      if (get) return ListReply(service.ListVdisks(), "vdisks");
      Result<CreateVdiskRequest> request = ParseCreateVdiskRequest(body);
      if (!request.ok()) return ErrorReply(request.status());
      return ViewReply(service.CreateVdisk(request->name, request->size_bytes, request->container),
                       201);
    }
    case Route::kVdisk:
      if (get) return ViewReply(service.GetVdisk(match.name), 200);
      return DeleteReply(service.DeleteVdisk(match.name));
    case Route::kVdiskResize: {
      Result<ResizeVdiskRequest> request = ParseResizeVdiskRequest(body);
      if (!request.ok()) return ErrorReply(request.status());
      return ViewReply(service.ResizeVdisk(match.name, request->size_bytes), 200);
    }
    case Route::kCluster:
      return ViewReply(service.GetCluster(), 200);
    case Route::kMetadata:
      return MetadataScanReply(service, parameters);
    case Route::kMetadataRow:
      return MetadataRowReply(service, method, match.name, parameters, body);
    case Route::kUnknown:
      break;
  }
  WEFT_ASSERT(false);  // MatchRoute never yields kUnknown with an allowed method.
  return {};
}

HttpReply RouteRequestOrThrow(AdminService& service, std::string_view method,
                              std::string_view target, std::string_view body) {
  const size_t query = target.find('?');
  const std::string_view path = target.substr(0, query);
  Result<std::vector<std::string>> segments = SplitPath(path);
  if (!segments.ok()) return ErrorReply(segments.status());
  RouteMatch match = MatchRoute(*segments);
  if (match.route == Route::kUnknown) {
    return {404, ErrorBody("NotFound", fmt::format("no such API route: {}", path)), ""};
  }
  if (method == "HEAD") method = "GET";
  std::string allow(AllowedMethods(match.route));
  if (method == "OPTIONS") return {204, "", allow};
  if (!IsAllowed(match.route, method)) {
    return {405,
            ErrorBody("MethodNotAllowed",
                      fmt::format("{} is not allowed on {} (allowed: {})", method, path, allow)),
            allow};
  }
  // Only the routes that document parameters take them; ignoring one (say ?force=1) would hide
  // a mistake.
  const std::vector<std::string_view> accepted = AcceptedParameters(match.route, method);
  QueryParameters parameters;
  if (query != std::string_view::npos && accepted.empty()) {
    return ErrorReply(Status::InvalidArgument(
        fmt::format("{} {} takes no query parameters ('{}')", method, path, target.substr(query))));
  }
  if (query != std::string_view::npos) {
    Result<QueryParameters> parsed = ParseQuery(target.substr(query + 1));
    if (!parsed.ok()) return ErrorReply(parsed.status());
    Status checked = CheckParameters(*parsed, accepted);
    if (!checked.ok()) return ErrorReply(checked);
    parameters = std::move(*parsed);
  }
  // A body where none is read is most likely a mistake (say {"force":true} on a DELETE), and
  // ignoring it would hide that.
  if (!body.empty() && (method == "GET" || method == "DELETE")) {
    return ErrorReply(Status::InvalidArgument(
        fmt::format("{} {} takes no request body ({} bytes sent)", method, path, body.size())));
  }
  return Dispatch(service, method, match, parameters, body);
}

}  // namespace

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kBusy:
    case StatusCode::kAborted:
      return 409;
    case StatusCode::kNoSpace:
      return 507;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kTimedOut:
      return 504;
    case StatusCode::kCorruption:
    case StatusCode::kIOError:
    case StatusCode::kNotSupported:
      break;
  }
  return 500;
}

std::string ErrorBody(std::string_view code, std::string_view message) {
  return Dump(ErrorJson(code, message));
}

HttpReply RouteRequest(AdminService& service, std::string_view method, std::string_view target,
                       std::string_view body) {
  // Exceptions stop here: neither the service nor nlohmann may take a worker thread down.
  try {
    return RouteRequestOrThrow(service, method, target, body);
  } catch (const std::exception& error) {
    return {500, ErrorBody("Internal", fmt::format("internal error: {}", error.what())), ""};
  } catch (...) {
    return {500, ErrorBody("Internal", "internal error: unknown exception"), ""};
  }
}

}  // namespace weft::admin
