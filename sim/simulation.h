// The metadata ring's deterministic simulation: N RingNodes (metadata/ring/ring_node.h) in one
// process on virtual time, driven by one seeded PRNG through a faulty network, slow disks that
// lose unsynced writes in crashes, skewed clocks, and a ring configuration service that joins and
// removes members; clients run compare-and-sets, deletes, reads and scans, and the history is
// checked for linearizability (linearizability_checker.h). The same seed gives the same run, so a
// failure is replayed from its seed. docs/simulation.md describes what is simulated and checked.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace weft::sim {

// The faults a run may inject. Each seed draws its own rates between 0 and these maxima, so that
// some seeds are gentle and some are rough.
struct FaultProfile {
  std::string name;
  uint32_t drop_per_mille_max = 0;       // Per message.
  uint32_t duplicate_per_mille_max = 0;  // Per message.
  uint32_t delay_ticks_max = 3;          // Network delay 1..this (reorders messages).
  uint32_t partition_per_100k_max = 0;   // Per tick: a new partition starts.
  uint32_t partition_ticks_max = 0;      // How long one lasts before it heals.
  uint32_t crash_per_100k_max = 0;       // Per live node and tick.
  uint32_t restart_ticks_max = 200;      // A crashed node restarts after 20..this.
  uint32_t clock_jump_per_100k_max = 0;  // Per live node and tick.
  uint32_t clock_jump_ticks_max = 0;     // A jump delivers 50..this ticks at once.
  uint32_t disk_delay_ticks_max = 2;     // A write completes after 0..this ticks (in order).
  uint32_t ring_lag_ticks_max = 30;      // A node learns a new ring after 0..this ticks.
};

// "none", "network", "crash", "all" (the default) and "heavy".
Result<FaultProfile> FaultProfileNamed(std::string_view name);
std::vector<std::string> FaultProfileNames();

struct SimOptions {
  uint64_t seed = 1;
  uint32_t nodes = 3;         // Initial members (3 or 5 in the suites; 1..7 work).
  uint32_t replicas = 0;      // 0: 3, or for five or more nodes 3 or 5 as the seed picks.
  uint32_t clients = 0;       // 0: the seed picks 3..6.
  uint32_t operations = 150;  // Per client.
  uint32_t keys = 6;          // Rows under the shared prefix "row/" (plus one outside it).
  // -1: the seed decides (half of the seeds join one node and remove one during the workload);
  // 0: never; 1: always.
  int membership_changes = -1;
  FaultProfile faults;
  bool scan_absence_checks = true;
  // Writes that fail (OnPersisted with IOError; nothing becomes durable), per mille. They draw
  // from a PRNG stream of their own, so 0 leaves every other decision of a seed unchanged.
  uint32_t write_error_per_mille = 0;
  // Self-test of the simulator only: a crash also loses the node's completed row writes (a disk
  // that lies about syncs), which the ring does not claim to survive, so seeds must fail.
  bool forget_synced_rows_on_crash = false;
  bool verbose = false;  // Trace every event to `trace`.
  std::FILE* trace = stdout;
};

struct SimReport {
  bool ok = true;
  std::string failure;  // Why the seed failed; empty when ok.
  uint64_t ticks = 0;
  uint32_t replicas = 0;
  uint32_t clients = 0;
  uint64_t operations_ok = 0;
  uint64_t operations_not_found = 0;
  uint64_t operations_aborted = 0;
  uint64_t operations_unknown = 0;  // Unavailable, or the client's node crashed.
  uint64_t scans_ok = 0;
  uint64_t messages_sent = 0;
  uint64_t messages_dropped = 0;
  uint64_t crashes = 0;
  uint64_t write_errors = 0;
  uint64_t partitions = 0;
  uint64_t clock_jumps = 0;
  uint64_t joins = 0;
  uint64_t leaves = 0;
  uint64_t checked_operations = 0;
  uint64_t checker_steps = 0;
  // The RingNodes' own counters (RingNodeStats), summed over nodes and incarnations.
  uint64_t paxos_attempts = 0;
  uint64_t stream_keys_repaired = 0;
  uint64_t epoch_mismatches = 0;

  void Add(const SimReport& other);
};

// Runs one seed to its end (or its first failure).
SimReport RunSimulation(const SimOptions& options);

}  // namespace weft::sim
