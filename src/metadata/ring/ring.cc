#include "metadata/ring/ring.h"

#include <fmt/format.h>
#include <isa-l/crc64.h>

#include <algorithm>
#include <set>

#include "base/assert.h"
#include "metadata/paxos/proposer.h"

namespace weft::metadata::ring {

namespace {

bool InCurrent(MemberState state) { return state != MemberState::kJoining; }
bool InNext(MemberState state) { return state != MemberState::kLeaving; }

}  // namespace

Status ValidateRingConfig(const RingConfig& config) {
  if (config.members.empty()) return Status::InvalidArgument("ring: no members");
  if (config.replicas == 0 || config.replicas % 2 == 0 || config.replicas > paxos::kMaxReplicas) {
    return Status::InvalidArgument(fmt::format("ring: replicas {} must be odd and 1..{}",
                                               config.replicas, paxos::kMaxReplicas));
  }
  std::set<NodeId> nodes;
  std::set<uint64_t> tokens;
  size_t changing = 0;
  size_t normal = 0;
  for (const RingMember& member : config.members) {
    if (member.node == 0) return Status::InvalidArgument("ring: node id 0");
    if (!nodes.insert(member.node).second) {
      return Status::InvalidArgument(fmt::format("ring: node {} listed twice", member.node));
    }
    if (member.tokens.empty()) {
      return Status::InvalidArgument(fmt::format("ring: node {} has no tokens", member.node));
    }
    for (uint64_t token : member.tokens) {
      if (!tokens.insert(token).second) {
        return Status::InvalidArgument(
            fmt::format("ring: token {:#x} of node {} is not unique", token, member.node));
      }
    }
    if (member.state == MemberState::kNormal) {
      normal++;
    } else {
      changing++;
    }
  }
  if (changing > 1) {
    return Status::InvalidArgument(
        fmt::format("ring: {} members are joining or leaving; changes go one at a time", changing));
  }
  if (normal == 0) return Status::InvalidArgument("ring: no NORMAL member");
  return Status::Ok();
}

uint64_t KeyToken(std::string_view key) {
  // crc64 spreads keys well but is linear; the finaliser mixes its bits so that nearby keys
  // (vdisk/1/..., vdisk/2/...) land far apart.
  uint64_t z = crc64_ecma_refl(0, reinterpret_cast<const uint8_t*>(key.data()), key.size());
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

bool TokenRange::Contains(uint64_t token) const {
  if (begin == end) return true;
  if (begin < end) return token > begin && token <= end;
  return token > begin || token <= end;  // Wraps past the top.
}

bool Placement::Contains(NodeId node) const {
  return std::find(current.begin(), current.end(), node) != current.end() ||
         std::find(next.begin(), next.end(), node) != next.end();
}

std::vector<NodeId> Placement::All() const {
  std::vector<NodeId> all = current;
  for (NodeId node : next) {
    if (std::find(all.begin(), all.end(), node) == all.end()) all.push_back(node);
  }
  return all;
}

Ring::Ring(RingConfig config) : config_(std::move(config)) {
  const Status valid = ValidateRingConfig(config_);
  WEFT_ASSERT(valid.ok());
  for (const RingMember& member : config_.members) {
    if (member.state != MemberState::kNormal) changing_ = true;
    for (uint64_t token : member.tokens) {
      if (InCurrent(member.state)) current_.push_back({token, member.node});
      if (InNext(member.state)) next_.push_back({token, member.node});
    }
  }
  auto by_token = [](const TokenOwner& a, const TokenOwner& b) { return a.token < b.token; };
  std::sort(current_.begin(), current_.end(), by_token);
  std::sort(next_.begin(), next_.end(), by_token);
  WEFT_ASSERT(!current_.empty() && !next_.empty());
}

std::vector<NodeId> Ring::Walk(const std::vector<TokenOwner>& ring, uint64_t token,
                               uint32_t replicas) {
  WEFT_ASSERT(!ring.empty());
  auto start =
      std::lower_bound(ring.begin(), ring.end(), token,
                       [](const TokenOwner& owner, uint64_t t) { return owner.token < t; });
  size_t index = static_cast<size_t>(start - ring.begin()) % ring.size();
  std::vector<NodeId> nodes;
  for (size_t step = 0; step < ring.size() && nodes.size() < replicas; step++) {
    const NodeId node = ring[(index + step) % ring.size()].node;
    if (std::find(nodes.begin(), nodes.end(), node) == nodes.end()) nodes.push_back(node);
  }
  WEFT_ASSERT(!nodes.empty());
  return nodes;
}

Placement Ring::PlacementFor(uint64_t token) const {
  Placement placement;
  placement.current = Walk(current_, token, config_.replicas);
  if (changing_) {
    std::vector<NodeId> next = Walk(next_, token, config_.replicas);
    std::vector<NodeId> a = placement.current;
    std::vector<NodeId> b = next;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a != b) placement.next = std::move(next);
  }
  return placement;
}

std::vector<PlacedRange> Ring::Ranges() const {
  std::vector<uint64_t> bounds;
  for (const TokenOwner& owner : current_) bounds.push_back(owner.token);
  for (const TokenOwner& owner : next_) bounds.push_back(owner.token);
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  std::vector<PlacedRange> ranges;
  ranges.reserve(bounds.size());
  for (size_t i = 0; i < bounds.size(); i++) {
    const uint64_t begin = bounds[(i + bounds.size() - 1) % bounds.size()];
    ranges.push_back(PlacedRange{.range = TokenRange{.begin = begin, .end = bounds[i]},
                                 .placement = PlacementFor(bounds[i])});
  }
  return ranges;
}

std::vector<PlacedRange> Ring::ChangedRanges() const {
  std::vector<PlacedRange> changed;
  if (!changing_) return changed;
  for (PlacedRange& placed : Ranges()) {
    if (placed.placement.transitioning()) changed.push_back(std::move(placed));
  }
  return changed;
}

NodeId Ring::changing_member() const {
  for (const RingMember& member : config_.members) {
    if (member.state != MemberState::kNormal) return member.node;
  }
  return 0;
}

MemberState Ring::changing_state() const {
  for (const RingMember& member : config_.members) {
    if (member.state != MemberState::kNormal) return member.state;
  }
  return MemberState::kNormal;
}

std::vector<NodeId> Ring::members() const {
  std::vector<NodeId> nodes;
  for (const RingMember& member : config_.members) nodes.push_back(member.node);
  std::sort(nodes.begin(), nodes.end());
  return nodes;
}

}  // namespace weft::metadata::ring
