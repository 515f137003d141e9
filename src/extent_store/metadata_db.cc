#include "extent_store/metadata_db.h"

#include <fmt/format.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/snapshot.h>
#include <spdlog/spdlog.h>

#include "extent_store/zeroed_wal_file_system.h"

namespace weft::extent_store {

namespace {

// Upper bound on rows one scan visits: 2^32 blocks (the layout entry width) in slots of 256
// blocks, twice over for the two families, is far below this; a scan that gets here is looping.
constexpr uint64_t kScanRowsMax = uint64_t{1} << 40;

rocksdb::WriteOptions SyncedWrite() {
  rocksdb::WriteOptions options;
  options.sync = true;
  return options;
}

rocksdb::ReadOptions ScanRead(const rocksdb::Snapshot* snapshot = nullptr) {
  rocksdb::ReadOptions options;
  options.verify_checksums = true;
  options.fill_cache = false;  // Scans run at open and in scrub; keep the cache for reads.
  options.snapshot = snapshot;
  return options;
}

}  // namespace

Status FromRocksdbStatus(const rocksdb::Status& status, std::string_view context) {
  WEFT_ASSERT(!status.ok());
  std::string message = fmt::format("{}: {}", context, status.ToString());
  if (status.IsNotFound()) return Status::NotFound(std::move(message));
  if (status.IsCorruption()) return Status::Corruption(std::move(message));
  if (status.IsNoSpace()) return Status::NoSpace(std::move(message));
  if (status.IsIOError()) return Status::IOError(std::move(message));
  if (status.IsInvalidArgument()) return Status::InvalidArgument(std::move(message));
  if (status.IsNotSupported()) return Status::NotSupported(std::move(message));
  if (status.IsBusy() || status.IsTryAgain() || status.IsTimedOut()) {
    return Status::Busy(std::move(message));
  }
  if (status.IsAborted() || status.IsShutdownInProgress()) {
    return Status::Aborted(std::move(message));
  }
  // Anything else (incomplete, merge in progress, ...) is an error of the storage under RocksDB
  // as far as callers can act on it.
  return Status::IOError(std::move(message));
}

// ---- MetadataBatch ----

void MetadataBatch::PutEgroup(const format::EgroupRow& row) {
  const rocksdb::Status status = batch_.Put(db_.egroups_family_, format::EgroupKey(row.egroup_id),
                                            format::EncodeEgroupRow(row));
  WEFT_ASSERT(status.ok());  // WriteBatch::Put fails only past 4 GiB of batch.
}

void MetadataBatch::PutSlot(const format::SlotRows& rows) {
  WEFT_ASSERT(rows.layout.egroup_id == rows.checksums.egroup_id);
  WEFT_ASSERT(rows.layout.slot == rows.checksums.slot);
  const std::string key = format::SlotKey(rows.layout.egroup_id, rows.layout.slot);
  rocksdb::Status status =
      batch_.Put(db_.layout_family_, key, format::EncodeBlockMapRow(rows.layout));
  WEFT_ASSERT(status.ok());
  status = batch_.Put(db_.checksums_family_, key, format::EncodeBlockMapRow(rows.checksums));
  WEFT_ASSERT(status.ok());
  slot_puts_.push_back(rows);
}

void MetadataBatch::DeleteEgroup(EgroupId egroup_id) {
  egroup_deletes_.push_back(egroup_id);
  rocksdb::Status status = batch_.Delete(db_.egroups_family_, format::EgroupKey(egroup_id));
  WEFT_ASSERT(status.ok());
  for (uint32_t slot = 0; slot < format::kSlotsPerEgroup; ++slot) {
    const std::string key = format::SlotKey(egroup_id, slot);
    status = batch_.Delete(db_.layout_family_, key);
    WEFT_ASSERT(status.ok());
    status = batch_.Delete(db_.checksums_family_, key);
    WEFT_ASSERT(status.ok());
  }
}

// ---- MetadataDb ----

MetadataDb::MetadataDb(std::string path, std::string disk_name, rocksdb::Env* env)
    : path_(std::move(path)), disk_name_(std::move(disk_name)), env_(env) {}

Result<std::unique_ptr<MetadataDb>> MetadataDb::Open(const std::string& path, rocksdb::Env* env,
                                                     std::string disk_name) {
  if (path.empty()) return Status::InvalidArgument("extent store metadata_path is empty");
  // On the default (POSIX) env the WAL is zero-filled ahead (zeroed_wal_file_system.h); a
  // caller-supplied env (tests: memory) is used as it is.
  std::unique_ptr<rocksdb::Env> owned_env;
  if (env == nullptr) {
    owned_env = rocksdb::NewCompositeEnv(NewZeroedWalFileSystem(rocksdb::FileSystem::Default()));
    env = owned_env.get();
  }
  std::unique_ptr<MetadataDb> metadata(new MetadataDb(path, std::move(disk_name), env));
  metadata->owned_env_ = std::move(owned_env);

  rocksdb::DBOptions db_options;
  db_options.env = env;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.paranoid_checks = true;
  db_options.keep_log_file_num = 4;
  const rocksdb::ColumnFamilyOptions family_options;
  const std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, family_options},
      {format::kEgroupsFamily, family_options},
      {format::kLayoutFamily, family_options},
      {format::kChecksumsFamily, family_options},
  };
  rocksdb::DB* db = nullptr;
  const rocksdb::Status status =
      rocksdb::DB::Open(db_options, path, families, &metadata->handles_, &db);
  if (!status.ok()) return metadata->Translate(status, "open");
  metadata->db_.reset(db);
  WEFT_ASSERT(metadata->handles_.size() == families.size());
  metadata->default_family_ = metadata->handles_[0];
  metadata->egroups_family_ = metadata->handles_[1];
  metadata->layout_family_ = metadata->handles_[2];
  metadata->checksums_family_ = metadata->handles_[3];
  return metadata;
}

MetadataDb::~MetadataDb() {
  if (db_ == nullptr) return;
  rocksdb::FlushOptions flush_options;
  flush_options.wait = true;
  const rocksdb::Status flushed = db_->Flush(flush_options, handles_);
  if (!flushed.ok()) {
    // Not fatal: the write-ahead log still holds every committed batch.
    spdlog::warn("{}: metadata at {}: flush at close failed: {}", disk_name_, path_,
                 flushed.ToString());
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    const rocksdb::Status destroyed = db_->DestroyColumnFamilyHandle(handle);
    WEFT_ASSERT(destroyed.ok());
  }
  const rocksdb::Status closed = db_->Close();
  if (!closed.ok()) {
    spdlog::warn("{}: metadata at {}: close failed: {}", disk_name_, path_, closed.ToString());
  }
}

Status MetadataDb::Translate(const rocksdb::Status& status, std::string_view operation) const {
  return FromRocksdbStatus(
      status, fmt::format("disk {}: metadata at {}: {}", disk_name_, path_, operation));
}

Status MetadataDb::RowError(const Status& status, format::SlotAddress address) const {
  return status.WithContext(
      fmt::format("disk {} egroup {} slot {}", disk_name_, address.egroup_id, address.slot));
}

Result<std::optional<std::string>> MetadataDb::Get(rocksdb::ColumnFamilyHandle* family,
                                                   const std::string& key,
                                                   const rocksdb::Snapshot* snapshot) {
  std::string value;
  rocksdb::ReadOptions options;
  options.snapshot = snapshot;
  const rocksdb::Status status = db_->Get(options, family, key, &value);
  if (status.IsNotFound()) return std::optional<std::string>();
  if (!status.ok()) return Translate(status, "get");
  return std::optional<std::string>(std::move(value));
}

Result<std::optional<format::HeaderRow>> MetadataDb::GetHeader() {
  WEFT_ASSIGN_OR_RETURN(std::optional<std::string> value,
                        Get(default_family_, std::string(format::kHeaderKey)));
  if (!value) return std::optional<format::HeaderRow>();
  Result<format::HeaderRow> row = format::DecodeHeaderRow(*value);
  if (!row.ok()) {
    return row.status().WithContext(fmt::format("disk {}: metadata at {}", disk_name_, path_));
  }
  return std::optional<format::HeaderRow>(*row);
}

Status MetadataDb::PutHeader(const format::HeaderRow& row) {
  const rocksdb::Status status =
      db_->Put(SyncedWrite(), default_family_, std::string(format::kHeaderKey),
               format::EncodeHeaderRow(row));
  if (!status.ok()) return Translate(status, "write header");
  return Status::Ok();
}

Result<bool> MetadataDb::HasNoRows() {
  for (rocksdb::ColumnFamilyHandle* family : {egroups_family_, layout_family_, checksums_family_}) {
    std::unique_ptr<rocksdb::Iterator> iterator(db_->NewIterator(ScanRead(), family));
    iterator->SeekToFirst();
    if (iterator->Valid()) return false;
    if (!iterator->status().ok()) return Translate(iterator->status(), "scan");
  }
  return true;
}

Result<format::SlotRows> MetadataDb::DecodeSlotRows(format::SlotAddress address,
                                                    std::string_view layout_value,
                                                    std::string_view checksums_value) const {
  Result<format::BlockMapRow> layout =
      format::DecodeBlockMapRow(layout_value, format::kLayoutMagic, address);
  if (!layout.ok()) return RowError(layout.status(), address);
  Result<format::BlockMapRow> checksums =
      format::DecodeBlockMapRow(checksums_value, format::kChecksumsMagic, address);
  if (!checksums.ok()) return RowError(checksums.status(), address);
  return format::SlotRows{*layout, *checksums};
}

Result<std::optional<format::SlotRows>> MetadataDb::GetSlot(format::SlotAddress address) {
  if (const std::optional<format::SlotRows>* cached = slot_cache_.Find(address)) return *cached;
  const std::string key = format::SlotKey(address.egroup_id, address.slot);
  // One snapshot for both rows: the commit thread may write a batch between two plain reads,
  // and a layout row from after it with a checksums row from before is a torn slot (a false
  // checksum error, cached).
  rocksdb::ManagedSnapshot snapshot(db_.get());
  WEFT_ASSIGN_OR_RETURN(std::optional<std::string> layout_value,
                        Get(layout_family_, key, snapshot.snapshot()));
  WEFT_ASSIGN_OR_RETURN(std::optional<std::string> checksums_value,
                        Get(checksums_family_, key, snapshot.snapshot()));
  if (!layout_value && !checksums_value) {
    slot_cache_.Put(address, std::nullopt);
    return std::optional<format::SlotRows>();
  }
  if (!layout_value || !checksums_value) {
    return RowError(Status::Corruption(layout_value ? "layout row without its checksums row"
                                                    : "checksums row without its layout row"),
                    address);
  }
  WEFT_ASSIGN_OR_RETURN(format::SlotRows rows,
                        DecodeSlotRows(address, *layout_value, *checksums_value));
  slot_cache_.Put(address, rows);
  return std::optional<format::SlotRows>(rows);
}

Status MetadataDb::ForEachEgroup(const EgroupVisitor& visit) {
  std::unique_ptr<rocksdb::Iterator> iterator(db_->NewIterator(ScanRead(), egroups_family_));
  uint64_t rows_visited = 0;
  for (iterator->SeekToFirst(); iterator->Valid(); iterator->Next()) {
    WEFT_ASSERT(++rows_visited < kScanRowsMax);
    const std::optional<EgroupId> egroup_id =
        format::DecodeEgroupKey(iterator->key().ToStringView());
    if (!egroup_id) {
      return Status::Corruption(
          fmt::format("disk {}: metadata at {}: malformed egroup key of {} bytes", disk_name_,
                      path_, iterator->key().size()));
    }
    Result<format::EgroupRow> row =
        format::DecodeEgroupRow(iterator->value().ToStringView(), *egroup_id);
    if (!row.ok()) {
      row = row.status().WithContext(fmt::format("disk {} egroup {}", disk_name_, *egroup_id));
    }
    WEFT_RETURN_IF_ERROR(visit(*egroup_id, row));
  }
  if (!iterator->status().ok()) return Translate(iterator->status(), "scan egroups");
  return Status::Ok();
}

Status MetadataDb::ForEachSlot(const SlotVisitor& visit) {
  // The two families hold the same keys; walk them side by side like a merge join, both at one
  // snapshot (a batch committed by the commit thread between the two iterators' creation would
  // otherwise pair rows from before and after it).
  rocksdb::ManagedSnapshot snapshot(db_.get());
  std::unique_ptr<rocksdb::Iterator> layout(
      db_->NewIterator(ScanRead(snapshot.snapshot()), layout_family_));
  std::unique_ptr<rocksdb::Iterator> checksums(
      db_->NewIterator(ScanRead(snapshot.snapshot()), checksums_family_));
  layout->SeekToFirst();
  checksums->SeekToFirst();
  uint64_t rows_visited = 0;
  while (layout->Valid() || checksums->Valid()) {
    WEFT_ASSERT(++rows_visited < kScanRowsMax);
    // An iterator that stopped on an error must not look like the end of its family (which
    // would blame the other family's rows for missing partners).
    if (!layout->status().ok()) return Translate(layout->status(), "scan layout");
    if (!checksums->status().ok()) return Translate(checksums->status(), "scan checksums");
    const int order = !layout->Valid()      ? 1
                      : !checksums->Valid() ? -1
                                            : layout->key().compare(checksums->key());
    const rocksdb::Slice key = order <= 0 ? layout->key() : checksums->key();
    const std::optional<format::SlotAddress> address = format::DecodeSlotKey(key.ToStringView());
    if (!address) {
      return Status::Corruption(
          fmt::format("disk {}: metadata at {}: malformed slot key of {} bytes", disk_name_, path_,
                      key.size()));
    }
    if (order == 0) {
      WEFT_RETURN_IF_ERROR(visit(*address, DecodeSlotRows(*address, layout->value().ToStringView(),
                                                          checksums->value().ToStringView())));
      layout->Next();
      checksums->Next();
      continue;
    }
    const Status missing_partner =
        RowError(Status::Corruption(order < 0 ? "layout row without its checksums row"
                                              : "checksums row without its layout row"),
                 *address);
    WEFT_RETURN_IF_ERROR(visit(*address, missing_partner));
    (order < 0 ? layout : checksums)->Next();
  }
  if (!layout->status().ok()) return Translate(layout->status(), "scan layout");
  if (!checksums->status().ok()) return Translate(checksums->status(), "scan checksums");
  return Status::Ok();
}

Status MetadataDb::Commit(MetadataBatch& batch) {
  const Status status = WriteSynced(batch);
  ApplyToCache(batch, status.ok());
  return status;
}

Status MetadataDb::WriteSynced(MetadataBatch& batch) {
  WEFT_ASSERT(&batch.db_ == this);
  WEFT_ASSERT(batch.count() > 0);
  const rocksdb::Status status = db_->Write(SyncedWrite(), &batch.batch_);
  if (!status.ok()) return Translate(status, "commit");
  return Status::Ok();
}

void MetadataDb::ApplyToCache(const MetadataBatch& batch, bool committed) {
  for (EgroupId egroup_id : batch.egroup_deletes_) {
    for (uint32_t slot = 0; slot < format::kSlotsPerEgroup; ++slot) {
      slot_cache_.Erase({egroup_id, slot});
    }
  }
  for (const format::SlotRows& rows : batch.slot_puts_) {
    const format::SlotAddress address{rows.layout.egroup_id, rows.layout.slot};
    // Whether a failed batch reached the log is unknown: forget the rows, read them again.
    if (committed) {
      slot_cache_.Put(address, rows);
    } else {
      slot_cache_.Erase(address);
    }
  }
}

Status MetadataDb::VerifyChecksum() {
  const rocksdb::Status status = db_->VerifyChecksum();
  if (!status.ok()) return Translate(status, "verify checksums");
  return Status::Ok();
}

uint64_t MetadataDb::NowMicros() const { return env_->NowMicros(); }

}  // namespace weft::extent_store
