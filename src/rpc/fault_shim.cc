#include "rpc/fault_shim.h"

#include <fmt/format.h>

#include <charconv>
#include <vector>

namespace weft::rpc {

namespace {

template <typename Number>
bool ParseNumber(std::string_view text, Number& number) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  return !text.empty() && error == std::errc() && end == text.data() + text.size();
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  while (true) {
    const size_t at = text.find(separator);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return parts;
    text.remove_prefix(at + 1);
  }
}

// One `key=value` item applied to `shim`; false when it does not parse.
bool ApplyItem(std::string_view key, std::string_view value, FaultShim& shim) {
  if (key == "drop") {
    // from_chars for double is in GCC 12's libstdc++; strtod would accept trailing junk.
    double probability = 0;
    if (!ParseNumber(value, probability) || probability < 0 || probability > 1) return false;
    shim.SetDropProbability(probability);
    return true;
  }
  if (key == "delay") {
    const size_t dash = value.find('-');
    uint32_t min_ms = 0;
    uint32_t max_ms = 0;
    if (dash == std::string_view::npos || !ParseNumber(value.substr(0, dash), min_ms) ||
        !ParseNumber(value.substr(dash + 1), max_ms) || min_ms > max_ms) {
      return false;
    }
    shim.SetDelayMs(min_ms, max_ms);
    return true;
  }
  if (key == "partition") {
    const bool two_way = value.find("<>") != std::string_view::npos;
    const size_t at = two_way ? value.find("<>") : value.find('>');
    if (at == std::string_view::npos || at == 0) return false;
    const std::string_view to = value.substr(at + (two_way ? 2 : 1));
    if (to.empty()) return false;
    shim.Partition(std::string(value.substr(0, at)), std::string(to), /*one_way=*/!two_way);
    return true;
  }
  return false;
}

}  // namespace

FaultShim::FaultShim(uint64_t seed) : random_(seed) {}

Result<std::unique_ptr<FaultShim>> FaultShim::FromSpec(std::string_view spec) {
  uint64_t seed = 1;
  std::vector<std::pair<std::string_view, std::string_view>> items;
  for (const std::string_view item : Split(spec, ',')) {
    if (item.empty()) continue;
    const size_t equals = item.find('=');
    if (equals == std::string_view::npos) {
      return Status::InvalidArgument(
          fmt::format("fault shim spec item '{}': expected key=value", item));
    }
    const std::string_view key = item.substr(0, equals);
    const std::string_view value = item.substr(equals + 1);
    if (key == "seed") {
      if (!ParseNumber(value, seed)) {
        return Status::InvalidArgument(fmt::format("fault shim spec item '{}': bad seed", item));
      }
      continue;
    }
    items.emplace_back(key, value);
  }
  auto shim = std::make_unique<FaultShim>(seed);  // The seed first, wherever it was written.
  for (const auto& [key, value] : items) {
    if (!ApplyItem(key, value, *shim)) {
      return Status::InvalidArgument(
          fmt::format("fault shim spec item '{}={}': unknown key or bad value", key, value));
    }
  }
  return shim;
}

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
