// OperationThread: runs LocalMetadataStore's operations on one helper thread, in submission
// order, so that a caller on a reactor never waits for RocksDB (a synced write costs ~0.1-1 ms;
// DESIGN.md: nothing on the data path blocks a reactor).
//
// A job is told whether it runs (aborted = false, on the helper thread) or was cancelled by Stop
// (aborted = true, on the thread that called Stop or Submit). Either way it runs exactly once, so
// a job that owns a completion can always hand it on.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace weft::metadata {

class OperationThread {
 public:
  using Job = std::function<void(bool aborted)>;

  // At most `queued_jobs_max` jobs wait at a time (> 0).
  explicit OperationThread(size_t queued_jobs_max);
  ~OperationThread();  // Stop().
  OperationThread(const OperationThread&) = delete;
  OperationThread& operator=(const OperationThread&) = delete;

  // Queues `job` behind the earlier ones. Blocks the caller while `queued_jobs_max` jobs wait
  // (back-pressure instead of an unbounded queue). After Stop, runs job(true) at once on the
  // caller's thread. Thread-safe.
  void Submit(Job job);

  // Lets the running job finish, runs job(true) for every job still queued (on this thread, in
  // order), and joins the helper thread. Idempotent. Must not be called from a job.
  void Stop();

 private:
  void Run();

  const size_t queued_jobs_max_;
  std::mutex mutex_;
  std::condition_variable job_queued_;
  std::condition_variable space_freed_;
  std::deque<Job> jobs_;   // Guarded by mutex_.
  bool stopping_ = false;  // Guarded by mutex_.
  std::thread thread_;     // Started last, after the members it reads.
};

}  // namespace weft::metadata
