// LocalMetadataStore: opening (header check), closing, and the RocksDB boundary. The operations
// themselves are in local_metadata_store_operations.cc.
#include "metadata/local_metadata_store.h"

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include "metadata/row_format.h"

namespace weft::metadata {

namespace {

rocksdb::WriteOptions SyncedWrite() {
  rocksdb::WriteOptions options;
  options.sync = true;
  return options;
}

// RocksDB's status in weft's terms; `context` names the database and the operation or key.
Status FromRocksdbStatus(const rocksdb::Status& status, std::string_view context) {
  WEFT_ASSERT(!status.ok());
  std::string message = fmt::format("{}: {}", context, status.ToString());
  if (status.IsCorruption()) return Status::Corruption(std::move(message));
  if (status.IsNoSpace()) return Status::NoSpace(std::move(message));
  if (status.IsInvalidArgument()) return Status::InvalidArgument(std::move(message));
  if (status.IsNotSupported()) return Status::NotSupported(std::move(message));
  if (status.IsBusy() || status.IsTryAgain() || status.IsTimedOut()) {
    return Status::Busy(std::move(message));
  }
  // NotFound never reaches here (callers handle it); everything else (I/O errors, incomplete,
  // shutdown in progress) is a failure of the storage under RocksDB as far as callers can act.
  return Status::IOError(std::move(message));
}

}  // namespace

LocalMetadataStore::LocalMetadataStore(std::string path, Executor executor)
    : path_(std::move(path)), executor_(std::move(executor)) {}

Result<std::unique_ptr<LocalMetadataStore>> LocalMetadataStore::Open(
    const LocalMetadataStoreOptions& options) {
  if (options.path.empty()) return Status::InvalidArgument("metadata store path is empty");
  if (options.executor == nullptr) {
    return Status::InvalidArgument(
        fmt::format("metadata at {}: no executor for completions", options.path));
  }
  std::unique_ptr<LocalMetadataStore> store(new LocalMetadataStore(options.path, options.executor));
  WEFT_RETURN_IF_ERROR(store->OpenDatabase(options.env));
  WEFT_RETURN_IF_ERROR(store->CheckOrWriteHeader());
  return store;
}

Status LocalMetadataStore::OpenDatabase(rocksdb::Env* env) {
  rocksdb::DBOptions db_options;
  db_options.env = env != nullptr ? env : rocksdb::Env::Default();
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.paranoid_checks = true;
  db_options.keep_log_file_num = 4;
  const rocksdb::ColumnFamilyOptions family_options;
  // Opening a database with other column families (say, an extent store's) fails here: RocksDB
  // requires every family to be named.
  const std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, family_options},
      {format::kRowsFamily, family_options},
  };
  const std::lock_guard lock(mutex_);
  rocksdb::DB* db = nullptr;
  const rocksdb::Status status = rocksdb::DB::Open(db_options, path_, families, &handles_, &db);
  if (!status.ok()) return Translate(status, "open");
  db_.reset(db);
  WEFT_ASSERT(handles_.size() == families.size());
  default_family_ = handles_[0];
  rows_family_ = handles_[1];
  return Status::Ok();
}

Result<bool> LocalMetadataStore::HasAnyKey(rocksdb::ColumnFamilyHandle* family) {
  std::unique_ptr<rocksdb::Iterator> iterator(db_->NewIterator(rocksdb::ReadOptions(), family));
  iterator->SeekToFirst();
  if (iterator->Valid()) return true;
  if (!iterator->status().ok()) return Translate(iterator->status(), "scan");
  return false;
}

Status LocalMetadataStore::CheckOrWriteHeader() {
  const std::lock_guard lock(mutex_);
  std::string encoded;
  const rocksdb::Status read =
      db_->Get(rocksdb::ReadOptions(), default_family_, std::string(format::kHeaderKey), &encoded);
  if (read.ok()) {
    Result<Uuid> uuid = format::DecodeDatabaseHeader(encoded);
    if (!uuid.ok()) return uuid.status().WithContext(fmt::format("metadata at {}", path_));
    uuid_ = *uuid;
    return Status::Ok();
  }
  if (!read.IsNotFound()) return Translate(read, "read database header");
  // No header: only an empty database may get one. Rows without a header mean the directory
  // holds some other RocksDB, or a weft database that lost its header; either way, do not touch.
  for (rocksdb::ColumnFamilyHandle* family : {default_family_, rows_family_}) {
    WEFT_ASSIGN_OR_RETURN(const bool has_key, HasAnyKey(family));
    if (has_key) {
      return Status::Corruption(fmt::format(
          "metadata at {}: the database has rows in column family {} but no weft metadata "
          "header: not a weft metadata database, or a damaged one",
          path_, family->GetName()));
    }
  }
  uuid_ = Uuid::Random();
  rocksdb::WriteBatch batch;
  const rocksdb::Status put = batch.Put(default_family_, std::string(format::kHeaderKey),
                                        format::EncodeDatabaseHeader(uuid_));
  WEFT_ASSERT(put.ok());  // WriteBatch::Put fails only past 4 GiB of batch.
  const rocksdb::Status written = db_->Write(SyncedWrite(), &batch);
  if (!written.ok()) return Translate(written, "write database header");
  spdlog::info("metadata at {}: created database {}", path_, uuid_.ToString());
  return Status::Ok();
}

LocalMetadataStore::~LocalMetadataStore() {
  const Status closed = Close();
  if (!closed.ok()) spdlog::warn("{}", closed.ToString());
}

Status LocalMetadataStore::Close() {
  // First the queue: operations still waiting complete with Aborted, the running one finishes.
  operation_thread_.Stop();
  return CloseDatabase();
}

Status LocalMetadataStore::CloseDatabase() {
  const std::lock_guard lock(mutex_);
  if (db_ == nullptr) return Status::Ok();
  rocksdb::FlushOptions flush_options;
  flush_options.wait = true;
  const rocksdb::Status flushed = db_->Flush(flush_options, handles_);
  // A failed flush loses nothing: the write-ahead log still holds every committed batch.
  Status result = flushed.ok() ? Status::Ok() : Translate(flushed, "flush at close");
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    const rocksdb::Status destroyed = db_->DestroyColumnFamilyHandle(handle);
    WEFT_ASSERT(destroyed.ok());
  }
  handles_.clear();
  default_family_ = nullptr;
  rows_family_ = nullptr;
  const rocksdb::Status closed = db_->Close();
  db_.reset();
  if (!closed.ok() && result.ok()) result = Translate(closed, "close");
  return result;
}

Status LocalMetadataStore::ClosedStatus() const {
  return Status::Aborted(fmt::format("metadata at {}: closed", path_));
}

Status LocalMetadataStore::CheckOpen() const {
  if (db_ == nullptr) return ClosedStatus();
  return Status::Ok();
}

Status LocalMetadataStore::WriteSynced(rocksdb::WriteBatch& batch, std::string_view key) {
  const rocksdb::Status status = db_->Write(SyncedWrite(), &batch);
  if (!status.ok()) return Translate(status, fmt::format("write {}", format::DescribeKey(key)));
  return Status::Ok();
}

Status LocalMetadataStore::Translate(const rocksdb::Status& status,
                                     std::string_view context) const {
  return FromRocksdbStatus(status, fmt::format("metadata at {}: {}", path_, context));
}

}  // namespace weft::metadata
