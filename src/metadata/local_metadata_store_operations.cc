// LocalMetadataStore's four operations: the synchronous forms do the work under the mutex; the
// asynchronous forms queue them on the helper thread and post the result to the Executor.
#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <limits>

#include "metadata/local_metadata_store.h"
#include "metadata/row_format.h"

namespace weft::metadata {

namespace {

Status CheckKey(std::string_view key) {
  if (key.empty()) return Status::InvalidArgument("empty key");
  if (key.size() > kMaxKeyBytes) {
    return Status::InvalidArgument(fmt::format("{} is {} bytes, more than the maximum {}",
                                               format::DescribeKey(key), key.size(), kMaxKeyBytes));
  }
  return Status::Ok();
}

Status VersionConflict(uint64_t expected_version, uint64_t found_version) {
  return Status::Aborted(
      fmt::format("version conflict: expected {}, found {}", expected_version, found_version));
}

}  // namespace

// ---- Synchronous forms: validate, then read and write under the mutex ----

Result<std::optional<Row>> LocalMetadataStore::ReadRow(std::string_view key) {
  std::string encoded;
  const rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), rows_family_,
                                          rocksdb::Slice(key.data(), key.size()), &encoded);
  if (status.IsNotFound()) return std::optional<Row>();
  if (!status.ok()) return Translate(status, fmt::format("read {}", format::DescribeKey(key)));
  WEFT_ASSIGN_OR_RETURN(Row row, format::DecodeRow(key, encoded));
  return std::optional<Row>(std::move(row));
}

Result<Row> LocalMetadataStore::GetSync(std::string_view key) {
  WEFT_RETURN_IF_ERROR(CheckKey(key));
  const std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(CheckOpen());
  WEFT_ASSIGN_OR_RETURN(std::optional<Row> row, ReadRow(key));
  if (!row) return Status::NotFound(fmt::format("{}: no such row", format::DescribeKey(key)));
  return std::move(*row);
}

Result<uint64_t> LocalMetadataStore::CompareAndSetSync(std::string_view key,
                                                       uint64_t expected_version,
                                                       std::string_view value) {
  WEFT_RETURN_IF_ERROR(CheckKey(key));
  if (value.size() > kMaxValueBytes) {
    return Status::InvalidArgument(fmt::format("{}: value is {} bytes, more than the maximum {}",
                                               format::DescribeKey(key), value.size(),
                                               kMaxValueBytes));
  }
  const std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(CheckOpen());
  WEFT_ASSIGN_OR_RETURN(const std::optional<Row> current, ReadRow(key));
  const uint64_t current_version = current ? current->version : 0;
  if (current_version != expected_version)
    return VersionConflict(expected_version, current_version);
  // 2^64 - 1 updates of one row cannot happen; reaching it means a corrupt version got through.
  WEFT_ASSERT(current_version < std::numeric_limits<uint64_t>::max());
  const uint64_t new_version = current_version + 1;
  rocksdb::WriteBatch batch;
  const rocksdb::Status put = batch.Put(rows_family_, rocksdb::Slice(key.data(), key.size()),
                                        format::EncodeRow(new_version, value));
  WEFT_ASSERT(put.ok());  // WriteBatch::Put fails only past 4 GiB of batch.
  WEFT_RETURN_IF_ERROR(WriteSynced(batch, key));
  return new_version;
}

Status LocalMetadataStore::CompareAndDeleteSync(std::string_view key, uint64_t expected_version) {
  WEFT_RETURN_IF_ERROR(CheckKey(key));
  const std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(CheckOpen());
  WEFT_ASSIGN_OR_RETURN(const std::optional<Row> current, ReadRow(key));
  const uint64_t current_version = current ? current->version : 0;
  if (current_version != expected_version)
    return VersionConflict(expected_version, current_version);
  if (!current) return Status::Ok();  // Absent and expected absent: nothing to delete.
  rocksdb::WriteBatch batch;
  const rocksdb::Status deleted =
      batch.Delete(rows_family_, rocksdb::Slice(key.data(), key.size()));
  WEFT_ASSERT(deleted.ok());
  return WriteSynced(batch, key);
}

Result<std::vector<Row>> LocalMetadataStore::ScanSync(std::string_view prefix,
                                                      std::string_view start_after,
                                                      uint32_t limit) {
  if (limit == 0 || limit > kMaxScanRows) {
    return Status::InvalidArgument(
        fmt::format("scan limit {} is outside 1..{}", limit, kMaxScanRows));
  }
  // No key is longer than kMaxKeyBytes, so a longer prefix or start_after is a caller's bug.
  if (prefix.size() > kMaxKeyBytes || start_after.size() > kMaxKeyBytes) {
    return Status::InvalidArgument(fmt::format(
        "scan prefix ({} bytes) or start_after ({} bytes) is longer than the maximum key ({})",
        prefix.size(), start_after.size(), kMaxKeyBytes));
  }
  const std::lock_guard lock(mutex_);
  WEFT_RETURN_IF_ERROR(CheckOpen());
  std::unique_ptr<rocksdb::Iterator> iterator(
      db_->NewIterator(rocksdb::ReadOptions(), rows_family_));
  // Keys with the prefix are contiguous in bytewise order and none sorts before the prefix, so
  // the scan starts at the later of the prefix and start_after, and stops at the first key
  // without the prefix.
  const std::string_view start = std::max(prefix, start_after);
  iterator->Seek(rocksdb::Slice(start.data(), start.size()));
  if (iterator->Valid() && !start_after.empty() && iterator->key().ToStringView() == start_after) {
    iterator->Next();
  }
  std::vector<Row> rows;
  for (; iterator->Valid() && rows.size() < limit; iterator->Next()) {
    const std::string_view key = iterator->key().ToStringView();
    if (!key.starts_with(prefix)) break;
    if (key.empty() || key.size() > kMaxKeyBytes) {
      return Status::Corruption(fmt::format("metadata at {}: stored {} is {} bytes, outside 1..{}",
                                            path_, format::DescribeKey(key), key.size(),
                                            kMaxKeyBytes));
    }
    WEFT_ASSIGN_OR_RETURN(Row row, format::DecodeRow(key, iterator->value().ToStringView()));
    rows.push_back(std::move(row));
  }
  if (!iterator->status().ok()) {
    return Translate(iterator->status(), fmt::format("scan {}", format::DescribeKey(prefix)));
  }
  return rows;
}

// ---- Asynchronous forms: one job each on the helper thread ----

template <typename Completion, typename Value>
void LocalMetadataStore::Complete(Completion done, Value result) {
  executor_(
      [done = std::move(done), result = std::move(result)]() mutable { done(std::move(result)); });
}

void LocalMetadataStore::Get(std::string key, GetCompletion done) {
  WEFT_ASSERT(done != nullptr);
  operation_thread_.Submit([this, key = std::move(key), done = std::move(done)](bool aborted) {
    Complete(done, aborted ? Result<Row>(ClosedStatus()) : GetSync(key));
  });
}

void LocalMetadataStore::CompareAndSet(std::string key, uint64_t expected_version,
                                       std::string value, SetCompletion done) {
  WEFT_ASSERT(done != nullptr);
  operation_thread_.Submit([this, key = std::move(key), expected_version, value = std::move(value),
                            done = std::move(done)](bool aborted) {
    Complete(done, aborted ? Result<uint64_t>(ClosedStatus())
                           : CompareAndSetSync(key, expected_version, value));
  });
}

void LocalMetadataStore::CompareAndDelete(std::string key, uint64_t expected_version,
                                          DeleteCompletion done) {
  WEFT_ASSERT(done != nullptr);
  operation_thread_.Submit(
      [this, key = std::move(key), expected_version, done = std::move(done)](bool aborted) {
        Complete(done, aborted ? ClosedStatus() : CompareAndDeleteSync(key, expected_version));
      });
}

void LocalMetadataStore::Scan(std::string prefix, std::string start_after, uint32_t limit,
                              ScanCompletion done) {
  WEFT_ASSERT(done != nullptr);
  operation_thread_.Submit([this, prefix = std::move(prefix), start_after = std::move(start_after),
                            limit, done = std::move(done)](bool aborted) {
    Complete(done, aborted ? Result<std::vector<Row>>(ClosedStatus())
                           : ScanSync(prefix, start_after, limit));
  });
}

}  // namespace weft::metadata
