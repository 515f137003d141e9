// MetadataStore: the one interface to global metadata (containers, vDisks, block maps, egroup
// locations). The seeds' Medusa. Two backends implement it: LocalMetadataStore (one node, a local
// RocksDB, this folder) and, later, the Paxos ring of the cluster. Callers must assume only what
// the ring can give:
// - Rows are independent: each row is a key (bytes) and a value (bytes) with a version. There are
//   no multi-row transactions; a caller that needs several rows to agree orders its writes so that
//   every intermediate state is valid (write the row that is pointed to before the pointer).
// - Every update is a compare-and-set on the row's version. A row that does not exist has version
//   0; creating it is CompareAndSet(key, 0, value) and gives it version 1; each later successful
//   update adds one. A mismatch fails with Aborted ("version conflict: expected E, found F") and
//   changes nothing. Reads are linearizable per row.
// - Deleting is CompareAndDelete(key, version). Versions of deleted rows restart at 1 when the
//   key is created again (callers must not keep versions across a delete).
// - Scan returns rows whose key starts with a prefix, in bytewise key order, at most `limit` rows
//   after `start_after` (exclusive; empty: from the start of the prefix). It is not a snapshot:
//   rows changed during a paged scan may appear in their old or new state.
// - Completions never run inside the call that submits them: they are handed to the Executor the
//   store was built with, which runs them later on the owner's thread. Every completion runs
//   exactly once, also when the store is closed (with Aborted).
// - Errors: NotFound (Get of an absent row), Aborted (version conflict), InvalidArgument (empty
//   key, key longer than kMaxKeyBytes, value longer than kMaxValueBytes, limit 0), IOError and
//   Corruption (the backend's own storage failed; the message names the key).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"

namespace weft::metadata {

inline constexpr size_t kMaxKeyBytes = 1024;
inline constexpr size_t kMaxValueBytes = 64 * 1024;
inline constexpr uint32_t kMaxScanRows = 10000;

// Runs a task later on the owner's thread (an asio strand's post in the daemon, a queue in tests).
using Executor = std::function<void(std::function<void()> task)>;

struct Row {
  std::string key;
  std::string value;
  uint64_t version = 0;  // >= 1 for a row that exists.
};

using GetCompletion = std::function<void(Result<Row> row)>;
using SetCompletion = std::function<void(Result<uint64_t> new_version)>;
using DeleteCompletion = std::function<void(Status status)>;
using ScanCompletion = std::function<void(Result<std::vector<Row>> rows)>;

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  virtual void Get(std::string key, GetCompletion done) = 0;
  // Durable when `done` runs with OK.
  virtual void CompareAndSet(std::string key, uint64_t expected_version, std::string value,
                             SetCompletion done) = 0;
  virtual void CompareAndDelete(std::string key, uint64_t expected_version,
                                DeleteCompletion done) = 0;
  // limit: 1..kMaxScanRows.
  virtual void Scan(std::string prefix, std::string start_after, uint32_t limit,
                    ScanCompletion done) = 0;
};

}  // namespace weft::metadata
