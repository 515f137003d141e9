#include "extent_store/extent_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <vector>

#include "base/crc32c.h"
#include "extent_store/extent_store_test_util.h"
#include "extent_store/metadata_format.h"
#include "extent_store/slot_row_cache.h"

namespace weft::extent_store {
namespace {

using testing::Drain;
using testing::PatternBuffer;
using testing::ReadSync;
using testing::SameBytes;
using testing::TestDisk;
using testing::WriteSync;

constexpr uint64_t kBlock = kChecksumBlockBytes;

class ExtentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(disk_.FormatAndOpen().ok()); }
  ExtentStore& store() { return disk_.store(); }

  // Reads [offset, offset + size) of `egroup_id` and compares it with `expected`.
  void ExpectContents(EgroupId egroup_id, uint64_t offset_bytes,
                      std::span<const std::byte> expected) {
    AlignedBuffer buffer(expected.size());
    const Status status = ReadSync(store(), egroup_id, offset_bytes, buffer.span());
    ASSERT_TRUE(status.ok()) << status.ToString();
    EXPECT_TRUE(SameBytes(buffer.span(), expected))
        << "egroup " << egroup_id << " offset " << offset_bytes;
  }

  TestDisk disk_;
};

TEST_F(ExtentStoreTest, CreateListAndDeleteEgroups) {
  EXPECT_TRUE(store().ListEgroups().empty());
  for (EgroupId id : {7, 3, 11}) ASSERT_TRUE(store().CreateEgroup(id).ok());
  EXPECT_EQ(store().CreateEgroup(3).code(), StatusCode::kAlreadyExists);

  std::vector<EgroupInfo> list = store().ListEgroups();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].id, 3u);
  EXPECT_EQ(list[1].id, 7u);
  EXPECT_EQ(list[2].id, 11u);
  EXPECT_EQ(list[0].written_bytes, 0u);
  EXPECT_EQ(store().stats().egroups, 3u);

  AlignedBuffer data = PatternBuffer(2 * kBlock, 1);
  ASSERT_TRUE(WriteSync(store(), 7, 8 * kBlock, data.span()).ok());
  EXPECT_EQ(store().ListEgroups()[1].written_bytes, 2 * kBlock);

  ASSERT_TRUE(store().DeleteEgroup(7).ok());
  EXPECT_EQ(store().DeleteEgroup(7).code(), StatusCode::kNotFound);
  list = store().ListEgroups();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, 3u);
  EXPECT_EQ(list[1].id, 11u);
  // A recreated egroup starts empty.
  ASSERT_TRUE(store().CreateEgroup(7).ok());
  AlignedBuffer zeros(2 * kBlock);
  ExpectContents(7, 8 * kBlock, zeros.span());
}

TEST_F(ExtentStoreTest, WriteReadRoundTrip) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  AlignedBuffer data = PatternBuffer(kMaxIoBytes, 42);
  ASSERT_TRUE(WriteSync(store(), 1, 3 * kExtentBytes, data.span()).ok());
  ExpectContents(1, 3 * kExtentBytes, data.span());
  // A piece from the middle.
  ExpectContents(1, 3 * kExtentBytes + 5 * kBlock, data.span().subspan(5 * kBlock, 3 * kBlock));
  const ExtentStoreStats stats = store().stats();
  EXPECT_EQ(stats.writes, 1u);
  EXPECT_EQ(stats.bytes_written, kMaxIoBytes);
  EXPECT_EQ(stats.reads, 2u);
  EXPECT_EQ(stats.checksum_errors, 0u);
}

TEST_F(ExtentStoreTest, WriteAcrossExtentSlots) {
  // 64 KiB straddling the boundary of slots 1 and 2.
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  AlignedBuffer data = PatternBuffer(16 * kBlock, 5);
  const uint64_t offset_bytes = 2 * kExtentBytes - 8 * kBlock;
  ASSERT_TRUE(WriteSync(store(), 1, offset_bytes, data.span()).ok());
  ExpectContents(1, offset_bytes, data.span());
  ExpectContents(1, 2 * kExtentBytes, data.span().subspan(8 * kBlock));
}

TEST_F(ExtentStoreTest, PartialOverwrites) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  AlignedBuffer expected = PatternBuffer(16 * kBlock, 1);
  ASSERT_TRUE(WriteSync(store(), 1, 0, expected.span()).ok());
  AlignedBuffer patch = PatternBuffer(3 * kBlock, 2);
  ASSERT_TRUE(WriteSync(store(), 1, 4 * kBlock, patch.span()).ok());
  std::memcpy(expected.data() + 4 * kBlock, patch.data(), patch.size());
  AlignedBuffer patch2 = PatternBuffer(kBlock, 3);
  ASSERT_TRUE(WriteSync(store(), 1, 15 * kBlock, patch2.span()).ok());
  std::memcpy(expected.data() + 15 * kBlock, patch2.data(), patch2.size());
  ExpectContents(1, 0, expected.span());
  EXPECT_EQ(store().ListEgroups()[0].written_bytes, 16 * kBlock);
}

TEST_F(ExtentStoreTest, UnwrittenBlocksReadAsZeros) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  AlignedBuffer buffer = PatternBuffer(kMaxIoBytes, 9);  // Not zero before the read.
  ASSERT_TRUE(ReadSync(store(), 1, 0, buffer.span()).ok());
  AlignedBuffer zeros(kMaxIoBytes);
  EXPECT_TRUE(SameBytes(buffer.span(), zeros.span()));

  AlignedBuffer data = PatternBuffer(kBlock, 10);
  ASSERT_TRUE(WriteSync(store(), 1, 2 * kBlock, data.span()).ok());
  AlignedBuffer expected(5 * kBlock);
  std::memcpy(expected.data() + 2 * kBlock, data.data(), kBlock);
  ExpectContents(1, 0, expected.span());
}

TEST_F(ExtentStoreTest, ConcurrentOverlappingWritesApplyInSubmissionOrder) {
  // The fault-injecting device completes the data writes in a random order; the commits must
  // still apply in submission order.
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  constexpr int kWrites = 24;
  AlignedBuffer expected(64 * kBlock);
  std::vector<AlignedBuffer> buffers;
  std::vector<std::optional<Status>> results(kWrites);
  for (int index = 0; index < kWrites; ++index) {
    const uint64_t first_block = (index * 7) % 48;
    const uint64_t block_count = 1 + (index * 5) % 16;
    buffers.push_back(PatternBuffer(block_count * kBlock, 100 + index));
    std::memcpy(expected.data() + first_block * kBlock, buffers.back().data(),
                block_count * kBlock);
    store().Write(1, first_block * kBlock, buffers.back().span(),
                  [&results, index](Status status) { results[index] = status; });
  }
  Drain(store());
  for (int index = 0; index < kWrites; ++index) {
    ASSERT_TRUE(results[index].has_value()) << index;
    EXPECT_TRUE(results[index]->ok()) << results[index]->ToString();
  }
  ExpectContents(1, 0, expected.span());
}

TEST_F(ExtentStoreTest, GroupCommitSharesBatches) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  constexpr int kWrites = 32;
  std::vector<AlignedBuffer> buffers;
  int completed = 0;
  for (int index = 0; index < kWrites; ++index) {
    buffers.push_back(PatternBuffer(kBlock, index));
    store().Write(1, index * kBlock, buffers.back().span(), [&completed](Status status) {
      EXPECT_TRUE(status.ok()) << status.ToString();
      ++completed;
    });
  }
  Drain(store());
  EXPECT_EQ(completed, kWrites);
  const ExtentStoreStats stats = store().stats();
  EXPECT_EQ(stats.writes, uint64_t{kWrites});
  EXPECT_GE(stats.group_commits, 1u);
  EXPECT_LT(stats.group_commits, uint64_t{kWrites});
  for (int index = 0; index < kWrites; ++index) {
    ExpectContents(1, index * kBlock, buffers[index].span());
  }
}

TEST_F(ExtentStoreTest, GroupSizeIsBounded) {
  ASSERT_TRUE(disk_.Close().ok());
  disk_.options().max_group_commit_writes = 1;
  ASSERT_TRUE(disk_.OpenBlockstore().ok());
  ASSERT_TRUE(disk_.OpenStore().ok());
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  std::vector<AlignedBuffer> buffers;
  for (int index = 0; index < 8; ++index) {
    buffers.push_back(PatternBuffer(kBlock, index));
    store().Write(1, 0, buffers.back().span(), [](Status status) { EXPECT_TRUE(status.ok()); });
  }
  Drain(store());
  EXPECT_EQ(store().stats().group_commits, 8u);
  ExpectContents(1, 0, buffers.back().span());
}

TEST_F(ExtentStoreTest, BadArgumentsAreRejected) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  EXPECT_EQ(store().CreateEgroup(1).code(), StatusCode::kAlreadyExists);
  AlignedBuffer data = PatternBuffer(2 * kMaxIoBytes, 1);
  const auto write = [&](EgroupId egroup_id, uint64_t offset_bytes, uint64_t length_bytes) {
    return WriteSync(store(), egroup_id, offset_bytes, data.span().first(length_bytes));
  };
  EXPECT_EQ(write(1, 100, kBlock).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(write(1, 0, 1000).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(write(1, 0, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(write(1, 0, kMaxIoBytes + kBlock).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(write(1, kEgroupMaxBytes - kBlock, 2 * kBlock).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(write(1, kEgroupMaxBytes, kBlock).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(write(1, ~uint64_t{0} - kBlock + 1, kBlock).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(write(2, 0, kBlock).code(), StatusCode::kNotFound);
  EXPECT_TRUE(write(1, kEgroupMaxBytes - kMaxIoBytes, kMaxIoBytes).ok());

  AlignedBuffer buffer(2 * kBlock);
  EXPECT_EQ(ReadSync(store(), 1, 512, buffer.span().first(kBlock)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadSync(store(), 1, 0, buffer.span().first(512)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadSync(store(), 1, 0, buffer.span().first(0)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadSync(store(), 1, kEgroupMaxBytes - kBlock, buffer.span()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadSync(store(), 9, 0, buffer.span().first(kBlock)).code(), StatusCode::kNotFound);
  // The read buffer must be 4 KiB aligned (the caller's buffer is the device read's target).
  std::vector<std::byte> unaligned(3 * kBlock);
  std::span<std::byte> misaligned(unaligned.data() + 8, kBlock);
  if (reinterpret_cast<uintptr_t>(misaligned.data()) % kIoAlignmentBytes == 0) {
    misaligned = std::span<std::byte>(unaligned.data() + 16, kBlock);
  }
  EXPECT_EQ(ReadSync(store(), 1, 0, misaligned).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store().DeleteEgroup(9).code(), StatusCode::kNotFound);
  EXPECT_EQ(store().stats().writes, 1u);
}

TEST_F(ExtentStoreTest, UnalignedWriteDataIsCopied) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  std::vector<std::byte> storage(3 * kBlock);
  std::span<std::byte> data(storage.data() + 8, 2 * kBlock);
  testing::FillPattern(data, 77);
  ASSERT_TRUE(WriteSync(store(), 1, 0, data).ok());
  ExpectContents(1, 0, data);
}

TEST_F(ExtentStoreTest, DeleteIsBusyWhileWritesAreInFlight) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  AlignedBuffer data = PatternBuffer(kBlock, 1);
  std::optional<Status> result;
  store().Write(1, 0, data.span(), [&result](Status status) { result = status; });
  EXPECT_EQ(store().DeleteEgroup(1).code(), StatusCode::kBusy);
  ASSERT_TRUE(testing::WaitFor(store(), result).ok());
  EXPECT_TRUE(store().DeleteEgroup(1).ok());
}

TEST_F(ExtentStoreTest, InflightWriteLimitGivesBusy) {
  ASSERT_TRUE(disk_.Close().ok());
  disk_.options().max_inflight_writes = 2;
  ASSERT_TRUE(disk_.OpenBlockstore().ok());
  ASSERT_TRUE(disk_.OpenStore().ok());
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  AlignedBuffer data = PatternBuffer(kBlock, 1);
  std::vector<Status> results;
  for (int index = 0; index < 3; ++index) {
    store().Write(1, index * kBlock, data.span(),
                  [&results](Status status) { results.push_back(status); });
  }
  Drain(store());
  ASSERT_EQ(results.size(), 3u);
  int busy = 0;
  for (const Status& status : results) busy += status.code() == StatusCode::kBusy ? 1 : 0;
  EXPECT_EQ(busy, 1);
}

TEST_F(ExtentStoreTest, ReopenKeepsEverything) {
  std::map<std::pair<EgroupId, uint64_t>, AlignedBuffer> written;
  for (EgroupId id = 1; id <= 3; ++id) {
    ASSERT_TRUE(store().CreateEgroup(id).ok());
    for (uint64_t index = 0; index < 4; ++index) {
      const uint64_t offset_bytes = index * kExtentBytes + id * kBlock;
      AlignedBuffer data = PatternBuffer((index + 1) * 4 * kBlock, id * 10 + index);
      ASSERT_TRUE(WriteSync(store(), id, offset_bytes, data.span()).ok());
      written.emplace(std::make_pair(id, offset_bytes), std::move(data));
    }
  }
  const std::vector<EgroupInfo> before = store().ListEgroups();
  const uint64_t client_blocks = store().stats().blockstore.client_blocks;
  ASSERT_TRUE(disk_.Reopen().ok());
  EXPECT_EQ(store().stats().orphan_blocks_reclaimed, 0u);
  EXPECT_EQ(store().stats().blockstore.client_blocks, client_blocks);
  const std::vector<EgroupInfo> after = store().ListEgroups();
  ASSERT_EQ(after.size(), before.size());
  for (size_t index = 0; index < after.size(); ++index) {
    EXPECT_EQ(after[index].id, before[index].id);
    EXPECT_EQ(after[index].written_bytes, before[index].written_bytes);
  }
  for (const auto& [where, data] : written) ExpectContents(where.first, where.second, data.span());
}

TEST_F(ExtentStoreTest, OverwrittenBlocksAreFreed) {
  const blockstore::BlockstoreStats initial = store().stats().blockstore;
  EXPECT_EQ(initial.client_blocks, 0u);
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  for (int round = 0; round < 10; ++round) {
    AlignedBuffer data = PatternBuffer(64 * kBlock, round);
    ASSERT_TRUE(WriteSync(store(), 1, 0, data.span()).ok());
    AlignedBuffer patch = PatternBuffer(5 * kBlock, round + 100);
    ASSERT_TRUE(WriteSync(store(), 1, (round + 3) * kBlock, patch.span()).ok());
  }
  Drain(store());
  blockstore::BlockstoreStats stats = store().stats().blockstore;
  EXPECT_EQ(stats.client_blocks, 64u);
  EXPECT_EQ(stats.quarantined_blocks, 0u);
  EXPECT_EQ(stats.free_blocks, initial.free_blocks - 64);

  ASSERT_TRUE(store().DeleteEgroup(1).ok());
  Drain(store());
  stats = store().stats().blockstore;
  EXPECT_EQ(stats.client_blocks, 0u);
  EXPECT_EQ(stats.free_blocks, initial.free_blocks);
}

TEST_F(ExtentStoreTest, FreesLostInACrashAreReclaimedAtOpen) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  AlignedBuffer old_data = PatternBuffer(8 * kBlock, 1);
  ASSERT_TRUE(WriteSync(store(), 1, 0, old_data.span()).ok());
  AlignedBuffer new_data = PatternBuffer(8 * kBlock, 2);
  ASSERT_TRUE(WriteSync(store(), 1, 0, new_data.span()).ok());
  // The old blocks are freed in memory; their FREE records are not durable yet.
  disk_.fault().Crash(env::CrashMode::kDropUnsynced);
  disk_.store_pointer().reset();
  disk_.blockstore_pointer().reset();
  disk_.fault().Revive();
  ASSERT_TRUE(disk_.OpenBlockstore().ok());
  ASSERT_TRUE(disk_.OpenStore().ok());
  EXPECT_EQ(store().stats().orphan_blocks_reclaimed, 8u);
  EXPECT_EQ(store().stats().blockstore.client_blocks, 8u);
  ExpectContents(1, 0, new_data.span());
}

TEST(ExtentStoreFullDeviceTest, NoSpaceLosesNothing) {
  TestDisk disk(/*size_bytes=*/8ull << 20);
  ASSERT_TRUE(disk.FormatAndOpen().ok());
  ExtentStore& store = disk.store();
  std::map<std::pair<EgroupId, uint64_t>, AlignedBuffer> written;
  Status status;
  uint64_t seed = 0;
  // Fill with 256 KiB writes until the device is full.
  for (EgroupId id = 1; status.ok() && id < 64; ++id) {
    ASSERT_TRUE(store.CreateEgroup(id).ok());
    for (uint64_t offset_bytes = 0; offset_bytes < kEgroupMaxBytes; offset_bytes += 64 * kBlock) {
      AlignedBuffer data = PatternBuffer(64 * kBlock, ++seed);
      status = WriteSync(store, id, offset_bytes, data.span());
      if (!status.ok()) break;
      written.emplace(std::make_pair(id, offset_bytes), std::move(data));
    }
  }
  ASSERT_EQ(status.code(), StatusCode::kNoSpace) << status.ToString();
  ASSERT_FALSE(written.empty());
  // Fill the last blocks one at a time, in a fresh egroup: AllocateAny takes whatever is left.
  constexpr EgroupId kLastEgroup = 1000;
  ASSERT_TRUE(store.CreateEgroup(kLastEgroup).ok());
  for (uint64_t offset_bytes = 0; offset_bytes < kEgroupMaxBytes; offset_bytes += kBlock) {
    AlignedBuffer data = PatternBuffer(kBlock, ++seed);
    status = WriteSync(store, kLastEgroup, offset_bytes, data.span());
    if (!status.ok()) break;
    written.emplace(std::make_pair(kLastEgroup, offset_bytes), std::move(data));
  }
  EXPECT_EQ(status.code(), StatusCode::kNoSpace) << status.ToString();
  EXPECT_EQ(store.stats().blockstore.free_blocks, 0u);
  // An overwrite needs new blocks too.
  AlignedBuffer data = PatternBuffer(kBlock, ++seed);
  EXPECT_EQ(WriteSync(store, 1, 0, data.span()).code(), StatusCode::kNoSpace);
  for (const auto& [where, contents] : written) {
    AlignedBuffer buffer(contents.size());
    ASSERT_TRUE(ReadSync(store, where.first, where.second, buffer.span()).ok());
    EXPECT_TRUE(SameBytes(buffer.span(), contents.span()));
  }
  // Deleting an egroup gives the space back.
  ASSERT_TRUE(store.DeleteEgroup(1).ok());
  Drain(store);
  EXPECT_TRUE(WriteSync(store, 2, 0, data.span()).ok());
}

// Regression: with the disk nearly full, overwrites must wait for the blocks that earlier
// overwrites freed (their FREE records become durable a little later) instead of failing.
TEST(ExtentStoreFullDeviceTest, SustainedOverwritesOnANearlyFullDiskSucceed) {
  TestDisk disk(/*size_bytes=*/8ull << 20);
  ASSERT_TRUE(disk.FormatAndOpen().ok());
  ExtentStore& store = disk.store();
  Status status;
  uint64_t seed = 0;
  std::vector<std::pair<EgroupId, uint64_t>> filled;
  for (EgroupId id = 1; status.ok() && id < 64; ++id) {
    ASSERT_TRUE(store.CreateEgroup(id).ok());
    for (uint64_t offset_bytes = 0; offset_bytes < kEgroupMaxBytes; offset_bytes += kBlock * 16) {
      AlignedBuffer data = PatternBuffer(16 * kBlock, ++seed);
      status = WriteSync(store, id, offset_bytes, data.span());
      if (!status.ok()) break;
      filled.emplace_back(id, offset_bytes);
    }
  }
  ASSERT_EQ(status.code(), StatusCode::kNoSpace) << status.ToString();
  Drain(store);
  const uint64_t free_blocks = store.stats().blockstore.free_blocks;
  ASSERT_LT(free_blocks, 16u);
  // Eight overwrites in flight at a time, 400 in all, over a disk with < 16 free blocks.
  std::map<std::pair<EgroupId, uint64_t>, AlignedBuffer> latest;
  std::mt19937_64 random(7);
  uint32_t in_flight = 0;
  uint32_t failures = 0;
  std::deque<AlignedBuffer> buffers;
  for (int issued = 0; issued < 400 || in_flight > 0;) {
    while (issued < 400 && in_flight < 8) {
      const auto& [id, offset_bytes] = filled[random() % filled.size()];
      AlignedBuffer data = PatternBuffer(kBlock, ++seed);
      const std::span<const std::byte> bytes = data.span();
      latest.insert_or_assign({id, offset_bytes}, PatternBuffer(kBlock, seed));
      buffers.push_back(std::move(data));
      ++in_flight;
      ++issued;
      store.Write(id, offset_bytes, bytes, [&](Status written) {
        --in_flight;
        if (!written.ok()) {
          ++failures;
          ADD_FAILURE() << written.ToString();
        }
      });
    }
    store.Poll(/*wait=*/true);
  }
  EXPECT_EQ(failures, 0u);
  for (const auto& [where, contents] : latest) {
    AlignedBuffer buffer(kBlock);
    ASSERT_TRUE(ReadSync(store, where.first, where.second, buffer.span()).ok());
    EXPECT_TRUE(SameBytes(buffer.span(), contents.span()));
  }
  Drain(store);
  EXPECT_EQ(store.stats().blockstore.free_blocks, free_blocks);  // Nothing leaked.
}

TEST(SlotRowCacheTest, EvictsLeastRecentlyUsedAndUpdatesInPlace) {
  SlotRowCache cache;
  const format::SlotAddress first{1, 0};
  EXPECT_EQ(cache.Find(first), nullptr);
  format::SlotRows rows = format::MakeEmptySlotRows(first);
  rows.layout.entries[3] = 77;
  cache.Put(first, rows);
  ASSERT_NE(cache.Find(first), nullptr);
  EXPECT_EQ((*cache.Find(first))->layout.entries[3], 77u);
  rows.layout.entries[3] = 78;
  cache.Put(first, rows);
  EXPECT_EQ((*cache.Find(first))->layout.entries[3], 78u);
  cache.Put({1, 1}, std::nullopt);  // Unwritten slots are cached as such.
  ASSERT_NE(cache.Find({1, 1}), nullptr);
  EXPECT_FALSE(cache.Find({1, 1})->has_value());
  // Fill past capacity: `first` was used last, so the others go first.
  for (uint64_t egroup = 2; cache.size() < SlotRowCache::kCapacityEntries; ++egroup) {
    cache.Put({egroup, 0}, std::nullopt);
  }
  cache.Find(first);
  cache.Put({1ull << 40, 0}, std::nullopt);
  EXPECT_EQ(cache.size(), SlotRowCache::kCapacityEntries);
  EXPECT_NE(cache.Find(first), nullptr);
  EXPECT_EQ(cache.Find({1, 1}), nullptr);  // The least recently used entry was evicted.
  cache.Erase(first);
  EXPECT_EQ(cache.Find(first), nullptr);
}

TEST_F(ExtentStoreTest, MetadataCacheServesRereadsAndStaysCoherent) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  AlignedBuffer first = PatternBuffer(8 * kBlock, 1);
  ASSERT_TRUE(WriteSync(store(), 1, 0, first.span()).ok());
  AlignedBuffer buffer(8 * kBlock);
  ASSERT_TRUE(ReadSync(store(), 1, 0, buffer.span()).ok());
  const uint64_t hits_before = store().stats().metadata_cache_hits;
  ASSERT_TRUE(ReadSync(store(), 1, 0, buffer.span()).ok());
  EXPECT_GT(store().stats().metadata_cache_hits, hits_before);
  // An overwrite and a delete must be visible through the cache.
  AlignedBuffer second = PatternBuffer(8 * kBlock, 2);
  ASSERT_TRUE(WriteSync(store(), 1, 0, second.span()).ok());
  ASSERT_TRUE(ReadSync(store(), 1, 0, buffer.span()).ok());
  EXPECT_TRUE(SameBytes(buffer.span(), second.span()));
  Drain(store());
  ASSERT_TRUE(store().DeleteEgroup(1).ok());
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  ASSERT_TRUE(ReadSync(store(), 1, 0, buffer.span()).ok());
  EXPECT_TRUE(SameBytes(buffer.span(), AlignedBuffer(8 * kBlock).span()));
}

TEST(ExtentStoreMetadataTest, MetadataOfAnotherBlockstoreIsRefused) {
  TestDisk first;
  ASSERT_TRUE(first.FormatAndOpen().ok());
  ASSERT_TRUE(first.store().CreateEgroup(1).ok());
  ASSERT_TRUE(first.Close().ok());

  // A second blockstore pointed at the first one's metadata.
  env::MemoryDevice other_memory("memory:other", 64ull << 20, 4096);
  ASSERT_TRUE(blockstore::Blockstore::Format(other_memory, {}).ok());
  Result<std::unique_ptr<blockstore::Blockstore>> other =
      blockstore::Blockstore::Open(other_memory);
  ASSERT_TRUE(other.ok());
  Result<std::unique_ptr<ExtentStore>> store = ExtentStore::Open(**other, first.options());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(store.status().message().find("belongs to blockstore"), std::string::npos)
      << store.status().ToString();
  EXPECT_NE(store.status().message().find((*other)->uuid().ToString()), std::string::npos);
}

TEST(ExtentStoreMetadataTest, OnlyFourKibBlocksAreSupported) {
  env::MemoryDevice memory("memory:big-blocks", 64ull << 20, 4096);
  blockstore::FormatOptions format_options;
  format_options.block_size_bytes = 8192;
  ASSERT_TRUE(blockstore::Blockstore::Format(memory, format_options).ok());
  Result<std::unique_ptr<blockstore::Blockstore>> blockstore = blockstore::Blockstore::Open(memory);
  ASSERT_TRUE(blockstore.ok());
  std::unique_ptr<rocksdb::Env> env(rocksdb::NewMemEnv(rocksdb::Env::Default()));
  ExtentStoreOptions options;
  options.metadata_path = "/metadata";
  options.metadata_env = env.get();
  Result<std::unique_ptr<ExtentStore>> store = ExtentStore::Open(**blockstore, options);
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
}

TEST(ExtentStoreMetadataTest, RealDirectoryRoundTrip) {
  const std::filesystem::path directory =
      std::filesystem::path(::testing::TempDir()) /
      ("extent_store_real_directory_test." + std::to_string(getpid()));
  std::filesystem::remove_all(directory);
  TestDisk disk(64ull << 20, 1, directory.string(), /*memory_metadata=*/false);
  ASSERT_TRUE(disk.FormatAndOpen().ok());
  ASSERT_TRUE(disk.store().CreateEgroup(5).ok());
  AlignedBuffer data = PatternBuffer(32 * kBlock, 5);
  ASSERT_TRUE(WriteSync(disk.store(), 5, kExtentBytes, data.span()).ok());
  ASSERT_TRUE(disk.Reopen().ok());
  AlignedBuffer buffer(data.size());
  ASSERT_TRUE(ReadSync(disk.store(), 5, kExtentBytes, buffer.span()).ok());
  EXPECT_TRUE(SameBytes(buffer.span(), data.span()));
  EXPECT_TRUE(std::filesystem::exists(directory / "CURRENT"));
  ASSERT_TRUE(disk.Close().ok());
  std::filesystem::remove_all(directory);
}

// A device that holds reads back until told, so a test can keep a read in flight across a
// commit.
class HoldingDevice final : public env::BlockDevice {
 public:
  explicit HoldingDevice(env::BlockDevice& inner) : inner_(inner) {}
  uint64_t size_bytes() const override { return inner_.size_bytes(); }
  uint32_t alignment_bytes() const override { return inner_.alignment_bytes(); }
  const std::string& name() const override { return inner_.name(); }
  void SubmitRead(uint64_t offset_bytes, std::span<std::byte> buffer,
                  env::IoCompletion done) override {
    if (!hold_reads_) return inner_.SubmitRead(offset_bytes, buffer, std::move(done));
    held_.push_back({offset_bytes, buffer, std::move(done)});
  }
  void SubmitWrite(uint64_t offset_bytes, std::span<const std::byte> data,
                   env::IoCompletion done) override {
    inner_.SubmitWrite(offset_bytes, data, std::move(done));
  }
  void SubmitFlush(env::IoCompletion done) override { inner_.SubmitFlush(std::move(done)); }
  void SubmitDiscard(uint64_t offset_bytes, uint64_t length_bytes,
                     env::IoCompletion done) override {
    inner_.SubmitDiscard(offset_bytes, length_bytes, std::move(done));
  }
  size_t Poll(bool wait) override { return inner_.Poll(wait); }
  size_t inflight_count() const override { return inner_.inflight_count() + held_.size(); }

  void set_hold_reads(bool hold) { hold_reads_ = hold; }
  void ReleaseReads() {
    hold_reads_ = false;
    for (Held& held : held_)
      inner_.SubmitRead(held.offset_bytes, held.buffer, std::move(held.done));
    held_.clear();
  }

 private:
  struct Held {
    uint64_t offset_bytes;
    std::span<std::byte> buffer;
    env::IoCompletion done;
  };
  env::BlockDevice& inner_;
  bool hold_reads_ = false;
  std::vector<Held> held_;
};

TEST(ExtentStoreDeferredFreeTest, BlocksUnderAReadAreFreedAfterIt) {
  env::MemoryDevice memory("memory:holding", 64ull << 20, 4096);
  HoldingDevice device(memory);
  ASSERT_TRUE(blockstore::Blockstore::Format(device, {}).ok());
  Result<std::unique_ptr<blockstore::Blockstore>> blockstore = blockstore::Blockstore::Open(device);
  ASSERT_TRUE(blockstore.ok());
  std::unique_ptr<rocksdb::Env> env(rocksdb::NewMemEnv(rocksdb::Env::Default()));
  ExtentStoreOptions options;
  options.metadata_path = "/metadata";
  options.metadata_env = env.get();
  Result<std::unique_ptr<ExtentStore>> opened = ExtentStore::Open(**blockstore, options);
  ASSERT_TRUE(opened.ok());
  ExtentStore& store = **opened;
  ASSERT_TRUE(store.CreateEgroup(1).ok());
  AlignedBuffer old_data = PatternBuffer(4 * kBlock, 1);
  ASSERT_TRUE(WriteSync(store, 1, 0, old_data.span()).ok());

  // A read looks up the old blocks, then an overwrite commits while the read is held.
  device.set_hold_reads(true);
  AlignedBuffer buffer(4 * kBlock);
  std::optional<Status> read_result;
  store.Read(1, 0, buffer.span(), [&read_result](Status status) { read_result = status; });
  AlignedBuffer new_data = PatternBuffer(4 * kBlock, 2);
  ASSERT_TRUE(WriteSync(store, 1, 0, new_data.span()).ok());
  EXPECT_FALSE(read_result.has_value());
  // The old blocks must still be allocated: 4 new + 4 held by the read.
  EXPECT_EQ(store.stats().blockstore.client_blocks, 8u);

  device.ReleaseReads();
  const Status read_status = testing::WaitFor(store, read_result);
  ASSERT_TRUE(read_status.ok()) << read_status.ToString();
  EXPECT_TRUE(SameBytes(buffer.span(), old_data.span()));
  Drain(store);
  EXPECT_EQ(store.stats().blockstore.client_blocks, 4u);
  opened.value().reset();
}

TEST(ExtentStoreFormatTest, RowsRoundTripAndCatchDamage) {
  const format::SlotAddress address{0x0102030405060708ull, 2};
  format::SlotRows rows = format::MakeEmptySlotRows(address);
  rows.layout.entries[7] = 1234;
  rows.checksums.entries[7] = 0xDEADBEEF;
  std::string value = format::EncodeBlockMapRow(rows.layout);
  EXPECT_EQ(value.size(), sizeof(format::BlockMapRow));
  Result<format::BlockMapRow> decoded =
      format::DecodeBlockMapRow(value, format::kLayoutMagic, address);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->entries[7], 1234u);

  // Every single-bit flip is caught.
  for (size_t bit = 0; bit < value.size() * 8; bit += 13) {
    std::string damaged = value;
    damaged[bit / 8] = static_cast<char>(damaged[bit / 8] ^ (1 << (bit % 8)));
    EXPECT_TRUE(
        format::DecodeBlockMapRow(damaged, format::kLayoutMagic, address).status().IsCorruption())
        << "bit " << bit;
  }
  // A row read under another key, or as the other kind, is caught.
  EXPECT_TRUE(format::DecodeBlockMapRow(value, format::kLayoutMagic, {address.egroup_id, 3})
                  .status()
                  .IsCorruption());
  EXPECT_TRUE(
      format::DecodeBlockMapRow(value, format::kChecksumsMagic, address).status().IsCorruption());
  EXPECT_TRUE(format::DecodeBlockMapRow(value.substr(1), format::kLayoutMagic, address)
                  .status()
                  .IsCorruption());

  // Keys sort in egroup order.
  EXPECT_LT(format::SlotKey(1, 3), format::SlotKey(2, 0));
  EXPECT_LT(format::EgroupKey(255), format::EgroupKey(256));
  EXPECT_EQ(format::DecodeSlotKey(format::SlotKey(address.egroup_id, address.slot)), address);
  EXPECT_FALSE(format::DecodeSlotKey(std::string(9, '\xff')).has_value());

  const std::string egroup_value =
      format::EncodeEgroupRow(format::MakeEgroupRow(9, 17, 1000, 0x1122334455667788ull));
  EXPECT_EQ(egroup_value.size(), sizeof(format::EgroupRow));
  Result<format::EgroupRow> egroup = format::DecodeEgroupRow(egroup_value, 9);
  ASSERT_TRUE(egroup.ok());
  EXPECT_EQ(egroup->written_block_count, 17u);
  EXPECT_EQ(egroup->replica_version, 0x1122334455667788ull);
  for (size_t bit = 0; bit < egroup_value.size() * 8; ++bit) {
    std::string damaged = egroup_value;
    damaged[bit / 8] = static_cast<char>(damaged[bit / 8] ^ (1 << (bit % 8)));
    EXPECT_TRUE(format::DecodeEgroupRow(damaged, 9).status().IsCorruption()) << "bit " << bit;
  }
  EXPECT_TRUE(format::DecodeEgroupRow(egroup_value, 10).status().IsCorruption());
}

}  // namespace
}  // namespace weft::extent_store

namespace weft::extent_store {
namespace {

using testing::Drain;
using testing::PatternBuffer;
using testing::ReadSync;
using testing::SameBytes;
using testing::TestDisk;
using testing::WaitFor;
using testing::WriteSync;

using testing::TrimSync;

TEST(ExtentStoreTrimTest, TrimUnmapsFreesAndReadsZeros) {
  TestDisk disk;
  ASSERT_TRUE(disk.FormatAndOpen().ok());
  ExtentStore& store = disk.store();
  const uint64_t free_before = store.stats().blockstore.free_blocks;
  ASSERT_TRUE(store.CreateEgroup(7).ok());
  // Two slots' worth of data, then trim a range that straddles the slot boundary.
  AlignedBuffer data = PatternBuffer(kMaxIoBytes, 3);
  ASSERT_TRUE(WriteSync(store, 7, 512 * 1024, data.span()).ok());
  ASSERT_TRUE(WriteSync(store, 7, 1536 * 1024, data.span()).ok());
  ASSERT_EQ(store.GetEgroup(7)->written_bytes, 2 * kMaxIoBytes);
  const uint64_t trim_offset = 1024 * 1024 - 8 * kChecksumBlockBytes;
  ASSERT_TRUE(TrimSync(store, 7, trim_offset, 16 * kChecksumBlockBytes).ok());
  EXPECT_EQ(store.GetEgroup(7)->written_bytes, 2 * kMaxIoBytes - 16 * kChecksumBlockBytes);
  EXPECT_EQ(store.stats().trims, 1u);

  Result<std::vector<bool>> allocated = store.AllocatedBlocks(7, 0, kEgroupMaxBytes);
  ASSERT_TRUE(allocated.ok());
  for (uint64_t block = 0; block < allocated->size(); ++block) {
    const uint64_t offset = block * kChecksumBlockBytes;
    const bool written = offset >= 512 * 1024 && offset < 2560 * 1024;
    const bool trimmed = offset >= trim_offset && offset < trim_offset + 16 * kChecksumBlockBytes;
    EXPECT_EQ((*allocated)[block], written && !trimmed) << "block " << block;
  }
  AlignedBuffer read(kMaxIoBytes);
  ASSERT_TRUE(ReadSync(store, 7, 512 * 1024, read.span()).ok());
  const uint64_t trimmed_at = trim_offset - 512 * 1024;
  EXPECT_TRUE(SameBytes(read.span().first(trimmed_at), data.span().first(trimmed_at)));
  const uint64_t trimmed_end = trimmed_at + 16 * kChecksumBlockBytes;
  for (uint64_t offset = trimmed_at; offset < trimmed_end; ++offset) {
    ASSERT_EQ(read.span()[offset], std::byte{0}) << "offset " << offset;
  }
  EXPECT_TRUE(SameBytes(read.span().subspan(trimmed_end), data.span().subspan(trimmed_end)));
  // Trimming what is already unmapped is fine and changes nothing.
  ASSERT_TRUE(TrimSync(store, 7, 3 * kMaxIoBytes, kMaxIoBytes).ok());

  Drain(store);
  EXPECT_EQ(store.stats().blockstore.client_blocks, 2 * 256u - 16);
  // The trim survives a crash once acknowledged, and the freed blocks are not leaked.
  disk.fault().Crash(env::CrashMode::kDropUnsynced);
  disk.store_pointer().reset();
  disk.blockstore_pointer().reset();
  disk.fault().Revive();
  ASSERT_TRUE(disk.OpenBlockstore().ok());
  ASSERT_TRUE(disk.OpenStore().ok());
  ExtentStore& reopened = disk.store();
  EXPECT_EQ(reopened.stats().blockstore.client_blocks, 2 * 256u - 16);
  ASSERT_TRUE(ReadSync(reopened, 7, 512 * 1024, read.span()).ok());
  EXPECT_TRUE(SameBytes(read.span().first(trimmed_at), data.span().first(trimmed_at)));
  EXPECT_EQ(read.span()[trimmed_at], std::byte{0});
  ASSERT_TRUE(TrimSync(reopened, 7, 0, kEgroupMaxBytes).ok());
  Drain(reopened);
  EXPECT_EQ(reopened.GetEgroup(7)->written_bytes, 0u);
  EXPECT_EQ(reopened.stats().blockstore.free_blocks, free_before);
}

TEST(ExtentStoreTrimTest, TrimIsOrderedWithWrites) {
  TestDisk disk;
  ASSERT_TRUE(disk.FormatAndOpen().ok());
  ExtentStore& store = disk.store();
  ASSERT_TRUE(store.CreateEgroup(1).ok());
  AlignedBuffer first = PatternBuffer(64 * kChecksumBlockBytes, 1);
  AlignedBuffer second = PatternBuffer(64 * kChecksumBlockBytes, 2);
  std::vector<Status> results;
  // write, trim, write: the second write lands; then write, trim: zeros.
  store.Write(1, 0, first.span(), [&](Status status) { results.push_back(status); });
  store.Trim(1, 0, 64 * kChecksumBlockBytes, [&](Status status) { results.push_back(status); });
  store.Write(1, 0, second.span(), [&](Status status) { results.push_back(status); });
  store.Write(1, kMaxIoBytes, first.span(), [&](Status status) { results.push_back(status); });
  store.Trim(1, kMaxIoBytes, 64 * kChecksumBlockBytes,
             [&](Status status) { results.push_back(status); });
  Drain(store);
  ASSERT_EQ(results.size(), 5u);
  for (const Status& status : results) EXPECT_TRUE(status.ok()) << status.ToString();
  AlignedBuffer read(64 * kChecksumBlockBytes);
  ASSERT_TRUE(ReadSync(store, 1, 0, read.span()).ok());
  EXPECT_TRUE(SameBytes(read.span(), second.span()));
  ASSERT_TRUE(ReadSync(store, 1, kMaxIoBytes, read.span()).ok());
  EXPECT_EQ(*store.AllocatedBlocks(1, kMaxIoBytes, 64 * kChecksumBlockBytes),
            std::vector<bool>(64, false));
}

TEST(ExtentStoreTrimTest, BadTrimsAreRejected) {
  TestDisk disk;
  ASSERT_TRUE(disk.FormatAndOpen().ok());
  ExtentStore& store = disk.store();
  ASSERT_TRUE(store.CreateEgroup(1).ok());
  EXPECT_TRUE(TrimSync(store, 1, 100, kChecksumBlockBytes).IsInvalidArgument());
  EXPECT_TRUE(TrimSync(store, 1, 0, 100).IsInvalidArgument());
  EXPECT_TRUE(TrimSync(store, 1, 0, 0).IsInvalidArgument());
  EXPECT_TRUE(TrimSync(store, 1, kChecksumBlockBytes, kEgroupMaxBytes).IsInvalidArgument());
  EXPECT_TRUE(TrimSync(store, 2, 0, kChecksumBlockBytes).IsNotFound());
  EXPECT_TRUE(store.AllocatedBlocks(2, 0, kChecksumBlockBytes).status().IsNotFound());
  EXPECT_TRUE(store.GetEgroup(2).status().IsNotFound());
}

}  // namespace
}  // namespace weft::extent_store
