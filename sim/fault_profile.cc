// The named fault profiles (docs/simulation.md lists them) and the report's sums.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "sim/simulation.h"

namespace weft::sim {

namespace {

FaultProfile NetworkFaults(FaultProfile profile) {
  profile.drop_per_mille_max = 100;
  profile.duplicate_per_mille_max = 100;
  profile.delay_ticks_max = 6;
  profile.partition_per_100k_max = 400;
  profile.partition_ticks_max = 300;
  return profile;
}

FaultProfile NodeFaults(FaultProfile profile) {
  profile.crash_per_100k_max = 100;
  profile.clock_jump_per_100k_max = 40;
  profile.clock_jump_ticks_max = 500;
  profile.disk_delay_ticks_max = 6;
  profile.ring_lag_ticks_max = 80;
  return profile;
}

}  // namespace

Result<FaultProfile> FaultProfileNamed(std::string_view name) {
  FaultProfile profile;
  profile.name = std::string(name);
  if (name == "none") return profile;
  if (name == "network") return NetworkFaults(profile);
  if (name == "crash") return NodeFaults(profile);
  if (name == "all") return NodeFaults(NetworkFaults(profile));
  if (name == "heavy") {
    profile = NodeFaults(NetworkFaults(profile));
    profile.drop_per_mille_max = 250;
    profile.duplicate_per_mille_max = 200;
    profile.delay_ticks_max = 6;  // Longer round trips than attempt_ticks starve every attempt.
    profile.partition_per_100k_max = 1000;
    profile.partition_ticks_max = 600;
    profile.crash_per_100k_max = 250;
    profile.clock_jump_per_100k_max = 100;
    profile.clock_jump_ticks_max = 1000;
    return profile;
  }
  return Status::InvalidArgument(fmt::format("unknown fault profile '{}' (one of: {})", name,
                                             fmt::join(FaultProfileNames(), ", ")));
}

std::vector<std::string> FaultProfileNames() {
  return {"none", "network", "crash", "all", "heavy"};
}

void SimReport::Add(const SimReport& other) {
  ticks += other.ticks;
  operations_ok += other.operations_ok;
  operations_not_found += other.operations_not_found;
  operations_aborted += other.operations_aborted;
  operations_unknown += other.operations_unknown;
  scans_ok += other.scans_ok;
  messages_sent += other.messages_sent;
  messages_dropped += other.messages_dropped;
  crashes += other.crashes;
  write_errors += other.write_errors;
  partitions += other.partitions;
  clock_jumps += other.clock_jumps;
  joins += other.joins;
  leaves += other.leaves;
  checked_operations += other.checked_operations;
  checker_steps += other.checker_steps;
  paxos_attempts += other.paxos_attempts;
  stream_keys_repaired += other.stream_keys_repaired;
  epoch_mismatches += other.epoch_mismatches;
}

}  // namespace weft::sim
