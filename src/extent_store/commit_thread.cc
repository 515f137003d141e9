#include "extent_store/commit_thread.h"

namespace weft::extent_store {

CommitThread::CommitThread(env::BlockDevice& device_to_wake)
    : device_to_wake_(device_to_wake), thread_([this] { Run(); }) {}

CommitThread::~CommitThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  jobs_ready_.notify_one();
  thread_.join();
}

void CommitThread::Submit(uint64_t ticket, Job job) {
  WEFT_ASSERT(job != nullptr);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    WEFT_ASSERT(!stopping_);
    jobs_.emplace_back(ticket, std::move(job));
  }
  jobs_ready_.notify_one();
}

std::vector<std::pair<uint64_t, Status>> CommitThread::TakeResults() {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::exchange(results_, {});
}

void CommitThread::Run() {
  for (;;) {
    std::pair<uint64_t, Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      jobs_ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // Stopping, and nothing left to do.
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    Status status = job.second();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      results_.emplace_back(job.first, std::move(status));
    }
    device_to_wake_.Wake();
  }
}

}  // namespace weft::extent_store
