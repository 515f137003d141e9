#include "sim/datapath/register_checker.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <unordered_set>

#include "base/assert.h"

namespace weft::sim::datapath {

namespace {

// A configuration of the search: the linearized operations (a bitset) and the register's value.
struct Configuration {
  std::vector<uint64_t> linearized;
  uint64_t value = 0;

  bool operator==(const Configuration&) const = default;
};

struct ConfigurationHash {
  size_t operator()(const Configuration& configuration) const {
    uint64_t hash = configuration.value * 0x9e3779b97f4a7c15ULL;
    for (uint64_t word : configuration.linearized) {
      hash = (hash ^ word) * 0xff51afd7ed558ccdULL;
      hash ^= hash >> 32;
    }
    return hash;
  }
};

// One event of the search's doubly linked list: a call or a return; index 0 is the head.
struct Entry {
  int32_t operation = -1;
  bool is_return = false;
  uint64_t time = 0;
  int32_t match = -1;
  int32_t previous = -1;
  int32_t next = -1;
};

class BlockSearch {
 public:
  explicit BlockSearch(const std::vector<BlockOperation>& operations) : operations_(operations) {}

  // Returns an explanation, empty when the block's operations linearize.
  std::string Run() {
    BuildList();
    std::vector<std::pair<int32_t, uint64_t>> stack;  // (call entry, value before it).
    std::unordered_set<Configuration, ConfigurationHash> explored;
    Configuration current{std::vector<uint64_t>((operations_.size() + 63) / 64, 0), 0};
    int32_t entry = entries_[0].next;
    while (entries_[0].next != -1) {
      const Entry& event = entries_[entry];
      const auto operation = static_cast<size_t>(event.operation);
      if (event.is_return && operations_[operation].response_time == kNoResponse) return "";
      if (!event.is_return) {
        const BlockOperation& candidate_operation = operations_[operation];
        const bool allowed =
            candidate_operation.is_write || candidate_operation.value == current.value;
        if (allowed) {
          Configuration candidate = current;
          candidate.linearized[operation / 64] |= uint64_t{1} << (operation % 64);
          if (candidate_operation.is_write) candidate.value = candidate_operation.value;
          if (explored.insert(candidate).second) {
            stack.emplace_back(entry, current.value);
            current = std::move(candidate);
            Lift(entry);
            entry = entries_[0].next;
            continue;
          }
        }
        entry = event.next;
        continue;
      }
      RememberDeepest(stack, current.value, operation);
      if (stack.empty()) break;
      const auto [call, value_before] = stack.back();
      stack.pop_back();
      const auto undone = static_cast<size_t>(entries_[call].operation);
      current.linearized[undone / 64] &= ~(uint64_t{1} << (undone % 64));
      current.value = value_before;
      Unlift(call);
      entry = entries_[call].next;
    }
    if (entries_[0].next == -1) return "";
    return Explain();
  }

 private:
  void BuildList() {
    entries_.push_back(Entry{});
    std::vector<Entry> events;
    for (size_t i = 0; i < operations_.size(); i++) {
      const auto operation = static_cast<int32_t>(i);
      WEFT_ASSERT(operations_[i].response_time >= operations_[i].invoke_time);
      WEFT_ASSERT(operations_[i].is_write || operations_[i].response_time != kNoResponse);
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
    const Entry& entry = entries_[index];
    entries_[entry.previous].next = entry.next;
    if (entry.next != -1) entries_[entry.next].previous = entry.previous;
  }

  void Relink(int32_t index) {
    const Entry& entry = entries_[index];
    entries_[entry.previous].next = index;
    if (entry.next != -1) entries_[entry.next].previous = index;
  }

  void Lift(int32_t call) {
    Unlink(call);
    Unlink(entries_[call].match);
  }

  void Unlift(int32_t call) {
    Relink(entries_[call].match);
    Relink(call);
  }

  void RememberDeepest(const std::vector<std::pair<int32_t, uint64_t>>& stack, uint64_t value,
                       size_t stuck) {
    if (stuck_ != kNone && stack.size() <= deepest_.size()) return;
    deepest_.clear();
    for (const auto& [call, before] : stack) {
      deepest_.push_back(static_cast<size_t>(entries_[call].operation));
    }
    deepest_value_ = value;
    stuck_ = stuck;
  }

  std::string Explain() const {
    constexpr size_t kShownMax = 6;
    std::string text = fmt::format(
        "block {} is not linearizable: at best {} of its {} operations linearize, leaving value {}",
        operations_[0].block, deepest_.size(), operations_.size(), deepest_value_);
    const size_t first = deepest_.size() > kShownMax ? deepest_.size() - kShownMax : 0;
    if (!deepest_.empty()) text += fmt::format(" after (the last {}):", deepest_.size() - first);
    for (size_t i = first; i < deepest_.size(); i++) {
      text += "\n    " + DescribeBlockOperation(operations_[deepest_[i]]);
    }
    return text + "\n  and then this operation cannot take effect before its response:\n    " +
           DescribeBlockOperation(operations_[stuck_]);
  }

  static constexpr size_t kNone = static_cast<size_t>(-1);

  const std::vector<BlockOperation>& operations_;
  std::vector<Entry> entries_;
  std::vector<size_t> deepest_;
  uint64_t deepest_value_ = 0;
  size_t stuck_ = kNone;
};

}  // namespace

std::string DescribeBlockOperation(const BlockOperation& operation) {
  const std::string response = operation.response_time == kNoResponse
                                   ? std::string("never")
                                   : fmt::format("{}", operation.response_time);
  return fmt::format("op {} client {} {}(b{}, {}) [{}, {}]", operation.id, operation.client,
                     operation.is_write ? "write" : "read", operation.block, operation.value,
                     operation.invoke_time, response);
}

RegisterCheckResult CheckRegisters(const std::vector<BlockOperation>& operations) {
  std::map<uint32_t, std::vector<BlockOperation>> by_block;
  for (const BlockOperation& operation : operations) {
    by_block[operation.block].push_back(operation);
  }
  RegisterCheckResult result;
  for (const auto& [block, block_operations] : by_block) {
    result.operations_checked += block_operations.size();
    BlockSearch search(block_operations);
    std::string explanation = search.Run();
    if (!explanation.empty()) {
      result.ok = false;
      result.block = block;
      result.explanation = std::move(explanation);
      return result;
    }
  }
  return result;
}

}  // namespace weft::sim::datapath
