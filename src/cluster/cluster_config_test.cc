// The config's validation, the ring token helper and the stored record format.
#include "cluster/cluster_config.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <set>

#include "cluster/cluster_test_util.h"
#include "cluster/config_record.h"

namespace weft::cluster {
namespace {

// Expects InvalidArgument whose message starts with `field`.
void ExpectInvalid(const ClusterConfig& config, std::string_view field) {
  Status status = ValidateClusterConfig(config);
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  EXPECT_TRUE(status.message().starts_with(field)) << status.message();
}

TEST(ClusterConfigTest, TestConfigIsValid) {
  EXPECT_TRUE(ValidateClusterConfig(MakeTestConfig(5)).ok());
  EXPECT_TRUE(ValidateClusterConfig(MakeTestConfig(0)).ok());
}

TEST(ClusterConfigTest, RejectsEachBrokenRuleNamingTheField) {
  ClusterConfig config = MakeTestConfig(3);
  config.set_cluster_id("not-a-uuid");
  ExpectInvalid(config, "cluster_id");

  for (uint32_t factor : {0u, 1u, 4u}) {
    config = MakeTestConfig(3);
    config.set_redundancy_factor(factor);
    ExpectInvalid(config, "redundancy_factor");
  }
  config = MakeTestConfig(3);
  config.mutable_nodes(1)->set_node_id(0);
  ExpectInvalid(config, "nodes[1].node_id");

  config = MakeTestConfig(3);
  config.mutable_nodes(2)->set_node_id(1);
  ExpectInvalid(config, "nodes[2].node_id");

  config = MakeTestConfig(3);
  config.mutable_nodes(2)->set_rpc_address(config.nodes(0).rpc_address());
  ExpectInvalid(config, "nodes[2].rpc_address");

  config = MakeTestConfig(3);
  config.mutable_nodes(1)->set_admin_address("10.0.0.2");
  ExpectInvalid(config, "nodes[1].admin_address");

  config = MakeTestConfig(3);
  config.mutable_nodes(1)->set_rpc_address("10.0.0.2:70000");
  ExpectInvalid(config, "nodes[1].rpc_address");

  config = MakeTestConfig(3);
  config.mutable_nodes(0)->mutable_disks(0)->set_tier("tape");
  ExpectInvalid(config, "nodes[0].disks[0].tier");

  config = MakeTestConfig(3);
  config.mutable_nodes(0)->mutable_disks(0)->set_path("");
  ExpectInvalid(config, "nodes[0].disks[0].path");

  config = MakeTestConfig(3);
  config.mutable_nodes(2)->set_ring_tokens(5, config.nodes(0).ring_tokens(3));
  ExpectInvalid(config, "nodes[2].ring_tokens[5]");

  config = MakeTestConfig(3);
  config.mutable_containers(0)->set_replication_factor(4);
  ExpectInvalid(config, "containers[0].replication_factor");

  config = MakeTestConfig(3);
  *config.add_containers() = config.containers(0);
  ExpectInvalid(config, "containers[1].name");
}

TEST(ClusterConfigTest, ParseHostPort) {
  Result<HostPort> parsed = ParseHostPort("node-1.example:7001");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->host, "node-1.example");
  EXPECT_EQ(parsed->port, 7001);
  parsed = ParseHostPort("[::1]:9");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->host, "::1");
  for (const char* bad :
       {"", "host", ":80", "host:", "host:0", "host:65536", "host:8x", "::1:80", "[::1:80"}) {
    EXPECT_TRUE(ParseHostPort(bad).status().IsInvalidArgument()) << bad;
  }
}

TEST(RingTokensTest, DeterministicDistinctAndOnePerArc) {
  const std::vector<uint64_t> tokens = MakeRingTokens(3, 16, 42);
  EXPECT_EQ(tokens, MakeRingTokens(3, 16, 42));
  EXPECT_NE(tokens, MakeRingTokens(4, 16, 42));
  EXPECT_NE(tokens, MakeRingTokens(3, 16, 43));
  const uint64_t arc = ~uint64_t{0} / 16;
  for (size_t i = 0; i < tokens.size(); ++i) EXPECT_EQ(tokens[i] / arc, i) << "token " << i;
}

RC_GTEST_PROP(RingTokensTest, NeverCollideWithExistingTokens, ()) {
  const auto count = *rc::gen::inRange<uint32_t>(1, 64);
  const auto seed = *rc::gen::arbitrary<uint64_t>();
  const auto node_id = *rc::gen::inRange<uint32_t>(1, 1000);
  // Existing tokens include the very tokens the helper would pick first.
  std::vector<uint64_t> existing = *rc::gen::arbitrary<std::vector<uint64_t>>();
  const std::vector<uint64_t> first_choice = MakeRingTokens(node_id, count, seed);
  existing.insert(existing.end(), first_choice.begin(), first_choice.end());
  const std::vector<uint64_t> tokens = MakeRingTokens(node_id, count, seed, existing);
  RC_ASSERT(tokens.size() == count);
  std::set<uint64_t> all(existing.begin(), existing.end());
  for (uint64_t token : tokens) RC_ASSERT(all.insert(token).second);
}

TEST(ConfigRecordTest, RoundTrip) {
  const ClusterConfig config = MakeTestConfig(4);
  Result<std::string> record = EncodeConfigRecord(config, 17);
  ASSERT_TRUE(record.ok());
  Result<VersionedConfig> decoded = DecodeConfigRecord(*record, "test");
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->version, 17);
  EXPECT_EQ(decoded->config.SerializeAsString(), config.SerializeAsString());
}

TEST(ConfigRecordTest, EveryBitFlipAndTruncationIsCorruption) {
  Result<std::string> record = EncodeConfigRecord(MakeTestConfig(2), 3);
  ASSERT_TRUE(record.ok());
  for (size_t bit = 0; bit < record->size() * 8; ++bit) {
    std::string damaged = *record;
    damaged[bit / 8] = static_cast<char>(damaged[bit / 8] ^ (1 << (bit % 8)));
    Status status = DecodeConfigRecord(damaged, "znode /x").status();
    ASSERT_TRUE(status.IsCorruption()) << "bit " << bit << ": " << status.ToString();
    ASSERT_NE(status.message().find("znode /x"), std::string::npos);
  }
  for (size_t size : {size_t{0}, size_t{31}, size_t{32}, record->size() - 1}) {
    EXPECT_TRUE(DecodeConfigRecord(record->substr(0, size), "f").status().IsCorruption()) << size;
  }
}

}  // namespace
}  // namespace weft::cluster
