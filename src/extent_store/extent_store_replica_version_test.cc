// Replica versions (extent_store.h): committed with the write that raises them, max semantics,
// 0 leaves them, SetReplicaVersion sets them exactly, and they survive reopen and crashes. Also
// BlockChecksums, which lets replicas be compared without reading their data. Crash consistency
// under random interleavings is checked by the crash loop (extent_store_crash_test.cc); v1 rows
// and damaged egroup rows by extent_store_corruption_test.cc.
#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "base/crc32c.h"
#include "extent_store/extent_store.h"
#include "extent_store/extent_store_test_util.h"

namespace weft::extent_store {
namespace {

using testing::Drain;
using testing::PatternBuffer;
using testing::ReadSync;
using testing::SameBytes;
using testing::TestDisk;
using testing::TrimSync;
using testing::WaitFor;
using testing::WriteSync;

constexpr uint64_t kBlock = kChecksumBlockBytes;

class ReplicaVersionTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(disk_.FormatAndOpen().ok()); }
  ExtentStore& store() { return disk_.store(); }

  uint64_t VersionOf(EgroupId egroup_id) {
    Result<uint64_t> version = store().ReplicaVersion(egroup_id);
    EXPECT_TRUE(version.ok()) << version.status().ToString();
    return version.ok() ? *version : ~uint64_t{0};
  }

  // A power loss that drops everything unsynced, then recovery.
  void CrashAndRecover() {
    Drain(store());
    disk_.fault().Crash(env::CrashMode::kDropUnsynced);
    disk_.store_pointer().reset();
    disk_.blockstore_pointer().reset();
    disk_.fault().Revive();
    ASSERT_TRUE(disk_.OpenBlockstore().ok());
    ASSERT_TRUE(disk_.OpenStore().ok());
  }

  TestDisk disk_;
};

TEST_F(ReplicaVersionTest, VersionsAreCommittedWithWritesAndSurviveReopenAndCrash) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  ASSERT_TRUE(store().CreateEgroup(2, /*replica_version=*/40).ok());
  EXPECT_EQ(VersionOf(1), 0u);
  EXPECT_EQ(VersionOf(2), 40u);

  AlignedBuffer data = PatternBuffer(4 * kBlock, 1);
  ASSERT_TRUE(WriteSync(store(), 1, 0, data.span(), /*replica_version=*/5).ok());
  EXPECT_EQ(VersionOf(1), 5u);
  EXPECT_EQ(store().GetEgroup(1)->replica_version, 5u);
  const std::vector<EgroupInfo> list = store().ListEgroups();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].replica_version, 5u);
  EXPECT_EQ(list[1].replica_version, 40u);

  ASSERT_TRUE(disk_.Reopen().ok());
  EXPECT_EQ(VersionOf(1), 5u);
  EXPECT_EQ(VersionOf(2), 40u);

  ASSERT_TRUE(WriteSync(store(), 1, 64 * kBlock, data.span(), 6).ok());
  ASSERT_NO_FATAL_FAILURE(CrashAndRecover());
  EXPECT_EQ(VersionOf(1), 6u);  // Acknowledged, so durable.
  EXPECT_EQ(VersionOf(2), 40u);
  AlignedBuffer read(4 * kBlock);
  ASSERT_TRUE(ReadSync(store(), 1, 64 * kBlock, read.span()).ok());
  EXPECT_TRUE(SameBytes(read.span(), data.span()));
  EXPECT_TRUE(store().ReplicaVersion(3).status().IsNotFound());
}

TEST_F(ReplicaVersionTest, VersionIsTheMaximumAndZeroLeavesIt) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  AlignedBuffer data = PatternBuffer(kBlock, 1);
  ASSERT_TRUE(WriteSync(store(), 1, 0, data.span(), 10).ok());
  // A lower number (a late retry of an older write) lands its data but does not lower the
  // version.
  AlignedBuffer older = PatternBuffer(kBlock, 2);
  ASSERT_TRUE(WriteSync(store(), 1, kBlock, older.span(), 7).ok());
  EXPECT_EQ(VersionOf(1), 10u);
  AlignedBuffer unversioned = PatternBuffer(kBlock, 3);
  ASSERT_TRUE(WriteSync(store(), 1, 2 * kBlock, unversioned.span(), 0).ok());
  EXPECT_EQ(VersionOf(1), 10u);
  AlignedBuffer read(kBlock);
  ASSERT_TRUE(ReadSync(store(), 1, 2 * kBlock, read.span()).ok());
  EXPECT_TRUE(SameBytes(read.span(), unversioned.span()));
  ASSERT_TRUE(TrimSync(store(), 1, kBlock, kBlock, 12).ok());
  EXPECT_EQ(VersionOf(1), 12u);
  ASSERT_TRUE(TrimSync(store(), 1, 0, kBlock, 0).ok());
  EXPECT_EQ(VersionOf(1), 12u);
  ASSERT_TRUE(disk_.Reopen().ok());
  EXPECT_EQ(VersionOf(1), 12u);
  EXPECT_EQ(store().GetEgroup(1)->written_bytes, kBlock);
}

TEST_F(ReplicaVersionTest, WritesOfOneGroupComposeTheirVersions) {
  // Writes submitted together share commit groups; within and across groups the version ends at
  // the largest one, whatever order the device completes them in.
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  ASSERT_TRUE(store().CreateEgroup(2).ok());
  const uint64_t versions[] = {20, 15, 0, 18, 3, 19, 0, 11};
  std::vector<AlignedBuffer> buffers;
  int completed = 0;
  for (size_t index = 0; index < std::size(versions); ++index) {
    buffers.push_back(PatternBuffer(kBlock, index));
    const EgroupId egroup_id = index % 2 == 0 ? 1 : 2;
    store().Write(
        egroup_id, (index % 3) * kBlock, buffers.back().span(),
        [&completed](Status status) {
          EXPECT_TRUE(status.ok()) << status.ToString();
          ++completed;
        },
        versions[index]);
  }
  Drain(store());
  EXPECT_EQ(completed, static_cast<int>(std::size(versions)));
  EXPECT_EQ(VersionOf(1), 20u);  // 20, 0, 3, 0
  EXPECT_EQ(VersionOf(2), 19u);  // 15, 18, 19, 11
  ASSERT_NO_FATAL_FAILURE(CrashAndRecover());
  EXPECT_EQ(VersionOf(1), 20u);
  EXPECT_EQ(VersionOf(2), 19u);
}

// Regression guard: an overwrite (or a trim of unwritten blocks) leaves written_block_count as it
// was, and the egroup row must still be rewritten for the new version.
TEST_F(ReplicaVersionTest, VersionPersistsWhenTheWrittenCountDoesNotChange) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  AlignedBuffer data = PatternBuffer(2 * kBlock, 1);
  ASSERT_TRUE(WriteSync(store(), 1, 0, data.span(), 1).ok());
  AlignedBuffer overwrite = PatternBuffer(2 * kBlock, 2);
  ASSERT_TRUE(WriteSync(store(), 1, 0, overwrite.span(), 2).ok());
  ASSERT_NO_FATAL_FAILURE(CrashAndRecover());
  EXPECT_EQ(VersionOf(1), 2u);
  ASSERT_TRUE(TrimSync(store(), 1, kEgroupMaxBytes - kExtentBytes, kExtentBytes, 3).ok());
  EXPECT_EQ(store().GetEgroup(1)->written_bytes, 2 * kBlock);
  ASSERT_NO_FATAL_FAILURE(CrashAndRecover());
  EXPECT_EQ(VersionOf(1), 3u);
}

TEST_F(ReplicaVersionTest, SetReplicaVersionSetsExactlyAndPersists) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  AlignedBuffer data = PatternBuffer(kBlock, 1);
  ASSERT_TRUE(WriteSync(store(), 1, 0, data.span(), 30).ok());
  ASSERT_TRUE(store().SetReplicaVersion(1, 12).ok());  // Lower: a copy from an older replica.
  EXPECT_EQ(VersionOf(1), 12u);
  EXPECT_EQ(store().GetEgroup(1)->written_bytes, kBlock);  // The row keeps its count.
  ASSERT_NO_FATAL_FAILURE(CrashAndRecover());
  EXPECT_EQ(VersionOf(1), 12u);
  ASSERT_TRUE(store().SetReplicaVersion(1, 50).ok());
  ASSERT_TRUE(disk_.Reopen().ok());
  EXPECT_EQ(VersionOf(1), 50u);
  EXPECT_EQ(store().GetEgroup(1)->written_bytes, kBlock);
  EXPECT_TRUE(store().SetReplicaVersion(2, 1).IsNotFound());
}

TEST_F(ReplicaVersionTest, SetReplicaVersionIsBusyWhileWritesAreInFlight) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  ASSERT_TRUE(store().CreateEgroup(2).ok());
  AlignedBuffer data = PatternBuffer(kBlock, 1);
  std::optional<Status> result;
  store().Write(
      1, 0, data.span(), [&result](Status status) { result = status; }, 9);
  EXPECT_TRUE(store().SetReplicaVersion(1, 4).IsBusy());
  EXPECT_TRUE(store().SetReplicaVersion(2, 4).ok());  // Other egroups are not held up.
  ASSERT_TRUE(WaitFor(store(), result).ok());
  EXPECT_EQ(VersionOf(1), 9u);
  ASSERT_TRUE(store().SetReplicaVersion(1, 4).ok());
  EXPECT_EQ(VersionOf(1), 4u);
  EXPECT_EQ(VersionOf(2), 4u);
}

TEST_F(ReplicaVersionTest, DeletedAndRecreatedEgroupStartsFromItsCreationVersion) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  AlignedBuffer data = PatternBuffer(kBlock, 1);
  ASSERT_TRUE(WriteSync(store(), 1, 0, data.span(), 30).ok());
  ASSERT_TRUE(store().DeleteEgroup(1).ok());
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  EXPECT_EQ(VersionOf(1), 0u);
  ASSERT_TRUE(disk_.Reopen().ok());
  EXPECT_EQ(VersionOf(1), 0u);
}

TEST_F(ReplicaVersionTest, BlockChecksumsAreTheStoredCrcs) {
  ASSERT_TRUE(store().CreateEgroup(1).ok());
  // Spans the boundary of slots 0 and 1.
  const uint64_t offset_bytes = kExtentBytes - 4 * kBlock;
  AlignedBuffer data = PatternBuffer(8 * kBlock, 1);
  ASSERT_TRUE(WriteSync(store(), 1, offset_bytes, data.span()).ok());
  ASSERT_TRUE(TrimSync(store(), 1, offset_bytes + 2 * kBlock, kBlock).ok());

  Result<std::vector<uint32_t>> checksums =
      store().BlockChecksums(1, offset_bytes - 2 * kBlock, 12 * kBlock);
  ASSERT_TRUE(checksums.ok()) << checksums.status().ToString();
  ASSERT_EQ(checksums->size(), 12u);
  for (uint64_t index = 0; index < 12; ++index) {
    const bool written = index >= 2 && index < 10 && index != 4;
    const uint32_t expected =
        written ? Crc32c(data.span().subspan((index - 2) * kBlock, kBlock)) : 0;
    EXPECT_EQ((*checksums)[index], expected) << "block " << index;
    EXPECT_NE(expected == 0, written) << "a pattern block with a zero crc weakens this test";
  }
  // A slot never written, and the whole egroup at once.
  EXPECT_EQ(*store().BlockChecksums(1, 3 * kExtentBytes, kExtentBytes),
            std::vector<uint32_t>(kExtentBytes / kBlock, 0));
  Result<std::vector<uint32_t>> whole = store().BlockChecksums(1, 0, kEgroupMaxBytes);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ((*whole)[offset_bytes / kBlock], Crc32c(data.span().first(kBlock)));

  EXPECT_TRUE(store().BlockChecksums(2, 0, kBlock).status().IsNotFound());
  EXPECT_TRUE(store().BlockChecksums(1, 100, kBlock).status().IsInvalidArgument());
  EXPECT_TRUE(store().BlockChecksums(1, 0, 0).status().IsInvalidArgument());
  EXPECT_TRUE(store().BlockChecksums(1, kBlock, kEgroupMaxBytes).status().IsInvalidArgument());
  EXPECT_TRUE(
      store().BlockChecksums(1, 0, ~uint64_t{0} & ~(kBlock - 1)).status().IsInvalidArgument());
}

TEST(ReplicaComparisonTest, ReplicasWithTheSameWritesHaveTheSameChecksums) {
  // Two disks as two replicas: the same writes land on different physical blocks (the second
  // disk holds other data first), yet their checksums and versions agree until one misses a write.
  TestDisk first_disk;
  TestDisk second_disk(64ull << 20, /*seed=*/2);
  ASSERT_TRUE(first_disk.FormatAndOpen().ok());
  ASSERT_TRUE(second_disk.FormatAndOpen().ok());
  ExtentStore& first = first_disk.store();
  ExtentStore& second = second_disk.store();
  ASSERT_TRUE(second.CreateEgroup(99).ok());
  AlignedBuffer filler = PatternBuffer(64 * kBlock, 99);
  ASSERT_TRUE(WriteSync(second, 99, 0, filler.span()).ok());
  for (ExtentStore* store : {&first, &second}) ASSERT_TRUE(store->CreateEgroup(5).ok());
  for (uint64_t version = 1; version <= 4; ++version) {
    AlignedBuffer data = PatternBuffer(16 * kBlock, version);
    for (ExtentStore* store : {&first, &second}) {
      ASSERT_TRUE(WriteSync(*store, 5, (version * 12) * kBlock, data.span(), version).ok());
    }
  }
  EXPECT_EQ(*first.BlockChecksums(5, 0, kExtentBytes), *second.BlockChecksums(5, 0, kExtentBytes));
  EXPECT_EQ(*first.ReplicaVersion(5), *second.ReplicaVersion(5));

  AlignedBuffer missed = PatternBuffer(kBlock, 5);
  ASSERT_TRUE(WriteSync(first, 5, 20 * kBlock, missed.span(), 5).ok());
  EXPECT_GT(*first.ReplicaVersion(5), *second.ReplicaVersion(5));  // The second is stale.
  const std::vector<uint32_t> first_checksums = *first.BlockChecksums(5, 0, kExtentBytes);
  const std::vector<uint32_t> second_checksums = *second.BlockChecksums(5, 0, kExtentBytes);
  for (uint64_t index = 0; index < first_checksums.size(); ++index) {
    EXPECT_EQ(first_checksums[index] != second_checksums[index], index == 20) << index;
  }
}

}  // namespace
}  // namespace weft::extent_store
