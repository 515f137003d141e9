#include "env/reactor.h"

#include <unistd.h>

#include <asio/post.hpp>
#include <cerrno>
#include <cstdint>

#include "base/assert.h"

namespace weft::env {

Reactor::Reactor() { work_guard_.emplace(asio::make_work_guard(io_context_)); }

Reactor::~Reactor() {
  // The descriptors are dup()s of fds the callers own; close ours before the io_context goes.
  for (auto& watched : watched_) {
    asio::error_code ignored;
    watched->close(ignored);
  }
  watched_.clear();
}

uint64_t Reactor::AddPoller(std::function<size_t()> poll) {
  WEFT_ASSERT(poll != nullptr);
  const uint64_t id = next_poller_id_++;
  pollers_.push_back({id, std::move(poll)});
  return id;
}

void Reactor::RemovePoller(uint64_t id) {
  std::erase_if(pollers_, [id](const Poller& poller) { return poller.id == id; });
}

void Reactor::WatchNotifyFd(int fd) {
  WEFT_ASSERT(fd >= 0);
  const int duplicate = ::dup(fd);
  WEFT_ASSERT(duplicate >= 0);
  watched_.push_back(std::make_unique<asio::posix::stream_descriptor>(io_context_, duplicate));
  ArmWatch(watched_.size() - 1);
}

void Reactor::ArmWatch(size_t index) {
  asio::posix::stream_descriptor& descriptor = *watched_[index];
  descriptor.async_wait(
      asio::posix::stream_descriptor::wait_read, [this, index](const asio::error_code& error) {
        if (error) return;  // Closed at destruction.
        uint64_t count = 0;
        // Resets the eventfd; EAGAIN means another wake already reset it.
        const ssize_t got = ::read(watched_[index]->native_handle(), &count, sizeof(count));
        WEFT_ASSERT(got == sizeof(count) || errno == EAGAIN);
        ArmWatch(index);
        // The pollers run right after this handler, in the loop.
      });
}

size_t Reactor::RunPollers() {
  size_t progress = 0;
  // By index: a poller may add pollers (a store opened from a handler).
  for (size_t index = 0; index < pollers_.size(); ++index) progress += pollers_[index].poll();
  return progress;
}

size_t Reactor::RunOnce(bool block) {
  if (io_context_.stopped()) io_context_.restart();
  size_t progress = io_context_.poll();
  progress += RunPollers();
  if (progress == 0 && block) progress += io_context_.run_one();
  return progress;
}

void Reactor::Run() {
  while (!stopped()) RunOnce(/*block=*/true);
}

bool Reactor::RunUntil(const std::function<bool()>& done, uint64_t limit_loops) {
  for (uint64_t loop = 0; loop < limit_loops; ++loop) {
    if (done()) return true;
    // Blocking is safe: whatever done() waits for arrives as a handler or a notify fd wake.
    RunOnce(/*block=*/true);
  }
  return done();
}

void Reactor::Stop() {
  stop_requested_.store(true, std::memory_order_release);
  // Wakes a blocked run_one(); the loop then sees the flag.
  asio::post(io_context_, [] {});
}

void Reactor::Post(std::function<void()> task) { asio::post(io_context_, std::move(task)); }

}  // namespace weft::env
