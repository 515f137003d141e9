#include "cluster/callback_thread.h"

#include "base/assert.h"

namespace weft::cluster {

CallbackThread::CallbackThread() : thread_([this] { Run(); }) {}

CallbackThread::~CallbackThread() { Stop(); }

void CallbackThread::Post(std::function<void()> callback) {
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  // A full queue means the callbacks never return: a bug in the user, not an operating error.
  WEFT_ASSERT(queue_.size() < kQueuedMax);
  queue_.push_back(std::move(callback));
  wake_.notify_one();
}

void CallbackThread::Stop() {
  WEFT_ASSERT(!InCallbackThread());
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

void CallbackThread::Run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // Stopping, and everything queued before Stop has run.
    std::function<void()> callback = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    callback();
    lock.lock();
  }
}

}  // namespace weft::cluster
