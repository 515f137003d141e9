// The linearizability checker: is there an order of a history's operations, each placed at one
// point between its invocation and its response, in which every operation's result is what a
// single-copy row would have answered? Rows are independent (metadata_store.h), so each key is
// checked on its own (linearizability is compositional), against a register model with versions:
// the state is (version, value), version 0 meaning absent; a create gives version 1, an update
// adds one, a delete makes the row absent again (versions restart at 1 after it).
//
// The search is Wing & Gong's with Lowe's memoisation: a depth-first walk over the events in
// time order that linearizes a pending operation whenever the model allows it, remembering every
// (set of linearized operations, state) pair already explored so that no configuration is
// searched twice. Operations with an unknown outcome have their response at infinity: they may be
// linearized (with their effect) anywhere after their invocation, or never.
//
// Scans become reads (SplitScans): each returned row is a read of that key during the scan; with
// `scan_absence`, every key of the history that the scan's range covers but that the scan did not
// return is a read answering NotFound during the scan (the key was absent at some point of it).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sim/history.h"

namespace weft::sim {

struct CheckerOptions {
  bool scan_absence = true;
  // A limit on the search per key (each step visits one event); past it the check is
  // inconclusive rather than slow.
  uint64_t search_steps_max = 50'000'000;
};

struct CheckResult {
  bool ok = true;
  bool inconclusive = false;  // A key's search hit search_steps_max (ok is false too).
  std::string key;            // The first key that failed.
  std::string explanation;    // Why, naming operations; empty when ok.
  uint64_t operations_checked = 0;
  uint64_t search_steps = 0;
};

// Checks every key of the history; stops at the first key that is not linearizable.
CheckResult CheckLinearizable(const History& history, const CheckerOptions& options = {});

// The operations on each key after scans became reads (ids of scan reads are the scan's). Also
// checks the scans' own shape (rows sorted, in range, at most `limit`); a bad scan is returned
// in `error`.
struct SplitHistory {
  std::map<std::string, std::vector<RowOperation>> operations_by_key;
  std::string error;
};
SplitHistory SplitScans(const History& history, bool scan_absence);

// Checks one key's operations (all on `key`).
CheckResult CheckKey(const std::string& key, const std::vector<RowOperation>& operations,
                     const CheckerOptions& options = {});

}  // namespace weft::sim
