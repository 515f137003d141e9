// MetadataDb: the extent store's per-disk RocksDB, behind a small typed API. It is the one place
// that speaks RocksDB: it opens the database with its column families, encodes and decodes rows
// (metadata_format.h), checks every row it reads, and translates rocksdb::Status into weft Status
// with the disk and row named. Internal to extent_store/.
//
// Every write is one WriteBatch with sync=true: when Commit() returns OK the batch is durable.
// Threading: one owner thread, like the extent store.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "extent_store/metadata_format.h"
#include "extent_store/slot_row_cache.h"

namespace weft::extent_store {

// Translates a RocksDB status at the boundary; `context` says which database and operation.
Status FromRocksdbStatus(const rocksdb::Status& status, std::string_view context);

class MetadataDb;

// Rows to commit together. Built against one MetadataDb and committed by it.
class MetadataBatch {
 public:
  explicit MetadataBatch(MetadataDb& db) : db_(db) {}

  void PutEgroup(const format::EgroupRow& row);
  void PutSlot(const format::SlotRows& rows);
  // The egroup row and both rows of every slot (deleting an absent row is harmless).
  void DeleteEgroup(EgroupId egroup_id);
  uint32_t count() const { return batch_.Count(); }

 private:
  friend class MetadataDb;
  MetadataDb& db_;
  rocksdb::WriteBatch batch_;
  // What the batch writes, for the slot-row cache once the commit's outcome is known.
  std::vector<format::SlotRows> slot_puts_;
  std::vector<EgroupId> egroup_deletes_;
};

class MetadataDb {
 public:
  // Opens (creating if missing) the database at `path` on `env` (nullptr: the default env).
  // `disk_name` prefixes every error message.
  static Result<std::unique_ptr<MetadataDb>> Open(const std::string& path, rocksdb::Env* env,
                                                  std::string disk_name);
  // Flushes the memtables (a clean close leaves no log to replay), then closes.
  ~MetadataDb();
  MetadataDb(const MetadataDb&) = delete;
  MetadataDb& operator=(const MetadataDb&) = delete;

  Result<std::optional<format::HeaderRow>> GetHeader();
  Status PutHeader(const format::HeaderRow& row);
  // True when no egroup, layout or checksums row exists.
  Result<bool> HasNoRows();

  // Both rows of a slot, or nullopt when the slot was never written.
  Result<std::optional<format::SlotRows>> GetSlot(format::SlotAddress address);

  // Visit every row in key order. Rows that fail their checks are passed to `visit` as errors
  // (so that Scrub can report and go on); a visit error, a malformed key or an iterator error
  // stops the scan and is returned.
  using EgroupVisitor = std::function<Status(EgroupId, const Result<format::EgroupRow>&)>;
  Status ForEachEgroup(const EgroupVisitor& visit);
  // Joins the layout and checksums families: a slot with only one of its two rows is visited
  // with a Corruption.
  using SlotVisitor = std::function<Status(format::SlotAddress, const Result<format::SlotRows>&)>;
  Status ForEachSlot(const SlotVisitor& visit);

  // Writes the batch with sync=true and updates the slot-row cache: WriteSynced + ApplyToCache.
  Status Commit(MetadataBatch& batch);
  // The RocksDB write alone: the one method that may run on another thread (the commit thread)
  // while the owner thread uses the others. The owner then calls ApplyToCache.
  Status WriteSynced(MetadataBatch& batch);
  void ApplyToCache(const MetadataBatch& batch, bool committed);
  // RocksDB's own verification of every SST file's block checksums.
  Status VerifyChecksum();
  uint64_t NowMicros() const;

  const std::string& path() const { return path_; }
  const SlotRowCache& slot_cache() const { return slot_cache_; }
  const std::string& disk_name() const { return disk_name_; }

 private:
  friend class MetadataBatch;
  MetadataDb(std::string path, std::string disk_name, rocksdb::Env* env);

  Status Translate(const rocksdb::Status& status, std::string_view operation) const;
  Status RowError(const Status& status, format::SlotAddress address) const;
  Result<std::optional<std::string>> Get(rocksdb::ColumnFamilyHandle* family,
                                         const std::string& key,
                                         const rocksdb::Snapshot* snapshot = nullptr);
  Result<format::SlotRows> DecodeSlotRows(format::SlotAddress address,
                                          std::string_view layout_value,
                                          std::string_view checksums_value) const;

  std::string path_;
  std::string disk_name_;
  rocksdb::Env* env_;
  std::unique_ptr<rocksdb::Env> owned_env_;  // Declared before db_: destroyed after it.
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // Owned; destroyed before db_.
  rocksdb::ColumnFamilyHandle* default_family_ = nullptr;
  rocksdb::ColumnFamilyHandle* egroups_family_ = nullptr;
  rocksdb::ColumnFamilyHandle* layout_family_ = nullptr;
  rocksdb::ColumnFamilyHandle* checksums_family_ = nullptr;
  SlotRowCache slot_cache_;
};

}  // namespace weft::extent_store
