// Test helpers shared by the OpLog tests: a blockstore on a fault-injecting memory device with
// an executor queue and a poll loop, small log options, and deterministic record bytes.
#pragma once

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "blockstore/blockstore.h"
#include "blockstore/blockstore_test_util.h"
#include "env/fault_injecting_device.h"
#include "env/memory_device.h"
#include "oplog/oplog.h"

namespace weft::oplog::testing {

constexpr uint64_t kSegmentBytes = 2ull << 20;
constexpr uint64_t kBatchBytesMax = kRecordBytesMax + 64 * 1024;

inline OpLogOptions SmallOptions(uint64_t segments) {
  OpLogOptions options;
  options.segment_bytes = kSegmentBytes;
  options.size_bytes_max = segments * kSegmentBytes;
  options.batch_bytes_max = kBatchBytesMax;
  return options;
}

inline uint8_t PatternByte(uint64_t seq, uint64_t position) {
  return static_cast<uint8_t>((seq * 131 + position * 7 + (position >> 9)) % 251 + 1);
}

inline std::vector<std::byte> Pattern(uint64_t seq, uint64_t offset, uint64_t length) {
  std::vector<std::byte> bytes(length);
  for (uint64_t i = 0; i < length; ++i) bytes[i] = std::byte(PatternByte(seq, offset + i));
  return bytes;
}

// A blockstore on a (fault-injecting) memory device, an executor queue, and a poll loop.
class Harness {
 public:
  explicit Harness(uint64_t seed, uint64_t device_bytes = 64ull << 20)
      : memory_("memory:oplog", device_bytes), device_(memory_, seed) {
    blockstore_ = blockstore::testing::FormatAndOpen(device_);
  }

  Executor executor() {
    return [this](std::function<void()> task) { tasks_.push_back(std::move(task)); };
  }
  blockstore::Blockstore& blockstore() { return *blockstore_; }
  env::FaultInjectingDevice& device() { return device_; }

  // Runs completions until `done` or nothing is left to run.
  void RunUntil(const std::function<bool()>& done) {
    for (int idle = 0; !done() && idle < 1000;) {
      size_t ran = blockstore_->Poll(false);
      while (!tasks_.empty()) {
        auto task = std::move(tasks_.front());
        tasks_.pop_front();
        task();
        ++ran;
      }
      idle = ran == 0 ? idle + 1 : 0;
    }
  }
  void RunSome(int polls) {
    for (int i = 0; i < polls; ++i) {
      blockstore_->Poll(false);
      if (!tasks_.empty()) {
        auto task = std::move(tasks_.front());
        tasks_.pop_front();
        task();
      }
    }
  }

  void CrashAndReopen(std::unique_ptr<OpLog>& log, env::CrashMode mode) {
    device_.Crash(mode);
    RunUntil([&] { return log->quiescent() && tasks_.empty(); });
    log.reset();
    tasks_.clear();
    blockstore_.reset();
    device_.Revive();
    auto opened = blockstore::Blockstore::Open(device_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    blockstore_ = std::move(opened).value();
  }

 private:
  env::MemoryDevice memory_;
  env::FaultInjectingDevice device_;
  std::unique_ptr<blockstore::Blockstore> blockstore_;
  std::deque<std::function<void()>> tasks_;
};

inline Status OpenLog(Harness& harness, std::unique_ptr<OpLog>& log, uint64_t segments = 4) {
  log = std::make_unique<OpLog>(harness.blockstore().files(), 7, SmallOptions(segments),
                                harness.executor());
  std::optional<Status> result;
  log->Open([&](Status status) { result = status; });
  harness.RunUntil([&] { return result.has_value(); });
  return result.value_or(Status::IOError("open never completed"));
}

inline std::vector<std::byte> ReadIndex(const OpLog& log, uint64_t offset, uint64_t length) {
  std::vector<std::byte> bytes(length, std::byte{0xEE});
  log.index().Overlay(offset, bytes);
  return bytes;
}

}  // namespace weft::oplog::testing
