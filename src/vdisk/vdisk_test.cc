#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "base/aligned_buffer.h"
#include "vdisk/vdisk_test_util.h"

namespace weft::vdisk {
namespace {

using testing::TestNode;

constexpr uint64_t kMiB = 1ull << 20;

// Every test runs twice: vDisks writing straight to the extent store, and vDisks with an OpLog
// (small, so it fills and wraps) and a Unified Cache (small, so it evicts to its SSD tier).
class VdiskTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    node_.set_oplog_and_cache(GetParam());
    ASSERT_TRUE(node_.Start().ok());
    CreateDefaults();
  }

  void CreateDefaults() {
    auto container = node_.Wait<records::Container>(
        [&](auto done) { node_.manager().CreateContainer("default", 1, done); });
    ASSERT_TRUE(container.ok()) << container.status().ToString();
  }

  Result<records::Vdisk> CreateVdisk(const std::string& name, uint64_t size_bytes,
                                     const std::string& container = "") {
    return node_.Wait<records::Vdisk>(
        [&](auto done) { node_.manager().CreateVdisk(name, size_bytes, container, done); });
  }

  VdiskController& Vdisk(const std::string& name) {
    VdiskController* controller = node_.manager().FindVdisk(name);
    EXPECT_NE(controller, nullptr) << name;
    return *controller;
  }

  Status Write(VdiskController& vdisk, uint64_t offset, std::span<const std::byte> data) {
    return node_.WaitStatus([&](Completion done) { vdisk.Write(offset, data, done); });
  }
  Status Read(VdiskController& vdisk, uint64_t offset, std::span<std::byte> buffer) {
    return node_.WaitStatus([&](Completion done) { vdisk.Read(offset, buffer, done); });
  }
  // Waits until the vDisk's OpLog (if any) holds nothing undrained: extent-level state (used
  // bytes, mapped vBlocks, egroups) then reflects every write.
  void WaitDrained(VdiskController& vdisk) {
    ASSERT_TRUE(node_.RunUntil([&] {
      const oplog::OpLog* log = vdisk.oplog();
      return log == nullptr || (!log->has_undrained() && log->appends_pending() == 0);
    }));
  }
  // The whole vDisk's contents.
  std::vector<std::byte> ReadAll(VdiskController& vdisk) {
    AlignedBuffer buffer(vdisk.size_bytes());
    const Status status = Read(vdisk, 0, buffer.span());
    EXPECT_TRUE(status.ok()) << status.ToString();
    return std::vector<std::byte>(buffer.data(), buffer.data() + vdisk.size_bytes());
  }

  TestNode node_{2};
};

void FillRandom(std::span<std::byte> bytes, std::mt19937_64& random) {
  for (std::byte& byte : bytes) byte = static_cast<std::byte>(random() & 0xff);
}

// Mutations submitted together (overlapping, unaligned, spanning vBlocks) must apply in arrival
// order: the result must equal a model that applies them one by one.
TEST_P(VdiskTest, ConcurrentMutationsMatchAModelApplyingThemInOrder) {
  constexpr uint64_t kSize = 24 * kMiB;
  ASSERT_TRUE(CreateVdisk("model", kSize).ok());
  VdiskController& vdisk = Vdisk("model");
  std::vector<std::byte> model(kSize, std::byte{0});
  std::mt19937_64 random(42);
  for (int round = 0; round < 30; ++round) {
    std::vector<std::unique_ptr<AlignedBuffer>> buffers;
    int outstanding = 0;
    std::vector<Status> failures;
    for (int op = 0; op < 12; ++op) {
      // Offsets cluster in the first 6 MiB so operations overlap; some are unaligned.
      const bool aligned = random() % 2 == 0;
      uint64_t offset = random() % (6 * kMiB);
      uint64_t length = 1 + random() % (aligned ? 2 * kMiB : 300000);
      if (aligned) {
        offset = offset / 4096 * 4096;
        length = (length + 4095) / 4096 * 4096;
      }
      if (random() % 5 == 0) offset += 8 * kMiB + (random() % (15 * kMiB));
      if (aligned) offset = offset / 4096 * 4096;
      if (offset >= kSize) continue;
      length = std::min(length, kSize - offset);
      if (length == 0) continue;
      ++outstanding;
      auto done = [&](Status status) {
        if (!status.ok()) failures.push_back(status);
        --outstanding;
      };
      const int kind = static_cast<int>(random() % 6);
      if (kind <= 2) {
        auto buffer = std::make_unique<AlignedBuffer>(length);
        FillRandom(buffer->span(), random);
        std::memcpy(model.data() + offset, buffer->data(), length);
        vdisk.Write(offset, buffer->span(), done);
        buffers.push_back(std::move(buffer));
      } else if (kind == 3) {
        // Trim leaves partial blocks at its edges alone.
        const uint64_t first = (offset + 4095) / 4096 * 4096;
        const uint64_t last = (offset + length) / 4096 * 4096;
        if (last > first) std::memset(model.data() + first, 0, last - first);
        vdisk.Trim(offset, length, done);
      } else {
        std::memset(model.data() + offset, 0, length);
        vdisk.WriteZeroes(offset, length, /*no_hole=*/kind == 5, done);
      }
    }
    ASSERT_TRUE(node_.RunUntil([&] { return outstanding == 0; }));
    for (const Status& failure : failures) ADD_FAILURE() << failure.ToString();
    if (round % 10 == 9 || round == 0) {
      const std::vector<std::byte> contents = ReadAll(vdisk);
      ASSERT_EQ(std::memcmp(contents.data(), model.data(), kSize), 0) << "round " << round;
    }
  }
  // And after a restart, from the metadata and the disks alone.
  node_.Stop();
  ASSERT_TRUE(node_.Start().ok());
  const std::vector<std::byte> contents = ReadAll(Vdisk("model"));
  ASSERT_EQ(std::memcmp(contents.data(), model.data(), kSize), 0);
}

TEST_P(VdiskTest, UnwrittenSpaceReadsZerosAndUsesNoDisk) {
  ASSERT_TRUE(CreateVdisk("thin", 1ull << 40).ok());  // 1 TiB on 2 x 256 MiB disks.
  VdiskController& vdisk = Vdisk("thin");
  AlignedBuffer buffer(3 * kMiB);
  std::memset(buffer.data(), 0xAB, buffer.size());
  ASSERT_TRUE(Read(vdisk, (1ull << 40) - 3 * kMiB, buffer.span()).ok());
  for (std::byte byte : buffer.span()) ASSERT_EQ(byte, std::byte{0});
  EXPECT_EQ(vdisk.stats().used_bytes, 0u);
  EXPECT_EQ(vdisk.stats().vblocks_mapped, 0u);
  // A write at the far end maps one vBlock and uses its bytes only.
  AlignedBuffer data(8192);
  std::memset(data.data(), 0x5A, data.size());
  ASSERT_TRUE(Write(vdisk, (1ull << 40) - 8192, data.span()).ok());
  WaitDrained(vdisk);
  EXPECT_EQ(vdisk.stats().used_bytes, 8192u);
  EXPECT_EQ(vdisk.stats().vblocks_mapped, 1u);
}

TEST_P(VdiskTest, TrimFreesSpaceAndBlockStatusShowsHoles) {
  ASSERT_TRUE(CreateVdisk("holes", 8 * kMiB).ok());
  VdiskController& vdisk = Vdisk("holes");
  AlignedBuffer data(4 * kMiB);
  std::memset(data.data(), 1, data.size());
  ASSERT_TRUE(Write(vdisk, kMiB, data.span()).ok());
  EXPECT_EQ(vdisk.stats().used_bytes, 4 * kMiB);
  auto runs = node_.Wait<std::vector<AllocationRun>>(
      [&](auto done) { vdisk.BlockStatus(0, 8 * kMiB, done); });
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 3u);
  EXPECT_EQ((*runs)[0].length_bytes, kMiB);
  EXPECT_FALSE((*runs)[0].allocated);
  EXPECT_EQ((*runs)[1].length_bytes, 4 * kMiB);
  EXPECT_TRUE((*runs)[1].allocated);
  EXPECT_FALSE((*runs)[2].allocated);

  ASSERT_TRUE(
      node_.WaitStatus([&](Completion done) { vdisk.Trim(2 * kMiB, kMiB + 4096, done); }).ok());
  EXPECT_EQ(vdisk.stats().used_bytes, 3 * kMiB - 4096);
  runs = node_.Wait<std::vector<AllocationRun>>(
      [&](auto done) { vdisk.BlockStatus(kMiB, 5 * kMiB, done); });
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 4u);
  EXPECT_EQ((*runs)[0].length_bytes, kMiB);
  EXPECT_EQ((*runs)[1].length_bytes, kMiB + 4096);
  EXPECT_FALSE((*runs)[1].allocated);
  EXPECT_EQ((*runs)[2].length_bytes, 2 * kMiB - 4096);
  EXPECT_FALSE((*runs)[3].allocated);
  // A range starting mid-block reports from its own offset.
  runs = node_.Wait<std::vector<AllocationRun>>(
      [&](auto done) { vdisk.BlockStatus(kMiB + 100, 1000, done); });
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].length_bytes, 1000u);
  EXPECT_TRUE((*runs)[0].allocated);
}

TEST_P(VdiskTest, OutOfRangeAndEmptyRequestsAreInvalid) {
  ASSERT_TRUE(CreateVdisk("small", kMiB).ok());
  VdiskController& vdisk = Vdisk("small");
  AlignedBuffer buffer(8192);
  EXPECT_TRUE(Read(vdisk, kMiB - 4096, buffer.span()).IsInvalidArgument());
  EXPECT_TRUE(Write(vdisk, kMiB, buffer.span().first(1)).IsInvalidArgument());
  EXPECT_TRUE(Write(vdisk, UINT64_MAX - 10, buffer.span()).IsInvalidArgument());
  EXPECT_TRUE(Read(vdisk, 0, buffer.span().first(0)).IsInvalidArgument());
  EXPECT_TRUE(
      node_.WaitStatus([&](Completion done) { vdisk.Trim(kMiB, 1, done); }).IsInvalidArgument());
  EXPECT_TRUE(
      node_.WaitStatus([&](Completion done) { vdisk.WriteZeroes(0, kMiB + 1, false, done); })
          .IsInvalidArgument());
  EXPECT_TRUE(node_.WaitStatus([&](Completion done) { vdisk.Flush(done); }).ok());
}

TEST_P(VdiskTest, CatalogueRulesAndErrors) {
  VdiskManager& manager = node_.manager();
  EXPECT_TRUE(CreateVdisk("bad name", kMiB).status().IsInvalidArgument());
  EXPECT_TRUE(CreateVdisk("-dash", kMiB).status().IsInvalidArgument());
  EXPECT_TRUE(CreateVdisk(std::string(200, 'a'), kMiB).status().IsInvalidArgument());
  EXPECT_TRUE(CreateVdisk("odd", 1000).status().IsInvalidArgument());
  EXPECT_TRUE(CreateVdisk("zero", 0).status().IsInvalidArgument());
  EXPECT_TRUE(CreateVdisk("huge", 1ull << 50).status().IsInvalidArgument());
  EXPECT_TRUE(CreateVdisk("orphan", kMiB, "nope").status().IsNotFound());
  ASSERT_TRUE(CreateVdisk("one", kMiB).ok());
  EXPECT_TRUE(CreateVdisk("one", kMiB).status().IsAlreadyExists());
  auto rf2 = node_.Wait<records::Container>(
      [&](auto done) { manager.CreateContainer("mirrored", 2, done); });
  EXPECT_TRUE(rf2.status().IsInvalidArgument()) << rf2.status().ToString();
  auto again = node_.Wait<records::Container>(
      [&](auto done) { manager.CreateContainer("default", 1, done); });
  EXPECT_TRUE(again.status().IsAlreadyExists());
  EXPECT_TRUE(node_.WaitStatus([&](Completion done) { manager.DeleteContainer("default", done); })
                  .IsBusy());
  Vdisk("one").AddHandle();
  EXPECT_TRUE(
      node_.WaitStatus([&](Completion done) { manager.DeleteVdisk("one", done); }).IsBusy());
  Vdisk("one").RemoveHandle();
  EXPECT_TRUE(node_.WaitStatus([&](Completion done) { manager.DeleteVdisk("one", done); }).ok());
  EXPECT_TRUE(
      node_.WaitStatus([&](Completion done) { manager.DeleteVdisk("one", done); }).IsNotFound());
  EXPECT_TRUE(
      node_.WaitStatus([&](Completion done) { manager.DeleteContainer("default", done); }).ok());
  EXPECT_TRUE(manager.ListContainers().empty());
}

TEST_P(VdiskTest, ShrinkFreesDataPastTheEndAndGrowReadsZeros) {
  ASSERT_TRUE(CreateVdisk("elastic", 4 * kMiB).ok());
  VdiskController& vdisk = Vdisk("elastic");
  AlignedBuffer data(4 * kMiB);
  std::memset(data.data(), 7, data.size());
  ASSERT_TRUE(Write(vdisk, 0, data.span()).ok());
  auto resized = node_.Wait<records::Vdisk>(
      [&](auto done) { node_.manager().ResizeVdisk("elastic", kMiB + 8192, done); });
  ASSERT_TRUE(resized.ok()) << resized.status().ToString();
  EXPECT_EQ(vdisk.size_bytes(), kMiB + 8192);
  EXPECT_EQ(vdisk.stats().used_bytes, kMiB + 8192);
  EXPECT_TRUE(Read(vdisk, kMiB, data.span().first(16384)).IsInvalidArgument());
  resized = node_.Wait<records::Vdisk>(
      [&](auto done) { node_.manager().ResizeVdisk("elastic", 8 * kMiB, done); });
  ASSERT_TRUE(resized.ok());
  const std::vector<std::byte> contents = ReadAll(vdisk);
  for (uint64_t offset = 0; offset < contents.size(); ++offset) {
    ASSERT_EQ(contents[offset], offset < kMiB + 8192 ? std::byte{7} : std::byte{0}) << offset;
  }
  // The new size survives a restart.
  node_.Stop();
  ASSERT_TRUE(node_.Start().ok());
  EXPECT_EQ(Vdisk("elastic").size_bytes(), 8 * kMiB);
}

TEST_P(VdiskTest, DeleteFreesEverySpaceAndEgroupsSpreadAcrossDisks) {
  ASSERT_TRUE(CreateVdisk("spread", 64 * kMiB).ok());
  VdiskController& vdisk = Vdisk("spread");
  const uint64_t free_before =
      node_.node_disks()[0].free_bytes() + node_.node_disks()[1].free_bytes();
  AlignedBuffer data(kMiB);
  std::memset(data.data(), 3, data.size());
  for (uint64_t vblock = 0; vblock < 64; ++vblock) {
    ASSERT_TRUE(Write(vdisk, vblock * kMiB, data.span()).ok());
  }
  EXPECT_EQ(vdisk.stats().egroups, 16u);
  EXPECT_GE(node_.store(0).stats().egroups, 4u);
  EXPECT_GE(node_.store(1).stats().egroups, 4u);
  ASSERT_TRUE(
      node_.WaitStatus([&](Completion done) { node_.manager().DeleteVdisk("spread", done); }).ok());
  EXPECT_EQ(node_.store(0).stats().egroups + node_.store(1).stats().egroups, 0u);
  ASSERT_TRUE(node_.RunUntil([&] {
    for (int index = 0; index < 2; ++index) node_.store(index).Poll(false);
    return node_.store(0).stats().blockstore.client_blocks == 0 &&
           node_.store(1).stats().blockstore.client_blocks == 0;
  }));
  EXPECT_GE(node_.node_disks()[0].free_bytes() + node_.node_disks()[1].free_bytes(), free_before);
  node_.Stop();
  ASSERT_TRUE(node_.Start().ok());
  EXPECT_EQ(node_.manager().FindVdisk("spread"), nullptr);
  EXPECT_TRUE(CreateVdisk("spread", kMiB).ok());  // The name is free again.
}

// A stop between marking a vDisk DELETING and removing its row: the next start finishes the job.
TEST_P(VdiskTest, InterruptedDeletionIsFinishedAtStart) {
  ASSERT_TRUE(CreateVdisk("doomed", 8 * kMiB).ok());
  AlignedBuffer data(4 * kMiB);
  std::memset(data.data(), 9, data.size());
  ASSERT_TRUE(Write(Vdisk("doomed"), 0, data.span()).ok());
  ASSERT_GT(node_.store(0).stats().egroups + node_.store(1).stats().egroups, 0u);
  Result<metadata::Row> row = node_.metadata().GetSync(VdiskKey("doomed"));
  ASSERT_TRUE(row.ok());
  records::Vdisk record;
  ASSERT_TRUE(Decode(row->key, row->value, record).ok());
  record.set_state(records::VDISK_STATE_DELETING);
  ASSERT_TRUE(node_.metadata().CompareAndSetSync(row->key, row->version, Encode(record)).ok());
  node_.Stop();
  ASSERT_TRUE(node_.Start().ok());
  EXPECT_EQ(node_.manager().FindVdisk("doomed"), nullptr);
  EXPECT_EQ(node_.store(0).stats().egroups + node_.store(1).stats().egroups, 0u);
  EXPECT_TRUE(node_.metadata().GetSync(VdiskKey("doomed")).status().IsNotFound());
  Result<std::vector<metadata::Row>> rows = node_.metadata().ScanSync("blockmap/", "", 100);
  ASSERT_TRUE(rows.ok());
  EXPECT_TRUE(rows->empty());
  rows = node_.metadata().ScanSync("egroup/", "", 100);
  ASSERT_TRUE(rows.ok());
  EXPECT_TRUE(rows->empty());
}

// A stop between writing an egroup's row and creating it in the extent store: the vDisk loads,
// the egroup is created empty, and its vBlocks read as zeros (nothing was acknowledged there).
TEST_P(VdiskTest, EgroupRowWithoutItsEgroupIsCreatedAtLoad) {
  ASSERT_TRUE(CreateVdisk("half", 8 * kMiB).ok());
  AlignedBuffer data(kMiB);
  std::memset(data.data(), 5, data.size());
  ASSERT_TRUE(Write(Vdisk("half"), 0, data.span()).ok());
  WaitDrained(Vdisk("half"));
  const uint64_t vdisk_id = Vdisk("half").id();
  Result<std::vector<metadata::Row>> rows =
      node_.metadata().ScanSync(EgroupPrefix(vdisk_id), "", 10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  records::Egroup egroup;
  ASSERT_TRUE(Decode(rows->front().key, rows->front().value, egroup).ok());
  for (int index = 0; index < 2; ++index) {
    if (node_.node_disks()[index].uuid == egroup.disk_uuid()) {
      ASSERT_TRUE(node_.store(index).DeleteEgroup(egroup.egroup_id()).ok());
    }
  }
  node_.Stop();
  ASSERT_TRUE(node_.Start().ok());
  const std::vector<std::byte> contents = ReadAll(Vdisk("half"));
  for (std::byte byte : contents) ASSERT_EQ(byte, std::byte{0});
  ASSERT_TRUE(Write(Vdisk("half"), kMiB, data.span()).ok());
  AlignedBuffer back(kMiB);
  ASSERT_TRUE(Read(Vdisk("half"), kMiB, back.span()).ok());
  EXPECT_EQ(std::memcmp(back.data(), data.data(), kMiB), 0);
}

// An egroup row naming a disk the node does not have: the start fails and says which disk.
TEST_P(VdiskTest, EgroupOnAMissingDiskFailsTheStartNamingIt) {
  ASSERT_TRUE(CreateVdisk("lost", 8 * kMiB).ok());
  const uint64_t vdisk_id = Vdisk("lost").id();
  records::Egroup egroup;
  egroup.set_format_version(1);
  egroup.set_egroup_id(999999);
  egroup.set_vdisk_id(vdisk_id);
  egroup.set_disk_uuid("00000000-0000-0000-0000-00000000dead");
  ASSERT_TRUE(
      node_.metadata().CompareAndSetSync(EgroupKey(vdisk_id, 999999), 0, Encode(egroup)).ok());
  node_.Stop();
  const Status started = node_.Start();
  EXPECT_FALSE(started.ok());
  EXPECT_NE(started.ToString().find("00000000-0000-0000-0000-00000000dead"), std::string::npos)
      << started.ToString();
}

INSTANTIATE_TEST_SUITE_P(Paths, VdiskTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "OplogAndCache" : "ExtentStoreOnly";
                         });

}  // namespace
}  // namespace weft::vdisk

namespace weft::vdisk {
namespace {

class VdiskOplogTest : public VdiskTest {};

uint64_t Stat(const VdiskController& vdisk, const std::string& group, const std::string& name) {
  const auto groups = vdisk.StatGroups();
  const auto found = groups.find(group);
  if (found == groups.end()) return 0;
  const auto counter = found->second.find(name);
  return counter == found->second.end() ? 0 : counter->second;
}

// The write characterizer: small writes at low depth go to the OpLog (and are replayed after a
// restart that did not drain them), more than the threshold outstanding bypasses it, and a full
// OpLog sends writes that miss its data to the extent store. Every byte reads back every time.
TEST_P(VdiskOplogTest, CharacterizerRoutesWritesAndEveryByteReadsBack) {
  constexpr uint64_t kSize = 64 * kMiB;
  ASSERT_TRUE(CreateVdisk("routes", kSize).ok());
  VdiskController* vdisk = &Vdisk("routes");
  std::vector<std::byte> model(kSize, std::byte{0});
  std::mt19937_64 random(7);
  auto write = [&](uint64_t offset, uint64_t length) {
    AlignedBuffer buffer(length);
    FillRandom(buffer.span(), random);
    std::memcpy(model.data() + offset, buffer.data(), length);
    ASSERT_TRUE(Write(*vdisk, offset, buffer.span()).ok());
  };
  // (1) Random 4 KiB writes one at a time: the OpLog.
  for (int i = 0; i < 50; ++i) write(random() % (16 * kMiB / 4096) * 4096, 4096);
  EXPECT_EQ(Stat(*vdisk, "characterizer", "writes_oplog"), 50u);
  EXPECT_EQ(Stat(*vdisk, "characterizer", "writes_sequential_bypass"), 0u);
  // (2) Eight 1 MiB writes at once (where the OpLog holds nothing): from the second on, more
  // than 1.5 MiB is outstanding, so they bypass it.
  {
    std::vector<std::unique_ptr<AlignedBuffer>> buffers;
    int outstanding = 0;
    for (uint64_t i = 0; i < 8; ++i) {
      auto buffer = std::make_unique<AlignedBuffer>(kMiB);
      FillRandom(buffer->span(), random);
      std::memcpy(model.data() + 32 * kMiB + i * kMiB, buffer->data(), kMiB);
      ++outstanding;
      vdisk->Write(32 * kMiB + i * kMiB, buffer->span(), [&](Status status) {
        EXPECT_TRUE(status.ok()) << status.ToString();
        --outstanding;
      });
      buffers.push_back(std::move(buffer));
    }
    ASSERT_TRUE(node_.RunUntil([&] { return outstanding == 0; }));
    EXPECT_EQ(Stat(*vdisk, "characterizer", "writes_sequential_bypass"), 7u);
  }
  // (3) Random 64 KiB writes, 16 at a time, into an 8 MiB OpLog whose drain is held back until
  // it is full (a batch waits for space): a write that then misses the OpLog's data goes to the
  // extent store. (With the drain running, whether the fill ever crosses the threshold depends
  // on the machine's load.) Then the drain runs and everything settles.
  {
    std::vector<std::unique_ptr<AlignedBuffer>> buffers;
    int outstanding = 0;
    auto submit = [&](uint64_t offset) {
      auto buffer = std::make_unique<AlignedBuffer>(65536);
      FillRandom(buffer->span(), random);
      std::memcpy(model.data() + offset, buffer->data(), 65536);
      ++outstanding;
      vdisk->Write(offset, buffer->span(), [&](Status status) {
        EXPECT_TRUE(status.ok()) << status.ToString();
        --outstanding;
      });
      buffers.push_back(std::move(buffer));
    };
    vdisk->PauseDrain(true);
    auto full = [&] { return Stat(*vdisk, "oplog", "space_waits") > 0; };
    for (int i = 0; i < 1024 && !full(); ++i) {
      submit(random() % (kSize / 65536) * 65536);
      if (outstanding >= 16) {
        ASSERT_TRUE(node_.RunUntil([&] { return outstanding < 16 || full(); }));
      }
    }
    ASSERT_TRUE(full()) << "the OpLog never filled";
    const uint64_t bypassed = Stat(*vdisk, "characterizer", "writes_oplog_full_bypass");
    uint64_t miss = 0;
    while (vdisk->oplog()->index().Overlaps(miss, 65536)) miss += 65536;
    ASSERT_LT(miss, kSize);
    submit(miss);
    EXPECT_EQ(Stat(*vdisk, "characterizer", "writes_oplog_full_bypass"), bypassed + 1);
    vdisk->PauseDrain(false);
    ASSERT_TRUE(node_.RunUntil([&] { return outstanding == 0; }));
    EXPECT_GT(Stat(*vdisk, "oplog", "drain_rounds"), 0u);
  }
  ASSERT_EQ(std::memcmp(ReadAll(*vdisk).data(), model.data(), kSize), 0);
  // (4) A last burst stays undrained across a restart (the drain is stopped before it can
  // start): the OpLog replays it.
  {
    std::vector<std::unique_ptr<AlignedBuffer>> buffers;
    int outstanding = 0;
    for (int i = 0; i < 20; ++i) {
      const uint64_t offset = random() % (kSize / 4096) * 4096 + 100;
      auto buffer = std::make_unique<AlignedBuffer>(3000);
      FillRandom(buffer->span(), random);
      std::memcpy(model.data() + offset, buffer->data(), 3000);
      ++outstanding;
      vdisk->Write(offset, buffer->span(), [&](Status status) {
        EXPECT_TRUE(status.ok()) << status.ToString();
        --outstanding;
      });
      buffers.push_back(std::move(buffer));
    }
    bool quiesced = false;
    node_.manager().Quiesce([&](Status) { quiesced = true; });
    ASSERT_TRUE(node_.RunUntil([&] { return outstanding == 0 && quiesced; }));
  }
  EXPECT_GT(Stat(*vdisk, "oplog", "records_undrained"), 0u);
  node_.Stop();
  ASSERT_TRUE(node_.Start().ok());
  vdisk = &Vdisk("routes");
  EXPECT_GT(Stat(*vdisk, "oplog", "records_replayed"), 0u);
  ASSERT_EQ(std::memcmp(ReadAll(*vdisk).data(), model.data(), kSize), 0);
  // Once drained, everything is still there.
  ASSERT_TRUE(node_.RunUntil([&] { return Stat(*vdisk, "oplog", "records_undrained") == 0; }));
  ASSERT_EQ(std::memcmp(ReadAll(*vdisk).data(), model.data(), kSize), 0);
}

// The cache: a re-read hits; an overwrite, a trim and a drained OpLog write are never served
// stale, including reads and writes of the same blocks in flight together.
TEST_P(VdiskOplogTest, CachedBlocksAreNeverStale) {
  constexpr uint64_t kSize = 16 * kMiB;
  ASSERT_TRUE(CreateVdisk("cached", kSize).ok());
  VdiskController& vdisk = Vdisk("cached");
  std::mt19937_64 random(11);
  std::vector<std::byte> model(kSize, std::byte{0});
  // Direct extent-store data (a big write bypasses the OpLog when others are outstanding).
  AlignedBuffer big(4 * kMiB);
  FillRandom(big.span(), random);
  std::memcpy(model.data(), big.data(), big.size());
  ASSERT_TRUE(Write(vdisk, 0, big.span()).ok());
  ASSERT_TRUE(node_.RunUntil([&] { return Stat(vdisk, "oplog", "records_undrained") == 0; }));
  AlignedBuffer block(4096);
  for (int pass = 0; pass < 3; ++pass) ASSERT_TRUE(Read(vdisk, 8192, block.span()).ok());
  const cache::UnifiedCacheStats warm = node_.cache()->stats();
  EXPECT_GT(warm.hits_memory_single + warm.hits_memory_multi, 0u);
  // Rounds of concurrent overlapping reads, writes and trims over the first 256 KiB.
  for (int round = 0; round < 40; ++round) {
    std::vector<std::unique_ptr<AlignedBuffer>> buffers;
    std::vector<std::pair<uint64_t, AlignedBuffer*>> reads;
    int outstanding = 0;
    auto count = [&](Status status) {
      EXPECT_TRUE(status.ok()) << status.ToString();
      --outstanding;
    };
    for (int op = 0; op < 8; ++op) {
      const uint64_t offset = random() % 64 * 4096;
      const uint64_t length = (1 + random() % 4) * 4096;
      auto buffer = std::make_unique<AlignedBuffer>(length);
      ++outstanding;
      if (op % 3 == 1) {
        FillRandom(buffer->span(), random);
        std::memcpy(model.data() + offset, buffer->data(), length);
        vdisk.Write(offset, buffer->span(), count);
      } else if (op % 3 == 2 && random() % 2 == 0) {
        std::memset(model.data() + offset, 0, length);
        vdisk.Trim(offset, length, count);
      } else {
        vdisk.Read(offset, buffer->span(), count);
      }
      buffers.push_back(std::move(buffer));
    }
    ASSERT_TRUE(node_.RunUntil([&] { return outstanding == 0; }));
    // After the round settles, every read (some from the cache) sees the model.
    for (uint64_t offset = 0; offset < 64 * 4096; offset += 16384) {
      AlignedBuffer check(16384);
      ASSERT_TRUE(Read(vdisk, offset, check.span()).ok());
      ASSERT_EQ(std::memcmp(check.data(), model.data() + offset, 16384), 0)
          << "round " << round << " offset " << offset;
    }
    if (round % 8 == 7) {
      ASSERT_TRUE(node_.RunUntil([&] { return Stat(vdisk, "oplog", "records_undrained") == 0; }));
    }
  }
  const cache::UnifiedCacheStats after = node_.cache()->stats();
  EXPECT_GT(after.invalidations, 0u);
  EXPECT_GT(after.fills, warm.fills);
  ASSERT_EQ(std::memcmp(ReadAll(vdisk).data(), model.data(), kSize), 0);
}

// Block status sees the OpLog: its data is allocated before any drain, and a trim recorded in
// it is a hole.
TEST_P(VdiskOplogTest, BlockStatusSeesUndrainedOplogData) {
  ASSERT_TRUE(CreateVdisk("status", 8 * kMiB).ok());
  VdiskController& vdisk = Vdisk("status");
  AlignedBuffer data(64 * 1024);
  std::memset(data.data(), 3, data.size());
  ASSERT_TRUE(Write(vdisk, kMiB, data.span()).ok());  // Maps the vBlock (drained below).
  WaitDrained(vdisk);
  bool quiesced = false;
  vdisk.Quiesce([&](Status) { quiesced = true; });
  ASSERT_TRUE(node_.RunUntil([&] { return quiesced; }));
  // From here nothing drains: these live in the OpLog only.
  ASSERT_TRUE(Write(vdisk, 3 * kMiB, data.span()).ok());
  ASSERT_TRUE(Write(vdisk, kMiB + 64 * 1024, data.span()).ok());
  ASSERT_TRUE(node_.WaitStatus([&](Completion done) { vdisk.Trim(kMiB, 8192, done); }).ok());
  // A trim over OpLog data is an OpLog record: a hole too.
  ASSERT_TRUE(
      node_.WaitStatus([&](Completion done) { vdisk.Trim(3 * kMiB + 32768, 4096, done); }).ok());
  EXPECT_GT(Stat(vdisk, "oplog", "records_undrained"), 0u);
  auto runs = node_.Wait<std::vector<AllocationRun>>(
      [&](auto done) { vdisk.BlockStatus(0, 8 * kMiB, done); });
  ASSERT_TRUE(runs.ok());
  const std::vector<std::pair<uint64_t, bool>> expected = {
      {kMiB + 8192, false},       // Never written, then trimmed.
      {128 * 1024 - 8192, true},  // Extent store, then OpLog data.
      {2 * kMiB - 128 * 1024, false},
      {32768, true},         // OpLog data in an unmapped vBlock,
      {4096, false},         // a trim recorded in the OpLog,
      {32768 - 4096, true},  // the rest of the data.
      {5 * kMiB - 64 * 1024, false}};
  ASSERT_EQ(runs->size(), expected.size());
  for (size_t index = 0; index < expected.size(); ++index) {
    EXPECT_EQ((*runs)[index].length_bytes, expected[index].first) << "run " << index;
    EXPECT_EQ((*runs)[index].allocated, expected[index].second) << "run " << index;
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, VdiskOplogTest, ::testing::Values(true),
                         [](const ::testing::TestParamInfo<bool>&) { return "OplogAndCache"; });

}  // namespace
}  // namespace weft::vdisk
