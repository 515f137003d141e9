// CommitThread: runs the extent store's synced RocksDB batches on a helper thread, so that the
// reactor keeps reaping device completions and flushing the next group while RocksDB syncs its
// log (DESIGN.md: nothing on the data path blocks a reactor).
//
// One thread, one job at a time, in submission order (the store submits the next group only
// after the previous one finished, so the order of batches is the order of groups). When a job
// is done its result is queued and the reactor's device is woken (BlockDevice::Wake); the reactor
// collects results with TakeResults() on its own thread. The job itself must only touch RocksDB
// (thread-safe) and the data handed to it, never the store's state.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "base/status.h"
#include "env/block_device.h"

namespace weft::extent_store {

class CommitThread {
 public:
  using Job = std::function<Status()>;

  explicit CommitThread(env::BlockDevice& device_to_wake);
  ~CommitThread();  // Finishes queued jobs, then joins.
  CommitThread(const CommitThread&) = delete;
  CommitThread& operator=(const CommitThread&) = delete;

  // Queues `job`; its result comes back from TakeResults() under `ticket`.
  void Submit(uint64_t ticket, Job job);
  // Results finished since the last call, in the order the jobs were submitted.
  std::vector<std::pair<uint64_t, Status>> TakeResults();

 private:
  void Run();

  env::BlockDevice& device_to_wake_;
  std::mutex mutex_;
  std::condition_variable jobs_ready_;
  std::deque<std::pair<uint64_t, Job>> jobs_;         // Guarded by mutex_.
  std::vector<std::pair<uint64_t, Status>> results_;  // Guarded by mutex_.
  bool stopping_ = false;                             // Guarded by mutex_.
  std::thread thread_;
};

}  // namespace weft::extent_store
