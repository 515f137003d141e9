// `weft meta`, `weft cluster show|create` and the cluster section of `weft status`: the real
// `weft` binary against the fake service (meta, show, status), the config `cluster create` builds
// (in process), and `cluster create` against a real ZooKeeper server (ZooKeeperTestServer).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "cli/cli_test_util.h"
#include "cli/cluster_create.h"
#include "cluster/cluster_config.h"
#include "cluster/zookeeper_cluster_backend.h"
#include "cluster/zookeeper_test_server.h"

namespace weft::cli {
namespace {

using nlohmann::json;

TEST_F(CliTest, MetaRowLifecycleInHumanOutput) {
  EXPECT_EQ(Weft({"meta", "put", "kv/color", "blue"}).out, "Created 'kv/color': version 1.\n");
  EXPECT_EQ(Weft({"meta", "put", "kv/color", "green", "--version", "1"}).out,
            "Updated 'kv/color': version 2.\n");
  EXPECT_EQ(Weft({"meta", "get", "kv/color"}).out,
            "Key:      kv/color\n"
            "Version:  2\n"
            "Value:    green\n");
  CommandResult stale = Weft({"meta", "put", "kv/color", "red", "--version", "1"}, 1);
  EXPECT_EQ(stale.err, "weft: error: version conflict: expected 1, found 2\n");
  CommandResult exists = Weft({"meta", "put", "kv/color", "red"}, 1);
  EXPECT_EQ(exists.err, "weft: error: version conflict: expected 0, found 2\n");
  CommandResult wrong_delete = Weft({"meta", "delete", "kv/color", "--version", "3"}, 1);
  EXPECT_EQ(wrong_delete.err, "weft: error: version conflict: expected 3, found 2\n");
  EXPECT_EQ(Weft({"meta", "delete", "kv/color", "--version", "2"}).out,
            "Deleted 'kv/color' (was version 2).\n");
  CommandResult gone = Weft({"meta", "get", "kv/color"}, 1);
  EXPECT_EQ(gone.err, "weft: error: metadata row 'kv/color' not found\n");
}

TEST_F(CliTest, MetaKeysAndValuesTravelIntactAndPrintSafely) {
  // Characters that mean something in a URL, and a control character in the value.
  const std::string key = "a b/c?d&e%f+g#h";
  Weft({"meta", "put", key, "line1\nline2\\"});
  json row = WeftJson({"meta", "get", key});
  EXPECT_EQ(row, json({{"key", key}, {"value", "line1\nline2\\"}, {"version", 1}}));
  EXPECT_EQ(Weft({"meta", "get", key}).out,
            "Key:      " + key + "\nVersion:  1\nValue:    line1\\x0aline2\\\\\n");
  EXPECT_EQ(WeftJson({"meta", "scan", "a b/"})["rows"][0]["key"], key);
}

TEST_F(CliTest, MetaScanPagesInKeyOrder) {
  for (const char* key : {"s/3", "s/1", "s/2", "t/1"}) Weft({"meta", "put", key, "v"});
  EXPECT_EQ(Weft({"meta", "scan", "s/"}).out,
            "KEY  VERSION  VALUE\n"
            "s/1        1  v\n"
            "s/2        1  v\n"
            "s/3        1  v\n");
  EXPECT_EQ(Weft({"meta", "scan", "s/", "--limit", "2"}).out,
            "KEY  VERSION  VALUE\n"
            "s/1        1  v\n"
            "s/2        1  v\n"
            "(limit reached; continue with --start-after 's/2')\n");
  EXPECT_EQ(Weft({"meta", "scan", "s/", "--start-after", "s/2"}).out,
            "KEY  VERSION  VALUE\n"
            "s/3        1  v\n");
  EXPECT_EQ(Weft({"meta", "scan", "u"}).out, "No rows with prefix 'u'.\n");
  json all = WeftJson({"meta", "scan"});
  ASSERT_EQ(all["rows"].size(), 4u);
  EXPECT_EQ(all["rows"][3]["key"], "t/1");
  // A long value is cut in the table, whole in get.
  Weft({"meta", "put", "long", std::string(100, 'x')});
  EXPECT_NE(Weft({"meta", "scan", "long"}).out.find(std::string(60, 'x') + "...\n"),
            std::string::npos);
}

TEST_F(CliTest, MetaErrorsPrintTheServersMessage) {
  service_.FailNextCall(Status::Unavailable("no quorum for 'k': 1 of 3 replicas answered"));
  CommandResult result = Weft({"meta", "put", "k", "v"}, 1);
  EXPECT_EQ(result.err, "weft: error: no quorum for 'k': 1 of 3 replicas answered\n");
  EXPECT_EQ(result.out, "");
  service_.FailNextCall(Status::Unavailable("node 2 is fenced"));
  EXPECT_EQ(Weft({"meta", "scan"}, 1).err, "weft: error: node 2 is fenced\n");
  EXPECT_EQ(Weft({"meta", "get", std::string(1025, 'k')}, 1).err,
            "weft: error: invalid metadata key: 1025 bytes, must be 1 to 1024\n");
}

TEST_F(CliTest, MetaUsageErrorsNeverCallTheServer) {
  const uint64_t calls_before = service_.call_count();
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"meta"},
           {"meta", "get"},
           {"meta", "put", "k"},
           {"meta", "put", "k", "v", "--version", "-1"},
           {"meta", "delete", "k"},
           {"meta", "scan", "--limit", "0"},
           {"meta", "scan", "--limit", "10001"},
       }) {
    CommandResult result = Weft(args, 2);
    EXPECT_NE(result.err, "") << Describe(result);
  }
  EXPECT_EQ(service_.call_count(), calls_before);
}

TEST_F(CliTest, ClusterShowListsNodesWithLivenessAndFencing) {
  EXPECT_EQ(Weft({"cluster", "show"}).out,
            "cluster 'fake' (8a3f6c2e-1d4b-4e5f-9a7b-3c2d1e0f9a8b): backend zookeeper, RF 2 (3 "
            "ring replicas), ring epoch 1, config version 0, not fenced, session connected\n"
            "Nodes: 3 of 3 live\n"
            "\n"
            "NODE      RPC             ADMIN           LIVE  RING    TOKENS\n"
            "1 (self)  127.0.0.1:7101  127.0.0.1:9441  yes   normal      16\n"
            "2         127.0.0.1:7102  127.0.0.1:9442  yes   normal      16\n"
            "3         127.0.0.1:7103  127.0.0.1:9443  yes   normal      16\n");
  admin::ClusterView cluster = admin::FakeAdminService::FakeClusterView();
  cluster.nodes[2].live = false;
  cluster.fenced = true;
  cluster.session = "expired";
  service_.SetCluster(cluster);
  CommandResult fenced = Weft({"cluster", "show"});
  EXPECT_NE(fenced.out.find("FENCED (serves no writes), session expired\nNodes: 2 of 3 live\n"),
            std::string::npos)
      << Describe(fenced);
  EXPECT_NE(fenced.out.find("3         127.0.0.1:7103  127.0.0.1:9443  NO "), std::string::npos)
      << Describe(fenced);
  EXPECT_NE(Weft({"status"}).out.find("Session:     expired, FENCED (serves no writes)\n"),
            std::string::npos);
  json shown = WeftJson({"cluster", "show"});
  EXPECT_EQ(shown["nodes"][2]["live"], false);
  EXPECT_EQ(shown["fenced"], true);
}

TEST_F(CliTest, StatusOfASingleNodeAndOfAWeftdWithoutClusterApi) {
  admin::ClusterView local;
  local.backend = "local";
  local.redundancy_factor = 1;
  local.ring_replicas = 1;
  local.self_node_id = 1;
  service_.SetCluster(local);
  CommandResult single = Weft({"status"});
  EXPECT_NE(single.out.find("Cluster:     single node (local backend)\n"), std::string::npos)
      << Describe(single);
  EXPECT_EQ(single.out.find("NODE"), std::string::npos) << Describe(single);

  // GetNode answers, GetCluster fails: status still prints the node, and says why.
  service_.FailClusterCalls(Status::IOError("zookeeper session lost"));
  CommandResult partial = Weft({"status"});
  EXPECT_NE(partial.out.find("vDisks:      0\n"), std::string::npos) << Describe(partial);
  EXPECT_NE(partial.out.find("Cluster:     unknown (zookeeper session lost)\n"), std::string::npos)
      << Describe(partial);
  CommandResult show = Weft({"cluster", "show"}, 1);
  EXPECT_EQ(show.err, "weft: error: zookeeper session lost\n");
}

TEST(ClusterCreateTest, NodeSpecsParseOrSayWhatIsExpected) {
  Result<NodeSpec> node = ParseNodeSpec("7=10.0.0.1:7100,[::1]:9440");
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  EXPECT_EQ(node->node_id, 7u);
  EXPECT_EQ(node->rpc_address, "10.0.0.1:7100");
  EXPECT_EQ(node->admin_address, "[::1]:9440");
  for (const char* bad : {"", "1", "=a:1,b:2", "0=a:1,b:2", "x=a:1,b:2", "1=a:1", "1=a:1,b",
                          "1=a:1,b:0", "1=a:1,b:70000", "-1=a:1,b:2", "4294967296=a:1,b:2"}) {
    Result<NodeSpec> parsed = ParseNodeSpec(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.status().message().find("expected ID=RPC_HOST:RPC_PORT,ADMIN_HOST"),
              std::string::npos)
        << parsed.status().message();
  }
}

ClusterSpec ThreeNodes() {
  ClusterSpec spec;
  spec.name = "test";
  spec.redundancy_factor = 2;
  spec.ring_tokens_per_node = 16;
  for (uint32_t id = 1; id <= 3; ++id) {
    spec.nodes.push_back(
        {id, "127.0.0.1:710" + std::to_string(id), "127.0.0.1:944" + std::to_string(id)});
  }
  return spec;
}

constexpr const char* kClusterId = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";

TEST(ClusterCreateTest, ConfigHasEveryNodeNormalWithDistinctTokensAtEpochOne) {
  Result<cluster::ClusterConfig> config = BuildClusterConfig(ThreeNodes(), kClusterId);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->cluster_id(), kClusterId);
  EXPECT_EQ(config->name(), "test");
  EXPECT_EQ(config->redundancy_factor(), 2u);
  EXPECT_EQ(config->ring_epoch(), 1u);
  ASSERT_EQ(config->nodes_size(), 3);
  std::set<uint64_t> tokens;
  for (const cluster::NodeConfig& node : config->nodes()) {
    EXPECT_EQ(node.ring_state(), cluster::RING_STATE_NORMAL);
    EXPECT_EQ(node.ring_tokens_size(), 16);
    tokens.insert(node.ring_tokens().begin(), node.ring_tokens().end());
  }
  EXPECT_EQ(tokens.size(), 48u);
  EXPECT_EQ(config->nodes(1).rpc_address(), "127.0.0.1:7102");
  EXPECT_TRUE(cluster::ValidateClusterConfig(*config).ok());
  // Another cluster id places the tokens elsewhere; the same one reproduces them.
  Result<cluster::ClusterConfig> other =
      BuildClusterConfig(ThreeNodes(), "1b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->nodes(0).ring_tokens(0), config->nodes(0).ring_tokens(0));
  Result<cluster::ClusterConfig> again = BuildClusterConfig(ThreeNodes(), kClusterId);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->SerializeAsString(), config->SerializeAsString());
}

TEST(ClusterCreateTest, TooFewNodesAndDuplicatesAreRefused) {
  ClusterSpec spec = ThreeNodes();
  spec.redundancy_factor = 3;
  Result<cluster::ClusterConfig> config = BuildClusterConfig(spec, kClusterId);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("give at least 5 --node arguments (3 given)"),
            std::string::npos)
      << config.status().message();
  spec = ThreeNodes();
  spec.nodes[2].node_id = 1;
  config = BuildClusterConfig(spec, kClusterId);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("used twice"), std::string::npos)
      << config.status().message();
  spec = ThreeNodes();
  spec.nodes[2].rpc_address = spec.nodes[0].rpc_address;
  EXPECT_FALSE(BuildClusterConfig(spec, kClusterId).ok());
}

std::vector<std::string> CreateArguments(const std::string& zookeeper, const std::string& root) {
  return {"cluster",          "create",
          "--zookeeper",      zookeeper,
          "--zookeeper-root", root,
          "--name",           "it",
          "--node",           "1=127.0.0.1:7101,127.0.0.1:9441",
          "--node",           "2=127.0.0.1:7102,127.0.0.1:9442",
          "--node",           "3=127.0.0.1:7103,127.0.0.1:9443"};
}

TEST(ClusterCreateTest, UsageErrorsNeedNoZooKeeper) {
  std::vector<std::string> too_few = {"cluster",     "create", "--zookeeper",
                                      "127.0.0.1:1", "--node", "1=a:1,a:2"};
  CommandResult result = RunWeft(too_few);
  EXPECT_EQ(result.exit_code, 2) << Describe(result);
  EXPECT_NE(result.err.find("give at least 3 --node arguments (1 given)"), std::string::npos)
      << Describe(result);
  result = RunWeft({"cluster", "create", "--node", "1=a:1,a:2"});
  EXPECT_EQ(result.exit_code, 2) << Describe(result);
  EXPECT_NE(result.err.find("--zookeeper is required"), std::string::npos) << Describe(result);
  std::vector<std::string> bad_rf = CreateArguments("127.0.0.1:1", "/weft");
  bad_rf.insert(bad_rf.end(), {"--redundancy-factor", "4"});
  result = RunWeft(bad_rf);
  EXPECT_EQ(result.exit_code, 2) << Describe(result);
}

TEST(ClusterCreateTest, CreatesTheConfigInZooKeeperOnceAndRefusesASecond) {
  Result<std::unique_ptr<cluster::ZooKeeperTestServer>> server =
      cluster::ZooKeeperTestServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const std::string zookeeper = (*server)->connect_string();

  CommandResult created = RunWeft(CreateArguments(zookeeper, "/itc"));
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  EXPECT_NE(created.out.find("Created cluster 'it' ("), std::string::npos) << Describe(created);
  EXPECT_NE(created.out.find("3 nodes, RF 2 (3 ring replicas), 16 ring tokens per node, ring "
                             "epoch 1, in ZooKeeper " +
                             zookeeper + " under /itc."),
            std::string::npos)
      << Describe(created);

  cluster::ZooKeeperClusterOptions options;
  options.connect_string = zookeeper;
  options.root = "/itc";
  Result<std::unique_ptr<cluster::ZooKeeperClusterBackend>> backend =
      cluster::ZooKeeperClusterBackend::Open(options);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  Result<cluster::VersionedConfig> stored = (*backend)->ReadConfig();
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(stored->version, 0);
  EXPECT_EQ(stored->config.name(), "it");
  EXPECT_EQ(stored->config.ring_epoch(), 1u);
  ASSERT_EQ(stored->config.nodes_size(), 3);
  EXPECT_EQ(stored->config.nodes(2).admin_address(), "127.0.0.1:9443");
  EXPECT_EQ(stored->config.nodes(2).ring_tokens_size(), 16);
  EXPECT_NE(created.out.find(stored->config.cluster_id()), std::string::npos);
  (*backend)->Close();

  CommandResult second = RunWeft(CreateArguments(zookeeper, "/itc"));
  EXPECT_EQ(second.exit_code, 1) << Describe(second);
  EXPECT_NE(second.err.find("cluster 'it' (" + stored->config.cluster_id() +
                            ", 3 nodes, config version 0) already exists under /itc"),
            std::string::npos)
      << Describe(second);

  // Another root is another cluster; --json prints what was stored.
  std::vector<std::string> json_arguments = CreateArguments(zookeeper, "/other");
  json_arguments.insert(json_arguments.begin(), "--json");
  CommandResult other = RunWeft(json_arguments);
  ASSERT_EQ(other.exit_code, 0) << Describe(other);
  Result<json> body = admin::ParseJson(other.out);
  ASSERT_TRUE(body.ok()) << Describe(other);
  EXPECT_EQ((*body)["zookeeper_root"], "/other");
  EXPECT_EQ((*body)["nodes"].size(), 3u);
  EXPECT_EQ((*body)["nodes"][0]["ring_tokens"], 16);
  EXPECT_NE((*body)["cluster_id"], stored->config.cluster_id());

  // ZooKeeper gone: exit 3 with the address.
  (*server)->Kill();
  CommandResult unreachable = RunWeft(CreateArguments(zookeeper, "/third"));
  EXPECT_EQ(unreachable.exit_code, 3) << Describe(unreachable);
  EXPECT_NE(unreachable.err.find("cannot use ZooKeeper at " + zookeeper), std::string::npos)
      << Describe(unreachable);
}

}  // namespace
}  // namespace weft::cli
