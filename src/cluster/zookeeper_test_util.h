// Helpers for the ZooKeeper backend tests: a recorder for callbacks and backend options.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

#include "cluster/zookeeper_cluster_backend.h"
#include "cluster/zookeeper_test_server.h"

namespace weft::cluster {

// Generous: only a guard against hangs, never a timing assertion.
inline constexpr auto kCallbackWaitMax = std::chrono::seconds(30);

// Collects the values a callback is called with, and waits for a condition on them.
template <typename T>
class Recorder {
 public:
  std::function<void(T)> Callback() {
    return [this](T value) {
      std::lock_guard lock(mutex_);
      values_.push_back(std::move(value));
      changed_.notify_all();
    };
  }
  // True once `done(values)` holds; false after kCallbackWaitMax.
  bool WaitFor(const std::function<bool(const std::vector<T>&)>& done) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kCallbackWaitMax, [&] { return done(values_); });
  }
  bool WaitForValue(const T& value) {
    return WaitFor([&](const std::vector<T>& values) {
      return std::find(values.begin(), values.end(), value) != values.end();
    });
  }
  std::vector<T> values() {
    std::lock_guard lock(mutex_);
    return values_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<T> values_;
};

inline ZooKeeperClusterOptions TestOptions(const ZooKeeperTestServer& server, std::string root,
                                           int session_timeout_ms = 6000) {
  ZooKeeperClusterOptions options;
  options.connect_string = server.connect_string();
  options.root = std::move(root);
  options.session_timeout_ms = session_timeout_ms;
  options.connect_timeout_ms = 30000;
  options.operation_timeout_ms = 500;
  return options;
}

inline std::unique_ptr<ZooKeeperClusterBackend> OpenOrDie(ZooKeeperClusterOptions options) {
  Result<std::unique_ptr<ZooKeeperClusterBackend>> backend =
      ZooKeeperClusterBackend::Open(std::move(options));
  EXPECT_TRUE(backend.ok()) << backend.status().ToString();
  WEFT_ASSERT(backend.ok());
  return std::move(backend).value();
}

}  // namespace weft::cluster
