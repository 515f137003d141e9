#include "sim/history.h"

#include <fmt/format.h>

namespace weft::sim {

namespace {

std::string DescribeTimes(uint64_t invoke_time, uint64_t response_time) {
  if (response_time == kNeverReturned) return fmt::format("[{}, never]", invoke_time);
  return fmt::format("[{}, {}]", invoke_time, response_time);
}

std::string DescribeResult(const RowOperation& operation) {
  switch (operation.outcome) {
    case Outcome::kOk:
      if (operation.kind == OperationKind::kRead) {
        return fmt::format("OK version {} '{}'", operation.result_version, operation.result_value);
      }
      if (operation.kind == OperationKind::kCompareAndSet) {
        return fmt::format("OK version {}", operation.result_version);
      }
      return "OK";
    case Outcome::kNotFound:
      return "NotFound";
    case Outcome::kAborted:
      return "Aborted";
    case Outcome::kUnknown:
      return "unknown";
  }
  return "?";
}

}  // namespace

std::string DescribeOperation(const RowOperation& operation) {
  std::string call;
  switch (operation.kind) {
    case OperationKind::kRead:
      call = fmt::format("{}({})", operation.from_scan ? "Scan row" : "Get", operation.key);
      break;
    case OperationKind::kCompareAndSet:
      call = fmt::format("CAS({}, expected {}, '{}')", operation.key, operation.expected_version,
                         operation.value);
      break;
    case OperationKind::kCompareAndDelete:
      call = fmt::format("CAD({}, expected {})", operation.key, operation.expected_version);
      break;
  }
  return fmt::format("op {} client {} {} -> {} {}", operation.id, operation.client, call,
                     DescribeResult(operation),
                     DescribeTimes(operation.invoke_time, operation.response_time));
}

std::string DescribeScan(const ScanOperation& scan) {
  std::string rows;
  for (const ScannedRow& row : scan.rows) {
    rows += fmt::format("{}{} v{} '{}'", rows.empty() ? "" : ", ", row.key, row.version, row.value);
  }
  return fmt::format("op {} client {} Scan('{}', after '{}', limit {}) -> [{}] {}", scan.id,
                     scan.client, scan.prefix, scan.start_after, scan.limit, rows,
                     DescribeTimes(scan.invoke_time, scan.response_time));
}

}  // namespace weft::sim
