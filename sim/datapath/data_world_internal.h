// Constants and helpers shared by the data_*.cc files of the world (not a public header).
#pragma once

#include <fmt/format.h>

#include <cstdint>

#include "sim/datapath/data_world.h"

namespace weft::sim::datapath {

// Endpoints: nodes are 0..N-1; the metadata and membership services answer at kControl; client c
// is kClientBase + c.
inline constexpr uint32_t kControl = 1000;
inline constexpr uint32_t kClientBase = 2000;

// Virtual time. A network hop is 1..6 ticks, a disk write 0..6.
inline constexpr uint64_t kSessionTimeoutTicks = 150;
inline constexpr uint64_t kHeartbeatTicks = 10;
inline constexpr uint64_t kRequestTimeoutTicks = 40;
inline constexpr uint64_t kRoleCheckTicks = 20;
inline constexpr uint64_t kRetryTicks = 20;
inline constexpr uint64_t kClientTimeoutTicks = 400;
inline constexpr uint64_t kHealTicksMax = 20'000;
inline constexpr size_t kQueuedRequestsMax = 64;
// A pause holds what its process sent in the ticks before it (unflushed buffers).
inline constexpr uint64_t kUnflushedTicks = 6;
// The OpLog is "full" at this many undrained records: writes go straight to the egroups.
inline constexpr size_t kOplogFullRecords = 8;

template <typename... Args>
void DataWorld::Trace(const char* format, const Args&... args) {
  if (!options_.verbose) return;
  fmt::print("[{:6}] {}\n", now_, fmt::format(fmt::runtime(format), args...));
}

}  // namespace weft::sim::datapath
