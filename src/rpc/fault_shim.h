// FaultShim: an in-process stand-in for netem. RPC clients consult it for every frame they send
// and every response they receive, and drop or delay it; partitions drop everything between
// two nodes, in one direction or both. One shim is shared by the clients of a test (or of a
// daemon started with a test flag); nodes are named by their RPC server endpoints
// ("127.0.0.1:7001"), a client by RpcClientOptions::local_node.
//
// Both directions are judged at the client (requests on the way out, responses on the way in),
// so servers need no identity of their callers. A one-way partition A -> B drops A's requests
// to B and A's responses to B's requests (judged by B's client when they arrive); B's requests
// still reach A and run there. A dropped request never reaches the server; a dropped response
// was executed but never arrives. Either way the caller sees its own TimedOut, so calls through
// a shim should carry a timeout.
//
// Thread-safe (one mutex). Decisions come from one seeded generator, so a single-threaded test
// replays the same faults from the same seed.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "rpc/endpoint.h"

namespace weft::rpc {

struct FaultDecision {
  bool drop = false;
  uint32_t delay_ms = 0;
};

struct FaultShimStats {
  uint64_t frames_judged = 0;
  uint64_t frames_dropped_random = 0;
  uint64_t frames_dropped_partition = 0;
  uint64_t frames_delayed = 0;
};

class FaultShim {
 public:
  explicit FaultShim(uint64_t seed);

  // A shim configured by `spec`, for a daemon's hidden test flag: comma-separated `seed=N`,
  // `drop=P` (0..1), `delay=MIN-MAX` (ms), `partition=A>B` (one-way) or `partition=A<>B`, with
  // nodes named by endpoint ("seed=7,drop=0.01,partition=10.0.0.1:7001>10.0.0.2:7001").
  // Every daemon of a test gets the same spec: each judges its own client's frames.
  // InvalidArgument naming the bad item.
  static Result<std::unique_ptr<FaultShim>> FromSpec(std::string_view spec);

  // Each frame is dropped with this probability (0 = never, the default).
  void SetDropProbability(double probability);
  // Each frame that is not dropped waits a uniform [min_ms, max_ms] first (0, 0 = no delay).
  // Frames delayed differently overtake each other, as on a real network with retransmits.
  void SetDelayMs(uint32_t min_ms, uint32_t max_ms);
  // Drops every frame from `from` to `to`, and from `to` to `from` unless `one_way`.
  void Partition(const std::string& from, const std::string& to, bool one_way);
  void Partition(const Endpoint& from, const Endpoint& to, bool one_way);
  // Removes every partition (drop probability and delay stay).
  void Heal();
  // Heal(), no drops, no delay.
  void Reset();

  // The fate of one frame travelling from node `from` to node `to`.
  FaultDecision Decide(std::string_view from, std::string_view to);

  FaultShimStats stats() const;

 private:
  mutable std::mutex mutex_;
  std::mt19937_64 random_;                                 // Guarded by mutex_.
  double drop_probability_ = 0;                            // Guarded by mutex_.
  uint32_t delay_ms_min_ = 0;                              // Guarded by mutex_.
  uint32_t delay_ms_max_ = 0;                              // Guarded by mutex_.
  std::set<std::pair<std::string, std::string>> blocked_;  // (from, to). Guarded by mutex_.
  FaultShimStats stats_;                                   // Guarded by mutex_.
};

}  // namespace weft::rpc
