// The admin API's routes, independent of the HTTP library: a request (method, target, body) goes
// in, a status and a JSON body come out. admin_http_server.cc connects it to cpp-httplib;
// docs/admin-api.md lists the routes.
#pragma once

#include <string>
#include <string_view>

#include "admin/admin_service.h"
#include "base/status.h"

namespace weft::admin {

struct HttpReply {
  int status = 200;
  std::string body;   // JSON text; empty for 204.
  std::string allow;  // For 405 and OPTIONS: the methods the path accepts ("GET, DELETE").
};

// The HTTP status an AdminService error maps to (admin_service.h): InvalidArgument 400,
// NotFound 404, AlreadyExists/Busy/Aborted 409, NoSpace 507, anything else 500.
int HttpStatusFor(StatusCode code);

// Serves one request with `service`. `target` is the request target as sent, still
// percent-encoded: the path is split into segments before each is decoded, so that a name
// holding "/" (sent as %2F) is a name, not two segments. Never throws: a service or JSON
// exception becomes a 500 answer. HEAD is served as GET (the HTTP layer drops the body).
// Thread-safe as the service is.
HttpReply RouteRequest(AdminService& service, std::string_view method, std::string_view target,
                       std::string_view body);

// The JSON text of an error answer ({"error":{"code":...,"message":...}}).
std::string ErrorBody(std::string_view code, std::string_view message);

}  // namespace weft::admin
