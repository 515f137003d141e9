// The cluster and metadata routes of the admin API end to end: a real AdminHttpServer on
// 127.0.0.1 over the fake service, driven by httplib::Client. Covers GET /api/v1/cluster, the
// metadata row routes (GET, PUT, DELETE with versions), scans with their query parameters, keys
// holding '/' and bytes that need percent-encoding, and the error mapping of the ring's errors.
#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <string>

#include "admin/admin_http_server.h"
#include "admin/admin_json.h"
#include "admin/fake_admin_service.h"

namespace weft::admin {
namespace {

using nlohmann::json;

class AdminMetadataRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AdminHttpServerOptions options;
    options.port = 0;
    server_ = std::make_unique<AdminHttpServer>(service_, options);
    Status status = server_->Start();
    ASSERT_TRUE(status.ok()) << status.ToString();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(30, 0);
    client_->set_url_encode(false);  // Paths are sent exactly as written here.
  }

  void TearDown() override { server_->Stop(); }

  static json BodyOf(const httplib::Result& response) {
    EXPECT_TRUE(response) << "no answer: " << httplib::to_string(response.error());
    if (!response) return json();
    Result<json> body = ParseJson(response->body);
    EXPECT_TRUE(body.ok()) << response->body;
    return body.ok() ? *body : json();
  }

  // Checks an error answer: status, code, and a message containing `text`.
  static void ExpectError(const httplib::Result& response, int status, const std::string& code,
                          const std::string& text = "") {
    ASSERT_TRUE(response) << httplib::to_string(response.error());
    EXPECT_EQ(response->status, status) << response->body;
    json body = BodyOf(response);
    ASSERT_TRUE(body.contains("error")) << response->body;
    EXPECT_EQ(body["error"]["code"], code) << response->body;
    EXPECT_NE(body["error"]["message"].get<std::string>().find(text), std::string::npos)
        << "wanted '" << text << "' in " << response->body;
  }

  httplib::Result Put(const std::string& path, const json& body) {
    return client_->Put(path.c_str(), body.dump(), "application/json");
  }

  // PUTs `value` over `expected_version` and returns the new version (0 on any failure).
  uint64_t PutRow(const std::string& encoded_key, const std::string& value,
                  uint64_t expected_version) {
    httplib::Result response = Put("/api/v1/metadata/" + encoded_key,
                                   {{"value", value}, {"expected_version", expected_version}});
    EXPECT_TRUE(response && response->status == 200) << (response ? response->body : "no answer");
    if (!response || response->status != 200) return 0;
    Result<MetadataRowView> row = MetadataRowViewFromJson(BodyOf(response));
    EXPECT_TRUE(row.ok()) << row.status().ToString();
    return row.ok() ? row->version : 0;
  }

  std::vector<std::string> ScanKeys(const std::string& query) {
    httplib::Result response = client_->Get(("/api/v1/metadata" + query).c_str());
    EXPECT_TRUE(response && response->status == 200) << (response ? response->body : "no answer");
    std::vector<std::string> keys;
    json body = BodyOf(response);
    if (!body.contains("rows")) return keys;
    for (const json& row : body["rows"]) {
      Result<MetadataRowView> view = MetadataRowViewFromJson(row);
      EXPECT_TRUE(view.ok()) << view.status().ToString();
      if (view.ok()) keys.push_back(view->key);
    }
    return keys;
  }

  FakeAdminService service_;
  std::unique_ptr<AdminHttpServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(AdminMetadataRoutesTest, ClusterViewRoundTrips) {
  ClusterView expected = FakeAdminService::FakeClusterView();
  expected.nodes[2].live = false;
  expected.fenced = true;
  expected.session = "expired";
  service_.SetCluster(expected);
  httplib::Result response = client_->Get("/api/v1/cluster");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  Result<ClusterView> view = ClusterViewFromJson(BodyOf(response));
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  EXPECT_EQ(view->backend, "zookeeper");
  EXPECT_EQ(view->cluster_id, expected.cluster_id);
  EXPECT_EQ(view->redundancy_factor, 2u);
  EXPECT_EQ(view->ring_replicas, 3u);
  EXPECT_TRUE(view->fenced);
  EXPECT_EQ(view->session, "expired");
  ASSERT_EQ(view->nodes.size(), 3u);
  EXPECT_EQ(view->nodes[1].rpc_address, expected.nodes[1].rpc_address);
  EXPECT_TRUE(view->nodes[1].live);
  EXPECT_FALSE(view->nodes[2].live);
  EXPECT_EQ(view->nodes[2].ring_tokens, 16u);
  EXPECT_EQ(view->ring, expected.ring);
}

TEST_F(AdminMetadataRoutesTest, RowLifecycleWithVersions) {
  ExpectError(client_->Get("/api/v1/metadata/k1"), 404, "NotFound", "'k1' not found");
  EXPECT_EQ(PutRow("k1", "one", 0), 1u);
  EXPECT_EQ(PutRow("k1", "two", 1), 2u);
  ExpectError(Put("/api/v1/metadata/k1", {{"value", "stale"}, {"expected_version", 1}}), 409,
              "Aborted", "version conflict: expected 1, found 2");
  ExpectError(Put("/api/v1/metadata/k1", {{"value", "again"}, {"expected_version", 0}}), 409,
              "Aborted", "expected 0, found 2");

  httplib::Result read = client_->Get("/api/v1/metadata/k1");
  ASSERT_TRUE(read);
  EXPECT_EQ(read->status, 200);
  EXPECT_EQ(BodyOf(read), json({{"key", "k1"}, {"value", "two"}, {"version", 2}}));

  ExpectError(client_->Delete("/api/v1/metadata/k1?expected_version=1"), 409, "Aborted",
              "expected 1, found 2");
  httplib::Result deleted = client_->Delete("/api/v1/metadata/k1?expected_version=2");
  ASSERT_TRUE(deleted);
  EXPECT_EQ(deleted->status, 204);
  ExpectError(client_->Get("/api/v1/metadata/k1"), 404, "NotFound");
  // Versions restart at 1 after a delete (metadata_store.h).
  EXPECT_EQ(PutRow("k1", "reborn", 0), 1u);
}

TEST_F(AdminMetadataRoutesTest, KeysMayHoldSlashesRawOrEncoded) {
  EXPECT_EQ(PutRow("kv/a/b", "raw", 0), 1u);
  EXPECT_EQ(BodyOf(client_->Get("/api/v1/metadata/kv%2Fa%2Fb"))["value"], "raw");
  EXPECT_EQ(PutRow("kv%2Fa%2Fb", "encoded", 1), 2u);
  EXPECT_EQ(BodyOf(client_->Get("/api/v1/metadata/kv/a/b"))["version"], 2);
  // A trailing slash and a doubled slash are part of the key, not dropped.
  EXPECT_EQ(PutRow("kv/", "dir", 0), 1u);
  EXPECT_EQ(PutRow("kv//x", "double", 0), 1u);
  EXPECT_EQ(BodyOf(client_->Get("/api/v1/metadata/kv%2F%2Fx"))["value"], "double");
  EXPECT_EQ(ScanKeys("?prefix=kv%2F"), (std::vector<std::string>{"kv/", "kv//x", "kv/a/b"}));
  // Spaces, '?', '&' and '%' travel encoded.
  EXPECT_EQ(PutRow("a%20b%3Fc%26d%25", "odd", 0), 1u);
  EXPECT_EQ(BodyOf(client_->Get("/api/v1/metadata/a%20b%3Fc%26d%25"))["key"], "a b?c&d%");
  // No key at all is no route.
  ExpectError(client_->Get("/api/v1/metadata/"), 404, "NotFound", "no such API route");
}

TEST_F(AdminMetadataRoutesTest, ScansFollowPrefixStartAfterAndLimit) {
  for (const char* key : {"a/1", "a/2", "a/3", "a/4", "b/1", "a"})
    EXPECT_EQ(PutRow(key, "v", 0), 1u);
  EXPECT_EQ(ScanKeys(""), (std::vector<std::string>{"a", "a/1", "a/2", "a/3", "a/4", "b/1"}));
  EXPECT_EQ(ScanKeys("?prefix=a/"), (std::vector<std::string>{"a/1", "a/2", "a/3", "a/4"}));
  EXPECT_EQ(ScanKeys("?prefix=a/&limit=2"), (std::vector<std::string>{"a/1", "a/2"}));
  EXPECT_EQ(ScanKeys("?limit=2&start_after=a%2F2&prefix=a%2F"),
            (std::vector<std::string>{"a/3", "a/4"}));
  EXPECT_EQ(ScanKeys("?prefix=a/&start_after=a/4"), std::vector<std::string>{});
  EXPECT_EQ(ScanKeys("?prefix=c"), std::vector<std::string>{});
  // '+' is a space in a query; %2B is a '+'.
  EXPECT_EQ(PutRow("p%20q", "v", 0), 1u);
  EXPECT_EQ(PutRow("p%2Bq", "v", 0), 1u);
  EXPECT_EQ(ScanKeys("?prefix=p+"), std::vector<std::string>{"p q"});
  EXPECT_EQ(ScanKeys("?prefix=p%2B"), std::vector<std::string>{"p+q"});

  httplib::Result response = client_->Get("/api/v1/metadata?prefix=b");
  ASSERT_TRUE(response);
  EXPECT_EQ(BodyOf(response), json::parse(R"({"rows":[{"key":"b/1","value":"v","version":1}]})"));
}

TEST_F(AdminMetadataRoutesTest, BadQueriesAndBodiesAre400AndNeverReachTheService) {
  const uint64_t calls_before = service_.call_count();
  ExpectError(client_->Get("/api/v1/metadata?limit=ten"), 400, "InvalidArgument",
              "'limit' must be an integer");
  ExpectError(client_->Get("/api/v1/metadata?limit=-1"), 400, "InvalidArgument", "'limit'");
  ExpectError(client_->Get("/api/v1/metadata?limit=4294967296"), 400, "InvalidArgument",
              "from 0 to 4294967295");
  ExpectError(client_->Get("/api/v1/metadata?prefx=a"), 400, "InvalidArgument",
              "unknown query parameter 'prefx' (expected: prefix, start_after, limit)");
  ExpectError(client_->Get("/api/v1/metadata?prefix=a&prefix=b"), 400, "InvalidArgument",
              "repeated");
  ExpectError(client_->Get("/api/v1/metadata?prefix"), 400, "InvalidArgument", "NAME=VALUE");
  ExpectError(client_->Get("/api/v1/metadata?prefix=%zz"), 400, "InvalidArgument",
              "percent-encoding");
  ExpectError(client_->Get("/api/v1/metadata/k?expected_version=1"), 400, "InvalidArgument",
              "takes no query parameters");
  ExpectError(client_->Get("/api/v1/cluster?verbose=1"), 400, "InvalidArgument",
              "takes no query parameters");
  ExpectError(client_->Delete("/api/v1/metadata/k"), 400, "InvalidArgument",
              "missing required query parameter 'expected_version'");
  ExpectError(client_->Delete("/api/v1/metadata/k?expected_version=x"), 400, "InvalidArgument",
              "'expected_version' must be an integer");
  ExpectError(client_->Delete("/api/v1/metadata/k?version=1"), 400, "InvalidArgument",
              "unknown query parameter 'version'");
  ExpectError(Put("/api/v1/metadata/k", {{"value", "v"}}), 400, "InvalidArgument",
              "missing required field 'expected_version'");
  ExpectError(Put("/api/v1/metadata/k", {{"expected_version", 0}}), 400, "InvalidArgument",
              "missing required field 'value'");
  ExpectError(Put("/api/v1/metadata/k", {{"value", 7}, {"expected_version", 0}}), 400,
              "InvalidArgument", "'value' must be a string");
  ExpectError(Put("/api/v1/metadata/k", {{"value", "v"}, {"expected_version", -1}}), 400,
              "InvalidArgument", "negative number");
  ExpectError(Put("/api/v1/metadata/k", {{"value", "v"}, {"expected_version", 0}, {"ttl", 5}}), 400,
              "InvalidArgument", "unknown field \"ttl\"");
  ExpectError(client_->Put("/api/v1/metadata/k", "", "application/json"), 400, "InvalidArgument",
              "body is empty");
  EXPECT_EQ(service_.call_count(), calls_before);

  // What the service itself refuses (as MetadataStore does).
  ExpectError(client_->Get("/api/v1/metadata?limit=0"), 400, "InvalidArgument", "scan limit 0");
  ExpectError(client_->Get("/api/v1/metadata?limit=10001"), 400, "InvalidArgument",
              "scan limit 10001");
  ExpectError(client_->Get(("/api/v1/metadata/" + std::string(1025, 'k')).c_str()), 400,
              "InvalidArgument", "1025 bytes");
  ExpectError(Put("/api/v1/metadata/k",
                  {{"value", std::string(64 * 1024 + 1, 'v')}, {"expected_version", 0}}),
              413, "PayloadTooLarge");
}

TEST_F(AdminMetadataRoutesTest, WrongMethodsAre405) {
  httplib::Result response = client_->Post("/api/v1/metadata/k", "{}", "application/json");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 405);
  EXPECT_EQ(response->get_header_value("Allow"), "GET, PUT, DELETE");
  ExpectError(client_->Delete("/api/v1/cluster"), 405, "MethodNotAllowed", "allowed: GET");
  ExpectError(Put("/api/v1/metadata", json::object()), 405, "MethodNotAllowed");
  ExpectError(Put("/api/v1/vdisks/v", json::object()), 405, "MethodNotAllowed");
}

TEST_F(AdminMetadataRoutesTest, RingErrorsMapToTheirStatuses) {
  service_.FailNextCall(Status::Unavailable("no quorum for key 'k': 1 of 3 replicas answered"));
  ExpectError(Put("/api/v1/metadata/k", {{"value", "v"}, {"expected_version", 0}}), 503,
              "Unavailable", "no quorum");
  service_.FailNextCall(Status::TimedOut("deadline passed"));
  ExpectError(client_->Get("/api/v1/metadata/k"), 504, "TimedOut", "deadline");
  service_.FailNextCall(Status::Unavailable("fenced"));
  ExpectError(client_->Delete("/api/v1/metadata/k?expected_version=0"), 503, "Unavailable",
              "fenced");
  service_.FailNextCall(Status::Unavailable("no quorum"));
  ExpectError(client_->Get("/api/v1/metadata?prefix=a"), 503, "Unavailable");
  service_.FailNextCall(Status::IOError("zookeeper"));
  ExpectError(client_->Get("/api/v1/cluster"), 500, "IOError", "zookeeper");
  // The failures were one-shot: the row was never written.
  ExpectError(client_->Get("/api/v1/metadata/k"), 404, "NotFound");
}

}  // namespace
}  // namespace weft::admin
