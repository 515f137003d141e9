// NbdServer driven by real NBD clients as subprocesses (qemu-io, qemu-img, nbdinfo, nbdsh, fio)
// and by a raw socket client that sends what no well-behaved client would. The server runs on
// an io_context on a background thread over in-memory exports (nbd_test_util.h).
//
// Reproduce a failure: build/<dir>/src/frontend/nbd/nbd_server_test --gtest_filter=<test>; the
// failing client command line and its output are in the message.
#include "frontend/nbd/nbd_server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "frontend/nbd/nbd_test_util.h"

namespace weft::nbd {
namespace {

using testing::MemoryDisk;
using testing::WireBytes;

constexpr uint64_t kDiskBytes = 64ull << 20;
constexpr uint64_t kReadOnlyBytes = 1ull << 20;

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// Runs a shell command with /usr/bin first on PATH (nbdsh must get Debian's python3, which has
// the nbd module) and a time limit, and returns its exit code and combined output.
CommandResult RunCommand(const std::string& command) {
  const std::string full =
      "env PATH=/usr/bin:/bin:/usr/sbin:/sbin timeout 120 " + command + " 2>&1";
  CommandResult result;
  FILE* pipe = ::popen(full.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t read_bytes;
  while ((read_bytes = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    result.output.append(buffer, read_bytes);
  }
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string Describe(const std::string& command, const CommandResult& result) {
  return fmt::format("command: {}\nexit code: {}\noutput:\n{}", command, result.exit_code,
                     result.output);
}

// Runs `command` and expects exit code 0.
std::string RunOk(const std::string& command) {
  const CommandResult result = RunCommand(command);
  EXPECT_EQ(result.exit_code, 0) << Describe(command, result);
  return result.output;
}

// Polls `condition` (on the caller's thread) for up to 20 s: for states that settle
// asynchronously, such as a connection count after a client leaves. Not a timing assertion.
bool Eventually(const std::function<bool()>& condition) {
  for (int i = 0; i < 2000; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

// A blocking client speaking raw bytes. Receives time out after 20 s so a bug cannot hang.
class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    timeval timeout{20, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    const int one = 1;  // Requests go out at once, not after a delayed ACK.
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~RawClient() { ::close(fd_); }

  bool connected() const { return connected_; }

  void Send(std::span<const std::byte> bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;  // The server closed; the next receive reports it.
      sent += static_cast<size_t>(n);
    }
  }
  void Send(const WireBytes& bytes) { Send(bytes.span()); }

  // Exactly `length` bytes, or nullopt on end of stream, error or timeout.
  std::optional<std::vector<std::byte>> Receive(size_t length) {
    std::vector<std::byte> bytes(length);
    size_t received = 0;
    while (received < length) {
      const ssize_t n = ::recv(fd_, bytes.data() + received, length - received, 0);
      if (n <= 0) return std::nullopt;
      received += static_cast<size_t>(n);
    }
    return bytes;
  }
  // True when the server closed the connection (end of stream or reset), false on a timeout
  // or if bytes arrive instead.
  bool ClosedByServer() {
    std::byte byte;
    const ssize_t n = ::recv(fd_, &byte, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  // Reads the greeting and sends client flags.
  void Greet(uint32_t client_flags = kClientFlagsKnown) {
    auto greeting = Receive(sizeof(ServerGreetingWire));
    ASSERT_TRUE(greeting.has_value());
    EXPECT_EQ(Load<uint64_t>(*greeting, 0), kNbdMagic);
    EXPECT_EQ(Load<uint64_t>(*greeting, 8), kOptionMagic);
    Send(WireBytes().U32(client_flags));
  }
  void SendOption(uint32_t option, const WireBytes& payload) {
    Send(WireBytes()
             .U64(kOptionMagic)
             .U32(option)
             .U32(static_cast<uint32_t>(payload.vector().size()))
             .Raw(payload.span()));
  }
  struct OptionReply {
    uint32_t option = 0;
    uint32_t type = 0;
    std::vector<std::byte> payload;
  };
  std::optional<OptionReply> ReadOptionReply() {
    auto header = Receive(sizeof(OptionReplyHeaderWire));
    if (!header) return std::nullopt;
    EXPECT_EQ(Load<uint64_t>(*header, 0), kOptionReplyMagic);
    OptionReply reply{Load<uint32_t>(*header, 8), Load<uint32_t>(*header, 12), {}};
    auto payload = Receive(Load<uint32_t>(*header, 16));
    if (!payload) return std::nullopt;
    reply.payload = std::move(*payload);
    return reply;
  }
  // Handshake to transmission on `name`; returns the transmission flags (0 on failure).
  uint16_t Go(std::string_view name, bool structured, bool base_allocation = false) {
    Greet();
    if (structured) {
      SendOption(kOptStructuredReply, WireBytes());
      auto ack = ReadOptionReply();
      if (!ack || ack->type != kRepAck) return 0;
    }
    if (base_allocation) {
      SendOption(kOptSetMetaContext,
                 WireBytes().String32(name).U32(1).String32(kBaseAllocationContext));
      for (;;) {
        auto reply = ReadOptionReply();
        if (!reply || reply->type & kRepErrorBit) return 0;
        if (reply->type == kRepAck) break;
      }
    }
    SendOption(kOptGo, WireBytes().String32(name).U16(0));
    uint16_t flags = 0;
    for (;;) {
      auto reply = ReadOptionReply();
      if (!reply || reply->type & kRepErrorBit) return 0;
      if (reply->type == kRepAck) return flags;
      if (Load<uint16_t>(reply->payload, 0) == kInfoExport)
        flags = Load<uint16_t>(reply->payload, 10);
    }
  }
  void SendRequest(uint16_t type, uint16_t flags, uint64_t cookie, uint64_t offset, uint32_t length,
                   std::span<const std::byte> payload = {}) {
    Send(WireBytes()
             .U32(kRequestMagic)
             .U16(flags)
             .U16(type)
             .U64(cookie)
             .U64(offset)
             .U32(length)
             .Raw(payload));
  }
  struct Reply {
    uint64_t cookie = 0;
    uint32_t error = 0;
    uint16_t type = 0;               // Structured chunks only.
    std::vector<std::byte> payload;  // Structured chunk payload.
  };
  std::optional<Reply> ReadSimpleReply() {
    auto bytes = Receive(sizeof(SimpleReplyWire));
    if (!bytes) return std::nullopt;
    EXPECT_EQ(Load<uint32_t>(*bytes, 0), kSimpleReplyMagic);
    return Reply{Load<uint64_t>(*bytes, 8), Load<uint32_t>(*bytes, 4), 0, {}};
  }
  std::optional<Reply> ReadChunk() {
    auto bytes = Receive(sizeof(StructuredReplyHeaderWire));
    if (!bytes) return std::nullopt;
    EXPECT_EQ(Load<uint32_t>(*bytes, 0), kStructuredReplyMagic);
    EXPECT_EQ(Load<uint16_t>(*bytes, 4), kReplyFlagDone);
    Reply reply{Load<uint64_t>(*bytes, 8), 0, Load<uint16_t>(*bytes, 6), {}};
    auto payload = Receive(Load<uint32_t>(*bytes, 16));
    if (!payload) return std::nullopt;
    reply.payload = std::move(*payload);
    if (reply.type == kReplyTypeError) reply.error = Load<uint32_t>(reply.payload, 0);
    return reply;
  }

  template <typename T>
  static T Load(const std::vector<std::byte>& bytes, size_t offset) {
    BigEndian<T> wire;
    if (offset + sizeof(T) <= bytes.size()) std::memcpy(&wire, bytes.data() + offset, sizeof(T));
    return wire.get();
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

std::vector<std::byte> Pattern(size_t length, uint8_t seed) {
  std::vector<std::byte> bytes(length);
  for (size_t i = 0; i < length; ++i) bytes[i] = static_cast<std::byte>(seed + i * 7);
  return bytes;
}

class NbdServerTest : public ::testing::Test {
 protected:
  NbdServerTest() : provider_(io_context_) {
    ExportInfo disk;
    disk.name = "disk";
    disk.description = "weft test disk";
    disk.size_bytes = kDiskBytes;
    disk_ = provider_.Add(disk);
    ExportInfo read_only;
    read_only.name = "ro";
    read_only.size_bytes = kReadOnlyBytes;
    read_only.read_only = true;
    read_only_disk_ = provider_.Add(read_only);
    for (size_t i = 0; i < kReadOnlyBytes; ++i) read_only_disk_->data[i] = std::byte{0x5a};
  }

  void SetUp() override {
    work_.emplace(io_context_.get_executor());
    thread_ = std::thread([this] { io_context_.run(); });
  }

  void TearDown() override {
    OnReactor([this] { server_.reset(); });
    work_.reset();
    io_context_.stop();
    thread_.join();
  }

  // Runs `function` on the reactor thread and returns its result.
  template <typename Function>
  auto OnReactor(Function function) -> decltype(function()) {
    std::packaged_task<decltype(function())()> task(std::move(function));
    auto future = task.get_future();
    asio::post(io_context_, [&task] { task(); });
    return future.get();
  }

  void StartServer(NbdServerOptions options = {}) {
    if (options.tcp_listen == NbdServerOptions{}.tcp_listen) options.tcp_listen = {"127.0.0.1:0"};
    const Status status = OnReactor([&] {
      server_ = std::make_unique<NbdServer>(io_context_, provider_, options);
      return server_->Start();
    });
    ASSERT_TRUE(status.ok()) << status.ToString();
    port_ = OnReactor([&] { return server_->tcp_ports().at(0); });
  }

  std::string Uri(std::string_view export_name) const {
    return fmt::format("nbd://127.0.0.1:{}/{}", port_, export_name);
  }
  uint32_t Connections() {
    return OnReactor([&] { return server_->connection_count(); });
  }
  NbdServerStats Stats() {
    return OnReactor([&] { return server_->stats(); });
  }
  std::vector<std::byte> DiskBytes(uint64_t offset, uint64_t length) {
    return OnReactor([&] {
      return std::vector<std::byte>(disk_->data.begin() + static_cast<ptrdiff_t>(offset),
                                    disk_->data.begin() + static_cast<ptrdiff_t>(offset + length));
    });
  }

  // A well-behaved client still gets served: write, then read back, on a fresh connection.
  void ExpectHealthy() {
    RawClient client(port_);
    ASSERT_TRUE(client.connected());
    ASSERT_NE(client.Go("disk", /*structured=*/false), 0);
    const auto data = Pattern(4096, 99);
    client.SendRequest(kCmdWrite, 0, 1, 1 << 20, 4096, data);
    auto written = client.ReadSimpleReply();
    ASSERT_TRUE(written.has_value());
    EXPECT_EQ(written->error, kErrorNone);
    client.SendRequest(kCmdRead, 0, 2, 1 << 20, 4096);
    auto read = client.ReadSimpleReply();
    ASSERT_TRUE(read.has_value());
    EXPECT_EQ(read->cookie, 2u);
    EXPECT_EQ(client.Receive(4096), data);
  }

  asio::io_context io_context_;
  testing::MemoryExportProvider provider_;
  std::shared_ptr<MemoryDisk> disk_;
  std::shared_ptr<MemoryDisk> read_only_disk_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::unique_ptr<NbdServer> server_;
  uint16_t port_ = 0;
};

// ---- Real clients ----

TEST_F(NbdServerTest, QemuIoWritesAndReadsPatternsAtManyOffsetsAndSizes) {
  StartServer();
  struct Io {
    uint64_t offset;
    uint64_t length;
  };
  const std::vector<Io> ios = {{0, 4096},
                               {4096, 512},
                               {5000, 1},
                               {12345, 70000},
                               {1 << 20, 1 << 20},
                               {(3 << 20) + 1, 65537},
                               {kDiskBytes - 8192, 4096},
                               {kDiskBytes - 1, 1},
                               {10 << 20, 4 << 20}};
  std::string writes;
  std::string reads;
  for (size_t i = 0; i < ios.size(); ++i) {
    const int pattern = 0x11 + static_cast<int>(i) * 0x10;
    writes += fmt::format(" -c 'write -P {:#x} {} {}'", pattern, ios[i].offset, ios[i].length);
    reads += fmt::format(" -c 'read -P {:#x} {} {}'", pattern, ios[i].offset, ios[i].length);
  }
  RunOk("qemu-io -f raw" + writes + " " + Uri("disk"));
  const std::string output = RunOk("qemu-io -f raw" + reads + " " + Uri("disk"));
  EXPECT_EQ(output.find("Pattern verification failed"), std::string::npos) << output;
  // The bytes really are in the export.
  EXPECT_EQ(DiskBytes(12345, 1)[0], std::byte{0x41});
  EXPECT_EQ(DiskBytes(kDiskBytes - 1, 1)[0], std::byte{0x81});
  // And a wrong pattern is noticed (the check above can fail).
  const CommandResult wrong = RunCommand("qemu-io -f raw -c 'read -P 0x99 0 4096' " + Uri("disk"));
  EXPECT_NE(wrong.output.find("Pattern verification failed"), std::string::npos) << wrong.output;
  EXPECT_GT(Stats().requests_by_command[kCmdWrite], 0u);
}

TEST_F(NbdServerTest, QemuImgInfoConvertCompare) {
  StartServer();
  const std::string info = RunOk("qemu-img info --output=json " + Uri("disk"));
  EXPECT_NE(info.find(fmt::format("\"virtual-size\": {}", kDiskBytes)), std::string::npos) << info;

  const std::string path = ::testing::TempDir() + "nbd_server_test_image.raw";
  {
    std::mt19937_64 random(42);
    std::vector<uint64_t> words(kDiskBytes / 8 / 4);  // First quarter random, rest zeros.
    for (auto& word : words) word = random();
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file.write(reinterpret_cast<const char*>(words.data()),
               static_cast<std::streamsize>(words.size() * 8));
    file.seekp(static_cast<std::streamoff>(kDiskBytes - 1));
    file.put('\0');
  }
  RunOk(fmt::format("qemu-img convert -n -f raw -O raw {} {}", path, Uri("disk")));
  RunOk(fmt::format("qemu-img compare -f raw -F raw {} {}", path, Uri("disk")));
  // One changed byte makes compare fail: the check above is real.
  OnReactor([&] { disk_->data[12345] ^= std::byte{0xff}; });
  const CommandResult differ =
      RunCommand(fmt::format("qemu-img compare -f raw -F raw {} {}", path, Uri("disk")));
  EXPECT_EQ(differ.exit_code, 1) << differ.output;
  std::filesystem::remove(path);
}

TEST_F(NbdServerTest, NbdinfoReportsSizeListBlockSizesAndMap) {
  StartServer();
  const std::string json = RunOk("nbdinfo --json " + Uri("disk"));
  EXPECT_NE(json.find(fmt::format("\"export-size\": {}", kDiskBytes)), std::string::npos) << json;
  EXPECT_NE(json.find("\"block_size_minimum\": 1"), std::string::npos) << json;
  EXPECT_NE(json.find("\"block_size_preferred\": 4096"), std::string::npos) << json;
  EXPECT_NE(json.find(fmt::format("\"block_size_maximum\": {}", 32 << 20)), std::string::npos)
      << json;
  EXPECT_NE(json.find("\"can_trim\": true"), std::string::npos) << json;
  EXPECT_NE(json.find("\"can_multi_conn\": true"), std::string::npos) << json;

  const std::string list = RunOk(fmt::format("nbdinfo --list nbd://127.0.0.1:{}", port_));
  EXPECT_NE(list.find("export=\"disk\""), std::string::npos) << list;
  EXPECT_NE(list.find("export=\"ro\""), std::string::npos) << list;
  EXPECT_NE(list.find("weft test disk"), std::string::npos) << list;
  const std::string read_only = RunOk("nbdinfo --json " + Uri("ro"));
  EXPECT_NE(read_only.find("\"is_read_only\": true"), std::string::npos) << read_only;

  // Write 1 MiB, trim its second half: the map shows data, then a hole, then the rest a hole.
  RunOk(
      fmt::format("qemu-io -f raw -c 'write -P 0x77 0 1M' -c 'discard 512k 512k' {}", Uri("disk")));
  const std::string map = RunOk("nbdinfo --map " + Uri("disk"));
  // Lines of "offset length type description".
  std::vector<std::tuple<uint64_t, uint64_t, int>> extents;
  std::istringstream lines(map);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    uint64_t offset = 0;
    uint64_t length = 0;
    int type = -1;
    if (fields >> offset >> length >> type) extents.emplace_back(offset, length, type);
  }
  const std::vector<std::tuple<uint64_t, uint64_t, int>> expected = {
      {0, 524288, 0}, {524288, kDiskBytes - 524288, 3}};
  EXPECT_EQ(extents, expected) << map;
}

TEST_F(NbdServerTest, NbdshExercisesEveryCommand) {
  StartServer();
  const std::string script = R"PY(
import errno
h.set_strict_mode(0)  # Let bad requests reach the server.
assert h.get_size() == 64 << 20
assert h.can_trim() and h.can_zero() and h.can_flush() and h.can_fua() and h.can_multi_conn()
assert h.can_meta_context("base:allocation")
assert not h.is_read_only()
data = bytes(range(256)) * 64
h.pwrite(data, 8192)
h.pwrite(data, 1 << 20, nbd.CMD_FLAG_FUA)
assert h.pread(len(data), 8192) == data
assert h.pread(100, 8192 + 3) == data[3:103]
h.flush()
h.trim(1 << 20, 1 << 20)
assert h.pread(4096, 1 << 20) == bytes(4096)
h.zero(4096, 8192)
assert h.pread(4096, 8192) == bytes(4096)
h.zero(4096, 12288, nbd.CMD_FLAG_NO_HOLE)
extents = []
def collect(metacontext, offset, entries, err):
    assert metacontext == "base:allocation"
    extents.extend(entries)
h.block_status(65536, 0, collect)
assert extents[:2] == [12288, 3], extents        # Never written, or zeroed with holes.
assert extents[2:4] == [12288, 0], extents       # Written, or zeroed with NO_HOLE.
one = []
h.block_status(65536, 0, lambda m, o, e, err: one.extend(e), nbd.CMD_FLAG_REQ_ONE)
assert len(one) == 2, one
for bad in [lambda: h.pread(4096, (64 << 20) - 100), lambda: h.pread(0, 0)]:
    try:
        bad()
        assert False, "accepted"
    except nbd.Error as e:
        assert e.errnum == errno.EINVAL, e
try:
    h.pwrite(b"x", 64 << 20)
    assert False, "accepted"
except nbd.Error as e:
    assert e.errnum == errno.ENOSPC, e
print("nbdsh script passed")
)PY";
  const std::string output =
      RunOk(fmt::format("nbdsh --base-allocation -u {} -c '{}'", Uri("disk"), script));
  EXPECT_NE(output.find("nbdsh script passed"), std::string::npos) << output;

  const std::string read_only_script = R"PY(
import errno
h.set_strict_mode(0)
assert h.is_read_only()
assert h.pread(16, 0) == b"\x5a" * 16
for bad in [lambda: h.pwrite(b"x", 0), lambda: h.trim(4096, 0), lambda: h.zero(4096, 0)]:
    try:
        bad()
        assert False, "accepted"
    except nbd.Error as e:
        assert e.errnum == errno.EPERM, e
print("read-only script passed")
)PY";
  const std::string read_only =
      RunOk(fmt::format("nbdsh -u {} -c '{}'", Uri("ro"), read_only_script));
  EXPECT_NE(read_only.find("read-only script passed"), std::string::npos) << read_only;
  EXPECT_EQ(OnReactor([&] { return read_only_disk_->data[0]; }), std::byte{0x5a});
  EXPECT_GT(OnReactor([&] { return disk_->flushes; }), 0u);
  EXPECT_GT(OnReactor([&] { return disk_->fua_writes; }), 0u);
  const NbdServerStats stats = Stats();
  EXPECT_GE(stats.errors_by_errno.at(kEPERM), 3u);
  EXPECT_GE(stats.errors_by_errno.at(kEINVAL), 2u);
  EXPECT_GE(stats.requests_by_command[kCmdBlockStatus], 2u);
}

TEST_F(NbdServerTest, FioVerifiesDataWithManyRequestsInFlight) {
  StartServer();
  const std::string output_path = ::testing::TempDir() + "nbd_server_test_fio.json";
  RunOk(
      fmt::format("fio --name=verify --ioengine=nbd --uri={} --rw=randwrite --bs=4k --iodepth=32 "
                  "--size=16m --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 "
                  "--output-format=json "
                  "--output={}",
                  Uri("disk"), output_path));
  std::ifstream file(output_path);
  const std::string json((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_NE(json.find("\"error\" : 0"), std::string::npos) << json;
  EXPECT_GE(Stats().requests_by_command[kCmdWrite], (16u << 20) / 4096);
  std::filesystem::remove(output_path);
}

// ---- Bad input on raw sockets ----

TEST_F(NbdServerTest, GarbageClientFlagsCloseTheConnection) {
  StartServer();
  {
    RawClient client(port_);
    client.Greet(0xdeadbeef);
    EXPECT_TRUE(client.ClosedByServer());
  }
  {
    RawClient client(port_);
    ASSERT_TRUE(client.Receive(sizeof(ServerGreetingWire)).has_value());
    std::vector<std::byte> garbage = Pattern(1000, 3);
    client.Send(garbage);
    EXPECT_TRUE(client.ClosedByServer());
  }
  ExpectHealthy();
  EXPECT_GE(Stats().connections_closed_on_error, 2u);
}

TEST_F(NbdServerTest, TruncatedHandshakeIsDropped) {
  StartServer();
  {
    RawClient client(port_);
    ASSERT_TRUE(client.Receive(sizeof(ServerGreetingWire)).has_value());
    client.Send(WireBytes().U16(0));  // Half of the client flags, then gone.
  }
  {
    RawClient client(port_);
    client.Greet();
    client.Send(WireBytes().U64(kOptionMagic).U32(kOptGo));  // Half an option header.
  }
  {
    RawClient client(port_);
    client.Greet();
    client.Send(WireBytes().U64(kOptionMagic).U32(kOptGo).U32(100).U32(4));  // Short payload.
  }
  EXPECT_TRUE(Eventually([&] { return Connections() == 0; }));
  ExpectHealthy();
}

TEST_F(NbdServerTest, BadOptionMagicClosesTheConnection) {
  StartServer();
  RawClient client(port_);
  client.Greet();
  client.Send(WireBytes().U64(kNbdMagic).U32(kOptGo).U32(0));
  EXPECT_TRUE(client.ClosedByServer());
  ExpectHealthy();
}

TEST_F(NbdServerTest, OversizedOptionGetsTooBigThenClose) {
  StartServer();
  RawClient client(port_);
  client.Greet();
  client.Send(WireBytes().U64(kOptionMagic).U32(kOptGo).U32(kOptionPayloadMaxBytes + 1));
  auto reply = client.ReadOptionReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->type, kRepErrTooBig);
  EXPECT_TRUE(client.ClosedByServer());
  ExpectHealthy();
}

TEST_F(NbdServerTest, UnknownOptionGetsUnsupAndTheSessionContinues) {
  StartServer();
  RawClient client(port_);
  client.Greet();
  client.SendOption(0x1234, WireBytes().U64(7));
  auto reply = client.ReadOptionReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->option, 0x1234u);
  EXPECT_EQ(reply->type, kRepErrUnsup);
  client.SendOption(kOptStartTls, WireBytes());
  reply = client.ReadOptionReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->type, kRepErrUnsup);
  // Still negotiating: GO works on the same connection.
  client.SendOption(kOptGo, WireBytes().String32("disk").U16(0));
  for (;;) {
    reply = client.ReadOptionReply();
    ASSERT_TRUE(reply.has_value());
    ASSERT_FALSE(reply->type & kRepErrorBit);
    if (reply->type == kRepAck) break;
  }
  client.SendRequest(kCmdRead, 0, 5, 0, 512);
  auto read = client.ReadSimpleReply();
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->error, kErrorNone);
}

TEST_F(NbdServerTest, UnknownExportGetsErrUnknown) {
  StartServer();
  RawClient client(port_);
  client.Greet();
  client.SendOption(kOptGo, WireBytes().String32("nope").U16(0));
  auto reply = client.ReadOptionReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->type, kRepErrUnknown);
  client.SendOption(kOptExportName, WireBytes().Text("nope"));
  EXPECT_TRUE(client.ClosedByServer());  // EXPORT_NAME cannot answer an error.
}

TEST_F(NbdServerTest, RequestWithBadMagicClosesTheConnection) {
  StartServer();
  RawClient client(port_);
  ASSERT_NE(client.Go("disk", false), 0);
  client.Send(WireBytes().U32(0x12345678).U16(0).U16(kCmdRead).U64(1).U64(0).U32(512));
  EXPECT_TRUE(client.ClosedByServer());
  ExpectHealthy();
}

TEST_F(NbdServerTest, InvalidRequestsGetErrorsAndTheConnectionContinues) {
  StartServer();
  for (bool structured : {false, true}) {
    SCOPED_TRACE(structured ? "structured replies" : "simple replies");
    RawClient client(port_);
    ASSERT_NE(client.Go("disk", structured), 0);
    auto expect_error = [&](uint64_t cookie, uint32_t error) {
      auto reply = structured ? client.ReadChunk() : client.ReadSimpleReply();
      ASSERT_TRUE(reply.has_value());
      EXPECT_EQ(reply->cookie, cookie);
      EXPECT_EQ(reply->error, error) << ErrorName(reply->error);
      if (structured) {
        EXPECT_EQ(reply->type, kReplyTypeError);
      }
    };
    client.SendRequest(kCmdRead, 0, 1, kDiskBytes - 100, 4096);  // Past the end.
    expect_error(1, kEINVAL);
    client.SendRequest(42, 0, 2, 0, 4096);  // Unknown command.
    expect_error(2, kEINVAL);
    client.SendRequest(kCmdCache, 0, 3, 0, 4096);  // Known to the spec, not supported.
    expect_error(3, kEINVAL);
    client.SendRequest(kCmdRead, 0, 4, 0, (32 << 20) + 1);  // Too large.
    expect_error(4, kEOVERFLOW);
    client.SendRequest(kCmdRead, 1u << 9, 5, 0, 4096);  // Unknown flag.
    expect_error(5, kEINVAL);
    // A rejected write's payload is skipped, so the stream stays framed.
    const auto payload = Pattern(8192, 1);
    client.SendRequest(kCmdWrite, kCmdFlagReqOne, 6, 0, 8192, payload);
    expect_error(6, kEINVAL);
    client.SendRequest(kCmdWrite, 0, 7, kDiskBytes - 4096, 8192, payload);
    expect_error(7, kENOSPC);
    client.SendRequest(kCmdBlockStatus, 0, 8, 0, 4096);  // No meta context negotiated.
    expect_error(8, kEINVAL);
    client.SendRequest(kCmdRead, 0, 9, 0, 0);  // Zero length.
    expect_error(9, kEINVAL);
    // The connection still works.
    client.SendRequest(kCmdWrite, 0, 10, 0, 8192, payload);
    auto written = client.ReadSimpleReply();  // Successes without data are simple replies.
    ASSERT_TRUE(written.has_value());
    EXPECT_EQ(written->cookie, 10u);
    EXPECT_EQ(written->error, kErrorNone);
  }
  EXPECT_EQ(DiskBytes(0, 8192), Pattern(8192, 1));
}

TEST_F(NbdServerTest, WriteToReadOnlyExportIsEperm) {
  StartServer();
  RawClient client(port_);
  const uint16_t flags = client.Go("ro", false);
  ASSERT_TRUE(flags & kTransmissionReadOnly);
  EXPECT_FALSE(flags & kTransmissionSendTrim);
  client.SendRequest(kCmdWrite, 0, 1, 0, 4096, Pattern(4096, 0));
  auto reply = client.ReadSimpleReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->error, kEPERM);
  client.SendRequest(kCmdTrim, 0, 2, 0, 4096);
  reply = client.ReadSimpleReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->error, kEPERM);
  client.SendRequest(kCmdRead, 0, 3, 0, 16);
  reply = client.ReadSimpleReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->error, kErrorNone);
  EXPECT_EQ(client.Receive(16), std::vector<std::byte>(16, std::byte{0x5a}));
  ExpectHealthy();
}

TEST_F(NbdServerTest, WriteTooLargeToSkipIsAnsweredThenClosed) {
  StartServer();
  RawClient client(port_);
  ASSERT_NE(client.Go("disk", false), 0);
  client.SendRequest(kCmdWrite, 0, 1, 0, 100u << 20);  // Claims 100 MiB; none sent.
  auto reply = client.ReadSimpleReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->error, kEOVERFLOW);
  EXPECT_TRUE(client.ClosedByServer());
  ExpectHealthy();
}

TEST_F(NbdServerTest, ExportErrorsPassThrough) {
  StartServer();
  RawClient client(port_);
  ASSERT_NE(client.Go("disk", true), 0);
  OnReactor([&] { disk_->next_error = Status::NoSpace("disk full"); });
  client.SendRequest(kCmdWrite, 0, 1, 0, 4096, Pattern(4096, 0));
  auto reply = client.ReadChunk();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->error, kENOSPC);
  OnReactor([&] { disk_->next_error = Status::IOError("media error"); });
  client.SendRequest(kCmdRead, 0, 2, 0, 4096);
  reply = client.ReadChunk();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->error, kEIO);
  client.SendRequest(kCmdRead, 0, 3, 0, 4096);
  reply = client.ReadChunk();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->type, kReplyTypeOffsetData);
  EXPECT_EQ(reply->payload.size(), 8u + 4096);
}

TEST_F(NbdServerTest, PipelinedRequestsRespectTheInflightLimit) {
  NbdServerOptions options;
  options.max_inflight_requests_per_connection = 4;
  StartServer(options);
  OnReactor([&] { disk_->hold_completions = true; });
  RawClient client(port_);
  ASSERT_NE(client.Go("disk", false), 0);
  constexpr uint64_t kRequests = 16;
  for (uint64_t i = 0; i < kRequests; ++i) client.SendRequest(kCmdRead, 0, i, i * 4096, 4096);
  // The server stops reading at four requests in the export.
  EXPECT_TRUE(Eventually([&] { return OnReactor([&] { return disk_->held.size(); }) == 4; }));
  std::set<uint64_t> cookies;
  std::vector<uint64_t> first_batch;
  while (cookies.size() < kRequests) {
    ASSERT_TRUE(Eventually([&] { return OnReactor([&] { return disk_->held.size(); }) > 0; }));
    // Run the held completions in reverse order: replies come in completion order.
    const size_t released = OnReactor([&] {
      auto held = std::move(disk_->held);
      disk_->held.clear();
      for (auto it = held.rbegin(); it != held.rend(); ++it) (*it)();
      return held.size();
    });
    for (size_t i = 0; i < released; ++i) {
      auto reply = client.ReadSimpleReply();
      ASSERT_TRUE(reply.has_value());
      EXPECT_EQ(reply->error, kErrorNone);
      ASSERT_TRUE(client.Receive(4096).has_value());
      cookies.insert(reply->cookie);
      if (first_batch.size() < 4) first_batch.push_back(reply->cookie);
    }
  }
  EXPECT_EQ(first_batch, (std::vector<uint64_t>{3, 2, 1, 0}));
  EXPECT_EQ(OnReactor([&] { return disk_->inflight_max; }), 4u);
}

TEST_F(NbdServerTest, ConnectionLimitRefusesExtraConnections) {
  NbdServerOptions options;
  options.max_connections = 2;
  StartServer(options);
  auto first = std::make_unique<RawClient>(port_);
  ASSERT_NE(first->Go("disk", false), 0);
  RawClient second(port_);
  ASSERT_NE(second.Go("ro", false), 0);
  EXPECT_EQ(OnReactor([&] { return server_->ConnectionsTo("disk"); }), 1u);
  EXPECT_EQ(OnReactor([&] { return server_->ConnectionsTo("ro"); }), 1u);
  {
    RawClient third(port_);
    EXPECT_TRUE(third.ClosedByServer());  // No greeting: refused at accept.
  }
  EXPECT_EQ(Stats().connections_refused, 1u);
  first.reset();
  EXPECT_TRUE(Eventually([&] { return Connections() == 1; }));
  ExpectHealthy();
  EXPECT_EQ(Stats().connections_accepted, 3u);
}

TEST_F(NbdServerTest, HandshakeTimeoutClosesIdleClients) {
  NbdServerOptions options;
  options.handshake_timeout = std::chrono::milliseconds(200);
  StartServer(options);
  RawClient client(port_);
  ASSERT_TRUE(client.Receive(sizeof(ServerGreetingWire)).has_value());
  EXPECT_TRUE(client.ClosedByServer());
  ExpectHealthy();  // Well-behaved clients finish their handshakes well within 200 ms.
}

TEST_F(NbdServerTest, DisconnectAnswersInflightRequestsFirst) {
  StartServer();
  OnReactor([&] { disk_->hold_completions = true; });
  RawClient client(port_);
  ASSERT_NE(client.Go("disk", false), 0);
  client.SendRequest(kCmdWrite, 0, 1, 0, 4096, Pattern(4096, 5));
  client.SendRequest(kCmdDisc, 0, 2, 0, 0);
  EXPECT_TRUE(Eventually([&] { return OnReactor([&] { return disk_->held.size(); }) == 1; }));
  OnReactor([&] {
    for (auto& completion : disk_->held) completion();
    disk_->held.clear();
    disk_->hold_completions = false;
  });
  auto reply = client.ReadSimpleReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->cookie, 1u);
  EXPECT_TRUE(client.ClosedByServer());
  EXPECT_EQ(DiskBytes(0, 4096), Pattern(4096, 5));
}

TEST_F(NbdServerTest, StopDrainsInflightRequestsAndLateCompletionsAreSafe) {
  StartServer();
  OnReactor([&] { disk_->hold_completions = true; });
  RawClient draining(port_);
  ASSERT_NE(draining.Go("disk", true), 0);
  draining.SendRequest(kCmdRead, 0, 1, 0, 4096);
  RawClient handshaking(port_);
  handshaking.Greet();
  EXPECT_TRUE(Eventually([&] { return OnReactor([&] { return disk_->held.size(); }) == 1; }));
  OnReactor([&] { server_->Stop(); });
  EXPECT_TRUE(handshaking.ClosedByServer());
  OnReactor([&] {
    for (auto& completion : disk_->held) completion();
    disk_->held.clear();
  });
  auto reply = draining.ReadChunk();  // The in-flight read is still answered...
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->type, kReplyTypeOffsetData);
  EXPECT_TRUE(draining.ClosedByServer());  // ...then the connection closes.
  EXPECT_FALSE(RawClient(port_).connected());

  // A completion arriving after the server is gone finds a closed connection.
  StartServer();
  RawClient late(port_);
  ASSERT_NE(late.Go("disk", false), 0);
  late.SendRequest(kCmdWrite, 0, 1, 0, 4096, Pattern(4096, 9));
  EXPECT_TRUE(Eventually([&] { return OnReactor([&] { return disk_->held.size(); }) == 1; }));
  OnReactor([&] { server_.reset(); });
  EXPECT_TRUE(late.ClosedByServer());
  OnReactor([&] {
    for (auto& completion : disk_->held) completion();
    disk_->held.clear();
    return 0;
  });
  EXPECT_EQ(DiskBytes(0, 4096), Pattern(4096, 9));
}

TEST_F(NbdServerTest, RequestsWaitingForRoomAtStopGetEshutdown) {
  NbdServerOptions options;
  options.max_inflight_requests_per_connection = 1;
  StartServer(options);
  OnReactor([&] { disk_->hold_completions = true; });
  RawClient client(port_);
  ASSERT_NE(client.Go("disk", false), 0);
  client.SendRequest(kCmdRead, 0, 1, 0, 4096);
  client.SendRequest(kCmdWrite, 0, 2, 0, 4096, Pattern(4096, 1));  // Waits: one in flight.
  EXPECT_TRUE(Eventually([&] { return OnReactor([&] { return disk_->held.size(); }) == 1; }));
  EXPECT_TRUE(Eventually([&] { return Stats().requests_by_command[kCmdWrite] == 1; }));
  OnReactor([&] { server_->Stop(); });
  auto refused = client.ReadSimpleReply();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->cookie, 2u);
  EXPECT_EQ(refused->error, kESHUTDOWN);
  OnReactor([&] {
    for (auto& completion : disk_->held) completion();
    disk_->held.clear();
  });
  auto answered = client.ReadSimpleReply();
  ASSERT_TRUE(answered.has_value());
  EXPECT_EQ(answered->cookie, 1u);
  EXPECT_EQ(answered->error, kErrorNone);
  ASSERT_TRUE(client.Receive(4096).has_value());
  EXPECT_TRUE(client.ClosedByServer());
  EXPECT_EQ(DiskBytes(0, 4096), std::vector<std::byte>(4096));  // The refused write did not run.
}

TEST_F(NbdServerTest, UnixSocketReplacesStaleFileAndIsRemovedAtStop) {
  const std::string path = ::testing::TempDir() + "nbd_server_test.sock";
  {
    // A stale socket file, as a crashed server leaves behind.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
    ::unlink(path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    ::close(fd);
  }
  NbdServerOptions options;
  options.tcp_listen.clear();
  options.unix_socket_path = path;
  const Status status = OnReactor([&] {
    server_ = std::make_unique<NbdServer>(io_context_, provider_, options);
    return server_->Start();
  });
  ASSERT_TRUE(status.ok()) << status.ToString();
  const std::string uri = fmt::format("'nbd+unix:///disk?socket={}'", path);
  const std::string output =
      RunOk("qemu-io -f raw -c 'write -P 0x3c 0 64k' -c 'read -P 0x3c 0 64k' " + uri);
  EXPECT_EQ(output.find("Pattern verification failed"), std::string::npos) << output;
  OnReactor([&] { server_->Stop(); });
  struct stat file_status {};
  EXPECT_NE(::lstat(path.c_str(), &file_status), 0);
}

TEST_F(NbdServerTest, StartErrorsNameTheAddress) {
  StartServer();
  NbdServerOptions options;
  options.tcp_listen = {fmt::format("127.0.0.1:{}", port_)};
  const Status in_use = OnReactor([&] {
    NbdServer second(io_context_, provider_, options);
    return second.Start();
  });
  EXPECT_TRUE(in_use.IsIOError()) << in_use.ToString();
  EXPECT_NE(in_use.message().find(options.tcp_listen[0]), std::string::npos);
  options.tcp_listen = {"no-port"};
  const Status bad = OnReactor([&] {
    NbdServer second(io_context_, provider_, options);
    return second.Start();
  });
  EXPECT_TRUE(bad.IsInvalidArgument()) << bad.ToString();
  EXPECT_NE(bad.message().find("no-port"), std::string::npos);
  const std::string file = ::testing::TempDir() + "nbd_server_test_not_a_socket";
  std::ofstream(file) << "x";
  options.tcp_listen.clear();
  options.unix_socket_path = file;
  const Status in_the_way = OnReactor([&] {
    NbdServer second(io_context_, provider_, options);
    return second.Start();
  });
  EXPECT_FALSE(in_the_way.ok());
  EXPECT_TRUE(std::filesystem::exists(file));
  std::filesystem::remove(file);
  ExpectHealthy();
}

}  // namespace
}  // namespace weft::nbd
