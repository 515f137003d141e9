// Reactor: one thread's event loop. It runs an asio::io_context (sockets, timers, posted tasks)
// and, between batches of handlers, polls the disks and stores that thread owns, so a request is
// parsed, executed and answered on one thread (DESIGN.md: run to completion).
//
// The loop: run every ready handler; run every poller; if neither did anything, block in the
// io_context until a socket, timer, posted task or a watched notify fd (a device's
// completion_notify_fd: io_uring completions and Wake() calls) wakes it.
//
// Threading: Run() on the owner thread; Post() and Stop() from any thread; the rest on the
// owner thread (or before Run()).
#pragma once

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace weft::env {

class Reactor {
 public:
  Reactor();
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  asio::io_context& io_context() { return io_context_; }

  // A poller runs completions that are ready and returns how many it ran (0: nothing to do).
  // Returns an id for RemovePoller.
  uint64_t AddPoller(std::function<size_t()> poll);
  void RemovePoller(uint64_t id);
  // Wakes the loop whenever `fd` (an eventfd, owned by the caller and outliving the reactor's
  // use of it) becomes readable; the loop resets it and runs the pollers.
  void WatchNotifyFd(int fd);

  // Runs the loop until Stop(). Returns at once if Stop() was already called.
  void Run();
  // Runs handlers and pollers until `done()` is true, blocking between events; for shutdown
  // (draining in-flight I/O after Stop) and for tests. Returns false if `limit_loops` passes
  // without done() turning true.
  bool RunUntil(const std::function<bool()>& done, uint64_t limit_loops = UINT64_MAX);
  void Stop();
  bool stopped() const { return stop_requested_.load(std::memory_order_acquire); }
  // Runs `task` on the owner thread.
  void Post(std::function<void()> task);

 private:
  size_t RunPollers();
  size_t RunOnce(bool block);
  void ArmWatch(size_t index);

  asio::io_context io_context_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_guard_;
  struct Poller {
    uint64_t id = 0;
    std::function<size_t()> poll;
  };
  std::vector<Poller> pollers_;
  uint64_t next_poller_id_ = 1;
  std::vector<std::unique_ptr<asio::posix::stream_descriptor>> watched_;
  std::atomic<bool> stop_requested_{false};
};

}  // namespace weft::env
