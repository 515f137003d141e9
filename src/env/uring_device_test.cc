#include "env/uring_device.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "env/reactor.h"

namespace weft::env {
namespace {

constexpr uint64_t kPageBytes = 4096;
constexpr uint64_t kFileBytes = 16ull << 20;

// Deterministic bytes for (seed, position): any misplaced or stale page shows as a mismatch.
void FillPattern(std::span<std::byte> buffer, uint64_t seed) {
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < buffer.size(); i += sizeof(uint64_t)) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    std::memcpy(buffer.data() + i, &state, std::min(sizeof(state), buffer.size() - i));
  }
}

bool HasPattern(std::span<const std::byte> buffer, uint64_t seed) {
  AlignedBuffer expected(buffer.size());
  FillPattern(expected.span(), seed);
  return std::memcmp(expected.data(), buffer.data(), buffer.size()) == 0;
}

bool IsZero(std::span<const std::byte> buffer) {
  for (std::byte b : buffer) {
    if (b != std::byte{0}) return false;
  }
  return true;
}

// Files live under TEST_TMPDIR or /var/tmp: O_DIRECT needs a real file system, and /tmp or
// /dev/shm may be tmpfs.
class UringDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* root = std::getenv("TEST_TMPDIR");
    std::string pattern =
        std::string(root != nullptr ? root : "/var/tmp") + "/uring_device_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr)
        << "mkdtemp " << pattern << ": " << std::strerror(errno);
    directory_ = pattern;
  }
  void TearDown() override {
    if (!directory_.empty()) std::filesystem::remove_all(directory_);
  }

  std::string PathOf(const std::string& file_name) const { return directory_ + "/" + file_name; }

  std::unique_ptr<UringDevice> OpenDevice(UringDeviceOptions options = {}) {
    if (options.file_size_bytes == 0) options.file_size_bytes = kFileBytes;
    auto device = UringDevice::Open(PathOf("disk.img"), options);
    EXPECT_TRUE(device.ok()) << device.status().ToString();
    return device.ok() ? std::move(device).value() : nullptr;
  }

  std::string directory_;
};

TEST_F(UringDeviceTest, OpenCreatesFileOfRequestedSize) {
  auto device = OpenDevice();
  ASSERT_NE(device, nullptr);
  EXPECT_EQ(device->size_bytes(), kFileBytes);
  EXPECT_EQ(device->alignment_bytes(), 4096u);
  EXPECT_EQ(device->name(), PathOf("disk.img"));
  EXPECT_EQ(std::filesystem::file_size(PathOf("disk.img")), kFileBytes);
  EXPECT_EQ(device->inflight_count(), 0u);
}

TEST_F(UringDeviceTest, WakeFromAnotherThreadEndsPollUntilWoken) {
  auto device = OpenDevice();
  ASSERT_NE(device, nullptr);
  // A wake given before the wait counts.
  device->Wake();
  EXPECT_EQ(device->PollUntilWoken(), 0u);
  // A wake from another thread ends a wait with nothing in flight.
  std::thread waker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    device->Wake();
  });
  EXPECT_EQ(device->PollUntilWoken(), 0u);
  waker.join();
  // I/O still completes through it, and the device works as before.
  bool done = false;
  AlignedBuffer data(kPageBytes);
  device->SubmitWrite(0, data.span(), [&](Status status) {
    EXPECT_TRUE(status.ok());
    done = true;
  });
  while (!done) device->PollUntilWoken();
  EXPECT_EQ(device->inflight_count(), 0u);
  ASSERT_TRUE(FlushSync(*device).ok());
}

TEST_F(UringDeviceTest, RoundTripWithHeapBuffers) {
  auto device = OpenDevice();
  ASSERT_NE(device, nullptr);
  AlignedBuffer data(64 * kPageBytes);
  FillPattern(data.span(), 1);
  ASSERT_TRUE(WriteSync(*device, 1 << 20, data.span()).ok());
  AlignedBuffer readback(64 * kPageBytes);
  ASSERT_TRUE(ReadSync(*device, 1 << 20, readback.span()).ok());
  EXPECT_TRUE(HasPattern(readback.span(), 1));
  EXPECT_EQ(device->fixed_buffer_io_count(), 0u);
}

TEST_F(UringDeviceTest, RoundTripWithArenaBuffersUsesFixedBuffers) {
  auto device = OpenDevice();
  ASSERT_NE(device, nullptr);
  AlignedBuffer data = device->AllocateBuffer(8192);
  ASSERT_EQ(data.size(), 8192u);
  EXPECT_TRUE(IsZero(data.span()));
  FillPattern(data.span(), 2);
  ASSERT_TRUE(WriteSync(*device, 0, data.span()).ok());
  EXPECT_EQ(device->fixed_buffer_io_count(), 1u);
  AlignedBuffer readback = device->AllocateBuffer(8192);
  ASSERT_TRUE(ReadSync(*device, 0, readback.span()).ok());
  EXPECT_EQ(device->fixed_buffer_io_count(), 2u);
  EXPECT_TRUE(HasPattern(readback.span(), 2));
}

TEST_F(UringDeviceTest, LargeTransferRoundTrip) {
  auto device = OpenDevice();
  ASSERT_NE(device, nullptr);
  AlignedBuffer data(4 << 20);
  FillPattern(data.span(), 3);
  ASSERT_TRUE(WriteSync(*device, 8 << 20, data.span()).ok());
  AlignedBuffer readback(4 << 20);
  ASSERT_TRUE(ReadSync(*device, 8 << 20, readback.span()).ok());
  EXPECT_TRUE(HasPattern(readback.span(), 3));
}

TEST_F(UringDeviceTest, CompletionsRunOnlyInsidePoll) {
  auto device = OpenDevice();
  ASSERT_NE(device, nullptr);
  AlignedBuffer data(kPageBytes);
  bool write_done = false;
  bool flush_done = false;
  device->SubmitWrite(0, data.span(), [&](const Status& status) {
    EXPECT_TRUE(status.ok()) << status.ToString();
    write_done = true;
  });
  device->SubmitFlush([&](const Status& status) {
    EXPECT_TRUE(status.ok()) << status.ToString();
    flush_done = true;
  });
  EXPECT_FALSE(write_done);
  EXPECT_FALSE(flush_done);
  EXPECT_EQ(device->inflight_count(), 2u);
  while (device->inflight_count() > 0) device->Poll(/*wait=*/true);
  EXPECT_TRUE(write_done);
  EXPECT_TRUE(flush_done);
}

// More operations than the queue depth: the overflow queue must feed the ring as slots free up.
TEST_F(UringDeviceTest, ManyConcurrentOperationsAtQueueDepth64) {
  UringDeviceOptions options;
  options.queue_depth = 64;
  auto device = OpenDevice(options);
  ASSERT_NE(device, nullptr);
  constexpr int kOperations = 1000;
  constexpr uint64_t kBlockBytes = 8192;
  std::vector<AlignedBuffer> buffers;
  for (int i = 0; i < kOperations; ++i) {
    // Half from the arena (fixed I/O), half from the heap (plain I/O), interleaved.
    buffers.push_back(i % 2 == 0 ? device->AllocateBuffer(kBlockBytes)
                                 : AlignedBuffer(kBlockBytes));
    FillPattern(buffers.back().span(), 1000 + i);
  }
  int writes_done = 0;
  for (int i = 0; i < kOperations; ++i) {
    device->SubmitWrite(i * kBlockBytes, buffers[i].span(), [&](const Status& status) {
      EXPECT_TRUE(status.ok()) << status.ToString();
      ++writes_done;
    });
  }
  EXPECT_EQ(device->inflight_count(), static_cast<size_t>(kOperations));
  while (device->inflight_count() > 0) device->Poll(/*wait=*/true);
  ASSERT_EQ(writes_done, kOperations);

  for (auto& buffer : buffers) std::memset(buffer.data(), 0, buffer.size());
  int reads_done = 0;
  for (int i = 0; i < kOperations; ++i) {
    device->SubmitRead(i * kBlockBytes, buffers[i].span(), [&, i](const Status& status) {
      EXPECT_TRUE(status.ok()) << status.ToString();
      EXPECT_TRUE(HasPattern(buffers[i].span(), 1000 + i)) << "block " << i;
      ++reads_done;
    });
  }
  while (device->inflight_count() > 0) device->Poll(/*wait=*/true);
  EXPECT_EQ(reads_done, kOperations);
  EXPECT_GT(device->fixed_buffer_io_count(), 0u);
}

// A completion that submits the next operation, as a reactor's state machines do.
TEST_F(UringDeviceTest, CompletionsCanSubmitMoreWork) {
  auto device = OpenDevice();
  ASSERT_NE(device, nullptr);
  AlignedBuffer data(kPageBytes);
  constexpr int kChainLength = 50;
  int completed = 0;
  std::function<void(Status)> next = [&](const Status& status) {
    ASSERT_TRUE(status.ok()) << status.ToString();
    if (++completed < kChainLength) {
      device->SubmitWrite(completed * kPageBytes, data.span(), next);
    }
  };
  device->SubmitWrite(0, data.span(), next);
  while (device->inflight_count() > 0) device->Poll(/*wait=*/true);
  EXPECT_EQ(completed, kChainLength);
}

// A completion that blocks on another operation (a sync helper) polls re-entrantly.
TEST_F(UringDeviceTest, SyncHelperInsideCompletion) {
  auto device = OpenDevice();
  ASSERT_NE(device, nullptr);
  AlignedBuffer data(kPageBytes);
  FillPattern(data.span(), 10);
  AlignedBuffer readback(kPageBytes);
  bool done = false;
  device->SubmitWrite(0, data.span(), [&](const Status& status) {
    ASSERT_TRUE(status.ok()) << status.ToString();
    Status read = ReadSync(*device, 0, readback.span());
    EXPECT_TRUE(read.ok()) << read.ToString();
    done = true;
  });
  while (!done) device->Poll(/*wait=*/true);
  EXPECT_TRUE(HasPattern(readback.span(), 10));
  EXPECT_EQ(device->inflight_count(), 0u);
}

TEST_F(UringDeviceTest, FlushSucceeds) {
  auto device = OpenDevice();
  ASSERT_NE(device, nullptr);
  EXPECT_TRUE(FlushSync(*device).ok());
  AlignedBuffer data(kPageBytes);
  FillPattern(data.span(), 4);
  ASSERT_TRUE(WriteSync(*device, 0, data.span()).ok());
  Status flushed = FlushSync(*device);
  EXPECT_TRUE(flushed.ok()) << flushed.ToString();
}

TEST_F(UringDeviceTest, DiscardZerosFileRange) {
  auto device = OpenDevice();
  ASSERT_NE(device, nullptr);
  AlignedBuffer data(3 * kPageBytes);
  FillPattern(data.span(), 5);
  ASSERT_TRUE(WriteSync(*device, 1 << 20, data.span()).ok());
  Status discarded = DiscardSync(*device, (1 << 20) + kPageBytes, kPageBytes);
  ASSERT_TRUE(discarded.ok()) << discarded.ToString();
  AlignedBuffer readback(3 * kPageBytes);
  ASSERT_TRUE(ReadSync(*device, 1 << 20, readback.span()).ok());
  EXPECT_EQ(std::memcmp(readback.data(), data.data(), kPageBytes), 0);
  EXPECT_TRUE(IsZero(readback.span().subspan(kPageBytes, kPageBytes)));
  EXPECT_EQ(std::memcmp(readback.data() + 2 * kPageBytes, data.data() + 2 * kPageBytes, kPageBytes),
            0);
  EXPECT_EQ(device->size_bytes(), kFileBytes);  // Punching a hole keeps the size.
  EXPECT_EQ(std::filesystem::file_size(PathOf("disk.img")), kFileBytes);
}

TEST_F(UringDeviceTest, BadRequestsCompleteWithInvalidArgumentInPoll) {
  auto device = OpenDevice();
  ASSERT_NE(device, nullptr);
  AlignedBuffer buffer(2 * kPageBytes);
  std::vector<Status> results;
  auto record = [&](Status status) { results.push_back(std::move(status)); };
  device->SubmitRead(512, buffer.span().first(kPageBytes), record);          // Unaligned offset.
  device->SubmitWrite(0, buffer.span().first(1000), record);                 // Unaligned length.
  device->SubmitRead(0, buffer.span().subspan(512, kPageBytes), record);     // Unaligned buffer.
  device->SubmitWrite(kFileBytes, buffer.span().first(kPageBytes), record);  // At the end.
  device->SubmitRead(kFileBytes - kPageBytes, buffer.span(), record);        // Across the end.
  device->SubmitDiscard(kFileBytes, kPageBytes, record);                     // Beyond the end.
  device->SubmitDiscard(100, kPageBytes, record);                            // Unaligned.
  EXPECT_TRUE(results.empty()) << "a completion ran inside Submit*";
  EXPECT_EQ(device->inflight_count(), 7u);
  EXPECT_EQ(device->Poll(/*wait=*/true), 7u);
  ASSERT_EQ(results.size(), 7u);
  for (const Status& status : results) {
    EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  }
  EXPECT_EQ(device->inflight_count(), 0u);
}

TEST_F(UringDeviceTest, OpenMissingPathIsNotFound) {
  auto device = UringDevice::Open(PathOf("missing.img"), UringDeviceOptions{});
  ASSERT_FALSE(device.ok());
  EXPECT_TRUE(device.status().IsNotFound()) << device.status().ToString();
}

TEST_F(UringDeviceTest, OpenFileWithUnalignedSizeIsInvalidArgument) {
  std::ofstream(PathOf("odd.img")) << std::string(5000, 'x');
  auto device = UringDevice::Open(PathOf("odd.img"), UringDeviceOptions{});
  ASSERT_FALSE(device.ok());
  EXPECT_TRUE(device.status().IsInvalidArgument()) << device.status().ToString();

  std::ofstream(PathOf("empty.img")).flush();
  device = UringDevice::Open(PathOf("empty.img"), UringDeviceOptions{});
  ASSERT_FALSE(device.ok());
  EXPECT_TRUE(device.status().IsInvalidArgument()) << device.status().ToString();
}

TEST_F(UringDeviceTest, OpenRejectsBadOptions) {
  UringDeviceOptions options;
  options.file_size_bytes = kFileBytes + 100;
  auto device = UringDevice::Open(PathOf("disk.img"), options);
  EXPECT_TRUE(device.status().IsInvalidArgument()) << device.status().ToString();
  options.file_size_bytes = kFileBytes;
  options.queue_depth = 0;
  device = UringDevice::Open(PathOf("disk.img"), options);
  EXPECT_TRUE(device.status().IsInvalidArgument()) << device.status().ToString();
}

TEST_F(UringDeviceTest, ReopenKeepsContents) {
  AlignedBuffer data(kPageBytes);
  FillPattern(data.span(), 6);
  {
    auto device = OpenDevice();
    ASSERT_NE(device, nullptr);
    ASSERT_TRUE(WriteSync(*device, 5 * kPageBytes, data.span()).ok());
    ASSERT_TRUE(FlushSync(*device).ok());
  }
  auto device = UringDevice::Open(PathOf("disk.img"), UringDeviceOptions{});
  ASSERT_TRUE(device.ok()) << device.status().ToString();
  EXPECT_EQ((*device)->size_bytes(), kFileBytes);
  AlignedBuffer readback(kPageBytes);
  ASSERT_TRUE(ReadSync(**device, 5 * kPageBytes, readback.span()).ok());
  EXPECT_TRUE(HasPattern(readback.span(), 6));
}

TEST_F(UringDeviceTest, SqpollOpensAndWorks) {
  UringDeviceOptions options;
  options.sqpoll = true;
  options.sqpoll_idle_ms = 10;
  options.file_size_bytes = kFileBytes;
  auto opened = UringDevice::Open(PathOf("disk.img"), options);
  if (!opened.ok()) GTEST_SKIP() << "SQPOLL refused: " << opened.status().ToString();
  UringDevice& device = **opened;
  std::vector<AlignedBuffer> buffers;
  for (int i = 0; i < 64; ++i) {
    buffers.push_back(device.AllocateBuffer(kPageBytes));
    FillPattern(buffers.back().span(), 100 + i);
  }
  int done = 0;
  for (int i = 0; i < 64; ++i) {
    device.SubmitWrite(i * kPageBytes, buffers[i].span(), [&](const Status& status) {
      EXPECT_TRUE(status.ok()) << status.ToString();
      ++done;
    });
  }
  while (device.inflight_count() > 0) device.Poll(/*wait=*/true);
  ASSERT_EQ(done, 64);
  ASSERT_TRUE(FlushSync(device).ok());
  for (int i = 0; i < 64; ++i) {
    AlignedBuffer readback(kPageBytes);
    ASSERT_TRUE(ReadSync(device, i * kPageBytes, readback.span()).ok());
    EXPECT_TRUE(HasPattern(readback.span(), 100 + i)) << "block " << i;
  }
}

TEST_F(UringDeviceTest, ExhaustedArenaFallsBackToHeapBuffers) {
  UringDeviceOptions options;
  options.registered_buffer_bytes = 16 * kPageBytes;
  auto device = OpenDevice(options);
  ASSERT_NE(device, nullptr);
  std::vector<AlignedBuffer> arena_buffers;
  arena_buffers.reserve(16);
  for (int i = 0; i < 16; ++i) arena_buffers.push_back(device->AllocateBuffer(kPageBytes));
  AlignedBuffer heap_buffer = device->AllocateBuffer(kPageBytes);
  ASSERT_EQ(heap_buffer.size(), kPageBytes);
  FillPattern(heap_buffer.span(), 7);
  ASSERT_TRUE(WriteSync(*device, 0, heap_buffer.span()).ok());
  EXPECT_EQ(device->fixed_buffer_io_count(), 0u);  // The 17th page came from the heap.
  ASSERT_TRUE(ReadSync(*device, 0, arena_buffers[15].span()).ok());
  EXPECT_EQ(device->fixed_buffer_io_count(), 1u);
  EXPECT_TRUE(HasPattern(arena_buffers[15].span(), 7));

  // Released pages return and merge: after freeing everything, one buffer spans the arena.
  arena_buffers.clear();
  AlignedBuffer whole = device->AllocateBuffer(16 * kPageBytes);
  ASSERT_TRUE(ReadSync(*device, 0, whole.span()).ok());
  EXPECT_EQ(device->fixed_buffer_io_count(), 2u);
  EXPECT_TRUE(HasPattern(whole.span().first(kPageBytes), 7));
}

TEST_F(UringDeviceTest, NoArenaMeansHeapBuffers) {
  UringDeviceOptions options;
  options.registered_buffer_bytes = 0;
  auto device = OpenDevice(options);
  ASSERT_NE(device, nullptr);
  AlignedBuffer buffer = device->AllocateBuffer(100);
  EXPECT_EQ(buffer.size(), kPageBytes);  // Rounded up to the alignment.
  ASSERT_TRUE(WriteSync(*device, 0, buffer.span()).ok());
  EXPECT_EQ(device->fixed_buffer_io_count(), 0u);
}

// An arena buffer may outlive its device; releasing it afterwards must be safe.
TEST_F(UringDeviceTest, ArenaBufferOutlivesDevice) {
  AlignedBuffer survivor;
  {
    auto device = OpenDevice();
    ASSERT_NE(device, nullptr);
    survivor = device->AllocateBuffer(kPageBytes);
  }
  FillPattern(survivor.span(), 8);
  EXPECT_TRUE(HasPattern(survivor.span(), 8));
}

// The file shrinks behind the device's back: the read resubmits after a short transfer and fills
// what lies past end-of-file with zeros.
TEST_F(UringDeviceTest, ReadPastEndOfFileFillsZeros) {
  auto device = OpenDevice();
  ASSERT_NE(device, nullptr);
  AlignedBuffer data(2 * kPageBytes);
  FillPattern(data.span(), 9);
  ASSERT_TRUE(WriteSync(*device, 0, data.span()).ok());
  ASSERT_EQ(::truncate(PathOf("disk.img").c_str(), kPageBytes), 0) << std::strerror(errno);
  AlignedBuffer readback(2 * kPageBytes);
  std::memset(readback.data(), 0xff, readback.size());
  Status status = ReadSync(*device, 0, readback.span());
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(std::memcmp(readback.data(), data.data(), kPageBytes), 0);
  EXPECT_TRUE(IsZero(readback.span().subspan(kPageBytes)));
}

TEST_F(UringDeviceTest, DestructorWaitsForInflightOperations) {
  auto device = OpenDevice();
  ASSERT_NE(device, nullptr);
  std::vector<AlignedBuffer> buffers(32);
  int done = 0;
  for (int i = 0; i < 32; ++i) {
    buffers[i] = AlignedBuffer(kPageBytes);
    device->SubmitWrite(i * kPageBytes, buffers[i].span(), [&](const Status& status) {
      EXPECT_TRUE(status.ok()) << status.ToString();
      ++done;
    });
  }
  device->SubmitFlush([&](const Status& status) {
    EXPECT_TRUE(status.ok()) << status.ToString();
    ++done;
  });
  device.reset();
  EXPECT_EQ(done, 33);
}

}  // namespace
}  // namespace weft::env

namespace weft::env {
namespace {

// The reactor blocks in its io_context between events; io_uring completions and Wake() must
// reach it through the device's notify fd, or these tests hang (ctest's timeout fails them).
TEST_F(UringDeviceTest, ReactorWakesOnCompletionsAndOnWake) {
  auto device = OpenDevice();
  ASSERT_NE(device, nullptr);
  Reactor reactor;
  reactor.AddPoller([&] { return device->Poll(/*wait=*/false); });
  reactor.WatchNotifyFd(device->completion_notify_fd());
  int writes_done = 0;
  AlignedBuffer data(kPageBytes);
  for (int index = 0; index < 16; ++index) {
    device->SubmitWrite(uint64_t(index) * kPageBytes, data.span(), [&](Status status) {
      EXPECT_TRUE(status.ok());
      ++writes_done;
    });
  }
  ASSERT_TRUE(reactor.RunUntil([&] { return writes_done == 16; }, 100000));
  std::atomic<bool> posted_ran{false};
  std::thread other([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    device->Wake();
    reactor.Post([&] { posted_ran = true; });
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    reactor.Stop();
  });
  reactor.Run();  // Returns only through Stop() from the other thread.
  other.join();
  EXPECT_TRUE(posted_ran.load());
  EXPECT_TRUE(reactor.stopped());
}

}  // namespace
}  // namespace weft::env
