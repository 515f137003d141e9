// LocalMetadataStore on a real directory: persistence across close and reopen, the database
// header, and corruption of stored rows, which the tests write with a plain RocksDB handle.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "base/crc32c.h"
#include "metadata/local_metadata_store.h"
#include "metadata/metadata_test_util.h"
#include "metadata/row_format.h"

namespace weft::metadata {
namespace {

using testing::TestStore;

// A fresh directory under the temp dir, removed with everything in it at the end of the test.
class TempDirectory {
 public:
  TempDirectory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "weft-metadata-XXXXXX");
    WEFT_ASSERT(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A plain RocksDB handle on the store's column families, to plant bytes the store did not write.
class RawDatabase {
 public:
  explicit RawDatabase(const std::string& path, bool with_rows_family = true) {
    rocksdb::DBOptions options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, {}}};
    if (with_rows_family)
      families.emplace_back(format::kRowsFamily, rocksdb::ColumnFamilyOptions());
    rocksdb::DB* db = nullptr;
    const rocksdb::Status status = rocksdb::DB::Open(options, path, families, &handles_, &db);
    EXPECT_TRUE(status.ok()) << status.ToString();
    db_.reset(db);
  }
  ~RawDatabase() {
    for (rocksdb::ColumnFamilyHandle* handle : handles_) {
      EXPECT_TRUE(db_->DestroyColumnFamilyHandle(handle).ok());
    }
    EXPECT_TRUE(db_->Close().ok());
  }
  void Put(size_t family, const std::string& key, const std::string& value) {
    const rocksdb::Status status =
        db_->Put(rocksdb::WriteOptions(), handles_.at(family), key, value);
    ASSERT_TRUE(status.ok()) << status.ToString();
  }
  std::string Read(size_t family, const std::string& key) {
    std::string value;
    const rocksdb::Status status =
        db_->Get(rocksdb::ReadOptions(), handles_.at(family), key, &value);
    EXPECT_TRUE(status.ok()) << status.ToString();
    return value;
  }
  rocksdb::DB& db() { return *db_; }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

constexpr size_t kDefaultFamily = 0;
constexpr size_t kRowsFamily = 1;

bool Contains(const Status& status, const std::string& text) {
  return status.message().find(text) != std::string::npos;
}

TEST(LocalMetadataStoreDiskTest, RowsSurviveCloseAndReopen) {
  TempDirectory directory;
  TestStore test(directory.Sub("db"), /*memory_env=*/false);
  ASSERT_TRUE(test.Open().ok());
  const Uuid uuid = test.store().uuid();
  EXPECT_FALSE(uuid.IsNil());
  for (int index = 0; index < 100; ++index) {
    ASSERT_TRUE(test.Set("row/" + std::to_string(index), 0, std::string(index, 'x')).ok());
  }
  ASSERT_TRUE(test.Set("row/7", 1, "updated").ok());
  ASSERT_TRUE(test.Delete("row/8", 1).ok());
  ASSERT_TRUE(test.Close().ok());

  // A clean close flushed the memtables: no write-ahead log holds anything to replay.
  for (const auto& entry : std::filesystem::directory_iterator(directory.Sub("db"))) {
    if (entry.path().extension() == ".log") {
      EXPECT_EQ(entry.file_size(), 0u) << entry.path();
    }
  }

  ASSERT_TRUE(test.Open().ok());
  EXPECT_EQ(test.store().uuid(), uuid);
  Result<std::vector<Row>> rows = test.Scan("row/", "", kMaxScanRows);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(rows->size(), 99u);
  Result<Row> row = test.Get("row/7");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->value, "updated");
  EXPECT_EQ(row->version, 2u);
  EXPECT_TRUE(test.Get("row/8").status().IsNotFound());
  row = test.Get("row/99");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->value, std::string(99, 'x'));
  EXPECT_EQ(row->version, 1u);

  // Another database gets another uuid.
  TestStore other(directory.Sub("other"), /*memory_env=*/false);
  ASSERT_TRUE(other.Open().ok());
  EXPECT_NE(other.store().uuid(), uuid);
}

TEST(LocalMetadataStoreDiskTest, RowsWithoutAHeaderAreRefused) {
  TempDirectory directory;
  {
    RawDatabase raw(directory.Sub("rows"));
    raw.Put(kRowsFamily, "vdisk/1", format::EncodeRow(1, "looks like ours"));
  }
  TestStore rows(directory.Sub("rows"), /*memory_env=*/false);
  Status opened = rows.Open();
  EXPECT_TRUE(opened.IsCorruption()) << opened.ToString();
  EXPECT_TRUE(Contains(opened, "no weft metadata header")) << opened.ToString();
  EXPECT_TRUE(Contains(opened, directory.Sub("rows"))) << opened.ToString();

  // Some other program's RocksDB with only a default family.
  {
    RawDatabase raw(directory.Sub("foreign"), /*with_rows_family=*/false);
    ASSERT_TRUE(raw.db().Put(rocksdb::WriteOptions(), "user", "data").ok());
  }
  TestStore foreign(directory.Sub("foreign"), /*memory_env=*/false);
  opened = foreign.Open();
  EXPECT_TRUE(opened.IsCorruption()) << opened.ToString();
}

TEST(LocalMetadataStoreDiskTest, ForeignColumnFamiliesAreRefused) {
  TempDirectory directory;
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, directory.Sub("db"), &db).ok());
    rocksdb::ColumnFamilyHandle* handle = nullptr;
    ASSERT_TRUE(db->CreateColumnFamily({}, "egroups", &handle).ok());
    ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
    ASSERT_TRUE(db->Close().ok());
    delete db;
  }
  TestStore test(directory.Sub("db"), /*memory_env=*/false);
  const Status opened = test.Open();
  EXPECT_FALSE(opened.ok());
  EXPECT_TRUE(Contains(opened, directory.Sub("db"))) << opened.ToString();
}

TEST(LocalMetadataStoreDiskTest, DamagedOrNewerHeaderIsRefused) {
  TempDirectory directory;
  const std::string path = directory.Sub("db");
  std::string header;
  {
    TestStore test(path, /*memory_env=*/false);
    ASSERT_TRUE(test.Open().ok());
    ASSERT_TRUE(test.Close().ok());
  }
  {
    RawDatabase raw(path);
    header = raw.Read(kDefaultFamily, std::string(format::kHeaderKey));
    ASSERT_EQ(header.size(), sizeof(format::DatabaseHeader));
    std::string damaged = header;
    damaged[20] ^= 0x01;  // A uuid byte: the crc no longer matches.
    raw.Put(kDefaultFamily, std::string(format::kHeaderKey), damaged);
  }
  TestStore test(path, /*memory_env=*/false);
  Status opened = test.Open();
  EXPECT_TRUE(opened.IsCorruption()) << opened.ToString();
  EXPECT_TRUE(Contains(opened, "crc32c mismatch")) << opened.ToString();

  // An intact header of format version 2 is a newer weft's database: NotSupported.
  {
    RawDatabase raw(path);
    format::DatabaseHeader newer;
    std::memcpy(&newer, header.data(), sizeof(newer));
    newer.format_version = 2;
    newer.crc32c = Crc32c(reinterpret_cast<const char*>(&newer) + 4, sizeof(newer) - 4);
    raw.Put(kDefaultFamily, std::string(format::kHeaderKey),
            std::string(reinterpret_cast<const char*>(&newer), sizeof(newer)));
  }
  opened = test.Open();
  EXPECT_EQ(opened.code(), StatusCode::kNotSupported) << opened.ToString();

  // The original header opens again.
  {
    RawDatabase raw(path);
    raw.Put(kDefaultFamily, std::string(format::kHeaderKey), header);
  }
  EXPECT_TRUE(test.Open().ok());
}

TEST(LocalMetadataStoreDiskTest, CorruptRowIsReportedWithItsKey) {
  TempDirectory directory;
  const std::string path = directory.Sub("db");
  TestStore test(path, /*memory_env=*/false);
  ASSERT_TRUE(test.Open().ok());
  for (const char* key : {"vdisk/1", "vdisk/2", "vdisk/3"}) {
    ASSERT_TRUE(test.Set(key, 0, std::string("value of ") + key).ok());
  }
  ASSERT_TRUE(test.Close().ok());
  {
    RawDatabase raw(path);
    std::string stored = raw.Read(kRowsFamily, "vdisk/2");
    ASSERT_GT(stored.size(), sizeof(format::RowHeader));
    stored.back() ^= 0x40;  // One bit of the value: only the crc can notice.
    raw.Put(kRowsFamily, "vdisk/2", stored);
  }
  ASSERT_TRUE(test.Open().ok());
  const auto expect_corruption = [](const Status& status) {
    EXPECT_TRUE(status.IsCorruption()) << status.ToString();
    EXPECT_TRUE(Contains(status, "key \"vdisk/2\"")) << status.ToString();
    EXPECT_TRUE(Contains(status, "crc32c mismatch")) << status.ToString();
  };
  expect_corruption(test.Get("vdisk/2").status());
  expect_corruption(test.store().GetSync("vdisk/2").status());
  expect_corruption(test.Scan("vdisk/", "", 10).status());
  // An update or delete cannot compare versions with a row it cannot read.
  expect_corruption(test.Set("vdisk/2", 1, "new").status());
  expect_corruption(test.Delete("vdisk/2", 1));
  // The rows beside it are fine, and a scan that does not reach it succeeds.
  Result<Row> row = test.Get("vdisk/1");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->value, "value of vdisk/1");
  Result<std::vector<Row>> rows = test.Scan("vdisk/", "", 1);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 1u);
  rows = test.Scan("vdisk/", "vdisk/2", 10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ(rows->front().key, "vdisk/3");

  // A row too short for its header is named too.
  ASSERT_TRUE(test.Close().ok());
  {
    RawDatabase raw(path);
    raw.Put(kRowsFamily, "vdisk/3", "short");
  }
  ASSERT_TRUE(test.Open().ok());
  const Status short_row = test.Get("vdisk/3").status();
  EXPECT_TRUE(short_row.IsCorruption()) << short_row.ToString();
  EXPECT_TRUE(Contains(short_row, "key \"vdisk/3\"")) << short_row.ToString();
}

}  // namespace
}  // namespace weft::metadata
