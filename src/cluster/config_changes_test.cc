#include "cluster/config_changes.h"

#include <gtest/gtest.h>

#include "cluster/cluster_config.h"

namespace weft::cluster {
namespace {

ClusterConfig ThreeNodes() {
  ClusterConfig config;
  config.set_cluster_id("0b7f1a52-3c5e-4b8e-9f39-2a5d7c1e9b10");
  config.set_name("test");
  config.set_redundancy_factor(2);
  config.set_ring_epoch(1);
  for (uint32_t id = 1; id <= 3; id++) {
    NodeConfig* node = config.add_nodes();
    node->set_node_id(id);
    node->set_rpc_address("127.0.0.1:" + std::to_string(7100 + id));
    node->set_admin_address("127.0.0.1:" + std::to_string(9440 + id));
    for (uint64_t token : MakeRingTokens(id, 4, 1, AllRingTokens(config))) {
      node->add_ring_tokens(token);
    }
  }
  return config;
}

TEST(ConfigChangesTest, JoinThenComplete) {
  const ClusterConfig start = ThreeNodes();
  ASSERT_TRUE(ValidateClusterConfig(start).ok());
  Result<ClusterConfig> joining = AddJoiningNode(start, 4, "127.0.0.1:7104", "127.0.0.1:9444");
  ASSERT_TRUE(joining.ok()) << joining.status().ToString();
  EXPECT_EQ(joining->ring_epoch(), 2u);
  EXPECT_EQ(ChangingNode(*joining), 4u);
  EXPECT_EQ(joining->nodes(3).ring_state(), RING_STATE_JOINING);
  EXPECT_EQ(joining->nodes(3).ring_tokens_size(), static_cast<int>(kDefaultRingTokensPerNode));
  // One change at a time; a taken id is named as such.
  EXPECT_EQ(AddJoiningNode(*joining, 5, "127.0.0.1:7105", "127.0.0.1:9445").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(AddJoiningNode(*joining, 4, "127.0.0.1:7106", "127.0.0.1:9446").status().code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(MarkNodeLeaving(*joining, 1).status().code(), StatusCode::kInvalidArgument);
  // Only the change of the epoch the stream finished completes.
  EXPECT_EQ(CompleteRingChange(*joining, 1).status().code(), StatusCode::kAborted);
  Result<ClusterConfig> joined = CompleteRingChange(*joining, 2);
  ASSERT_TRUE(joined.ok());
  EXPECT_EQ(joined->ring_epoch(), 3u);
  EXPECT_EQ(ChangingNode(*joined), 0u);
  EXPECT_EQ(joined->nodes_size(), 4);
  EXPECT_EQ(CompleteRingChange(*joined, 2).status().code(), StatusCode::kAborted);
  // A duplicate address is refused by validation.
  EXPECT_EQ(AddJoiningNode(start, 4, "127.0.0.1:7101", "127.0.0.1:9444").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(ConfigChangesTest, LeaveThenComplete) {
  Result<ClusterConfig> leaving = MarkNodeLeaving(ThreeNodes(), 2);
  ASSERT_TRUE(leaving.ok());
  EXPECT_EQ(leaving->ring_epoch(), 2u);
  EXPECT_EQ(ChangingNode(*leaving), 2u);
  Result<ClusterConfig> left = CompleteRingChange(*leaving, 2);
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->nodes_size(), 2);
  for (const NodeConfig& node : left->nodes()) EXPECT_NE(node.node_id(), 2u);
  EXPECT_EQ(MarkNodeLeaving(ThreeNodes(), 9).status().code(), StatusCode::kNotFound);
  ClusterConfig one = ThreeNodes();
  one.mutable_nodes()->DeleteSubrange(1, 2);
  EXPECT_EQ(MarkNodeLeaving(one, 1).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weft::cluster
