// The admin API's JSON forms: strict request parsing and lenient view parsing.
#include "admin/admin_json.h"

#include <gtest/gtest.h>

#include <string>

namespace weft::admin {
namespace {

using nlohmann::json;

// The message of a parse that must fail with InvalidArgument.
template <typename T>
std::string ErrorOf(const Result<T>& result) {
  EXPECT_FALSE(result.ok());
  if (result.ok()) return "";
  EXPECT_TRUE(result.status().IsInvalidArgument()) << result.status().ToString();
  return result.status().message();
}

TEST(AdminJsonTest, CreateVdiskRequestReadsEveryField) {
  Result<CreateVdiskRequest> request =
      ParseCreateVdiskRequest(R"({"name":"v1","size_bytes":1073741824,"container":"c"})");
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ(request->name, "v1");
  EXPECT_EQ(request->size_bytes, 1073741824u);
  EXPECT_EQ(request->container, "c");
}

TEST(AdminJsonTest, CreateVdiskRequestContainerIsOptional) {
  Result<CreateVdiskRequest> request = ParseCreateVdiskRequest(R"({"name":"v","size_bytes":4096})");
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ(request->container, "");
}

TEST(AdminJsonTest, SizeTakesTheWholeUnsigned64BitRange) {
  Result<ResizeVdiskRequest> request =
      ParseResizeVdiskRequest(R"({"size_bytes":18446744073709551615})");
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ(request->size_bytes, UINT64_MAX);
}

TEST(AdminJsonTest, SizesMustBeNonNegativeIntegers) {
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest(R"({"size_bytes":-1})")).find("negative number -1"),
            std::string::npos);
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest(R"({"size_bytes":1.5})")).find("non-integer 1.5"),
            std::string::npos);
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest(R"({"size_bytes":1e3})")).find("non-integer"),
            std::string::npos);
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest(R"({"size_bytes":18446744073709551616})"))
                .find("non-integer"),
            std::string::npos);
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest(R"({"size_bytes":"10G"})")).find("a string"),
            std::string::npos);
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest(R"({"size_bytes":null})")).find("a null"),
            std::string::npos);
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest(R"({"size_bytes":true})")).find("a boolean"),
            std::string::npos);
}

TEST(AdminJsonTest, UnknownFieldIsRejectedAndNamed) {
  std::string message = ErrorOf(ParseCreateVdiskRequest(R"({"name":"v","sise_bytes":4096})"));
  EXPECT_NE(message.find("unknown field \"sise_bytes\""), std::string::npos) << message;
  EXPECT_NE(message.find("name, size_bytes, container"), std::string::npos) << message;
}

TEST(AdminJsonTest, MissingRequiredFieldIsNamed) {
  EXPECT_EQ(ErrorOf(ParseCreateVdiskRequest(R"({"name":"v"})")),
            "missing required field 'size_bytes'");
  EXPECT_EQ(ErrorOf(ParseCreateContainerRequest(R"({"replication_factor":1})")),
            "missing required field 'name'");
}

TEST(AdminJsonTest, ReplicationFactorDefaultsToOneAndMustFit32Bits) {
  Result<CreateContainerRequest> request = ParseCreateContainerRequest(R"({"name":"c"})");
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(request->replication_factor, 1u);
  EXPECT_NE(ErrorOf(ParseCreateContainerRequest(R"({"name":"c","replication_factor":4294967296})"))
                .find("from 0 to 4294967295"),
            std::string::npos);
}

TEST(AdminJsonTest, BodyMustBeOneJsonObject) {
  EXPECT_EQ(ErrorOf(ParseResizeVdiskRequest("")), "request body is empty; expected a JSON object");
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest("[1]")).find("must be a JSON object, got an array"),
            std::string::npos);
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest("{")).find("not valid JSON"), std::string::npos);
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest(R"({"size_bytes":1} {})")).find("line 1"),
            std::string::npos);
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest("{\"size_bytes\":1,\"\xff\":2}")).find("not valid"),
            std::string::npos);
}

TEST(AdminJsonTest, DeepNestingIsAnErrorNotACrash) {
  std::string body(100'000, '[');
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest(body)).find("nested deeper than"), std::string::npos);
  body += std::string(100'000, ']');
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest(body)).find("nested deeper than"), std::string::npos);
  std::string object;
  for (int i = 0; i < 100'000; ++i) object += R"({"a":)";
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest(object)).find("nested deeper than"), std::string::npos);
  // Nesting up to the limit is fine (and an error only because it is not the right form).
  body = std::string(31, '[') + std::string(31, ']');
  EXPECT_NE(ErrorOf(ParseResizeVdiskRequest(body)).find("must be a JSON object"),
            std::string::npos);
}

TEST(AdminJsonTest, LongValuesAreCutInMessages) {
  std::string name(10'000, 'x');
  std::string message = ErrorOf(ParseResizeVdiskRequest(R"({"size_bytes":")" + name + "\"}"));
  EXPECT_LT(message.size(), 200u) << message;
}

TEST(AdminJsonTest, ViewsRoundTrip) {
  NodeView node{.node_id = "n",
                .version = "1",
                .uptime_s = 5,
                .data_dir = "/d",
                .nbd_address = "127.0.0.1:10809",
                .admin_address = "127.0.0.1:9440",
                .nbd_connections = 2,
                .vdisk_count = 3,
                .container_count = 1,
                .disks = {{.path = "/dev/x",
                           .uuid = "u",
                           .size_bytes = 10,
                           .used_bytes = 4,
                           .free_bytes = 6,
                           .egroups = 1,
                           .state = "online"}},
                .cache = {{"hits_ssd", 7}, {"memory_bytes_max", UINT64_MAX}}};
  Result<NodeView> node_back = NodeViewFromJson(ToJson(node));
  ASSERT_TRUE(node_back.ok()) << node_back.status().ToString();
  EXPECT_EQ(ToJson(*node_back), ToJson(node));

  VdiskView vdisk{.name = "v",
                  .container = "c",
                  .size_bytes = UINT64_MAX,
                  .used_bytes = 1,
                  .mapped_vblocks = 2,
                  .created_unix_s = 3,
                  .nbd_uri = "nbd://h:1/v",
                  .open_connections = 4,
                  .stats = {{"io", {{"reads", 1}, {"bytes_read", 4096}}},
                            {"oplog", {{"index_bytes", UINT64_MAX}}},
                            {"empty", {}}}};
  Result<VdiskView> vdisk_back = VdiskViewFromJson(ToJson(vdisk));
  ASSERT_TRUE(vdisk_back.ok()) << vdisk_back.status().ToString();
  EXPECT_EQ(ToJson(*vdisk_back), ToJson(vdisk));

  ContainerView container{.name = "c", .replication_factor = 3, .vdisk_count = 1};
  Result<ContainerView> container_back = ContainerViewFromJson(ToJson(container));
  ASSERT_TRUE(container_back.ok()) << container_back.status().ToString();
  EXPECT_EQ(ToJson(*container_back), ToJson(container));
}

TEST(AdminJsonTest, ViewParsingIgnoresUnknownFieldsButNeedsKnownOnes) {
  json container = ToJson(ContainerView{.name = "c"});
  container["added_in_a_later_version"] = true;
  EXPECT_TRUE(ContainerViewFromJson(container).ok());
  container.erase("vdisk_count");
  EXPECT_EQ(ErrorOf(ContainerViewFromJson(container)), "missing required field 'vdisk_count'");
  EXPECT_FALSE(NodeViewFromJson(json::array()).ok());
}

TEST(AdminJsonTest, CountersAreNestedObjectsOfIntegers) {
  VdiskView vdisk{.name = "v", .stats = {{"io", {{"reads", 3}}}, {"empty", {}}}};
  json object = ToJson(vdisk);
  EXPECT_EQ(object["stats"].dump(), R"({"empty":{},"io":{"reads":3}})");
  EXPECT_EQ(ToJson(VdiskView{})["stats"].dump(), "{}");
  EXPECT_EQ(ToJson(NodeView{})["cache"].dump(), "{}");
  EXPECT_EQ(ToJson(NodeView{.cache = {{"misses", 2}}})["cache"].dump(), R"({"misses":2})");
}

TEST(AdminJsonTest, CountersMayBeAbsentButNotMistyped) {
  json vdisk = ToJson(VdiskView{.name = "v", .stats = {{"io", {{"reads", 3}}}}});
  vdisk.erase("stats");
  Result<VdiskView> without = VdiskViewFromJson(vdisk);
  ASSERT_TRUE(without.ok()) << without.status().ToString();
  EXPECT_TRUE(without->stats.empty());
  vdisk["stats"] = json::array();
  EXPECT_NE(ErrorOf(VdiskViewFromJson(vdisk)).find("field 'stats' must be a JSON object"),
            std::string::npos);
  vdisk["stats"] = {{"io", 5}};
  EXPECT_NE(ErrorOf(VdiskViewFromJson(vdisk)).find("stats.io must be a JSON object"),
            std::string::npos);
  vdisk["stats"] = {{"io", {{"reads", -1}}}};
  EXPECT_EQ(ErrorOf(VdiskViewFromJson(vdisk)),
            "stats.io: field 'reads' must be an integer from 0 to 18446744073709551615, got the "
            "negative number -1");

  json node = ToJson(NodeView{.cache = {{"misses", 2}}});
  node.erase("cache");
  Result<NodeView> node_without = NodeViewFromJson(node);
  ASSERT_TRUE(node_without.ok()) << node_without.status().ToString();
  EXPECT_TRUE(node_without->cache.empty());
  node["cache"] = {{"misses", "many"}};
  EXPECT_NE(ErrorOf(NodeViewFromJson(node)).find("field 'misses' must be an integer"),
            std::string::npos);
}

TEST(AdminJsonTest, ErrorJsonHasCodeAndMessage) {
  EXPECT_EQ(ErrorJson("NotFound", "vdisk 'x' not found").dump(),
            R"({"error":{"code":"NotFound","message":"vdisk 'x' not found"}})");
}

TEST(AdminJsonTest, MetadataPutRequestNeedsValueAndVersion) {
  Result<MetadataPutRequest> request =
      ParseMetadataPutRequest(R"({"value":"x","expected_version":18446744073709551615})");
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ(request->value, "x");
  EXPECT_EQ(request->expected_version, UINT64_MAX);
  EXPECT_NE(ErrorOf(ParseMetadataPutRequest(R"({"value":"x"})")).find("'expected_version'"),
            std::string::npos);
  EXPECT_NE(ErrorOf(ParseMetadataPutRequest(R"({"value":null,"expected_version":0})"))
                .find("'value' must be a string"),
            std::string::npos);
  EXPECT_NE(ErrorOf(ParseMetadataPutRequest(R"(["x",0])")).find("must be a JSON object"),
            std::string::npos);
}

TEST(AdminJsonTest, ClusterViewRoundTripsAndItsRingCountersAreOptional) {
  ClusterView view;
  view.backend = "zookeeper";
  view.cluster_id = "c";
  view.redundancy_factor = 3;
  view.ring_replicas = 5;
  view.ring_epoch = 7;
  view.config_version = 4;
  view.self_node_id = 2;
  view.fenced = true;
  view.session = "expired";
  view.nodes.push_back({.node_id = 2,
                        .rpc_address = "h:1",
                        .admin_address = "h:2",
                        .live = true,
                        .ring_state = "joining",
                        .ring_tokens = 16});
  view.ring = {{"operations", 9}};
  json text = ToJson(view);
  Result<ClusterView> parsed = ClusterViewFromJson(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(ToJson(*parsed), text);

  text.erase("ring");
  parsed = ClusterViewFromJson(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(parsed->ring.empty());

  text["fenced"] = "no";
  EXPECT_NE(ErrorOf(ClusterViewFromJson(text)).find("'fenced' must be true or false"),
            std::string::npos);
  text["fenced"] = false;
  text["nodes"][0].erase("live");
  EXPECT_NE(ErrorOf(ClusterViewFromJson(text)).find("'live'"), std::string::npos);
  text["nodes"] = json::object();
  EXPECT_NE(ErrorOf(ClusterViewFromJson(text)).find("'nodes' must be an array"), std::string::npos);
}

TEST(AdminJsonTest, MetadataRowViewNeedsEveryField) {
  Result<MetadataRowView> row =
      MetadataRowViewFromJson(json{{"key", "k"}, {"value", ""}, {"version", 3u}});
  ASSERT_TRUE(row.ok()) << row.status().ToString();
  EXPECT_EQ(row->version, 3u);
  EXPECT_NE(ErrorOf(MetadataRowViewFromJson(json{{"key", "k"}, {"value", ""}})).find("'version'"),
            std::string::npos);
}

}  // namespace
}  // namespace weft::admin
