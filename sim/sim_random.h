// The simulation's one source of randomness: splitmix64, whose output is fixed by its definition
// (unlike std:: distributions, which differ between standard libraries), so a seed replays the
// same run everywhere.
#pragma once

#include <cstdint>

#include "base/assert.h"

namespace weft::sim {

class SimRandom {
 public:
  explicit SimRandom(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // Uniform in [low, high]; the modulo bias is far below anything a simulation notices.
  uint64_t Uniform(uint64_t low, uint64_t high) {
    WEFT_ASSERT(low <= high);
    const uint64_t span = high - low + 1;
    return span == 0 ? Next() : low + Next() % span;
  }

  // True with probability numerator / denominator.
  bool Chance(uint64_t numerator, uint64_t denominator) {
    WEFT_ASSERT(denominator > 0);
    return Uniform(0, denominator - 1) < numerator;
  }

 private:
  uint64_t state_;
};

}  // namespace weft::sim
