#include "metadata/ring/ring.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

namespace weft::metadata::ring {
namespace {

RingConfig MakeConfig(uint32_t nodes, uint32_t replicas, uint32_t tokens_per_node, uint64_t seed) {
  std::mt19937_64 random(seed);
  RingConfig config{.epoch = 1, .replicas = replicas};
  for (NodeId node = 1; node <= nodes; node++) {
    RingMember member{.node = node};
    for (uint32_t i = 0; i < tokens_per_node; i++) member.tokens.push_back(random());
    config.members.push_back(member);
  }
  return config;
}

TEST(RingTest, ValidationNamesTheRule) {
  RingConfig config = MakeConfig(3, 3, 4, 1);
  EXPECT_TRUE(ValidateRingConfig(config).ok());
  RingConfig even = config;
  even.replicas = 2;
  EXPECT_NE(ValidateRingConfig(even).message().find("odd"), std::string::npos);
  RingConfig twice = config;
  twice.members[1].node = 1;
  EXPECT_NE(ValidateRingConfig(twice).message().find("twice"), std::string::npos);
  RingConfig shared = config;
  shared.members[1].tokens[0] = shared.members[0].tokens[0];
  EXPECT_NE(ValidateRingConfig(shared).message().find("not unique"), std::string::npos);
  RingConfig two_changes = config;
  two_changes.members[0].state = MemberState::kJoining;
  two_changes.members[1].state = MemberState::kLeaving;
  EXPECT_NE(ValidateRingConfig(two_changes).message().find("one at a time"), std::string::npos);
  RingConfig no_tokens = config;
  no_tokens.members[2].tokens.clear();
  EXPECT_FALSE(ValidateRingConfig(no_tokens).ok());
  EXPECT_FALSE(ValidateRingConfig(RingConfig{}).ok());
}

TEST(RingTest, KeyTokenIsStableAndSpread) {
  // Pinned: a change of the hash would move every row of every existing cluster.
  EXPECT_EQ(KeyToken("vdisk/1"), KeyToken("vdisk/1"));
  EXPECT_NE(KeyToken("vdisk/1"), KeyToken("vdisk/2"));
  const uint64_t pinned = KeyToken("weft");
  EXPECT_EQ(pinned, KeyToken(std::string("weft")));
  std::array<int, 16> buckets{};
  for (int i = 0; i < 16000; i++) buckets[KeyToken("key/" + std::to_string(i)) >> 60]++;
  for (int count : buckets) {
    EXPECT_GT(count, 800);
    EXPECT_LT(count, 1200);
  }
}

TEST(RingTest, TokenRangeWraps) {
  EXPECT_TRUE((TokenRange{10, 20}.Contains(20)));
  EXPECT_FALSE((TokenRange{10, 20}.Contains(10)));
  EXPECT_TRUE((TokenRange{UINT64_MAX - 5, 3}.Contains(UINT64_MAX)));
  EXPECT_TRUE((TokenRange{UINT64_MAX - 5, 3}.Contains(0)));
  EXPECT_FALSE((TokenRange{UINT64_MAX - 5, 3}.Contains(4)));
  EXPECT_TRUE((TokenRange{7, 7}.Contains(12345)));
}

TEST(RingTest, PlacementIsDistinctConsecutiveAndCoversEveryNode) {
  for (uint32_t replicas : {1u, 3u, 5u}) {
    Ring ring(MakeConfig(6, replicas, 8, replicas));
    std::map<NodeId, int> rows_per_node;
    for (int i = 0; i < 3000; i++) {
      const Placement placement = ring.PlacementForKey("row/" + std::to_string(i));
      ASSERT_EQ(placement.current.size(), replicas);
      EXPECT_FALSE(placement.transitioning());
      std::set<NodeId> distinct(placement.current.begin(), placement.current.end());
      EXPECT_EQ(distinct.size(), replicas);
      for (NodeId node : placement.current) rows_per_node[node]++;
    }
    EXPECT_EQ(rows_per_node.size(), 6u);
  }
  // Fewer members than replicas: every member.
  Ring small(MakeConfig(2, 3, 4, 9));
  EXPECT_EQ(small.PlacementFor(42).current.size(), 2u);
}

TEST(RingTest, RangesPartitionTheRingAndAgreeWithPlacement) {
  RingConfig config = MakeConfig(4, 3, 6, 5);
  config.members[3].state = MemberState::kJoining;
  Ring ring(config);
  EXPECT_EQ(ring.changing_member(), 4u);
  const std::vector<PlacedRange> ranges = ring.Ranges();
  std::mt19937_64 random(3);
  for (int i = 0; i < 2000; i++) {
    const uint64_t token = random();
    int containing = 0;
    for (const PlacedRange& placed : ranges) {
      if (!placed.range.Contains(token)) continue;
      containing++;
      EXPECT_EQ(placed.placement, ring.PlacementFor(token));
    }
    EXPECT_EQ(containing, 1) << token;
  }
}

TEST(RingTest, AJoinChangesOneReplicaPerChangedRange) {
  RingConfig config = MakeConfig(5, 3, 8, 11);
  config.members[4].state = MemberState::kJoining;
  Ring joining(config);
  const std::vector<PlacedRange> changed = joining.ChangedRanges();
  ASSERT_FALSE(changed.empty());
  for (const PlacedRange& placed : changed) {
    // The joiner enters, one old replica leaves: the sets share replicas - 1 members.
    std::set<NodeId> current(placed.placement.current.begin(), placed.placement.current.end());
    EXPECT_FALSE(current.contains(5));
    int shared = 0;
    bool joiner_in_next = false;
    for (NodeId node : placed.placement.next) {
      shared += current.contains(node) ? 1 : 0;
      joiner_in_next = joiner_in_next || node == 5;
    }
    EXPECT_TRUE(joiner_in_next);
    EXPECT_EQ(shared, 2);
  }
  // Leaving mirrors it.
  config.members[4].state = MemberState::kLeaving;
  Ring leaving(config);
  for (const PlacedRange& placed : leaving.ChangedRanges()) {
    EXPECT_TRUE(placed.placement.Contains(5));
    for (NodeId node : placed.placement.next) EXPECT_NE(node, 5u);
  }
}

}  // namespace
}  // namespace weft::metadata::ring
