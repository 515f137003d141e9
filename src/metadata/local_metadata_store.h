// LocalMetadataStore: the single-node backend of MetadataStore (metadata_store.h), over one local
// RocksDB. The on-disk format is docs/ondisk/metadata.md (row_format.h in code).
//
// How it gives the MetadataStore contract on one node:
// - Every update is one WriteBatch written with sync = true, so it is durable before its
//   completion is handed to the Executor. A write that fails with IOError has an unknown outcome
//   (the log record may have reached the disk before the sync failed): re-read the row.
// - A compare-and-set reads the current row and writes the new one while holding the store's
//   mutex, and every read and write of the database takes that mutex, so each operation is atomic
//   and rows are linearizable.
// - The asynchronous methods queue the operation for one helper thread (OperationThread), which
//   runs operations in submission order, never on the caller's thread; the completion is then
//   posted to the Executor. The calling thread never waits for RocksDB, unless
//   kMaxQueuedOperations operations are already waiting (then it blocks until one starts).
// - Close (or the destructor) completes every operation still queued with Aborted, flushes the
//   memtables (a clean close leaves no log to replay) and closes the database.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/uuid.h"
#include "metadata/metadata_store.h"
#include "metadata/operation_thread.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Env;
class Status;
class WriteBatch;
}  // namespace rocksdb

namespace weft::metadata {

struct LocalMetadataStoreOptions {
  // Directory of the RocksDB database; created with the database when missing.
  std::string path;
  // Receives every completion. Called from the store's helper thread and from threads that call
  // Close, so it must be thread-safe (an asio post is; tests use a locked queue).
  Executor executor;
  // nullptr: the default (POSIX) env. Tests may pass rocksdb::NewMemEnv(...); it must outlive
  // the store.
  rocksdb::Env* env = nullptr;
};

class LocalMetadataStore final : public MetadataStore {
 public:
  // Operations waiting for the helper thread beyond this make the submitting call block.
  static constexpr size_t kMaxQueuedOperations = 1024;

  // Opens the database at options.path, creating it (with a new uuid in its header row) when the
  // directory holds no database. Fails with InvalidArgument for an empty path or no executor,
  // Corruption when the database has rows but no valid weft metadata header (it is not ours or
  // is damaged), NotSupported for another format version, IOError when RocksDB cannot open it.
  static Result<std::unique_ptr<LocalMetadataStore>> Open(const LocalMetadataStoreOptions& options);

  ~LocalMetadataStore() override;  // Close(); a failure is logged.
  LocalMetadataStore(const LocalMetadataStore&) = delete;
  LocalMetadataStore& operator=(const LocalMetadataStore&) = delete;

  // MetadataStore. Thread-safe; operations submitted from one thread run in submission order.
  void Get(std::string key, GetCompletion done) override;
  void CompareAndSet(std::string key, uint64_t expected_version, std::string value,
                     SetCompletion done) override;
  void CompareAndDelete(std::string key, uint64_t expected_version, DeleteCompletion done) override;
  void Scan(std::string prefix, std::string start_after, uint32_t limit,
            ScanCompletion done) override;

  // Completes queued operations with Aborted, waits for the running one, flushes and closes the
  // database. Later calls (of any method) fail with Aborted. Idempotent: a second call returns OK.
  // Returns the flush or close error, if any (committed rows stay in the log either way).
  // Must not be called from inside a completion that runs on the helper thread (none do: they
  // run on the Executor).
  Status Close();

  // Synchronous forms of the four operations, with the same semantics and errors. They run on
  // the calling thread and block it for RocksDB (a synced write for the updates): for tools,
  // tests and startup code, never for a reactor on the data path.
  Result<Row> GetSync(std::string_view key);
  Result<uint64_t> CompareAndSetSync(std::string_view key, uint64_t expected_version,
                                     std::string_view value);
  // Deleting an absent row with expected_version 0 succeeds and writes nothing (the versions
  // agree: an absent row has version 0).
  Status CompareAndDeleteSync(std::string_view key, uint64_t expected_version);
  Result<std::vector<Row>> ScanSync(std::string_view prefix, std::string_view start_after,
                                    uint32_t limit);

  // The uuid in the database header, made when the database was created.
  const Uuid& uuid() const { return uuid_; }
  const std::string& path() const { return path_; }

 private:
  LocalMetadataStore(std::string path, Executor executor);

  Status OpenDatabase(rocksdb::Env* env);
  Status CheckOrWriteHeader();
  Result<bool> HasAnyKey(rocksdb::ColumnFamilyHandle* family);
  Status CloseDatabase();

  // These require mutex_ held.
  Status CheckOpen() const;
  Result<std::optional<Row>> ReadRow(std::string_view key);
  Status WriteSynced(rocksdb::WriteBatch& batch, std::string_view key);

  // Aborted: what every operation returns once the store is closed.
  Status ClosedStatus() const;
  Status Translate(const rocksdb::Status& status, std::string_view context) const;
  // Hands `done(result)` to the executor.
  template <typename Completion, typename Value>
  void Complete(Completion done, Value result);

  const std::string path_;
  const Executor executor_;
  Uuid uuid_;  // Set once by Open.

  std::mutex mutex_;
  std::unique_ptr<rocksdb::DB> db_;                        // Guarded by mutex_; null once closed.
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;      // Guarded by mutex_; owned.
  rocksdb::ColumnFamilyHandle* default_family_ = nullptr;  // Guarded by mutex_.
  rocksdb::ColumnFamilyHandle* rows_family_ = nullptr;     // Guarded by mutex_.

  // Declared last: destroyed (stopped) first, while everything its jobs use still exists.
  OperationThread operation_thread_{kMaxQueuedOperations};
};

}  // namespace weft::metadata
