// The linearizability checker for the data path model's blocks: each block is a read/write
// register (a write stores a value, a read returns one), initially 0. Blocks are independent, so
// each is checked alone (linearizability is compositional). Values written are unique in a
// history, so a read names the write it saw.
//
// The search is the ring checker's (sim/linearizability_checker.h): Wing & Gong's depth-first walk
// over call and return events in time order with Lowe's memoisation of (linearized set, value).
// A write whose outcome the client never learned (timeout, owner died) has its response at
// infinity: it may take effect once, anywhere after its invocation, or never.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace weft::sim::datapath {

inline constexpr uint64_t kNoResponse = std::numeric_limits<uint64_t>::max();

struct BlockOperation {
  uint64_t id = 0;
  uint64_t client = 0;
  bool is_write = false;
  uint32_t block = 0;
  uint64_t value = 0;  // Write: the value written. Read: the value returned.
  uint64_t invoke_time = 0;
  uint64_t response_time = kNoResponse;  // kNoResponse: a write of unknown outcome.
};

struct RegisterCheckResult {
  bool ok = true;
  uint32_t block = 0;       // The first block that failed.
  std::string explanation;  // Names the operations; empty when ok.
  uint64_t operations_checked = 0;
};

// Checks every block of `operations`; stops at the first that is not linearizable. Reads without
// an answer must not be passed (they constrain nothing); a read must have a response.
RegisterCheckResult CheckRegisters(const std::vector<BlockOperation>& operations);

// "op 7 client 2 write(b3, 1002) [10, 25]".
std::string DescribeBlockOperation(const BlockOperation& operation);

}  // namespace weft::sim::datapath
