// The admin HTTP API end to end: a real AdminHttpServer on 127.0.0.1 (port 0) over the fake
// service, driven by httplib::Client and by raw sockets for what a well-behaved client never
// sends.
#include "admin/admin_http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin/admin_json.h"
#include "admin/fake_admin_service.h"

namespace weft::admin {
namespace {

using nlohmann::json;

constexpr const char* kJsonType = "application/json";

class AdminHttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AdminHttpServerOptions options;
    options.port = 0;
    server_ = std::make_unique<AdminHttpServer>(service_, options);
    Status status = server_->Start();
    ASSERT_TRUE(status.ok()) << status.ToString();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(30, 0);
  }

  void TearDown() override { server_->Stop(); }

  // The JSON body of `response`, checking that it is JSON and labelled so.
  static json BodyOf(const httplib::Result& response) {
    EXPECT_TRUE(response) << "no answer: " << httplib::to_string(response.error());
    if (!response) return json();
    EXPECT_EQ(response->get_header_value("Content-Type"), kJsonType) << response->body;
    Result<json> body = ParseJson(response->body);
    EXPECT_TRUE(body.ok()) << response->body;
    return body.ok() ? *body : json();
  }

  // Checks an error answer: status, the error form, its code, and a message containing `text`.
  static void ExpectError(const httplib::Result& response, int status, const std::string& code,
                          const std::string& text = "") {
    ASSERT_TRUE(response) << httplib::to_string(response.error());
    EXPECT_EQ(response->status, status) << response->body;
    json body = BodyOf(response);
    ASSERT_TRUE(body.contains("error")) << response->body;
    EXPECT_EQ(body["error"]["code"], code) << response->body;
    ASSERT_TRUE(body["error"]["message"].is_string()) << response->body;
    EXPECT_NE(body["error"]["message"].get<std::string>().find(text), std::string::npos)
        << "wanted '" << text << "' in " << response->body;
  }

  httplib::Result PostJson(const std::string& path, const std::string& body) {
    return client_->Post(path.c_str(), body, kJsonType);
  }

  httplib::Result CreateVdisk(const std::string& name, uint64_t size_bytes) {
    return PostJson("/api/v1/vdisks", json{{"name", name}, {"size_bytes", size_bytes}}.dump());
  }

  // Sends `text` on a fresh connection and returns everything the server answers until it
  // closes the connection (or stays silent for the server's read timeout and then some, which is
  // a failure the caller's checks report).
  std::string RawExchange(const std::string& text) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_GE(fd, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(server_->port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(send(fd, text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
    timeval receive_timeout{.tv_sec = 30, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &receive_timeout, sizeof(receive_timeout));
    std::string answer;
    char buffer[4096];
    ssize_t n;
    while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) answer.append(buffer, n);
    close(fd);
    return answer;
  }

  FakeAdminService service_;
  std::unique_ptr<AdminHttpServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(AdminHttpServerTest, Healthz) {
  httplib::Result response = client_->Get("/healthz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(BodyOf(response), json({{"status", "ok"}}));
}

TEST_F(AdminHttpServerTest, NodeShowsItsDisks) {
  ASSERT_EQ(CreateVdisk("v1", 1 << 20)->status, 201);
  httplib::Result response = client_->Get("/api/v1/node");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  Result<NodeView> node = NodeViewFromJson(BodyOf(response));
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  EXPECT_EQ(node->vdisk_count, 1u);
  EXPECT_EQ(node->container_count, 1u);
  ASSERT_EQ(node->disks.size(), 1u);
  EXPECT_EQ(node->disks[0].state, "online");
}

TEST_F(AdminHttpServerTest, NodeAndVdisksCarryTheirCounters) {
  service_.SetCacheStats({{"hits_ssd", 3}, {"misses", 4}});
  EXPECT_EQ(BodyOf(client_->Get("/api/v1/node"))["cache"], json({{"hits_ssd", 3}, {"misses", 4}}));

  ASSERT_EQ(CreateVdisk("v1", 1 << 20)->status, 201);
  EXPECT_EQ(BodyOf(client_->Get("/api/v1/vdisks/v1"))["stats"], json::object());
  const CounterGroups stats = {{"io", {{"writes", 9}, {"bytes_written", 36864}}},
                               {"oplog", {{"records_replayed", 2}}}};
  service_.SetVdiskStats("v1", stats);
  const json expected = {{"io", {{"bytes_written", 36864}, {"writes", 9}}},
                         {"oplog", {{"records_replayed", 2}}}};
  EXPECT_EQ(BodyOf(client_->Get("/api/v1/vdisks/v1"))["stats"], expected);
  EXPECT_EQ(BodyOf(client_->Get("/api/v1/vdisks"))["vdisks"][0]["stats"], expected);
  Result<VdiskView> parsed = VdiskViewFromJson(BodyOf(client_->Get("/api/v1/vdisks/v1")));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->stats, stats);
}

TEST_F(AdminHttpServerTest, ContainerLifecycle) {
  httplib::Result created =
      PostJson("/api/v1/containers", R"({"name":"gold","replication_factor":3})");
  ASSERT_TRUE(created);
  EXPECT_EQ(created->status, 201);
  EXPECT_EQ(BodyOf(created)["replication_factor"], 3);

  httplib::Result defaulted = PostJson("/api/v1/containers", R"({"name":"silver"})");
  ASSERT_TRUE(defaulted);
  EXPECT_EQ(defaulted->status, 201);
  EXPECT_EQ(BodyOf(defaulted)["replication_factor"], 1);

  httplib::Result listed = client_->Get("/api/v1/containers");
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->status, 200);
  json containers = BodyOf(listed)["containers"];
  ASSERT_EQ(containers.size(), 3u);  // default, gold, silver.
  EXPECT_EQ(containers[1]["name"], "gold");

  httplib::Result shown = client_->Get("/api/v1/containers/gold");
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->status, 200);
  Result<ContainerView> view = ContainerViewFromJson(BodyOf(shown));
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  EXPECT_EQ(view->name, "gold");

  ExpectError(PostJson("/api/v1/containers", R"({"name":"gold"})"), 409, "AlreadyExists",
              "container 'gold' already exists");

  httplib::Result deleted = client_->Delete("/api/v1/containers/gold");
  ASSERT_TRUE(deleted);
  EXPECT_EQ(deleted->status, 204);
  EXPECT_TRUE(deleted->body.empty());
  ExpectError(client_->Get("/api/v1/containers/gold"), 404, "NotFound",
              "container 'gold' not found");
  ExpectError(client_->Delete("/api/v1/containers/gold"), 404, "NotFound");
}

TEST_F(AdminHttpServerTest, ContainerHoldingVdisksIsBusy) {
  ASSERT_EQ(PostJson("/api/v1/containers", R"({"name":"c"})")->status, 201);
  ASSERT_EQ(PostJson("/api/v1/vdisks", R"({"name":"v","size_bytes":4096,"container":"c"})")->status,
            201);
  ExpectError(client_->Delete("/api/v1/containers/c"), 409, "Busy", "still holds 1 vdisk");
}

TEST_F(AdminHttpServerTest, ServiceValidationErrorsAre400) {
  ExpectError(PostJson("/api/v1/containers", R"({"name":"c","replication_factor":0})"), 400,
              "InvalidArgument", "replication factor 0");
  ExpectError(PostJson("/api/v1/containers", R"({"name":"bad name"})"), 400, "InvalidArgument",
              "invalid container name");
  ExpectError(CreateVdisk("v", 1000), 400, "InvalidArgument", "invalid vdisk size 1000");
  ExpectError(CreateVdisk("v", 0), 400, "InvalidArgument", "invalid vdisk size 0");
}

TEST_F(AdminHttpServerTest, VdiskLifecycle) {
  httplib::Result created = CreateVdisk("vm1", uint64_t{10} << 30);
  ASSERT_TRUE(created);
  EXPECT_EQ(created->status, 201);
  Result<VdiskView> vdisk = VdiskViewFromJson(BodyOf(created));
  ASSERT_TRUE(vdisk.ok()) << vdisk.status().ToString();
  EXPECT_EQ(vdisk->container, "default");
  EXPECT_EQ(vdisk->size_bytes, uint64_t{10} << 30);
  EXPECT_EQ(vdisk->nbd_uri, "nbd://127.0.0.1:10809/vm1");

  ExpectError(CreateVdisk("vm1", 4096), 409, "AlreadyExists", "vdisk 'vm1' already exists");
  ExpectError(PostJson("/api/v1/vdisks", R"({"name":"x","size_bytes":4096,"container":"nope"})"),
              404, "NotFound", "container 'nope' not found");

  httplib::Result listed = client_->Get("/api/v1/vdisks");
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->status, 200);
  ASSERT_EQ(BodyOf(listed)["vdisks"].size(), 1u);
  EXPECT_EQ(BodyOf(listed)["vdisks"][0]["name"], "vm1");

  httplib::Result resized = PostJson("/api/v1/vdisks/vm1/resize", R"({"size_bytes":4096})");
  ASSERT_TRUE(resized);
  EXPECT_EQ(resized->status, 200);
  EXPECT_EQ(BodyOf(resized)["size_bytes"], 4096);
  EXPECT_EQ(BodyOf(client_->Get("/api/v1/vdisks/vm1"))["size_bytes"], 4096);
  ExpectError(PostJson("/api/v1/vdisks/nope/resize", R"({"size_bytes":4096})"), 404, "NotFound",
              "vdisk 'nope' not found");

  service_.SetOpenConnections("vm1", 2);
  ExpectError(client_->Delete("/api/v1/vdisks/vm1"), 409, "Busy", "2 open NBD connection");
  service_.SetOpenConnections("vm1", 0);
  httplib::Result deleted = client_->Delete("/api/v1/vdisks/vm1");
  ASSERT_TRUE(deleted);
  EXPECT_EQ(deleted->status, 204);
  ExpectError(client_->Get("/api/v1/vdisks/vm1"), 404, "NotFound", "vdisk 'vm1' not found");
  EXPECT_EQ(BodyOf(client_->Get("/api/v1/vdisks"))["vdisks"], json::array());
}

TEST_F(AdminHttpServerTest, EveryServiceErrorMapsToItsStatus) {
  struct Case {
    Status status;
    int http_status;
    const char* code;
  };
  const Case cases[] = {
      {Status::InvalidArgument("bad"), 400, "InvalidArgument"},
      {Status::NotFound("gone"), 404, "NotFound"},
      {Status::AlreadyExists("twice"), 409, "AlreadyExists"},
      {Status::Busy("in use"), 409, "Busy"},
      {Status::Aborted("raced"), 409, "Aborted"},
      {Status::NoSpace("full"), 507, "NoSpace"},
      {Status::IOError("disk"), 500, "IOError"},
      {Status::Corruption("crc"), 500, "Corruption"},
      {Status::NotSupported("later"), 500, "NotSupported"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.code);
    service_.FailNextCall(c.status);
    ExpectError(client_->Get("/api/v1/node"), c.http_status, c.code, c.status.message());
    service_.FailNextCall(c.status);
    ExpectError(CreateVdisk("v", 4096), c.http_status, c.code, c.status.message());
    service_.FailNextCall(c.status);
    ExpectError(client_->Delete("/api/v1/containers/default"), c.http_status, c.code);
  }
}

TEST_F(AdminHttpServerTest, MalformedBodiesAre400AndNeverReachTheService) {
  const uint64_t calls_before = service_.call_count();
  const std::pair<std::string, std::string> cases[] = {
      {"", "request body is empty"},
      {"{", "not valid JSON"},
      {"not json", "not valid JSON"},
      {"[]", "must be a JSON object"},
      {"null", "must be a JSON object"},
      {R"({"name":5,"size_bytes":4096})", "field 'name' must be a string"},
      {R"({"name":"v","size_bytes":-4096})", "negative number -4096"},
      {R"({"name":"v","size_bytes":4096.5})", "non-integer 4096.5"},
      {R"({"name":"v","size_bytes":"4096"})", "field 'size_bytes' must be an integer"},
      {R"({"name":"v","size_bytes":99999999999999999999999})", "non-integer"},
      {R"({"name":"v"})", "missing required field 'size_bytes'"},
      {R"({"size_bytes":4096})", "missing required field 'name'"},
      {R"({"name":"v","size_bytes":4096,"contianer":"c"})", "unknown field \"contianer\""},
      {R"({"name":"v","size_bytes":4096,"container":null})", "field 'container' must be"},
  };
  for (const auto& [body, message] : cases) {
    SCOPED_TRACE(body);
    ExpectError(PostJson("/api/v1/vdisks", body), 400, "InvalidArgument", message);
  }
  ExpectError(PostJson("/api/v1/vdisks/v/resize", R"({"size_bytes":4096,"force":true})"), 400,
              "InvalidArgument", "unknown field \"force\"");
  ExpectError(PostJson("/api/v1/containers", R"({"name":"c","rf":3})"), 400, "InvalidArgument",
              "unknown field \"rf\"");
  ExpectError(PostJson("/api/v1/containers", R"({"name":"c","replication_factor":-1})"), 400,
              "InvalidArgument", "negative");
  ExpectError(client_->Delete("/api/v1/vdisks/v", R"({"force":true})", kJsonType), 400,
              "InvalidArgument", "takes no request body");
  std::string deep(30'000, '[');
  ExpectError(PostJson("/api/v1/vdisks", deep), 400, "InvalidArgument", "nested deeper");
  deep += std::string(30'000, ']');
  ExpectError(PostJson("/api/v1/vdisks", deep), 400, "InvalidArgument", "nested deeper");
  EXPECT_EQ(service_.call_count(), calls_before);
}

TEST_F(AdminHttpServerTest, BodiesOverTheLimitAre413) {
  const size_t limit = AdminHttpServerOptions().max_body_bytes;
  // A valid request padded with spaces to exactly the limit is served...
  std::string body = R"({"name":"v","size_bytes":4096})";
  body.append(limit - body.size(), ' ');
  httplib::Result at_limit = PostJson("/api/v1/vdisks", body);
  ASSERT_TRUE(at_limit);
  EXPECT_EQ(at_limit->status, 201) << at_limit->body;
  // ...and one byte more is refused before the service sees it.
  const uint64_t calls_before = service_.call_count();
  body += ' ';
  ExpectError(PostJson("/api/v1/vdisks", body), 413, "PayloadTooLarge",
              "larger than the 65536 bytes allowed");
  ExpectError(PostJson("/api/v1/vdisks", std::string(8 << 20, 'x')), 413, "PayloadTooLarge");
  EXPECT_EQ(service_.call_count(), calls_before);
  // The server still answers afterwards.
  EXPECT_EQ(client_->Get("/healthz")->status, 200);
}

TEST_F(AdminHttpServerTest, UnknownRoutesAre404Json) {
  for (const char* path : {"/", "/api", "/api/v1", "/api/v2/node", "/api/v1/nodes",
                           "/api/v1/vdisks/", "/api/v1/vdisks//resize", "/api/v1/vdisks/v/grow",
                           "/api/v1/vdisks/v/resize/x", "/api/v1/node/x", "/healthz/x"}) {
    SCOPED_TRACE(path);
    ExpectError(client_->Get(path), 404, "NotFound", "no such API route");
  }
  ExpectError(client_->Post("/nope", "{}", kJsonType), 404, "NotFound");
  // A long path goes through the library's route matching without trouble.
  ExpectError(client_->Get(("/" + std::string(8000, 'a')).c_str()), 404, "NotFound");
}

TEST_F(AdminHttpServerTest, WrongMethodsAre405WithAllow) {
  struct Case {
    const char* method;
    const char* path;
    const char* allow;
  };
  const Case cases[] = {
      {"DELETE", "/api/v1/vdisks", "GET, POST"},
      {"PUT", "/api/v1/vdisks/v", "GET, DELETE"},
      {"PATCH", "/api/v1/containers/c", "GET, DELETE"},
      {"GET", "/api/v1/vdisks/v/resize", "POST"},
      {"POST", "/api/v1/node", "GET"},
      {"DELETE", "/healthz", "GET"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.method) + " " + c.path);
    httplib::Request request;
    request.method = c.method;
    request.path = c.path;
    httplib::Result response = client_->send(request);
    ExpectError(response, 405, "MethodNotAllowed", "allowed: " + std::string(c.allow));
    EXPECT_EQ(response->get_header_value("Allow"), c.allow);
  }
  httplib::Result options = client_->Options("/api/v1/vdisks");
  ASSERT_TRUE(options);
  EXPECT_EQ(options->status, 204);
  EXPECT_EQ(options->get_header_value("Allow"), "GET, POST");
}

TEST_F(AdminHttpServerTest, NamesArePercentDecodedAfterSplittingThePath) {
  client_->set_url_encode(false);  // Send the targets below exactly as written.
  ExpectError(client_->Get("/api/v1/vdisks/a%2Fb"), 404, "NotFound", "vdisk 'a/b' not found");
  ExpectError(client_->Get("/api/v1/vdisks/a%20b/resize"), 405, "MethodNotAllowed");
  ExpectError(client_->Get("/api/v1/vdisks/a%2"), 400, "InvalidArgument",
              "malformed percent-encoding");
  ExpectError(client_->Get("/api/v1/vdisks/a%zz"), 400, "InvalidArgument",
              "malformed percent-encoding");
  // A name that is not UTF-8 still gives a JSON error (nlohmann would throw on dumping it).
  ExpectError(client_->Get("/api/v1/vdisks/%FF%FE"), 404, "NotFound", "not found");
}

TEST_F(AdminHttpServerTest, QueryParametersAreRejected) {
  ExpectError(client_->Delete("/api/v1/vdisks/v?force=1"), 400, "InvalidArgument",
              "no query parameters ('?force=1')");
  ExpectError(client_->Get("/api/v1/vdisks?"), 400, "InvalidArgument", "no query parameters");
}

TEST_F(AdminHttpServerTest, GarbageOnTheSocketGetsAnErrorAndTheServerLives) {
  std::string answer = RawExchange("GARBAGE\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  EXPECT_NE(answer.find("\"BadRequest\""), std::string::npos) << answer;
  answer = RawExchange("BREW /api/v1/node HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  answer = RawExchange(
      "POST /api/v1/vdisks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  EXPECT_EQ(client_->Get("/healthz")->status, 200);
}

TEST_F(AdminHttpServerTest, BodyOnAGetIsRejectedNotParsedAsTheNextRequest) {
  const std::string smuggled = "DELETE /api/v1/containers/default HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string answer = RawExchange("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                   std::to_string(smuggled.size()) + "\r\n\r\n" + smuggled);
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  EXPECT_NE(answer.find("take no body"), std::string::npos) << answer;
  EXPECT_EQ(answer.find("HTTP/1.1", 1), std::string::npos) << "two answers: " << answer;
  EXPECT_EQ(client_->Get("/api/v1/containers/default")->status, 200);
}

TEST_F(AdminHttpServerTest, ConcurrentCreatesAllLand) {
  constexpr int kThreads = 8;
  constexpr int kVdisksPerThread = 25;
  std::atomic<int> created{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      httplib::Client client("127.0.0.1", server_->port());
      for (int i = 0; i < kVdisksPerThread; ++i) {
        std::string body = json{
            {"name", "v" + std::to_string(t) + "-" + std::to_string(i)},
            {"size_bytes",
             4096}}.dump();
        httplib::Result response = client.Post("/api/v1/vdisks", body, kJsonType);
        if (response && response->status == 201) created.fetch_add(1);
        httplib::Result listed = client.Get("/api/v1/vdisks");
        EXPECT_TRUE(listed && listed->status == 200);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(created.load(), kThreads * kVdisksPerThread);
  EXPECT_EQ(BodyOf(client_->Get("/api/v1/vdisks"))["vdisks"].size(),
            static_cast<size_t>(kThreads * kVdisksPerThread));
}

TEST_F(AdminHttpServerTest, ConcurrentCreatesOfOneNameHaveOneWinner) {
  constexpr int kThreads = 8;
  std::atomic<int> created{0};
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", server_->port());
      httplib::Result response =
          client.Post("/api/v1/vdisks", R"({"name":"same","size_bytes":4096})", kJsonType);
      if (response && response->status == 201) created.fetch_add(1);
      if (response && response->status == 409) conflicts.fetch_add(1);
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(conflicts.load(), kThreads - 1);
}

TEST(AdminHttpServerStartTest, PortInUseIsAnErrorNamingTheAddress) {
  FakeAdminService service;
  AdminHttpServerOptions options;
  options.port = 0;
  AdminHttpServer first(service, options);
  ASSERT_TRUE(first.Start().ok());
  options.port = first.port();
  AdminHttpServer second(service, options);
  Status status = second.Start();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("127.0.0.1:" + std::to_string(first.port())), std::string::npos)
      << status.ToString();
  EXPECT_NE(status.message().find("Address already in use"), std::string::npos)
      << status.ToString();
  second.Stop();  // Stopping a server that never started is harmless.
}

TEST(AdminHttpServerStartTest, UnknownHostIsAnError) {
  FakeAdminService service;
  AdminHttpServerOptions options;
  options.host = "no-such-host.invalid";
  options.port = 0;
  AdminHttpServer server(service, options);
  Status status = server.Start();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("no-such-host.invalid:0"), std::string::npos)
      << status.ToString();
}

TEST(AdminHttpServerStartTest, StopRightAfterStartReturnsAndIsIdempotent) {
  FakeAdminService service;
  AdminHttpServerOptions options;
  options.port = 0;
  for (int i = 0; i < 20; ++i) {
    AdminHttpServer server(service, options);
    ASSERT_TRUE(server.Start().ok());
    server.Stop();
    server.Stop();
  }
}

}  // namespace
}  // namespace weft::admin
