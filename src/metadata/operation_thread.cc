#include "metadata/operation_thread.h"

#include <utility>

#include "base/assert.h"

namespace weft::metadata {

OperationThread::OperationThread(size_t queued_jobs_max) : queued_jobs_max_(queued_jobs_max) {
  WEFT_ASSERT(queued_jobs_max > 0);
  thread_ = std::thread([this] { Run(); });
}

OperationThread::~OperationThread() { Stop(); }

void OperationThread::Submit(Job job) {
  WEFT_ASSERT(job != nullptr);
  {
    std::unique_lock lock(mutex_);
    space_freed_.wait(lock, [this] { return stopping_ || jobs_.size() < queued_jobs_max_; });
    if (!stopping_) {
      jobs_.push_back(std::move(job));
      job_queued_.notify_one();
      return;
    }
  }
  job(/*aborted=*/true);
}

void OperationThread::Stop() {
  WEFT_ASSERT(std::this_thread::get_id() != thread_.get_id());
  std::deque<Job> cancelled;
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
    cancelled.swap(jobs_);
  }
  job_queued_.notify_all();
  space_freed_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (Job& job : cancelled) job(/*aborted=*/true);
}

void OperationThread::Run() {
  while (true) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      job_queued_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      // Stop empties the queue when it sets stopping_: an empty queue here means Stop was called.
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    space_freed_.notify_one();
    job(/*aborted=*/false);
  }
}

}  // namespace weft::metadata
