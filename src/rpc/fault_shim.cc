#include "rpc/fault_shim.h"

namespace weft::rpc {

FaultShim::FaultShim(uint64_t seed) : random_(seed) {}

void FaultShim::SetDropProbability(double probability) {
  WEFT_ASSERT(probability >= 0);
  WEFT_ASSERT(probability <= 1);
  std::lock_guard lock(mutex_);
  drop_probability_ = probability;
}

void FaultShim::SetDelayMs(uint32_t min_ms, uint32_t max_ms) {
  WEFT_ASSERT(min_ms <= max_ms);
  std::lock_guard lock(mutex_);
  delay_ms_min_ = min_ms;
  delay_ms_max_ = max_ms;
}

void FaultShim::Partition(const std::string& from, const std::string& to, bool one_way) {
  std::lock_guard lock(mutex_);
  blocked_.emplace(from, to);
  if (!one_way) blocked_.emplace(to, from);
}

void FaultShim::Partition(const Endpoint& from, const Endpoint& to, bool one_way) {
  Partition(from.ToString(), to.ToString(), one_way);
}

void FaultShim::Heal() {
  std::lock_guard lock(mutex_);
  blocked_.clear();
}

void FaultShim::Reset() {
  std::lock_guard lock(mutex_);
  blocked_.clear();
  drop_probability_ = 0;
  delay_ms_min_ = 0;
  delay_ms_max_ = 0;
}

FaultDecision FaultShim::Decide(std::string_view from, std::string_view to) {
  std::lock_guard lock(mutex_);
  ++stats_.frames_judged;
  if (blocked_.contains({std::string(from), std::string(to)})) {
    ++stats_.frames_dropped_partition;
    return {.drop = true};
  }
  // Draws happen only when a knob is set, so that turning one on does not shift the other's
  // sequence in a test that uses just one.
  if (drop_probability_ > 0 && std::bernoulli_distribution(drop_probability_)(random_)) {
    ++stats_.frames_dropped_random;
    return {.drop = true};
  }
  if (delay_ms_max_ == 0) return {};
  ++stats_.frames_delayed;
  return {.delay_ms =
              std::uniform_int_distribution<uint32_t>(delay_ms_min_, delay_ms_max_)(random_)};
}

FaultShimStats FaultShim::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace weft::rpc
