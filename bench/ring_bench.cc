// ring_bench: metadata compare-and-set and read latency and throughput of a 3-node Paxos ring on
// loopback TCP against the single-node LocalMetadataStore, in one run, both through the
// MetadataStore interface with real, synced RocksDB directories (bench/ring-compare runs it).
//
// The ring is three RingServices in this process, each with its own io thread, RpcServer and
// RocksDB, so that every replica round trip crosses a real TCP connection and every accept a
// real fsync; what a ring update costs over a local one is the Paxos rounds and the replicas'
// syncs. Clients are closed loops: QD of them, each with its own keys (no conflicts: every
// update is expected to succeed), spread over the ring's nodes round-robin. Each client first
// creates its keys and then updates them (the "cas" phase), then reads them back checking the
// version it last wrote (the "read" phase: a version that differs counts as an error).
//
// Output: a table, ratios ring/local, and (--json FILE) the same figures as JSON.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "metadata/local_metadata_store.h"
#include "metadata/ring/ring_service.h"
#include "rpc/rpc_server.h"

namespace weft::bench {
namespace {

using Clock = std::chrono::steady_clock;
using metadata::MetadataStore;
using metadata::ring::NodeId;
using metadata::ring::RingService;

constexpr uint32_t kRingNodes = 3;
constexpr uint32_t kKeysPerClient = 32;
constexpr uint32_t kTokensPerNode = 16;
constexpr uint32_t kQueueDepthMax = 256;

// Runs completions on one thread of its own, so that a client's next operation is never
// submitted from inside a store's thread, for the ring and the local store alike.
class CompletionThread {
 public:
  CompletionThread() : thread_([this] { Run(); }) {}
  ~CompletionThread() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  metadata::Executor executor() {
    return [this](std::function<void()> task) {
      {
        std::lock_guard lock(mutex_);
        tasks_.push_back(std::move(task));
      }
      wake_.notify_one();
    };
  }

 private:
  void Run() {
    std::unique_lock lock(mutex_);
    while (true) {
      wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

// Three RingServices on loopback, each with an io thread of its own.
class LoopbackRing {
 public:
  static Result<std::unique_ptr<LoopbackRing>> Start(const std::filesystem::path& dir,
                                                     uint32_t tick_ms,
                                                     metadata::Executor executor) {
    std::unique_ptr<LoopbackRing> ring(new LoopbackRing());
    std::mt19937_64 random(42);
    metadata::ring::RingConfig config{.epoch = 1, .replicas = 3, .members = {}};
    for (NodeId node = 1; node <= kRingNodes; ++node) {
      metadata::ring::RingMember member{.node = node, .tokens = {}};
      for (uint32_t i = 0; i < kTokensPerNode; ++i) member.tokens.push_back(random());
      config.members.push_back(member);
      ring->nodes_.push_back(std::make_unique<Node>());
    }
    for (NodeId node = 1; node <= kRingNodes; ++node) {
      WEFT_RETURN_IF_ERROR(ring->StartServer(node));
    }
    std::map<NodeId, rpc::Endpoint> peers;
    for (NodeId node = 1; node <= kRingNodes; ++node) {
      peers[node] = rpc::Endpoint{"127.0.0.1", ring->node(node).port};
    }
    for (NodeId node = 1; node <= kRingNodes; ++node) {
      metadata::ring::RingServiceOptions options{
          .self = node,
          .db_path = (dir / fmt::format("ring{}", node)).string(),
          .tick_ms = tick_ms,
          .node = {},
          .rpc = {},
          .executor = executor,
          .on_ring_refresh_wanted = nullptr,
          .on_stream_done = nullptr,
      };
      WEFT_ASSIGN_OR_RETURN(std::unique_ptr<RingService> service,
                            RingService::Open(ring->node(node).io, options, config, peers));
      Node& n = ring->node(node);
      OnIo(n, [&] { n.service = std::move(service); });
    }
    return ring;
  }

  ~LoopbackRing() {
    for (NodeId node = 1; node <= kRingNodes; ++node) {
      Node& n = this->node(node);
      if (n.service) n.service->Close();  // From this thread: Close must not run on the io one.
      OnIo(n, [&n] {
        if (n.server) n.server->Stop();
      });
    }
    for (auto& n : nodes_) {
      n->work.reset();
      n->io.stop();
      n->thread.join();
      n->server.reset();
      n->service.reset();
    }
  }

  MetadataStore& store(NodeId node) { return *this->node(node).service; }

 private:
  struct Node {
    asio::io_context io;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{
        asio::make_work_guard(io)};
    std::thread thread{[this] { io.run(); }};
    std::unique_ptr<rpc::RpcServer> server;
    std::unique_ptr<RingService> service;  // Set and read on the io thread only.
    uint16_t port = 0;
  };

  LoopbackRing() = default;
  Node& node(NodeId id) { return *nodes_.at(id - 1); }

  template <typename F>
  static void OnIo(Node& node, F work) {
    std::promise<void> done;
    asio::post(node.io, [&] {
      work();
      done.set_value();
    });
    done.get_future().wait();
  }

  Status StartServer(NodeId id) {
    Node& n = node(id);
    Status started = Status::Ok();
    OnIo(n, [&] {
      n.server = std::make_unique<rpc::RpcServer>(
          n.io, rpc::RpcServerOptions{},
          [&n](const rpc::Message& request, rpc::IncomingContext context, rpc::ReplyFn reply) {
            if (!n.service || !RingService::HandlesType(request.type)) {
              reply(Status::Unavailable("not serving"));
              return;
            }
            n.service->HandleRpc(request, std::move(context), std::move(reply));
          });
      started = n.server->Start();
      if (started.ok()) n.port = n.server->port();
    });
    return started;
  }

  std::vector<std::unique_ptr<Node>> nodes_;
};

enum class Operation { kCompareAndSet, kRead };

struct PointResult {
  std::string store;
  std::string operation;
  uint32_t queue_depth = 0;
  uint64_t operations = 0;
  uint64_t errors = 0;
  std::string first_error;
  double seconds = 0;
  std::vector<uint64_t> latencies_us;  // Sorted.

  double ops_per_second() const { return seconds > 0 ? operations / seconds : 0; }
  uint64_t percentile_us(double p) const {
    if (latencies_us.empty()) return 0;
    size_t index = static_cast<size_t>(p * static_cast<double>(latencies_us.size() - 1) + 0.5);
    return latencies_us[std::min(index, latencies_us.size() - 1)];
  }
};

// One closed-loop client: issues its next operation from the previous one's completion until
// the deadline.
struct Client {
  std::function<MetadataStore&()> store;
  std::string key_prefix;
  std::vector<uint64_t> versions = std::vector<uint64_t>(kKeysPerClient, 0);
  uint32_t next_key = 0;
  std::vector<uint64_t> latencies_us;
  uint64_t errors = 0;
  std::string first_error;
};

class PointRun {
 public:
  PointRun(std::vector<Client>& clients, Operation operation, Clock::duration duration)
      : clients_(clients), operation_(operation), deadline_(Clock::now() + duration) {}

  void Run() {
    running_ = clients_.size();
    for (Client& client : clients_) Issue(client);
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return running_ == 0; });
  }

 private:
  void Issue(Client& client) {
    if (Clock::now() >= deadline_) {
      std::lock_guard lock(mutex_);
      if (--running_ == 0) done_.notify_one();
      return;
    }
    const uint32_t index = client.next_key++ % kKeysPerClient;
    std::string key = fmt::format("{}{:04}", client.key_prefix, index);
    const Clock::time_point start = Clock::now();
    auto finish = [this, &client, start](const Status& status) {
      client.latencies_us.push_back(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count()));
      if (!status.ok()) {
        if (client.errors++ == 0) client.first_error = status.ToString();
      }
      Issue(client);
    };
    if (operation_ == Operation::kCompareAndSet) {
      const uint64_t expected = client.versions[index];
      client.store().CompareAndSet(key, expected, fmt::format("value {} of {}", expected + 1, key),
                                   [&client, index, finish](Result<uint64_t> version) {
                                     if (version.ok()) client.versions[index] = *version;
                                     finish(version.status());
                                   });
      return;
    }
    const uint64_t expected = client.versions[index];
    client.store().Get(key, [expected, finish](Result<metadata::Row> row) {
      if (row.ok() && row->version != expected) {
        finish(Status::Corruption(fmt::format("read version {} of '{}', last wrote {}",
                                              row->version, row->key, expected)));
        return;
      }
      // A key the cas phase never reached (a short run) is absent: not an error.
      finish(row.ok() || (row.status().IsNotFound() && expected == 0) ? Status::Ok()
                                                                      : row.status());
    });
  }

  std::vector<Client>& clients_;
  const Operation operation_;
  const Clock::time_point deadline_;
  std::mutex mutex_;
  std::condition_variable done_;
  size_t running_ = 0;
};

PointResult RunPoint(const std::string& store_name, std::vector<Client>& clients,
                     Operation operation, double duration_s) {
  for (Client& client : clients) {
    client.latencies_us.clear();
    client.errors = 0;
    client.first_error.clear();
    client.next_key = 0;
  }
  const Clock::time_point start = Clock::now();
  PointRun run(
      clients, operation,
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration_s)));
  run.Run();
  PointResult result;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.store = store_name;
  result.operation = operation == Operation::kCompareAndSet ? "cas" : "read";
  result.queue_depth = static_cast<uint32_t>(clients.size());
  for (const Client& client : clients) {
    result.latencies_us.insert(result.latencies_us.end(), client.latencies_us.begin(),
                               client.latencies_us.end());
    result.errors += client.errors;
    if (result.first_error.empty()) result.first_error = client.first_error;
  }
  std::sort(result.latencies_us.begin(), result.latencies_us.end());
  result.operations = result.latencies_us.size();
  return result;
}

// The cas and read points of one store at one queue depth. Client c of the ring submits to node
// c % 3 + 1.
std::vector<PointResult> RunDepth(const std::string& store_name,
                                  const std::function<MetadataStore&(uint32_t)>& store,
                                  uint32_t queue_depth, double duration_s) {
  std::vector<Client> clients(queue_depth);
  for (uint32_t c = 0; c < queue_depth; ++c) {
    clients[c].store = [store, c]() -> MetadataStore& { return store(c); };
    clients[c].key_prefix = fmt::format("bench/qd{}/c{}/", queue_depth, c);
  }
  std::vector<PointResult> results;
  results.push_back(RunPoint(store_name, clients, Operation::kCompareAndSet, duration_s));
  results.push_back(RunPoint(store_name, clients, Operation::kRead, duration_s));
  return results;
}

nlohmann::json ToJson(const PointResult& point) {
  return {{"store", point.store},
          {"operation", point.operation},
          {"queue_depth", point.queue_depth},
          {"operations", point.operations},
          {"errors", point.errors},
          {"first_error", point.first_error},
          {"seconds", point.seconds},
          {"ops_per_second", point.ops_per_second()},
          {"p50_us", point.percentile_us(0.50)},
          {"p99_us", point.percentile_us(0.99)},
          {"max_us", point.latencies_us.empty() ? 0 : point.latencies_us.back()}};
}

double Ratio(double ring, double local) { return local > 0 ? ring / local : 0; }

int Run(int argc, char** argv) {
  CLI::App app(
      "ring_bench: metadata CAS and read latency/throughput, 3-node loopback Paxos "
      "ring vs the local RocksDB store");
  double duration_s = 3;
  std::vector<uint32_t> queue_depths = {1, 4, 16};
  std::string dir_option;
  std::string json_path;
  uint32_t tick_ms = 10;
  app.add_option("--duration-s", duration_s, "Seconds per point (each store, QD, operation)")
      ->check(CLI::Range(0.1, 600.0));
  app.add_option("--queue-depths", queue_depths, "Concurrent clients per point")
      ->delimiter(',')
      ->check(CLI::Range(1u, kQueueDepthMax));
  app.add_option("--dir", dir_option,
                 "Where the RocksDB directories go (default: a new directory under /tmp)");
  app.add_option("--json", json_path, "Also write the figures as JSON to this file");
  app.add_option("--tick-ms", tick_ms, "The ring's tick (weftd's --ring-tick-ms default)")
      ->check(CLI::Range(1u, 1000u));
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  const std::filesystem::path dir =
      dir_option.empty()
          ? std::filesystem::temp_directory_path() / fmt::format("ring_bench.{}", ::getpid())
          : std::filesystem::path(dir_option);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);

  std::vector<PointResult> results;
  {
    CompletionThread completions;
    Result<std::unique_ptr<metadata::LocalMetadataStore>> local =
        metadata::LocalMetadataStore::Open(
            {.path = (dir / "local").string(), .executor = completions.executor(), .env = nullptr});
    if (!local.ok()) {
      std::cerr << "ring_bench: cannot open the local store: " << local.status().ToString() << "\n";
      return 1;
    }
    Result<std::unique_ptr<LoopbackRing>> ring =
        LoopbackRing::Start(dir, tick_ms, completions.executor());
    if (!ring.ok()) {
      std::cerr << "ring_bench: cannot start the ring: " << ring.status().ToString() << "\n";
      return 1;
    }
    for (uint32_t queue_depth : queue_depths) {
      for (const PointResult& point : RunDepth(
               "local", [&](uint32_t) -> MetadataStore& { return **local; }, queue_depth,
               duration_s)) {
        results.push_back(point);
      }
      for (const PointResult& point : RunDepth(
               "ring",
               [&](uint32_t client) -> MetadataStore& {
                 return (*ring)->store(client % kRingNodes + 1);
               },
               queue_depth, duration_s)) {
        results.push_back(point);
      }
    }
    ring->reset();
    (void)(*local)->Close();
  }
  std::filesystem::remove_all(dir);

  std::cout << fmt::format("{:<6} {:<5} {:>3} {:>10} {:>9} {:>9} {:>7}\n", "store", "op", "QD",
                           "ops/s", "p50_us", "p99_us", "errors");
  uint64_t errors = 0;
  for (const PointResult& point : results) {
    errors += point.errors;
    std::cout << fmt::format("{:<6} {:<5} {:>3} {:>10.0f} {:>9} {:>9} {:>7}\n", point.store,
                             point.operation, point.queue_depth, point.ops_per_second(),
                             point.percentile_us(0.50), point.percentile_us(0.99), point.errors);
  }
  std::cout << "\nring / local:\n";
  nlohmann::json ratios = nlohmann::json::array();
  for (const PointResult& ring_point : results) {
    if (ring_point.store != "ring") continue;
    for (const PointResult& local_point : results) {
      if (local_point.store != "local" || local_point.operation != ring_point.operation ||
          local_point.queue_depth != ring_point.queue_depth) {
        continue;
      }
      const double p50 = Ratio(ring_point.percentile_us(0.50), local_point.percentile_us(0.50));
      const double p99 = Ratio(ring_point.percentile_us(0.99), local_point.percentile_us(0.99));
      const double throughput = Ratio(ring_point.ops_per_second(), local_point.ops_per_second());
      std::cout << fmt::format("{:<5} QD{:<3} p50 {:.2f}x  p99 {:.2f}x  throughput {:.2f}x\n",
                               ring_point.operation, ring_point.queue_depth, p50, p99, throughput);
      ratios.push_back({{"operation", ring_point.operation},
                        {"queue_depth", ring_point.queue_depth},
                        {"p50", p50},
                        {"p99", p99},
                        {"throughput", throughput}});
    }
  }
  for (const PointResult& point : results) {
    if (point.errors > 0) {
      std::cout << fmt::format("{} {} QD{}: {} errors, first: {}\n", point.store, point.operation,
                               point.queue_depth, point.errors, point.first_error);
    }
  }
  if (!json_path.empty()) {
    nlohmann::json points = nlohmann::json::array();
    for (const PointResult& point : results) points.push_back(ToJson(point));
    std::ofstream out(json_path);
    out << nlohmann::json{{"duration_s", duration_s}, {"tick_ms", tick_ms},
                          {"ring_nodes", kRingNodes}, {"keys_per_client", kKeysPerClient},
                          {"points", points},         {"ring_over_local", ratios}}
               .dump(2)
        << "\n";
  }
  return errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace weft::bench

int main(int argc, char** argv) { return weft::bench::Run(argc, argv); }
