#include "sim/linearizability_checker.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <unordered_set>

#include "base/assert.h"

namespace weft::sim {

namespace {

// The register's state: version 0 is the absent row; value indexes the key's interned values.
struct ModelState {
  uint64_t version = 0;
  int32_t value = -1;

  bool operator==(const ModelState&) const = default;
};

// A configuration of the search: which operations are linearized, and the state they left.
struct Configuration {
  std::vector<uint64_t> linearized;  // A bitset over the key's operations.
  ModelState state;

  bool operator==(const Configuration&) const = default;
};

struct ConfigurationHash {
  size_t operator()(const Configuration& configuration) const {
    uint64_t hash = configuration.state.version * 0x9e3779b97f4a7c15ULL;
    hash ^= static_cast<uint64_t>(configuration.state.value) + 0x632be59bd9b4e019ULL;
    for (uint64_t word : configuration.linearized) {
      hash = (hash ^ word) * 0xff51afd7ed558ccdULL;
      hash ^= hash >> 32;
    }
    return hash;
  }
};

// One event of the search's doubly linked list: an operation's call or its return.
struct Entry {
  int32_t operation = -1;  // -1 for the list's head.
  bool is_return = false;
  uint64_t time = 0;
  int32_t match = -1;  // A call's return entry and a return's call entry.
  int32_t previous = -1;
  int32_t next = -1;
};

std::string Malformed(const RowOperation& operation) {
  const bool read = operation.kind == OperationKind::kRead;
  if (operation.response_time != kNeverReturned && operation.response_time < operation.invoke_time)
    return "responds before its invocation";
  if (read && operation.outcome == Outcome::kAborted) return "a read cannot abort";
  if (!read && operation.outcome == Outcome::kNotFound) return "an update cannot answer NotFound";
  if (read && operation.outcome == Outcome::kOk && operation.result_version == 0)
    return "a read answered version 0";
  if (operation.kind == OperationKind::kCompareAndDelete && operation.expected_version == 0)
    return "a delete must expect a version";
  if ((operation.outcome == Outcome::kUnknown) != (operation.response_time == kNeverReturned))
    return "an unknown outcome goes with no response (and only it)";
  return "";
}

class KeySearch {
 public:
  KeySearch(const std::string& key, const std::vector<RowOperation>& operations,
            const CheckerOptions& options)
      : key_(key), options_(options) {
    for (const RowOperation& operation : operations) {
      // A read that never answered constrains nothing.
      if (operation.kind == OperationKind::kRead && operation.outcome == Outcome::kUnknown) {
        continue;
      }
      operations_.push_back(operation);
    }
    for (const RowOperation& operation : operations_) {
      value_index_.push_back(Intern(operation.value));
      result_index_.push_back(Intern(operation.result_value));
    }
  }

  CheckResult Run() {
    CheckResult result;
    result.key = key_;
    result.operations_checked = operations_.size();
    for (const RowOperation& operation : operations_) {
      WEFT_ASSERT(operation.key == key_);
      const std::string problem = Malformed(operation);
      if (!problem.empty()) {
        result.ok = false;
        result.explanation =
            fmt::format("malformed operation ({}): {}", problem, DescribeOperation(operation));
        return result;
      }
    }
    BuildList();
    Search(result);
    return result;
  }

 private:
  int32_t Intern(const std::string& value) {
    auto [it, inserted] = values_.emplace(value, static_cast<int32_t>(values_.size()));
    return it->second;
  }

  // The model: the state after `operation` from `state`, or false if it cannot happen there.
  bool Apply(const ModelState& state, size_t index, ModelState* next) const {
    const RowOperation& operation = operations_[index];
    const bool matches = state.version == operation.expected_version;
    switch (operation.kind) {
      case OperationKind::kRead:
        *next = state;
        if (operation.outcome == Outcome::kNotFound) return state.version == 0;
        return state.version == operation.result_version && state.value == result_index_[index];
      case OperationKind::kCompareAndSet:
        if (operation.outcome == Outcome::kAborted) {
          *next = state;
          return !matches;
        }
        if (operation.outcome == Outcome::kOk &&
            operation.result_version != operation.expected_version + 1) {
          return false;  // A version skip: no state gives it.
        }
        *next = ModelState{operation.expected_version + 1, value_index_[index]};
        return matches;
      case OperationKind::kCompareAndDelete:
        if (operation.outcome == Outcome::kAborted) {
          *next = state;
          return !matches;
        }
        *next = ModelState{};
        return matches && state.version != 0;
    }
    return false;
  }

  void BuildList() {
    entries_.push_back(Entry{});  // The head.
    std::vector<Entry> events;
    for (size_t i = 0; i < operations_.size(); i++) {
      const auto operation = static_cast<int32_t>(i);
      events.push_back(Entry{.operation = operation, .time = operations_[i].invoke_time});
      events.push_back(
          Entry{.operation = operation, .is_return = true, .time = operations_[i].response_time});
    }
    // At equal times calls come first: operations that touch the same instant overlap.
    std::stable_sort(events.begin(), events.end(), [](const Entry& a, const Entry& b) {
      return a.time != b.time ? a.time < b.time : (!a.is_return && b.is_return);
    });
    std::vector<int32_t> call_of(operations_.size(), -1);
    for (Entry& event : events) {
      const auto index = static_cast<int32_t>(entries_.size());
      event.previous = index - 1;
      event.next = -1;
      entries_.back().next = index;
      if (!event.is_return) {
        call_of[event.operation] = index;
      } else {
        event.match = call_of[event.operation];
        entries_[event.match].match = index;
      }
      entries_.push_back(event);
    }
  }

  void Unlink(int32_t index) {
    Entry& entry = entries_[index];
    entries_[entry.previous].next = entry.next;
    if (entry.next != -1) entries_[entry.next].previous = entry.previous;
  }

  void Relink(int32_t index) {
    Entry& entry = entries_[index];
    entries_[entry.previous].next = index;
    if (entry.next != -1) entries_[entry.next].previous = index;
  }

  // Removes a call and its return from the list (the operation is linearized).
  void Lift(int32_t call) {
    Unlink(call);
    Unlink(entries_[call].match);
  }

  // Undoes Lift, in reverse order.
  void Unlift(int32_t call) {
    Relink(entries_[call].match);
    Relink(call);
  }

  void Search(CheckResult& result) {
    struct Frame {
      int32_t call;
      ModelState state_before;
    };
    std::vector<Frame> stack;
    std::unordered_set<Configuration, ConfigurationHash> explored;
    Configuration current{std::vector<uint64_t>((operations_.size() + 63) / 64, 0), ModelState{}};
    int32_t entry = entries_[0].next;
    while (entries_[0].next != -1) {
      if (++result.search_steps > options_.search_steps_max) {
        result.ok = false;
        result.inconclusive = true;
        result.explanation = fmt::format("search gave up after {} steps over {} operations",
                                         result.search_steps - 1, operations_.size());
        return;
      }
      const Entry& event = entries_[entry];
      const size_t operation = static_cast<size_t>(event.operation);
      if (event.is_return && operations_[operation].response_time == kNeverReturned) {
        // Only calls precede it, so every operation that returned is linearized; the rest may
        // never have taken effect.
        return;
      }
      if (!event.is_return) {
        ModelState next;
        if (Apply(current.state, operation, &next)) {
          Configuration candidate = current;
          candidate.linearized[operation / 64] |= uint64_t{1} << (operation % 64);
          candidate.state = next;
          if (explored.insert(candidate).second) {
            stack.push_back(Frame{entry, current.state});
            current = std::move(candidate);
            Lift(entry);
            entry = entries_[0].next;
            continue;
          }
        }
        entry = event.next;
        continue;
      }
      // A return whose operation could not be linearized before it: backtrack.
      RememberDeepest(stack, current.state, operation);
      if (stack.empty()) break;
      const Frame frame = stack.back();
      stack.pop_back();
      const size_t undone = static_cast<size_t>(entries_[frame.call].operation);
      current.linearized[undone / 64] &= ~(uint64_t{1} << (undone % 64));
      current.state = frame.state_before;
      Unlift(frame.call);
      entry = entries_[frame.call].next;
    }
    if (entries_[0].next == -1) return;  // Everything linearized.
    result.ok = false;
    result.explanation = Explain();
  }

  // Keeps the deepest dead end for the explanation: the most operations linearized, and the
  // operation that could not follow them.
  template <typename Stack>
  void RememberDeepest(const Stack& stack, const ModelState& state, size_t stuck) {
    if (stuck_operation_ != kNone && stack.size() <= deepest_order_.size()) return;
    deepest_order_.clear();
    for (const auto& frame : stack) {
      deepest_order_.push_back(static_cast<size_t>(entries_[frame.call].operation));
    }
    deepest_state_ = state;
    stuck_operation_ = stuck;
  }

  std::string DescribeState(const ModelState& state) const {
    if (state.version == 0) return "absent";
    for (const auto& [value, index] : values_) {
      if (index == state.value) return fmt::format("version {} '{}'", state.version, value);
    }
    return fmt::format("version {}", state.version);
  }

  std::string Explain() const {
    constexpr size_t kShownMax = 6;
    std::string text = fmt::format(
        "key '{}' is not linearizable: at best {} of its {} operations linearize, leaving the row "
        "{}",
        key_, deepest_order_.size(), operations_.size(), DescribeState(deepest_state_));
    const size_t first = deepest_order_.size() > kShownMax ? deepest_order_.size() - kShownMax : 0;
    if (!deepest_order_.empty())
      text += fmt::format(" after (the last {}):", deepest_order_.size() - first);
    for (size_t i = first; i < deepest_order_.size(); i++) {
      text += fmt::format("\n    {}", DescribeOperation(operations_[deepest_order_[i]]));
    }
    text +=
        fmt::format("\n  and then this operation cannot take effect before its response:\n    {}",
                    DescribeOperation(operations_[stuck_operation_]));
    return text;
  }

  static constexpr size_t kNone = static_cast<size_t>(-1);

  const std::string& key_;
  const CheckerOptions& options_;
  std::vector<RowOperation> operations_;
  std::map<std::string, int32_t> values_;
  std::vector<int32_t> value_index_;
  std::vector<int32_t> result_index_;
  std::vector<Entry> entries_;
  std::vector<size_t> deepest_order_;
  ModelState deepest_state_;
  size_t stuck_operation_ = kNone;
};

std::string CheckScanShape(const ScanOperation& scan) {
  if (scan.rows.size() > scan.limit) return "more rows than the limit";
  for (size_t i = 0; i < scan.rows.size(); i++) {
    const ScannedRow& row = scan.rows[i];
    if (!row.key.starts_with(scan.prefix)) return fmt::format("row {} outside the prefix", row.key);
    if (row.key <= scan.start_after) return fmt::format("row {} not after start_after", row.key);
    if (i > 0 && row.key <= scan.rows[i - 1].key) return "rows out of order or repeated";
    if (row.version == 0) return fmt::format("row {} with version 0", row.key);
  }
  return "";
}

}  // namespace

SplitHistory SplitScans(const History& history, bool scan_absence) {
  SplitHistory split;
  for (const RowOperation& operation : history.operations) {
    split.operations_by_key[operation.key].push_back(operation);
  }
  std::set<std::string> keys;
  for (const auto& [key, operations] : split.operations_by_key) keys.insert(key);
  for (const ScanOperation& scan : history.scans) {
    const std::string problem = CheckScanShape(scan);
    if (!problem.empty() && split.error.empty()) {
      split.error = fmt::format("bad scan ({}): {}", problem, DescribeScan(scan));
    }
    RowOperation read{.id = scan.id,
                      .client = scan.client,
                      .kind = OperationKind::kRead,
                      .invoke_time = scan.invoke_time,
                      .response_time = scan.response_time,
                      .from_scan = true};
    std::set<std::string> returned;
    for (const ScannedRow& row : scan.rows) {
      read.key = row.key;
      read.outcome = Outcome::kOk;
      read.result_version = row.version;
      read.result_value = row.value;
      split.operations_by_key[row.key].push_back(read);
      returned.insert(row.key);
    }
    if (!scan_absence) continue;
    // A full page says nothing about the keys past its last row.
    const bool full = scan.rows.size() >= scan.limit && !scan.rows.empty();
    for (const std::string& key : keys) {
      if (!key.starts_with(scan.prefix) || key <= scan.start_after) continue;
      if (full && key >= scan.rows.back().key) continue;
      if (returned.contains(key)) continue;
      read.key = key;
      read.outcome = Outcome::kNotFound;
      read.result_version = 0;
      read.result_value.clear();
      split.operations_by_key[key].push_back(read);
    }
  }
  return split;
}

CheckResult CheckKey(const std::string& key, const std::vector<RowOperation>& operations,
                     const CheckerOptions& options) {
  KeySearch search(key, operations, options);
  return search.Run();
}

CheckResult CheckLinearizable(const History& history, const CheckerOptions& options) {
  const SplitHistory split = SplitScans(history, options.scan_absence);
  CheckResult total;
  if (!split.error.empty()) {
    total.ok = false;
    total.explanation = split.error;
    return total;
  }
  for (const auto& [key, operations] : split.operations_by_key) {
    CheckResult result = CheckKey(key, operations, options);
    total.operations_checked += result.operations_checked;
    total.search_steps += result.search_steps;
    if (!result.ok) {
      result.operations_checked = total.operations_checked;
      result.search_steps = total.search_steps;
      return result;
    }
  }
  return total;
}

}  // namespace weft::sim
