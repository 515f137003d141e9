// One thread that runs posted callbacks in order: how a backend calls its users back without
// holding its own locks and without running user code on the caller's thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace weft::cluster {

class CallbackThread {
 public:
  CallbackThread();
  ~CallbackThread();  // Stop().
  CallbackThread(const CallbackThread&) = delete;
  CallbackThread& operator=(const CallbackThread&) = delete;

  // Queues `callback`; dropped (never run) after Stop. At most kQueuedMax may wait.
  void Post(std::function<void()> callback);
  // Runs what is queued, then joins the thread. Must not be called from a callback.
  void Stop();
  bool InCallbackThread() const { return std::this_thread::get_id() == thread_.get_id(); }

  static constexpr size_t kQueuedMax = 4096;

 private:
  void Run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;  // Guarded by mutex_.
  bool stopping_ = false;                    // Guarded by mutex_.
  std::thread thread_;
};

}  // namespace weft::cluster
