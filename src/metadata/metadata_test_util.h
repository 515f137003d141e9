// Helpers shared by the metadata tests: an Executor that queues completions until the test runs
// them on its own thread, blocking wrappers for the asynchronous operations, and a store on a
// RocksDB memory env that can be closed and reopened.
#pragma once

#include <gtest/gtest.h>
#include <rocksdb/env.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "metadata/local_metadata_store.h"

namespace weft::metadata::testing {

// A completion that has not arrived after this long was lost (or the helper thread is stuck):
// fail instead of hanging. Not a timing assertion: any healthy run is many orders faster.
inline constexpr std::chrono::seconds kCompletionWaitMax{120};

// The owner's thread in tests: the store posts completions here (from any thread), and the test
// runs them when it chooses, on its own thread.
class TaskQueue {
 public:
  Executor executor() {
    return [this](std::function<void()> task) {
      const std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
      task_posted_.notify_all();
    };
  }

  // Runs tasks in order, waiting for more, until `done()` holds. False if no task came within
  // kCompletionWaitMax while waiting.
  [[nodiscard]] bool RunUntil(const std::function<bool()>& done) {
    while (!done()) {
      std::function<void()> task;
      {
        std::unique_lock lock(mutex_);
        if (!task_posted_.wait_for(lock, kCompletionWaitMax, [this] { return !tasks_.empty(); })) {
          return false;
        }
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
    return true;
  }

  size_t pending() {
    const std::lock_guard lock(mutex_);
    return tasks_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable task_posted_;
  std::deque<std::function<void()>> tasks_;
};

// A LocalMetadataStore on a memory env (or a real directory), with blocking wrappers that submit
// through the asynchronous API and run the queue until the completion arrives.
class TestStore {
 public:
  explicit TestStore(std::string path = "/metadata", bool memory_env = true)
      : memory_env_(memory_env ? rocksdb::NewMemEnv(rocksdb::Env::Default()) : nullptr) {
    options_.path = std::move(path);
    options_.executor = queue_.executor();
    options_.env = memory_env_.get();
  }
  ~TestStore() { store_.reset(); }

  Status Open() {
    Result<std::unique_ptr<LocalMetadataStore>> opened = LocalMetadataStore::Open(options_);
    if (!opened.ok()) return opened.status();
    store_ = std::move(opened).value();
    return Status::Ok();
  }
  Status Close() {
    Status closed = store_ ? store_->Close() : Status::Ok();
    store_.reset();
    return closed;
  }
  Status Reopen() {
    WEFT_RETURN_IF_ERROR(Close());
    return Open();
  }

  Result<Row> Get(std::string key) {
    return Await<Result<Row>>([&](auto done) { store_->Get(std::move(key), std::move(done)); });
  }
  Result<uint64_t> Set(std::string key, uint64_t expected_version, std::string value) {
    return Await<Result<uint64_t>>([&](auto done) {
      store_->CompareAndSet(std::move(key), expected_version, std::move(value), std::move(done));
    });
  }
  Status Delete(std::string key, uint64_t expected_version) {
    return Await<Status>([&](auto done) {
      store_->CompareAndDelete(std::move(key), expected_version, std::move(done));
    });
  }
  Result<std::vector<Row>> Scan(std::string prefix, std::string start_after, uint32_t limit) {
    return Await<Result<std::vector<Row>>>([&](auto done) {
      store_->Scan(std::move(prefix), std::move(start_after), limit, std::move(done));
    });
  }

  LocalMetadataStore& store() { return *store_; }
  TaskQueue& queue() { return queue_; }
  LocalMetadataStoreOptions& options() { return options_; }
  rocksdb::Env* env() { return memory_env_.get(); }

 private:
  template <typename Value, typename Submit>
  Value Await(Submit submit) {
    std::optional<Value> result;
    submit(std::function<void(Value)>([&result](Value value) {
      EXPECT_FALSE(result.has_value()) << "a completion ran twice";
      result.emplace(std::move(value));
    }));
    if (!queue_.RunUntil([&result] { return result.has_value(); })) {
      ADD_FAILURE() << "no completion within " << kCompletionWaitMax.count() << " s";
      return Status::IOError("test: completion lost");
    }
    return std::move(*result);
  }

  TaskQueue queue_;
  std::unique_ptr<rocksdb::Env> memory_env_;  // Outlives store_ (declared before it).
  LocalMetadataStoreOptions options_;
  std::unique_ptr<LocalMetadataStore> store_;
};

// Keys and values in assertion messages, printable.
inline std::string Printable(const std::string& bytes) {
  std::string out;
  for (const char character : bytes) {
    const auto byte = static_cast<unsigned char>(character);
    if (byte >= 0x20 && byte < 0x7f) {
      out.push_back(character);
    } else {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xf]);
    }
  }
  return out;
}

}  // namespace weft::metadata::testing
