#include "admin/admin_router.h"

#include <fmt/format.h>

#include <exception>
#include <utility>
#include <vector>

#include "admin/admin_json.h"

namespace weft::admin {
namespace {

using nlohmann::json;

enum class Route {
  kUnknown,
  kHealth,      // /healthz
  kNode,        // /api/v1/node
  kContainers,  // /api/v1/containers
  kContainer,   // /api/v1/containers/{name}
  kVdisks,      // /api/v1/vdisks
  kVdisk,       // /api/v1/vdisks/{name}
  kVdiskResize  // /api/v1/vdisks/{name}/resize
};

struct RouteMatch {
  Route route = Route::kUnknown;
  std::string name;  // The {name} segment, for the routes that have one.
};

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
    return {};
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
      return "GET";
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

// Serves a request whose method the route accepts (HEAD already turned into GET).
HttpReply Dispatch(AdminService& service, std::string_view method, const RouteMatch& match,
                   std::string_view body) {
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
    case Route::kUnknown:
      break;
  }
  WEFT_ASSERT(false);  // MatchRoute never yields kUnknown with an allowed method.
  return {};
}

HttpReply RouteRequestOrThrow(AdminService& service, std::string_view method,
                              std::string_view target, std::string_view body) {
  // No route takes query parameters; ignoring one (say ?force=1) would hide a mistake.
  const size_t query = target.find('?');
  if (query != std::string_view::npos) {
    return ErrorReply(Status::InvalidArgument(
        fmt::format("the API takes no query parameters ('{}')", target.substr(query))));
  }
  const std::string_view path = target;
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
  // A body where none is read is most likely a mistake (say {"force":true} on a DELETE), and
  // ignoring it would hide that.
  if (!body.empty() && (method == "GET" || method == "DELETE")) {
    return ErrorReply(Status::InvalidArgument(
        fmt::format("{} {} takes no request body ({} bytes sent)", method, path, body.size())));
  }
  return Dispatch(service, method, match, body);
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
