#include "blockstore/file_layer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "blockstore/blockstore.h"
#include "blockstore/blockstore_test_util.h"
#include "env/fault_injecting_device.h"
#include "env/memory_device.h"

namespace weft::blockstore {
namespace {

using testing::FormatAndOpen;
using testing::PollUntil;

std::vector<std::byte> Pattern(size_t size_bytes, uint32_t seed) {
  std::vector<std::byte> bytes(size_bytes);
  std::mt19937 random(seed);
  for (auto& byte : bytes) byte = std::byte(random());
  return bytes;
}

Status AppendSync(Blockstore& blockstore, FileId id, std::span<const std::byte> data) {
  bool done = false;
  Status result;
  blockstore.files().Append(id, data, [&](Status status) {
    result = status;
    done = true;
  });
  PollUntil(blockstore, done);
  return result;
}

Status SyncFile(Blockstore& blockstore, FileId id) {
  bool done = false;
  Status result;
  blockstore.files().Sync(id, [&](Status status) {
    result = status;
    done = true;
  });
  PollUntil(blockstore, done);
  return result;
}

Result<std::vector<std::byte>> ReadAll(Blockstore& blockstore, FileId id, uint64_t offset,
                                       uint64_t length) {
  std::vector<std::byte> bytes(length);
  bool done = false;
  Status result;
  uint64_t read_bytes = 0;
  blockstore.files().Read(id, offset, bytes, [&](Status status, uint64_t count) {
    result = status;
    read_bytes = count;
    done = true;
  });
  PollUntil(blockstore, done);
  if (!result.ok()) return result;
  bytes.resize(read_bytes);
  return bytes;
}

class FileLayerTest : public ::testing::Test {
 protected:
  env::MemoryDevice device_{"memory:files", 64ull << 20};
  std::unique_ptr<Blockstore> blockstore_ = FormatAndOpen(device_);
  FileLayer& files() { return blockstore_->files(); }

  void Reopen() {
    blockstore_.reset();
    auto opened = Blockstore::Open(device_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    blockstore_ = std::move(opened).value();
  }
};

TEST_F(FileLayerTest, AppendReadSyncReopen) {
  auto id = files().Create("oplog-1");
  ASSERT_TRUE(id.ok());
  // Unaligned appends of many sizes, crossing blocks and runs.
  std::vector<std::byte> expected;
  for (uint32_t i = 0; i < 40; ++i) {
    const auto piece = Pattern(1 + (i * 7919) % 20000, i);
    ASSERT_TRUE(AppendSync(*blockstore_, *id, piece).ok());
    expected.insert(expected.end(), piece.begin(), piece.end());
  }
  ASSERT_TRUE(SyncFile(*blockstore_, *id).ok());
  auto whole = ReadAll(*blockstore_, *id, 0, expected.size() + 100);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(*whole, expected);
  auto middle = ReadAll(*blockstore_, *id, 12345, 54321);
  ASSERT_TRUE(middle.ok());
  EXPECT_EQ(*middle,
            std::vector<std::byte>(expected.begin() + 12345, expected.begin() + 12345 + 54321));
  Reopen();
  auto found = files().Lookup("oplog-1");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(files().Stat(*found)->size_bytes, expected.size());
  auto reread = ReadAll(*blockstore_, *found, 0, expected.size());
  ASSERT_TRUE(reread.ok());
  EXPECT_EQ(*reread, expected);
  // Appending after reopen continues the partial tail block correctly.
  const auto more = Pattern(777, 99);
  ASSERT_TRUE(AppendSync(*blockstore_, *found, more).ok());
  expected.insert(expected.end(), more.begin(), more.end());
  auto after = ReadAll(*blockstore_, *found, 0, expected.size());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, expected);
}

TEST_F(FileLayerTest, UnsyncedAppendsAreNotDurable) {
  auto id = files().Create("wal");
  ASSERT_TRUE(id.ok());
  const auto synced = Pattern(5000, 1);
  ASSERT_TRUE(AppendSync(*blockstore_, *id, synced).ok());
  ASSERT_TRUE(SyncFile(*blockstore_, *id).ok());
  ASSERT_TRUE(AppendSync(*blockstore_, *id, Pattern(9000, 2)).ok());
  Reopen();  // No sync of the second append.
  auto found = files().Lookup("wal");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(files().Stat(*found)->size_bytes, synced.size());
}

Status WriteSync(Blockstore& blockstore, FileId id, uint64_t offset,
                 std::span<const std::byte> data) {
  bool done = false;
  Status result;
  blockstore.files().Write(id, offset, data, [&](Status status) {
    result = status;
    done = true;
  });
  PollUntil(blockstore, done);
  return result;
}

TEST_F(FileLayerTest, PreallocatedFileIsWrittenInPlaceAndSyncedWithOneFlush) {
  auto id = files().Create("segment");
  ASSERT_TRUE(id.ok());
  ASSERT_EQ(files().Preallocate(*id, 5000).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(files().Preallocate(*id, 1 << 20).ok());
  EXPECT_EQ(files().Stat(*id)->size_bytes, 1u << 20);
  ASSERT_TRUE(SyncFile(*blockstore_, *id).ok());  // Journals the size and the blocks.
  const auto first = Pattern(8192, 7);
  const auto second = Pattern(4096, 8);
  ASSERT_TRUE(WriteSync(*blockstore_, *id, 4096, first).ok());
  ASSERT_TRUE(WriteSync(*blockstore_, *id, 65536, second).ok());
  const BlockstoreStats before = blockstore_->stats();
  ASSERT_TRUE(SyncFile(*blockstore_, *id).ok());
  const BlockstoreStats after = blockstore_->stats();
  // Nothing about the file changed but bytes: one flush, no journal page.
  EXPECT_EQ(after.flushes - before.flushes, 1u);
  EXPECT_EQ(after.journal_pages_written, before.journal_pages_written);
  Reopen();
  auto found = files().Lookup("segment");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(files().Stat(*found)->size_bytes, 1u << 20);
  auto bytes = ReadAll(*blockstore_, *found, 4096, 8192);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, first);
  bytes = ReadAll(*blockstore_, *found, 65536, 4096);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, second);
  // Appends still work after the preallocated part.
  ASSERT_TRUE(AppendSync(*blockstore_, *found, Pattern(100, 9)).ok());
  EXPECT_EQ(files().Stat(*found)->size_bytes, (1u << 20) + 100);
}

TEST_F(FileLayerTest, InPlaceWritesRejectBadRanges) {
  auto id = files().Create("segment");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(files().Preallocate(*id, 16384).ok());
  const auto block = Pattern(4096, 1);
  EXPECT_EQ(WriteSync(*blockstore_, *id, 100, block).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteSync(*blockstore_, *id, 0, std::span(block).first(100)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteSync(*blockstore_, *id, 16384, block).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteSync(*blockstore_, *id, 0, {}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteSync(*blockstore_, *id + 100, 0, block).code(), StatusCode::kNotFound);
  EXPECT_EQ(files().Preallocate(*id, 4096).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(WriteSync(*blockstore_, *id, 12288, block).ok());
}

TEST(FileLayerCrashTest, PreallocationAndSyncedInPlaceWritesSurviveAnyCrash) {
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    env::MemoryDevice memory("memory:disk0", 16ull << 20);
    env::FaultInjectingDevice device(memory, seed);
    auto blockstore = FormatAndOpen(device);
    ASSERT_NE(blockstore, nullptr);
    auto id = blockstore->files().Create("segment");
    ASSERT_TRUE(id.ok());
    constexpr uint64_t kBlocks = 64;
    ASSERT_TRUE(blockstore->files().Preallocate(*id, kBlocks * 4096).ok());
    std::mt19937_64 random(seed);
    std::vector<std::vector<std::byte>> synced(kBlocks);  // Empty: never synced.
    bool sync_pending = true;  // The preallocation itself, until its first Sync.
    for (int step = 0; step < 10; ++step) {
      const uint64_t block = random() % kBlocks;
      const auto bytes = Pattern(4096, static_cast<uint32_t>(seed * 1000 + step));
      ASSERT_TRUE(WriteSync(*blockstore, *id, block * 4096, bytes).ok());
      if (random() % 3 == 0 || sync_pending) {
        ASSERT_TRUE(SyncFile(*blockstore, *id).ok());
        sync_pending = false;
        synced[block] = bytes;
      }
      // Unsynced overwrites make that block's content uncertain.
      else if (!synced[block].empty()) {
        synced[block].clear();
      }
    }
    // One more write and sync in flight at the crash.
    bool written = false;
    bool flushed = false;
    const uint64_t last_block = random() % kBlocks;
    blockstore->files().Write(*id, last_block * 4096, Pattern(4096, 5),
                              [&](Status) { written = true; });
    blockstore->files().Sync(*id, [&](Status) { flushed = true; });
    synced[last_block].clear();
    for (uint64_t polls = random() % 4; polls > 0; --polls) blockstore->Poll(false);
    device.Crash();
    while (!written || !flushed) blockstore->Poll(true);
    blockstore.reset();
    device.Revive();
    auto reopened = Blockstore::Open(device);
    ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
    auto found = (*reopened)->files().Lookup("segment");
    ASSERT_TRUE(found.ok());
    ASSERT_EQ((*reopened)->files().Stat(*found)->size_bytes, kBlocks * 4096);
    for (uint64_t block = 0; block < kBlocks; ++block) {
      if (synced[block].empty()) continue;
      auto bytes = ReadAll(**reopened, *found, block * 4096, 4096);
      ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
      ASSERT_EQ(*bytes, synced[block]) << "block " << block;
    }
  }
}

TEST_F(FileLayerTest, CreateDeleteRenameListTruncate) {
  ASSERT_TRUE(files().Create("a").ok());
  auto b = files().Create("b");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(files().Create("a").status().code() == StatusCode::kAlreadyExists);
  EXPECT_TRUE(files().Create("").status().IsInvalidArgument());
  EXPECT_TRUE(files().Create("x/y").status().IsInvalidArgument());
  EXPECT_TRUE(files().Create(std::string(201, 'n')).status().IsInvalidArgument());
  ASSERT_TRUE(AppendSync(*blockstore_, *b, Pattern(100000, 3)).ok());
  const uint64_t free_with_b = blockstore_->free_block_count();
  ASSERT_TRUE(files().Truncate(*b, 4097).ok());
  EXPECT_TRUE(files().Truncate(*b, 5000).IsInvalidArgument());
  EXPECT_EQ(files().Stat(*b)->size_bytes, 4097u);
  ASSERT_TRUE(files().Rename("b", "a").ok());  // Replaces "a".
  EXPECT_TRUE(files().Lookup("b").status().IsNotFound());
  EXPECT_EQ(*files().Lookup("a"), *b);
  ASSERT_EQ(files().List().size(), 1u);
  ASSERT_TRUE(SyncFile(*blockstore_, *b).ok());
  EXPECT_GT(blockstore_->free_block_count(), free_with_b);  // Truncated blocks released.
  Reopen();
  ASSERT_EQ(files().List().size(), 1u);
  EXPECT_EQ(files().List()[0].name, "a");
  EXPECT_EQ(files().List()[0].size_bytes, 4097u);
  auto tail = ReadAll(*blockstore_, *files().Lookup("a"), 0, 5000);
  ASSERT_TRUE(tail.ok());
  const auto pattern = Pattern(100000, 3);
  EXPECT_EQ(*tail, std::vector<std::byte>(pattern.begin(), pattern.begin() + 4097));
  ASSERT_TRUE(files().Delete("a").ok());
  EXPECT_TRUE(files().Delete("a").IsNotFound());
  ASSERT_TRUE(blockstore_->Close().ok());
  Reopen();
  EXPECT_TRUE(files().List().empty());
  EXPECT_EQ(blockstore_->stats().file_blocks, 0u);
}

TEST_F(FileLayerTest, FileTableAndDiskLimitsAreEnforced) {
  env::MemoryDevice small("memory:small", 8ull << 20);
  FormatOptions options;
  options.max_files = 3;
  auto blockstore = FormatAndOpen(small, options);
  ASSERT_NE(blockstore, nullptr);
  auto id = blockstore->files().Create("f1");
  ASSERT_TRUE(blockstore->files().Create("f2").ok());
  ASSERT_TRUE(blockstore->files().Create("f3").ok());
  EXPECT_TRUE(blockstore->files().Create("f4").status().IsNoSpace());
  // Larger than the device: NoSpace, and the file keeps what it had.
  const auto big = Pattern(16 << 20, 5);
  const Status status = AppendSync(*blockstore, *id, big);
  EXPECT_TRUE(status.IsNoSpace()) << status.ToString();
  EXPECT_EQ(blockstore->files().Stat(*id)->size_bytes, 0u);
  EXPECT_TRUE(AppendSync(*blockstore, *id, Pattern(1000, 6)).ok());
  EXPECT_TRUE(AppendSync(*blockstore, 999, Pattern(10, 6)).IsNotFound());
}

TEST(FileLayerCrashTest, SyncedBytesSurviveAnyCrash) {
  for (uint64_t seed = 1; seed <= 150; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    env::MemoryDevice memory("memory:disk0", 16ull << 20);
    env::FaultInjectingDevice device(memory, seed);
    auto blockstore = FormatAndOpen(device);
    ASSERT_NE(blockstore, nullptr);
    auto id = blockstore->files().Create("log");
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE(SyncFile(*blockstore, *id).ok());  // The creation itself must be durable.
    std::mt19937_64 random(seed);
    std::vector<std::byte> synced;
    std::vector<std::byte> appended;
    const int steps = 1 + static_cast<int>(random() % 12);
    for (int step = 0; step < steps; ++step) {
      const auto piece = Pattern(1 + random() % 9000, static_cast<uint32_t>(seed * 100 + step));
      ASSERT_TRUE(AppendSync(*blockstore, *id, piece).ok());
      appended.insert(appended.end(), piece.begin(), piece.end());
      if (random() % 2 == 0) {
        ASSERT_TRUE(SyncFile(*blockstore, *id).ok());
        synced = appended;
      }
    }
    // One more append and sync in flight when the crash hits.
    bool appended_done = false;
    bool synced_done = false;
    const auto last = Pattern(1 + random() % 9000, static_cast<uint32_t>(seed));
    blockstore->files().Append(*id, last, [&](Status) { appended_done = true; });
    blockstore->files().Sync(*id, [&](Status) { synced_done = true; });
    for (uint64_t polls = random() % 4; polls > 0; --polls) blockstore->Poll(false);
    device.Crash();
    while (!appended_done || !synced_done) blockstore->Poll(true);
    blockstore.reset();
    device.Revive();
    auto reopened = Blockstore::Open(device);
    ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
    auto found = (*reopened)->files().Lookup("log");
    ASSERT_TRUE(found.ok());
    const uint64_t size = (*reopened)->files().Stat(*found)->size_bytes;
    // At least every synced byte, at most everything appended; and the bytes are a prefix.
    ASSERT_GE(size, synced.size());
    appended.insert(appended.end(), last.begin(), last.end());
    ASSERT_LE(size, appended.size());
    auto bytes = ReadAll(**reopened, *found, 0, size);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    ASSERT_TRUE(std::equal(bytes->begin(), bytes->end(), appended.begin()));
  }
}

}  // namespace
}  // namespace weft::blockstore
