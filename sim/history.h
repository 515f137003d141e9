// History: what the simulator's clients did, as the linearizability checker reads it. Each
// operation has an invocation time and a response time on one clock that orders every event of
// a run (the simulator's event counter: no two events share a time), and the result the client
// saw. docs/simulation.md describes the model.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace weft::sim {

// The response time of an operation whose outcome the client never learned (its node crashed,
// or it timed out with Unavailable): it may take effect at any point after its invocation, or
// never.
inline constexpr uint64_t kNeverReturned = std::numeric_limits<uint64_t>::max();

enum class OperationKind : uint8_t { kRead, kCompareAndSet, kCompareAndDelete };

enum class Outcome : uint8_t {
  kOk,        // Read: the row exists (result_version, result_value). Updates: took effect.
  kNotFound,  // Read only: the row was absent.
  kAborted,   // Updates only: a version conflict; nothing changed.
  kUnknown,   // Updates: may or may not have taken effect. Reads: no information.
};

// One client operation on one row (the MetadataStore contract, metadata/metadata_store.h).
struct RowOperation {
  uint64_t id = 0;  // Names the operation in messages; unique in a history.
  uint64_t client = 0;
  OperationKind kind = OperationKind::kRead;
  std::string key;
  uint64_t expected_version = 0;  // Updates; 0 = the row must be absent.
  std::string value;              // Compare-and-set: the new value.
  uint64_t invoke_time = 0;
  uint64_t response_time = kNeverReturned;
  Outcome outcome = Outcome::kUnknown;
  uint64_t result_version = 0;  // Read kOk: the row's version. Compare-and-set kOk: the new one.
  std::string result_value;     // Read kOk.
  bool from_scan = false;       // A read that stands for one key of a scan (SplitScans).
};

struct ScannedRow {
  std::string key;
  std::string value;
  uint64_t version = 0;
};

// A successful scan (failed ones carry no information and are not recorded). Not a snapshot:
// each row is checked as a read of its own key somewhere in [invoke_time, response_time].
struct ScanOperation {
  uint64_t id = 0;
  uint64_t client = 0;
  std::string prefix;
  std::string start_after;
  uint32_t limit = 0;
  uint64_t invoke_time = 0;
  uint64_t response_time = 0;
  std::vector<ScannedRow> rows;
};

struct History {
  std::vector<RowOperation> operations;
  std::vector<ScanOperation> scans;
};

// "op 12 client 3 CAS(k1, expected 2, 'c3-7') -> OK version 3 [110, 145]".
std::string DescribeOperation(const RowOperation& operation);
std::string DescribeScan(const ScanOperation& scan);

}  // namespace weft::sim
