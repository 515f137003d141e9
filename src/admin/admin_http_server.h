// AdminHttpServer: serves the admin JSON API (admin_router.h, docs/admin-api.md) over HTTP/1.1
// with cpp-httplib, on its own threads: one accept thread and a small pool of workers that call
// the AdminService (which is thread-safe and blocking, admin_service.h).
//
// Limits: at most `worker_threads` requests run at once (further connections wait in the
// library's queue); a request body larger than `max_body_bytes` gets 413 without reaching the
// service; a client that stalls mid-request is dropped after the read timeout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "admin/admin_service.h"
#include "base/status.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace weft::admin {

struct AdminHttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 9440;  // 0: the kernel picks a free port; port() tells which.
  uint32_t worker_threads = 4;
  size_t max_body_bytes = size_t{64} * 1024;
  uint32_t read_timeout_s = 5;  // A client silent this long mid-request is disconnected.
};

class AdminHttpServer {
 public:
  // `service` must outlive the server.
  AdminHttpServer(AdminService& service, AdminHttpServerOptions options);
  ~AdminHttpServer();  // Stops the server if it runs.
  AdminHttpServer(const AdminHttpServer&) = delete;
  AdminHttpServer& operator=(const AdminHttpServer&) = delete;

  // Binds host:port and starts serving on a thread of its own; returns once requests are
  // accepted. An error names the address (e.g. "127.0.0.1:9440: Address already in use"). Call
  // at most once.
  [[nodiscard]] Status Start();

  // The bound port (the chosen one when options.port was 0). Only after a successful Start().
  uint16_t port() const;

  // Stops accepting, waits for the requests in progress and joins the threads. Idempotent.
  void Stop();

 private:
  AdminService& service_;
  const AdminHttpServerOptions options_;
  std::unique_ptr<httplib::Server> server_;
  uint16_t port_ = 0;
  bool started_ = false;
  std::thread listen_thread_;
};

}  // namespace weft::admin
