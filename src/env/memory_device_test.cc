#include "env/memory_device.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace weft::env {
namespace {

constexpr uint64_t kDeviceBytes = 1 << 20;

// A buffer of `size_bytes` whose every byte is `value`.
AlignedBuffer Filled(size_t size_bytes, uint8_t value) {
  AlignedBuffer buffer(size_bytes);
  std::memset(buffer.data(), value, size_bytes);
  return buffer;
}

bool AllBytesAre(std::span<const std::byte> bytes, uint8_t value) {
  return std::all_of(bytes.begin(), bytes.end(),
                     [value](std::byte byte) { return byte == std::byte{value}; });
}

TEST(MemoryDeviceTest, ReadsBackWhatWasWritten) {
  MemoryDevice device("memory:test", kDeviceBytes);
  const AlignedBuffer data = Filled(8192, 0xAB);
  ASSERT_TRUE(WriteSync(device, 4096, data.span()).ok());
  AlignedBuffer read(8192);
  ASSERT_TRUE(ReadSync(device, 4096, read.span()).ok());
  EXPECT_TRUE(AllBytesAre(read.span(), 0xAB));
  // The neighbouring sectors are untouched.
  AlignedBuffer before(512);
  ASSERT_TRUE(ReadSync(device, 3584, before.span()).ok());
  EXPECT_TRUE(AllBytesAre(before.span(), 0));
}

TEST(MemoryDeviceTest, WritesSpanningChunksReadBack) {
  // Storage is sparse in 64 KiB chunks; a write across a chunk boundary must land in both.
  MemoryDevice device("memory:test", kDeviceBytes);
  AlignedBuffer data(8192);
  for (size_t index = 0; index < data.size(); ++index) data.data()[index] = std::byte(index % 251);
  const uint64_t offset_bytes = uint64_t{64} * 1024 - 4096;
  ASSERT_TRUE(WriteSync(device, offset_bytes, data.span()).ok());
  AlignedBuffer read(8192);
  ASSERT_TRUE(ReadSync(device, offset_bytes, read.span()).ok());
  EXPECT_EQ(std::memcmp(read.data(), data.data(), data.size()), 0);
}

TEST(MemoryDeviceTest, UnwrittenBytesReadAsZeros) {
  MemoryDevice device("memory:test", kDeviceBytes);
  AlignedBuffer read = Filled(4096, 0xFF);
  ASSERT_TRUE(ReadSync(device, kDeviceBytes - 4096, read.span()).ok());
  EXPECT_TRUE(AllBytesAre(read.span(), 0));
}

TEST(MemoryDeviceTest, CompletionsRunOnlyInsidePollInSubmissionOrder) {
  MemoryDevice device("memory:test", kDeviceBytes);
  const AlignedBuffer data = Filled(4096, 1);
  AlignedBuffer read(4096);
  std::vector<int> order;
  device.SubmitWrite(0, data.span(), [&](const Status& status) {
    EXPECT_TRUE(status.ok());
    order.push_back(0);
  });
  device.SubmitRead(0, read.span(), [&](const Status& status) {
    EXPECT_TRUE(status.ok());
    order.push_back(1);
  });
  device.SubmitFlush([&](const Status& status) {
    EXPECT_TRUE(status.ok());
    order.push_back(2);
  });
  EXPECT_TRUE(order.empty());
  EXPECT_EQ(device.inflight_count(), 3u);
  EXPECT_EQ(device.Poll(/*wait=*/false), 3u);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(device.inflight_count(), 0u);
  EXPECT_TRUE(AllBytesAre(read.span(), 1));
  EXPECT_EQ(device.Poll(/*wait=*/true), 0u) << "Poll with nothing in flight must not block";
}

TEST(MemoryDeviceTest, OperationsSubmittedByACompletionRunOnTheNextPoll) {
  MemoryDevice device("memory:test", kDeviceBytes);
  bool second_done = false;
  device.SubmitFlush([&](const Status& status) {
    EXPECT_TRUE(status.ok());
    device.SubmitFlush([&](const Status& inner_status) {
      EXPECT_TRUE(inner_status.ok());
      second_done = true;
    });
  });
  EXPECT_EQ(device.Poll(/*wait=*/false), 1u);
  EXPECT_FALSE(second_done);
  EXPECT_EQ(device.Poll(/*wait=*/false), 1u);
  EXPECT_TRUE(second_done);
}

TEST(MemoryDeviceTest, BadRequestsCompleteWithInvalidArgument) {
  MemoryDevice device("memory:test", kDeviceBytes);
  AlignedBuffer buffer(8192);
  const std::span<std::byte> aligned = buffer.span().first(4096);
  const std::span<std::byte> misaligned_address = buffer.span().subspan(8, 4096 - 512);

  Status status = ReadSync(device, 100, aligned);
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  EXPECT_NE(status.message().find("offset 100"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("memory:test"), std::string::npos) << status.message();

  status = WriteSync(device, 0, aligned.first(1000));
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  EXPECT_NE(status.message().find("length 1000"), std::string::npos) << status.message();

  status = WriteSync(device, 0, misaligned_address.first(512));
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  EXPECT_NE(status.message().find("buffer address"), std::string::npos) << status.message();

  status = ReadSync(device, kDeviceBytes - 512, aligned);
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  EXPECT_NE(status.message().find("beyond the device end"), std::string::npos) << status.message();

  status = DiscardSync(device, kDeviceBytes, 512);
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
}

TEST(MemoryDeviceTest, RejectedWritesHaveNoEffect) {
  MemoryDevice device("memory:test", kDeviceBytes);
  const AlignedBuffer data = Filled(4096, 7);
  EXPECT_TRUE(WriteSync(device, kDeviceBytes - 512, data.span()).IsInvalidArgument());
  EXPECT_TRUE(WriteSync(device, 0, data.span().first(1000)).IsInvalidArgument());
  AlignedBuffer read(512);
  ASSERT_TRUE(ReadSync(device, kDeviceBytes - 512, read.span()).ok());
  EXPECT_TRUE(AllBytesAre(read.span(), 0));
  ASSERT_TRUE(ReadSync(device, 0, read.span()).ok());
  EXPECT_TRUE(AllBytesAre(read.span(), 0));
}

TEST(MemoryDeviceTest, FourKilobyteAlignmentRejectsSectorAlignedRequests) {
  MemoryDevice device("memory:test", kDeviceBytes, /*alignment_bytes=*/4096);
  EXPECT_EQ(device.alignment_bytes(), 4096u);
  AlignedBuffer buffer(4096);
  EXPECT_TRUE(ReadSync(device, 512, buffer.span()).IsInvalidArgument());
  EXPECT_TRUE(ReadSync(device, 0, buffer.span().first(512)).IsInvalidArgument());
  EXPECT_TRUE(ReadSync(device, 4096, buffer.span()).ok());
}

TEST(MemoryDeviceTest, DiscardZerosExactlyTheRange) {
  MemoryDevice device("memory:test", kDeviceBytes);
  // 192 KiB from offset 0: three whole 64 KiB chunks, so both the release of whole chunks and
  // the zeroing of partial ones are exercised by discarding [4 KiB, 132 KiB).
  constexpr uint64_t kWrittenBytes = uint64_t{192} * 1024;
  constexpr uint64_t kDiscardedBytes = uint64_t{128} * 1024;
  const AlignedBuffer data = Filled(kWrittenBytes, 0x5A);
  ASSERT_TRUE(WriteSync(device, 0, data.span()).ok());
  ASSERT_TRUE(DiscardSync(device, 4096, kDiscardedBytes).ok());
  AlignedBuffer read(kWrittenBytes);
  ASSERT_TRUE(ReadSync(device, 0, read.span()).ok());
  EXPECT_TRUE(AllBytesAre(read.span().first(4096), 0x5A));
  EXPECT_TRUE(AllBytesAre(read.span().subspan(4096, kDiscardedBytes), 0));
  EXPECT_TRUE(AllBytesAre(read.span().subspan(4096 + kDiscardedBytes), 0x5A));
}

TEST(MemoryDeviceTest, ResizeChangesTheSizeAndLosesBytesBeyondTheNewEnd) {
  MemoryDevice device("memory:test", kDeviceBytes);
  const AlignedBuffer data = Filled(kDeviceBytes, 0x33);
  ASSERT_TRUE(WriteSync(device, 0, data.span()).ok());

  const uint64_t shrunk_bytes = kDeviceBytes / 2 + 4096;  // Not a chunk boundary.
  device.Resize(shrunk_bytes);
  EXPECT_EQ(device.size_bytes(), shrunk_bytes);
  AlignedBuffer sector(512);
  EXPECT_TRUE(ReadSync(device, shrunk_bytes, sector.span()).IsInvalidArgument());
  ASSERT_TRUE(ReadSync(device, shrunk_bytes - 512, sector.span()).ok());
  EXPECT_TRUE(AllBytesAre(sector.span(), 0x33));

  device.Resize(kDeviceBytes);
  EXPECT_EQ(device.size_bytes(), kDeviceBytes);
  AlignedBuffer read(kDeviceBytes);
  ASSERT_TRUE(ReadSync(device, 0, read.span()).ok());
  EXPECT_TRUE(AllBytesAre(read.span().first(shrunk_bytes), 0x33));
  EXPECT_TRUE(AllBytesAre(read.span().subspan(shrunk_bytes), 0))
      << "bytes cut off by a shrink came back after growing";
}

TEST(MemoryDeviceWakeTest, WakeFromAnotherThreadEndsPollUntilWoken) {
  MemoryDevice device("memory:wake", 1 << 20);
  device.Wake();
  EXPECT_EQ(device.PollUntilWoken(), 0u);
  std::thread waker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    device.Wake();
  });
  EXPECT_EQ(device.PollUntilWoken(), 0u);
  waker.join();
  bool done = false;
  AlignedBuffer data(4096);
  device.SubmitWrite(0, data.span(), [&](Status status) { done = status.ok(); });
  EXPECT_EQ(device.PollUntilWoken(), 1u);  // Ready work runs without waiting for a wake.
  EXPECT_TRUE(done);
}

}  // namespace
}  // namespace weft::env
