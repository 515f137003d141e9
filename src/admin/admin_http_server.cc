#include "admin/admin_http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

#include "admin/admin_router.h"

namespace weft::admin {
namespace {

// The error code of an answer the HTTP library made itself, before any route ran.
std::string_view LibraryErrorCode(int status) {
  switch (status) {
    case 400:
      return "BadRequest";
    case 404:
      return "NotFound";
    case 413:
      return "PayloadTooLarge";
    case 414:
      return "UriTooLong";
    default:
      return "HttpError";
  }
}

std::string LibraryErrorMessage(const httplib::Request& request, int status,
                                size_t max_body_bytes) {
  if (status == 413) {
    std::string length = request.get_header_value("Content-Length");
    return fmt::format("request body{} is larger than the {} bytes allowed",
                       length.empty() ? "" : " of " + length + " bytes", max_body_bytes);
  }
  if (status == 414) return "request URI is too long";
  if (status == 400) return "malformed HTTP request";
  return fmt::format("HTTP error {}", status);
}

constexpr const char* kNoBodyMessage = "GET, HEAD and OPTIONS requests take no body";

// Whether a request the library does not read a body for (GET, HEAD, OPTIONS) announced one. A
// body there is a client mistake; answering as if it were absent would hide it.
bool AnnouncesUnreadBody(const httplib::Request& request) {
  if (request.method != "GET" && request.method != "HEAD" && request.method != "OPTIONS") {
    return false;
  }
  if (request.has_header("Transfer-Encoding")) return true;
  std::string length = request.get_header_value("Content-Length");
  return !length.empty() && length != "0";
}

// The library's defaults set SO_REUSEPORT, which lets a second server bind a port that is in
// use. SO_REUSEADDR alone still allows a restart while old connections sit in TIME_WAIT, and
// makes "port in use" an error, as it should be.
void SetSocketOptions(int socket) {
  int yes = 1;
  setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

}  // namespace

AdminHttpServer::AdminHttpServer(AdminService& service, AdminHttpServerOptions options)
    : service_(service), options_(std::move(options)), server_(new httplib::Server()) {
  WEFT_ASSERT(options_.worker_threads > 0);
  const uint32_t worker_threads = options_.worker_threads;
  server_->new_task_queue = [worker_threads] { return new httplib::ThreadPool(worker_threads); };
  server_->set_socket_options(SetSocketOptions);
  server_->set_payload_max_length(options_.max_body_bytes);
  server_->set_read_timeout(options_.read_timeout_s, 0);
  server_->set_write_timeout(options_.read_timeout_s, 0);
  // One request per connection. Admin calls are rare, so keep-alive buys little, and it costs:
  // an idle keep-alive connection holds one of the few workers, and the library does not read
  // the body of a GET, which a kept-alive connection would then parse as the next request.
  server_->set_keep_alive_max_count(1);

  auto handler = [this](const httplib::Request& request, httplib::Response& response) {
    HttpReply reply = AnnouncesUnreadBody(request)
                          ? HttpReply{400, ErrorBody("InvalidArgument", kNoBodyMessage), ""}
                          : RouteRequest(service_, request.method, request.target, request.body);
    response.status = reply.status;
    if (!reply.body.empty()) response.set_content(reply.body, "application/json");
    if (!reply.allow.empty()) response.set_header("Allow", reply.allow);
  };
  // Every method reaches the router, which answers 404 and 405 itself. A pattern that matches
  // everything keeps the library's own routing out of the way.
  constexpr const char* kAnyPath = ".*";
  server_->Get(kAnyPath, handler);
  server_->Post(kAnyPath, handler);
  server_->Put(kAnyPath, handler);
  server_->Patch(kAnyPath, handler);
  server_->Delete(kAnyPath, handler);
  server_->Options(kAnyPath, handler);

  // Answers the library makes itself (413, malformed requests) get the API's error form too.
  httplib::Server::HandlerWithResponse error_handler = [this](const httplib::Request& request,
                                                              httplib::Response& response) {
    if (!response.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message = LibraryErrorMessage(request, response.status, options_.max_body_bytes);
    response.set_content(ErrorBody(LibraryErrorCode(response.status), message), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  };
  server_->set_error_handler(std::move(error_handler));
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, const std::exception_ptr&) {
        response.status = 500;
        response.set_content(ErrorBody("Internal", "internal error"), "application/json");
      });
  server_->set_logger([](const httplib::Request& request, const httplib::Response& response) {
    spdlog::level::level_enum level =
        response.status >= 500 ? spdlog::level::warn : spdlog::level::debug;
    spdlog::log(level, "admin api: {} {} from {} -> {} ({} bytes in, {} out)", request.method,
                request.path, request.remote_addr, response.status, request.body.size(),
                response.body.size());
  });
}

AdminHttpServer::~AdminHttpServer() { Stop(); }

Status AdminHttpServer::Start() {
  WEFT_ASSERT(!started_);
  const std::string address = fmt::format("{}:{}", options_.host, options_.port);
  errno = 0;
  int bound_port = -1;
  if (options_.port == 0) {
    bound_port = server_->bind_to_any_port(options_.host);
  } else if (server_->bind_to_port(options_.host, options_.port)) {
    bound_port = options_.port;
  }
  if (bound_port <= 0) {
    // The library closes the socket after a failed bind; close() leaves errno alone on success.
    const int error_number = errno;
    return Status::IOError(fmt::format(
        "admin API cannot listen on {}: {}", address,
        error_number != 0 ? std::strerror(error_number) : "cannot resolve or bind this address"));
  }
  port_ = static_cast<uint16_t>(bound_port);
  started_ = true;

  // Logged before the threads start (the socket already listens): spdlog's first use sets up
  // its registry, which must happen-before the workers log.
  spdlog::info("admin API listening on http://{}:{}", options_.host, port_);
  auto listen_finished = std::make_shared<std::atomic<bool>>(false);
  listen_thread_ = std::thread([this, listen_finished] {
    if (!server_->listen_after_bind()) spdlog::warn("admin API on port {} stopped", port_);
    listen_finished->store(true);
  });
  // Stop() is only effective once the library marked itself running, so wait for that here:
  // returning earlier would let a quick Stop() miss it and hang on join.
  while (!server_->is_running() && !listen_finished->load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return Status::Ok();
}

uint16_t AdminHttpServer::port() const {
  WEFT_ASSERT(started_);
  return port_;
}

void AdminHttpServer::Stop() {
  if (!listen_thread_.joinable()) return;
  server_->stop();
  listen_thread_.join();
}

}  // namespace weft::admin
