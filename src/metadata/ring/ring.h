// Ring: the metadata ring's placement, a pure function of a RingConfig (which the cluster
// configuration carries). docs/protocol/ring.md describes the ring and its changes.
//
// Consistent hashing with virtual tokens: every member owns several 64-bit tokens; a row's key
// hashes to a token (KeyToken), and the row lives on the first `replicas` distinct members met
// walking clockwise from that token (wrapping). replicas is 3 for redundancy factor 2 and 5 for
// redundancy factor 3 (fewer while the ring has fewer members).
//
// Changes move one member at a time. While a member is JOINING or LEAVING the ring has two
// placements: `current` (NORMAL and LEAVING members: the ring before the change) and `next`
// (NORMAL and JOINING members: the ring after it). Paxos then needs a majority of both sets for
// every row whose sets differ (joint consensus), until the change completes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "metadata/paxos/paxos_types.h"

namespace weft::metadata::ring {

using paxos::NodeId;

enum class MemberState : uint8_t { kNormal, kJoining, kLeaving };

struct RingMember {
  NodeId node = 0;
  std::vector<uint64_t> tokens;
  MemberState state = MemberState::kNormal;

  bool operator==(const RingMember&) const = default;
};

struct RingConfig {
  // Grows by one with every change of the ring (a member starts joining or leaving, a change
  // completes). Messages carry it so that a replica can refuse a proposer with an older ring.
  uint64_t epoch = 0;
  uint32_t replicas = 3;  // Odd, 1..paxos::kMaxReplicas.
  std::vector<RingMember> members;

  bool operator==(const RingConfig&) const = default;
};

// InvalidArgument naming the rule: at least one member, distinct nonzero node ids, every member
// has at least one token, tokens distinct across members, replicas odd and 1..kMaxReplicas, at
// most one member not NORMAL, and at least one NORMAL member.
Status ValidateRingConfig(const RingConfig& config);

// The token of a row key: a stable 64-bit hash (the same on every node and every version).
uint64_t KeyToken(std::string_view key);

// An arc of the ring: the tokens met walking clockwise from begin (excluded) to end (included),
// wrapping past 2^64-1 when end < begin. begin == end is the whole ring.
struct TokenRange {
  uint64_t begin = 0;  // Exclusive.
  uint64_t end = 0;    // Inclusive.

  bool Contains(uint64_t token) const;
  bool operator==(const TokenRange&) const = default;
};

struct Placement {
  std::vector<NodeId> current;  // In ring order from the token.
  std::vector<NodeId> next;     // Empty unless a change is under way and the sets differ.

  bool transitioning() const { return !next.empty(); }
  bool Contains(NodeId node) const;
  // current followed by the members of next not in current.
  std::vector<NodeId> All() const;
  bool operator==(const Placement&) const = default;
};

// A range and its placement; ranges cover the ring exactly once.
struct PlacedRange {
  TokenRange range;
  Placement placement;
};

class Ring {
 public:
  // Asserts ValidateRingConfig(config).ok().
  explicit Ring(RingConfig config);

  Placement PlacementFor(uint64_t token) const;
  Placement PlacementForKey(std::string_view key) const { return PlacementFor(KeyToken(key)); }

  // Every arc between consecutive tokens of the union of both rings, with its placement.
  std::vector<PlacedRange> Ranges() const;
  // The ranges whose placement is transitioning (empty when no change is under way).
  std::vector<PlacedRange> ChangedRanges() const;

  // The member that is joining or leaving, or 0.
  NodeId changing_member() const;
  MemberState changing_state() const;
  std::vector<NodeId> members() const;
  const RingConfig& config() const { return config_; }
  uint64_t epoch() const { return config_.epoch; }

 private:
  struct TokenOwner {
    uint64_t token;
    NodeId node;
  };
  static std::vector<NodeId> Walk(const std::vector<TokenOwner>& ring, uint64_t token,
                                  uint32_t replicas);

  RingConfig config_;
  std::vector<TokenOwner> current_;  // Sorted by token.
  std::vector<TokenOwner> next_;     // Sorted by token; equal to current_ without a change.
  bool changing_ = false;
};

}  // namespace weft::metadata::ring
