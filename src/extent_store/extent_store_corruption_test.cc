// Damage below the extent store: flipped data bits, unreadable blocks, damaged RocksDB files and
// rows, damaged superblocks. Every case must end in a clear error (Corruption or IOError) that
// names the place, the undamaged data must stay readable, and nothing may crash.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <vector>

#include "base/crc32c.h"
#include "extent_store/extent_store.h"
#include "extent_store/extent_store_test_util.h"
#include "extent_store/metadata_format.h"

namespace weft::extent_store {
namespace {

using testing::PatternBuffer;
using testing::ReadSync;
using testing::SameBytes;
using testing::TestDisk;
using testing::WriteSync;

constexpr uint64_t kBlock = kChecksumBlockBytes;

// Where the device holds a 4 KiB block with exactly these contents (the test's data patterns
// are unique), or nullopt.
std::optional<uint64_t> FindBlockOnDevice(env::MemoryDevice& memory,
                                          std::span<const std::byte> contents) {
  AlignedBuffer block(kBlock);
  for (uint64_t offset_bytes = 0; offset_bytes < memory.size_bytes(); offset_bytes += kBlock) {
    memory.ReadRaw(offset_bytes, block.span());
    if (SameBytes(block.span(), contents)) return offset_bytes;
  }
  return std::nullopt;
}

bool IsCorruptionOrIOError(const Status& status) {
  return status.IsCorruption() || status.IsIOError();
}

class DataCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(disk_.FormatAndOpen().ok());
    for (EgroupId id : {4, 5}) {
      ASSERT_TRUE(disk_.store().CreateEgroup(id).ok());
      data_[id] = PatternBuffer(8 * kBlock, id);
      ASSERT_TRUE(WriteSync(disk_.store(), id, kOffset, data_[id].span()).ok());
    }
  }

  // The device offset of block `index` of egroup `id`'s data.
  uint64_t DeviceOffsetOf(EgroupId id, uint64_t index) {
    std::optional<uint64_t> offset_bytes =
        FindBlockOnDevice(disk_.memory(), data_[id].span().subspan(index * kBlock, kBlock));
    EXPECT_TRUE(offset_bytes.has_value());
    return offset_bytes.value_or(0);
  }

  static constexpr uint64_t kOffset = 64 * 1024;
  TestDisk disk_;
  std::map<EgroupId, AlignedBuffer> data_;
};

TEST_F(DataCorruptionTest, FlippedBitIsReportedAndContained) {
  disk_.fault().FlipBit(DeviceOffsetOf(4, 3) + 100, 5);
  ExtentStore& store = disk_.store();

  AlignedBuffer buffer(8 * kBlock);
  const Status status = ReadSync(store, 4, kOffset, buffer.span());
  ASSERT_TRUE(status.IsCorruption()) << status.ToString();
  const std::string bad_offset = "offset " + std::to_string(kOffset + 3 * kBlock);
  EXPECT_NE(status.message().find("disk disk0"), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find("egroup 4 "), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find(bad_offset), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find("checksum mismatch"), std::string::npos) << status.ToString();
  EXPECT_EQ(store.stats().checksum_errors, 1u);

  // The blocks around it, and the other egroup, still read back.
  AlignedBuffer before(3 * kBlock);
  ASSERT_TRUE(ReadSync(store, 4, kOffset, before.span()).ok());
  EXPECT_TRUE(SameBytes(before.span(), data_[4].span().first(3 * kBlock)));
  AlignedBuffer after(4 * kBlock);
  ASSERT_TRUE(ReadSync(store, 4, kOffset + 4 * kBlock, after.span()).ok());
  EXPECT_TRUE(SameBytes(after.span(), data_[4].span().subspan(4 * kBlock)));
  ASSERT_TRUE(ReadSync(store, 5, kOffset, buffer.span()).ok());
  EXPECT_TRUE(SameBytes(buffer.span(), data_[5].span()));

  const ScrubReport report = store.Scrub();
  EXPECT_TRUE(report.metadata_status.ok()) << report.metadata_status.ToString();
  EXPECT_EQ(report.egroups_checked, 2u);
  EXPECT_EQ(report.blocks_checked, 16u);
  ASSERT_EQ(report.bad_blocks.size(), 1u);
  EXPECT_EQ(report.bad_blocks[0].egroup_id, 4u);
  EXPECT_EQ(report.bad_blocks[0].offset_bytes, kOffset + 3 * kBlock);
  EXPECT_NE(report.bad_blocks[0].reason.find("checksum mismatch"), std::string::npos);
}

TEST_F(DataCorruptionTest, ScrubReportsEveryBadBlock) {
  disk_.fault().FlipBit(DeviceOffsetOf(4, 0), 0);
  disk_.fault().FlipBit(DeviceOffsetOf(5, 7) + kBlock - 1, 7);
  const ScrubReport report = disk_.store().Scrub();
  ASSERT_EQ(report.bad_blocks.size(), 2u);
  EXPECT_EQ(report.bad_blocks[0].egroup_id, 4u);
  EXPECT_EQ(report.bad_blocks[0].offset_bytes, kOffset);
  EXPECT_EQ(report.bad_blocks[1].egroup_id, 5u);
  EXPECT_EQ(report.bad_blocks[1].offset_bytes, kOffset + 7 * kBlock);
  // Scrub never repairs: the damage is still there.
  EXPECT_EQ(disk_.store().Scrub().bad_blocks.size(), 2u);
}

TEST_F(DataCorruptionTest, UnreadableBlockIsAnIOError) {
  disk_.fault().FailRange(DeviceOffsetOf(5, 2), kBlock, env::FailOperations::kReads);
  AlignedBuffer buffer(8 * kBlock);
  const Status status = ReadSync(disk_.store(), 5, kOffset, buffer.span());
  EXPECT_TRUE(status.IsIOError()) << status.ToString();
  ASSERT_TRUE(ReadSync(disk_.store(), 4, kOffset, buffer.span()).ok());
  const ScrubReport report = disk_.store().Scrub();
  ASSERT_FALSE(report.bad_blocks.empty());
  for (const ScrubReport::BadBlock& bad : report.bad_blocks) {
    EXPECT_EQ(bad.egroup_id, 5u);
    EXPECT_NE(bad.reason.find("read failed"), std::string::npos) << bad.reason;
  }
  disk_.fault().ClearFailures();
  EXPECT_TRUE(disk_.store().Scrub().bad_blocks.empty());
}

TEST(SuperblockCorruptionTest, BothCopiesDamagedRefusesToOpen) {
  TestDisk disk;
  ASSERT_TRUE(disk.FormatAndOpen().ok());
  ASSERT_TRUE(disk.Close().ok());
  for (uint64_t offset_bytes : {uint64_t{0}, uint64_t{64 * 1024}}) {
    AlignedBuffer block(kBlock);
    disk.memory().ReadRaw(offset_bytes, block.span());
    block.data()[40] ^= std::byte{0x10};
    disk.memory().WriteRaw(offset_bytes, block.span());
  }
  Result<std::unique_ptr<blockstore::Blockstore>> opened =
      blockstore::Blockstore::Open(disk.fault());
  ASSERT_FALSE(opened.ok());
  EXPECT_TRUE(opened.status().IsCorruption() || opened.status().IsInvalidArgument())
      << opened.status().ToString();
}

// Opens the store's RocksDB directly (as a damaged or hostile database would look) and runs
// `change` on it.
void ChangeDatabase(
    TestDisk& disk,
    const std::function<void(rocksdb::DB&, std::vector<rocksdb::ColumnFamilyHandle*>&)>& change) {
  rocksdb::DBOptions options;
  options.env = disk.metadata_env();
  const std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, {}},
      {format::kEgroupsFamily, {}},
      {format::kLayoutFamily, {}},
      {format::kChecksumsFamily, {}},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(
      rocksdb::DB::Open(options, disk.options().metadata_path, families, &handles, &db).ok());
  change(*db, handles);
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
  }
  delete db;
}

class MetadataRowCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(disk_.FormatAndOpen().ok());
    ASSERT_TRUE(disk_.store().CreateEgroup(kEgroup).ok());
    AlignedBuffer data = PatternBuffer(4 * kBlock, 1);
    ASSERT_TRUE(WriteSync(disk_.store(), kEgroup, kExtentBytes, data.span()).ok());
    ASSERT_TRUE(disk_.Close().ok());
  }

  Status Reopen() {
    WEFT_RETURN_IF_ERROR(disk_.OpenBlockstore());
    return disk_.OpenStore();
  }

  static constexpr EgroupId kEgroup = 9;
  TestDisk disk_;
};

TEST_F(MetadataRowCorruptionTest, GarbledLayoutRowIsNamed) {
  ChangeDatabase(disk_, [](rocksdb::DB& db, std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
    std::string value;
    const std::string key = format::SlotKey(kEgroup, 1);
    ASSERT_TRUE(db.Get({}, handles[2], key, &value).ok());
    value[500] = static_cast<char>(value[500] ^ 0x01);
    rocksdb::WriteOptions write_options;
    write_options.sync = true;
    ASSERT_TRUE(db.Put(write_options, handles[2], key, value).ok());
  });
  const Status status = Reopen();
  ASSERT_TRUE(status.IsCorruption()) << status.ToString();
  EXPECT_NE(status.message().find("egroup 9 slot 1"), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find("crc32c"), std::string::npos) << status.ToString();
}

TEST_F(MetadataRowCorruptionTest, LayoutNamingAFreeBlockRefusesToOpen) {
  ChangeDatabase(disk_, [](rocksdb::DB& db, std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
    std::string value;
    const std::string key = format::SlotKey(kEgroup, 1);
    ASSERT_TRUE(db.Get({}, handles[2], key, &value).ok());
    Result<format::BlockMapRow> row =
        format::DecodeBlockMapRow(value, format::kLayoutMagic, {kEgroup, 1});
    ASSERT_TRUE(row.ok());
    row->entries[0] = 15000;  // Well formed, crc and all, but never allocated.
    rocksdb::WriteOptions write_options;
    write_options.sync = true;
    ASSERT_TRUE(db.Put(write_options, handles[2], key, format::EncodeBlockMapRow(*row)).ok());
  });
  const Status status = Reopen();
  ASSERT_TRUE(status.IsCorruption()) << status.ToString();
  EXPECT_NE(status.message().find("which the blockstore has free"), std::string::npos)
      << status.ToString();
}

TEST_F(MetadataRowCorruptionTest, MissingChecksumRowRefusesToOpen) {
  ChangeDatabase(disk_, [](rocksdb::DB& db, std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
    rocksdb::WriteOptions write_options;
    write_options.sync = true;
    ASSERT_TRUE(db.Delete(write_options, handles[3], format::SlotKey(kEgroup, 1)).ok());
  });
  const Status status = Reopen();
  ASSERT_TRUE(status.IsCorruption()) << status.ToString();
  EXPECT_NE(status.message().find("without its checksums row"), std::string::npos)
      << status.ToString();
}

TEST_F(MetadataRowCorruptionTest, WrongExpectedChecksumFailsTheRead) {
  ChangeDatabase(disk_, [](rocksdb::DB& db, std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
    std::string value;
    const std::string key = format::SlotKey(kEgroup, 1);
    ASSERT_TRUE(db.Get({}, handles[3], key, &value).ok());
    Result<format::BlockMapRow> row =
        format::DecodeBlockMapRow(value, format::kChecksumsMagic, {kEgroup, 1});
    ASSERT_TRUE(row.ok());
    row->entries[2] ^= 1;
    rocksdb::WriteOptions write_options;
    write_options.sync = true;
    ASSERT_TRUE(db.Put(write_options, handles[3], key, format::EncodeBlockMapRow(*row)).ok());
  });
  ASSERT_TRUE(Reopen().ok());
  AlignedBuffer buffer(4 * kBlock);
  const Status status = ReadSync(disk_.store(), kEgroup, kExtentBytes, buffer.span());
  ASSERT_TRUE(status.IsCorruption()) << status.ToString();
  EXPECT_NE(status.message().find("offset " + std::to_string(kExtentBytes + 2 * kBlock)),
            std::string::npos)
      << status.ToString();
}

TEST_F(MetadataRowCorruptionTest, MissingHeaderRefusesToOpen) {
  ChangeDatabase(disk_, [](rocksdb::DB& db, std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
    rocksdb::WriteOptions write_options;
    write_options.sync = true;
    ASSERT_TRUE(db.Delete(write_options, handles[0], std::string(format::kHeaderKey)).ok());
  });
  const Status status = Reopen();
  ASSERT_TRUE(status.IsCorruption()) << status.ToString();
  EXPECT_NE(status.message().find("no header row"), std::string::npos) << status.ToString();
}

TEST_F(MetadataRowCorruptionTest, WrongWrittenCountRefusesToOpen) {
  ChangeDatabase(disk_, [](rocksdb::DB& db, std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
    rocksdb::WriteOptions write_options;
    write_options.sync = true;
    ASSERT_TRUE(db.Put(write_options, handles[1], format::EgroupKey(kEgroup),
                       format::EncodeEgroupRow(format::MakeEgroupRow(kEgroup, 3, 0, 0)))
                    .ok());
  });
  const Status status = Reopen();
  ASSERT_TRUE(status.IsCorruption()) << status.ToString();
  EXPECT_NE(status.message().find("egroup 9"), std::string::npos) << status.ToString();
}

// An egroup row as weft wrote it before replica versions (row format version 1, 32 bytes): the
// bytes that build's EncodeEgroupRow(MakeEgroupRow(9, 4, 1700000000000000)) produced, egroup 9
// with 4 written blocks. Kept as bytes, not re-encoded, so that the reader is checked against
// what old stores really hold.
constexpr unsigned char kVersion1EgroupRow[] = {
    0x0c, 0x84, 0x82, 0x0f, 0x45, 0x47, 0x47, 0x52,  // crc32c, magic "EGGR"
    0x01, 0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00,  // version 1, live, written_block_count 4
    0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // egroup_id 9
    0x00, 0x40, 0x1e, 0x18, 0x24, 0x0a, 0x06, 0x00,  // created_micros 1700000000000000
};
constexpr uint64_t kVersion1CreatedMicros = 1700000000000000;

std::string Version1EgroupRow() {
  return std::string(reinterpret_cast<const char*>(kVersion1EgroupRow), sizeof(kVersion1EgroupRow));
}

// Re-stamps the crc of a hand-edited row, so that the decoder's later checks are reached.
std::string WithCrc(std::string value) {
  const uint32_t crc = Crc32c(value.data() + sizeof(uint32_t), value.size() - sizeof(uint32_t));
  std::memcpy(value.data(), &crc, sizeof(crc));
  return value;
}

void PutEgroupValue(TestDisk& disk, EgroupId egroup_id, const std::string& value) {
  ChangeDatabase(disk, [&](rocksdb::DB& db, std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
    rocksdb::WriteOptions write_options;
    write_options.sync = true;
    ASSERT_TRUE(db.Put(write_options, handles[1], format::EgroupKey(egroup_id), value).ok());
  });
}

std::string GetEgroupValue(TestDisk& disk, EgroupId egroup_id) {
  std::string value;
  ChangeDatabase(disk, [&](rocksdb::DB& db, std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
    ASSERT_TRUE(db.Get({}, handles[1], format::EgroupKey(egroup_id), &value).ok());
  });
  return value;
}

TEST_F(MetadataRowCorruptionTest, VersionOneEgroupRowReadsAsReplicaVersionZero) {
  static_assert(sizeof(kVersion1EgroupRow) == sizeof(format::EgroupRowV1));
  PutEgroupValue(disk_, kEgroup, Version1EgroupRow());
  ASSERT_TRUE(Reopen().ok());
  ExtentStore& store = disk_.store();
  EXPECT_EQ(*store.ReplicaVersion(kEgroup), 0u);
  EXPECT_EQ(store.GetEgroup(kEgroup)->written_bytes, 4 * kBlock);
  AlignedBuffer read(4 * kBlock);
  ASSERT_TRUE(ReadSync(store, kEgroup, kExtentBytes, read.span()).ok());
  EXPECT_TRUE(SameBytes(read.span(), PatternBuffer(4 * kBlock, 1).span()));
  EXPECT_TRUE(store.Scrub().bad_blocks.empty());

  // The next write rewrites the row as version 2, keeping what version 1 recorded.
  AlignedBuffer data = PatternBuffer(kBlock, 2);
  ASSERT_TRUE(WriteSync(store, kEgroup, 0, data.span(), /*replica_version=*/7).ok());
  ASSERT_TRUE(disk_.Close().ok());
  const std::string value = GetEgroupValue(disk_, kEgroup);
  ASSERT_EQ(value.size(), sizeof(format::EgroupRow));
  format::EgroupRow stored;
  std::memcpy(&stored, value.data(), sizeof(stored));
  EXPECT_EQ(stored.version, format::kEgroupRowVersion);
  EXPECT_EQ(stored.replica_version, 7u);
  EXPECT_EQ(stored.created_micros, kVersion1CreatedMicros);
  EXPECT_EQ(stored.written_block_count, 5u);
  ASSERT_TRUE(Reopen().ok());
  EXPECT_EQ(*disk_.store().ReplicaVersion(kEgroup), 7u);
}

// Each damaged egroup row refuses the open with a Corruption naming the disk, the egroup and
// what is wrong.
void ExpectEgroupRowRefused(TestDisk& disk, const std::string& value, std::string_view reason) {
  PutEgroupValue(disk, 9, value);
  Status status = disk.OpenBlockstore();
  if (status.ok()) status = disk.OpenStore();
  ASSERT_TRUE(status.IsCorruption()) << reason << ": " << status.ToString();
  EXPECT_NE(status.message().find("disk disk0 egroup 9"), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find(reason), std::string::npos) << status.ToString();
  ASSERT_TRUE(disk.Close().ok());
}

TEST_F(MetadataRowCorruptionTest, DamagedEgroupRowsAreNamed) {
  const std::string good = GetEgroupValue(disk_, kEgroup);
  ASSERT_EQ(good.size(), sizeof(format::EgroupRow));

  std::string bad_crc = good;
  bad_crc[offsetof(format::EgroupRow, replica_version)] ^= 0x01;
  ExpectEgroupRowRefused(disk_, bad_crc, "crc32c mismatch");

  std::string bad_magic = good;
  bad_magic[offsetof(format::EgroupRow, magic)] ^= 0x20;
  ExpectEgroupRowRefused(disk_, WithCrc(bad_magic), "magic");

  // A version that does not go with the row's size, either way round.
  std::string long_version_one = good;
  long_version_one[offsetof(format::EgroupRow, version)] = 1;
  ExpectEgroupRowRefused(disk_, WithCrc(long_version_one), "format version 1, expected 2");
  std::string short_version_two = Version1EgroupRow();
  short_version_two[offsetof(format::EgroupRowV1, version)] = 2;
  ExpectEgroupRowRefused(disk_, WithCrc(short_version_two), "format version 2, expected 1");

  ExpectEgroupRowRefused(disk_, good.substr(0, 36), "36 bytes");

  // The undamaged row still opens.
  PutEgroupValue(disk_, kEgroup, good);
  ASSERT_TRUE(Reopen().ok());
}

// Damaged RocksDB files in a real directory: each case starts from a pristine copy of the
// database and of the device, damages one file, and must get an error from Open, a Read or
// Scrub, never a crash and never silently wrong data.
class MetadataFileCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::path(::testing::TempDir()) /
            ("extent_store_file_corruption_test." + std::to_string(getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    disk_ = std::make_unique<TestDisk>(16ull << 20, 1, (root_ / "pristine").string(),
                                       /*memory_metadata=*/false);
    ASSERT_TRUE(disk_->FormatAndOpen().ok());
    for (EgroupId id = 1; id <= 6; ++id) {
      ASSERT_TRUE(disk_->store().CreateEgroup(id).ok());
      for (uint64_t slot = 0; slot < 4; ++slot) {
        data_.emplace(std::make_pair(id, slot), PatternBuffer(4 * kBlock, id * 10 + slot));
        ASSERT_TRUE(
            WriteSync(disk_->store(), id, slot * kExtentBytes, data_.at({id, slot}).span()).ok());
      }
    }
    // Closing flushes the memtables: the rows are in SST files now.
    ASSERT_TRUE(disk_->Close().ok());
    device_image_.resize(disk_->memory().size_bytes());
    disk_->memory().ReadRaw(0, device_image_);
  }
  void TearDown() override {
    disk_.reset();
    std::filesystem::remove_all(root_);
  }

  std::vector<std::filesystem::path> FilesOf(const std::string& kind) const {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(root_ / "pristine")) {
      const std::string name = entry.path().filename().string();
      if (name.find(kind) != std::string::npos) files.push_back(entry.path().filename());
    }
    return files;
  }

  // Copies the pristine database, inverts `length` bytes in the middle of `file`, and returns
  // the first error of Open, reading everything, and Scrub (OK if none noticed).
  Status DamageAndUse(const std::filesystem::path& file, uint64_t length) {
    const std::filesystem::path copy = root_ / "damaged";
    std::filesystem::remove_all(copy);
    std::filesystem::copy(root_ / "pristine", copy);
    disk_->memory().WriteRaw(0, device_image_);
    {
      std::fstream stream(copy / file, std::ios::in | std::ios::out | std::ios::binary);
      const uint64_t size = std::filesystem::file_size(copy / file);
      const uint64_t middle = size / 2;
      for (uint64_t offset = middle; offset < std::min(size, middle + length); ++offset) {
        stream.seekg(static_cast<std::streamoff>(offset));
        const int byte = stream.get();
        stream.seekp(static_cast<std::streamoff>(offset));
        stream.put(static_cast<char>(byte ^ 0x5A));
      }
    }
    disk_->options().metadata_path = copy.string();
    WEFT_RETURN_IF_ERROR(disk_->OpenBlockstore());
    Status status = disk_->OpenStore();
    if (status.ok()) status = ReadEverything();
    if (status.ok()) {
      const ScrubReport report = disk_->store().Scrub();
      status = report.metadata_status;
      if (status.ok() && !report.bad_blocks.empty()) {
        status = Status::Corruption(report.bad_blocks[0].reason);
      }
    }
    const Status closed = disk_->Close();
    return status.ok() ? closed : status;
  }

  Status ReadEverything() {
    for (const auto& [where, contents] : data_) {
      AlignedBuffer buffer(contents.size());
      WEFT_RETURN_IF_ERROR(
          ReadSync(disk_->store(), where.first, where.second * kExtentBytes, buffer.span()));
      if (!SameBytes(buffer.span(), contents.span())) {
        ADD_FAILURE() << "wrong data read back for egroup " << where.first;
      }
    }
    return Status::Ok();
  }

  std::filesystem::path root_;
  std::unique_ptr<TestDisk> disk_;
  std::map<std::pair<EgroupId, uint64_t>, AlignedBuffer> data_;
  std::vector<std::byte> device_image_;
};

TEST_F(MetadataFileCorruptionTest, UndamagedCopyWorks) {
  // The harness itself: a copy with nothing damaged opens and reads back.
  const std::vector<std::filesystem::path> files = FilesOf("CURRENT");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(DamageAndUse(files[0], 0).ok());
}

TEST_F(MetadataFileCorruptionTest, DamagedTableFilesAreDetected) {
  const std::vector<std::filesystem::path> files = FilesOf(".sst");
  ASSERT_GE(files.size(), 3u) << "expected one table file per column family";
  for (const std::filesystem::path& file : files) {
    for (uint64_t length : {1, 64}) {
      const Status status = DamageAndUse(file, length);
      EXPECT_TRUE(IsCorruptionOrIOError(status))
          << file << " with " << length << " damaged bytes: " << status.ToString();
      // Regression: a scan that stopped on a damaged block in one family used to blame the
      // other family's rows ("layout row without its checksums row").
      EXPECT_EQ(status.message().find("without its"), std::string::npos) << status.ToString();
    }
  }
}

TEST_F(MetadataFileCorruptionTest, DamagedManifestIsDetected) {
  const std::vector<std::filesystem::path> files = FilesOf("MANIFEST");
  ASSERT_FALSE(files.empty());
  for (const std::filesystem::path& file : files) {
    for (uint64_t length : {1, 64}) {
      const Status status = DamageAndUse(file, length);
      EXPECT_TRUE(IsCorruptionOrIOError(status))
          << file << " with " << length << " damaged bytes: " << status.ToString();
    }
  }
}

}  // namespace
}  // namespace weft::extent_store
