// The real `weft` binary against an AdminHttpServer over the fake service, both on 127.0.0.1:
// human output, --json output, and the exit codes 0 (success), 1 (refused), 2 (usage) and
// 3 (unreachable). To reproduce a failure by hand, run the printed command line against any
// weftd (or `make run`).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "cli/cli_test_util.h"

namespace weft::cli {
namespace {

using nlohmann::json;

TEST_F(CliTest, VdiskLifecycleInHumanOutput) {
  CommandResult created = Weft({"vdisk", "create", "vm1", "--size", "10G"});
  EXPECT_EQ(created.out,
            "Created vdisk 'vm1': 10 GiB in container 'default'.\n"
            "NBD URI: nbd://127.0.0.1:10809/vm1\n");
  EXPECT_EQ(created.err, "");

  CommandResult listed = Weft({"vdisk", "list"});
  EXPECT_EQ(listed.out,
            "NAME  CONTAINER    SIZE  USED  CONNECTIONS  NBD URI\n"
            "vm1   default    10 GiB   0 B            0  nbd://127.0.0.1:10809/vm1\n");

  CommandResult shown = Weft({"vdisk", "show", "vm1"});
  EXPECT_EQ(shown.out,
            "Name:              vm1\n"
            "Container:         default\n"
            "Size:              10 GiB (10737418240 bytes)\n"
            "Used:              0 B (0.0% of its size)\n"
            "Mapped vBlocks:    0\n"
            "Created:           2027-01-15 08:00:00 UTC\n"
            "Open connections:  0\n"
            "NBD URI:           nbd://127.0.0.1:10809/vm1\n");

  EXPECT_EQ(Weft({"vdisk", "resize", "vm1", "--size", "1.5T"}).out,
            "Resized vdisk 'vm1' from 10 GiB to 1.5 TiB.\n");
  EXPECT_EQ(Weft({"vdisk", "delete", "vm1"}).out, "Deleted vdisk 'vm1'.\n");
  EXPECT_EQ(Weft({"vdisk", "list"}).out,
            "No vdisks. Create one with: weft vdisk create NAME --size 10G\n");
}

TEST_F(CliTest, ShrinkingNeedsAllowShrink) {
  Weft({"vdisk", "create", "vm1", "--size", "10G"});
  CommandResult refused = Weft({"vdisk", "resize", "vm1", "--size", "1G"}, 1);
  EXPECT_EQ(refused.out, "");
  EXPECT_EQ(refused.err,
            "weft: error: shrinking vdisk 'vm1' from 10 GiB to 1 GiB discards the data past 1 GiB; "
            "pass --allow-shrink to do it\n");
  EXPECT_EQ(json(WeftJson({"vdisk", "show", "vm1"}))["size_bytes"], uint64_t{10} << 30);
  EXPECT_EQ(Weft({"vdisk", "resize", "vm1", "--size", "1G", "--allow-shrink"}).out,
            "Resized vdisk 'vm1' from 10 GiB to 1 GiB.\n");
}

TEST_F(CliTest, ContainerLifecycleInHumanOutput) {
  EXPECT_EQ(Weft({"container", "create", "gold", "--rf", "3"}).out,
            "Created container 'gold' (replication factor 3).\n");
  Weft({"vdisk", "create", "db", "--size", "512M", "--container", "gold"});
  EXPECT_EQ(Weft({"container", "list"}).out,
            "NAME     RF  VDISKS  PROVISIONED  USED\n"
            "default   1       0          0 B   0 B\n"
            "gold      3       1      512 MiB   0 B\n");
  EXPECT_EQ(Weft({"container", "show", "gold"}).out,
            "Name:                gold\n"
            "Replication factor:  3\n"
            "vDisks:              1\n"
            "Provisioned:         512 MiB\n"
            "Used:                0 B\n");
  CommandResult busy = Weft({"container", "delete", "gold"}, 1);
  EXPECT_EQ(busy.err, "weft: error: container 'gold' still holds 1 vdisk(s)\n");
  Weft({"vdisk", "delete", "db"});
  EXPECT_EQ(Weft({"container", "delete", "gold"}).out, "Deleted container 'gold'.\n");
}

TEST_F(CliTest, StatusShowsTheNodeAndItsDisks) {
  CommandResult status = Weft({"status"});
  EXPECT_EQ(
      status.out,
      "Node:        5f0c8d1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f\n"
      "Version:     0.1.0-fake\n"
      "Uptime:      1h 2m 3s\n"
      "Data dir:    /var/lib/weft\n"
      "NBD:         127.0.0.1:10809 (0 open connections)\n"
      "Admin API:   127.0.0.1:9440\n"
      "Containers:  1\n"
      "vDisks:      0\n"
      "Cache:       1000 hits, 250 misses, hit ratio 80.0%, memory 12 MiB of 16 MiB, SSD tier "
      "32 MiB\n"
      "Cluster:     'fake' (8a3f6c2e-1d4b-4e5f-9a7b-3c2d1e0f9a8b), backend zookeeper\n"
      "Nodes:       3 of 3 live\n"
      "Ring:        epoch 1, RF 2 (3 replicas per row)\n"
      "Session:     connected, not fenced\n"
      "\n"
      "DISK      UUID                                     SIZE   USED    FREE  EGROUPS  STATE\n"
      "/dev/vdb  0d4e9a52-7c1b-4f3e-9d2a-6b8c1e0f7a34  100 GiB  3 GiB  97 GiB      768  "
      "online\n"
      "\n"
      "NODE      RPC             ADMIN           LIVE  RING    TOKENS\n"
      "1 (self)  127.0.0.1:7101  127.0.0.1:9441  yes   normal      16\n"
      "2         127.0.0.1:7102  127.0.0.1:9442  yes   normal      16\n"
      "3         127.0.0.1:7103  127.0.0.1:9443  yes   normal      16\n");
}

TEST_F(CliTest, StatusCacheLineWithoutTrafficOrSsdTierOrCounters) {
  service_.SetCacheStats({{"memory_bytes_max", uint64_t{256} << 20}, {"ssd_bytes_max", 0}});
  EXPECT_NE(Weft({"status"})
                .out.find("Cache:       0 hits, 0 misses, hit ratio n/a, memory 0 B "
                          "of 256 MiB, no SSD tier\n"),
            std::string::npos);
  // Counters from a newer cache: every hits_* counter is a hit.
  service_.SetCacheStats({{"hits_nvme", 1}, {"hits_ssd", 2}, {"misses", 1}});
  EXPECT_NE(Weft({"status"}).out.find("Cache:       3 hits, 1 misses, hit ratio 75.0%,"),
            std::string::npos);
  // A weftd without cache counters: no cache line at all.
  service_.SetCacheStats({});
  EXPECT_EQ(Weft({"status"}).out.find("Cache:"), std::string::npos);
}

TEST_F(CliTest, VdiskShowPrintsEachCounterGroupAsAGrid) {
  Weft({"vdisk", "create", "vm1", "--size", "1G"});
  service_.SetVdiskStats(
      "vm1",
      {{"oplog",
        {{"records_appended", 120},
         {"bytes_appended", 491520},
         {"records_replayed", 0},
         {"index_bytes", 65536},
         {"segments", 4}}},
       {"io", {{"reads", 7}, {"writes", 120}, {"bytes_read", 28672}, {"flushes", 1}}},
       {"characterizer",
        {{"writes_oplog", 100}, {"writes_sequential_bypass", 20}, {"writes_oplog_full_bypass", 0}}},
       {"future", {}}});
  const std::string out = Weft({"vdisk", "show", "vm1"}).out;
  const std::string fields_end = "NBD URI:           nbd://127.0.0.1:10809/vm1\n";
  ASSERT_NE(out.find(fields_end), std::string::npos) << out;
  EXPECT_EQ(out.substr(out.find(fields_end) + fields_end.size()),
            "\n"
            "io:\n"
            "  bytes_read  28672    reads     7\n"
            "  flushes         1    writes  120\n"
            "\n"
            "characterizer:\n"
            "  writes_oplog  100    writes_oplog_full_bypass  0    writes_sequential_bypass  20\n"
            "\n"
            "oplog:\n"
            "  bytes_appended  491520    records_appended  120    segments  4\n"
            "  index_bytes      65536    records_replayed    0\n"
            "\n"
            "future:\n"
            "  (no counters)\n");
  // --json passes the groups through as they came.
  EXPECT_EQ(WeftJson({"vdisk", "show", "vm1"})["stats"]["oplog"]["index_bytes"], 65536);
  EXPECT_EQ(WeftJson({"vdisk", "list"})["vdisks"][0]["stats"]["io"]["writes"], 120);
  EXPECT_EQ(WeftJson({"status"})["cache"]["misses"], 250);
}

TEST_F(CliTest, JsonOutputIsTheApisJson) {
  json created = WeftJson({"vdisk", "create", "vm1", "--size", "4096"});
  EXPECT_EQ(created["name"], "vm1");
  EXPECT_EQ(created["size_bytes"], 4096);
  EXPECT_EQ(created["nbd_uri"], "nbd://127.0.0.1:10809/vm1");
  EXPECT_EQ(WeftJson({"vdisk", "show", "vm1"}), created);
  EXPECT_EQ(WeftJson({"vdisk", "list"}), json({{"vdisks", {created}}}));
  EXPECT_EQ(WeftJson({"vdisk", "resize", "vm1", "--size", "8K"})["size_bytes"], 8192);
  EXPECT_EQ(WeftJson({"status"})["disks"][0]["state"], "online");
  EXPECT_EQ(WeftJson({"container", "create", "c", "--rf", "2"})["replication_factor"], 2);
  EXPECT_EQ(WeftJson({"container", "show", "c"})["name"], "c");
  EXPECT_EQ(WeftJson({"container", "list"})["containers"].size(), 2u);
  // A delete answers 204 No Content: nothing on stdout.
  CommandResult deleted = Weft({"--json", "container", "delete", "c"});
  EXPECT_EQ(deleted.out, "");
  // --json also works after the subcommand.
  CommandResult after = Weft({"vdisk", "list", "--json"});
  EXPECT_TRUE(admin::ParseJson(after.out).ok()) << Describe(after);
}

TEST_F(CliTest, JsonOutputPassesPythonsJsonTool) {
  Weft({"vdisk", "create", "vm1", "--size", "1G"});
  for (const char* command : {"status", "vdisk list", "vdisk show vm1", "container list"}) {
    std::string shell = std::string(WEFT_CLI_PATH) + " --admin " + address_ + " --json " + command +
                        " | /usr/bin/python3 -m json.tool > /dev/null";
    EXPECT_EQ(std::system(shell.c_str()), 0) << shell;
  }
}

TEST_F(CliTest, RefusalsExitWithOneAndPrintTheServersMessage) {
  CommandResult missing = Weft({"vdisk", "show", "x"}, 1);
  EXPECT_EQ(missing.out, "");
  EXPECT_EQ(missing.err, "weft: error: vdisk 'x' not found\n");
  EXPECT_EQ(Weft({"--json", "vdisk", "delete", "x"}, 1).err, "weft: error: vdisk 'x' not found\n");
  Weft({"vdisk", "create", "v", "--size", "1M"});
  EXPECT_EQ(Weft({"vdisk", "create", "v", "--size", "1M"}, 1).err,
            "weft: error: vdisk 'v' already exists\n");
  EXPECT_EQ(Weft({"vdisk", "create", "w", "--size", "1000"}, 1).err,
            "weft: error: invalid vdisk size 1000: must be a positive multiple of 4096 bytes, at "
            "most 1125899906842624\n");
  service_.FailNextCall(Status::NoSpace("the storage pool is full"));
  EXPECT_EQ(Weft({"vdisk", "create", "w", "--size", "1M"}, 1).err,
            "weft: error: the storage pool is full\n");
  service_.SetOpenConnections("v", 1);
  EXPECT_EQ(Weft({"vdisk", "delete", "v"}, 1).err,
            "weft: error: vdisk 'v' has 1 open NBD connection(s)\n");
}

TEST_F(CliTest, NamesAreEncodedInPaths) {
  CommandResult odd = Weft({"vdisk", "show", "a/b?c#d e"}, 1);
  EXPECT_EQ(odd.err, "weft: error: vdisk 'a/b?c#d e' not found\n");
  EXPECT_EQ(Weft({"container", "delete", "../vdisks/x"}, 1).err,
            "weft: error: container '../vdisks/x' not found\n");
}

TEST_F(CliTest, UsageErrorsExitWithTwoAndNeverCallTheServer) {
  const uint64_t calls_before = service_.call_count();
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"bogus"},
      {"vdisk"},
      {"vdisk", "create", "v"},
      {"vdisk", "create", "--size", "1G"},
      {"vdisk", "create", "v", "--size", "0"},
      {"vdisk", "create", "v", "--size", "-1G"},
      {"vdisk", "create", "v", "--size", "lots"},
      {"vdisk", "create", "v", "--size", "99999P"},
      {"vdisk", "create", "v", "w", "--size", "1G"},
      {"vdisk", "resize", "v"},
      {"vdisk", "show"},
      {"container", "create", "c", "--rf", "0"},
      {"container", "create", "c", "--rf", "x"},
      {"container", "show"},
      {"status", "extra"},
      {"--no-such-flag", "status"},
  };
  for (const std::vector<std::string>& args : cases) {
    CommandResult result = Weft(args, 2);
    EXPECT_EQ(result.out, "") << Describe(result);
    EXPECT_NE(result.err, "") << Describe(result);
  }
  CommandResult ambiguous = Weft({"vdisk", "create", "v", "--size", "10GB"}, 2);
  EXPECT_NE(ambiguous.err.find("'GB' is ambiguous"), std::string::npos) << Describe(ambiguous);
  EXPECT_EQ(service_.call_count(), calls_before);
}

TEST(CliAddressTest, BadAdminAddressesAreUsageErrors) {
  for (const char* address : {"localhost", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", ":9440",
                              "::1:9440", "127.0.0.1:94x0", "[::1]9440"}) {
    CommandResult result = RunWeft({"--admin", address, "status"});
    EXPECT_EQ(result.exit_code, 2) << Describe(result);
    EXPECT_NE(result.err.find("invalid admin address"), std::string::npos) << Describe(result);
  }
  CommandResult from_env = RunWeft({"status"}, "not-an-address");
  EXPECT_EQ(from_env.exit_code, 2) << Describe(from_env);
  EXPECT_NE(from_env.err.find("invalid admin address 'not-an-address'"), std::string::npos)
      << Describe(from_env);
}

// A port that is bound but not listening refuses connections, and stays reserved for the test.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    socklen_t length = sizeof(address);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length), 0);
    port_ = ntohs(address.sin_port);
  }
  ~ClosedPort() { close(fd_); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

TEST(CliAddressTest, UnreachableWeftdExitsWithThreeAndSaysWhere) {
  ClosedPort closed;
  for (const char* command : {"status", "vdisk list", "container list"}) {
    std::vector<std::string> args = {"--admin", closed.address()};
    std::istringstream words(command);
    for (std::string word; words >> word;) args.push_back(word);
    CommandResult result = RunWeft(args);
    EXPECT_EQ(result.exit_code, 3) << Describe(result);
    EXPECT_EQ(result.out, "") << Describe(result);
    EXPECT_NE(result.err.find("weft: error: cannot reach weftd at " + closed.address()),
              std::string::npos)
        << Describe(result);
    EXPECT_NE(result.err.find("make run"), std::string::npos) << Describe(result);
  }
}

TEST_F(CliTest, AdminAddressFromTheEnvironmentAndTheFlagWins) {
  CommandResult from_env = RunWeft({"vdisk", "list"}, address_);
  EXPECT_EQ(from_env.exit_code, 0) << Describe(from_env);
  ClosedPort closed;
  CommandResult flag_wins = RunWeft({"--admin", address_, "vdisk", "list"}, closed.address());
  EXPECT_EQ(flag_wins.exit_code, 0) << Describe(flag_wins);
  CommandResult env_used = RunWeft({"vdisk", "list"}, closed.address());
  EXPECT_EQ(env_used.exit_code, 3) << Describe(env_used);
}

TEST(CliAddressTest, SomethingElseOnThePortIsReportedAsSuch) {
  httplib::Server other;
  other.Get(".*", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("<html>hello</html>", "text/html");
  });
  int port = other.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread thread([&] { other.listen_after_bind(); });
  while (!other.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CommandResult result = RunWeft({"--admin", "127.0.0.1:" + std::to_string(port), "status"});
  other.stop();
  thread.join();
  EXPECT_EQ(result.exit_code, 1) << Describe(result);
  EXPECT_NE(result.err.find("unexpected answer from 127.0.0.1:" + std::to_string(port) +
                            ": HTTP 200 with a body that is not JSON"),
            std::string::npos)
      << Describe(result);
}

TEST(CliHelpTest, HelpExitsWithZeroAndExplains) {
  CommandResult help = RunWeft({"--help"});
  EXPECT_EQ(help.exit_code, 0) << Describe(help);
  for (const char* text : {"status", "container", "vdisk", "--admin", "WEFT_ADMIN", "--json",
                           "Exit codes", "weftd cannot be reached", "binary units"}) {
    EXPECT_NE(help.out.find(text), std::string::npos) << text << "\n" << Describe(help);
  }
  CommandResult vdisk_help = RunWeft({"vdisk", "create", "--help"});
  EXPECT_EQ(vdisk_help.exit_code, 0) << Describe(vdisk_help);
  EXPECT_NE(vdisk_help.out.find("--size"), std::string::npos) << Describe(vdisk_help);
  EXPECT_NE(vdisk_help.out.find("--container"), std::string::npos) << Describe(vdisk_help);
  CommandResult all = RunWeft({"--help-all"});
  EXPECT_EQ(all.exit_code, 0) << Describe(all);
  EXPECT_NE(all.out.find("--allow-shrink"), std::string::npos) << Describe(all);
}

}  // namespace
}  // namespace weft::cli
