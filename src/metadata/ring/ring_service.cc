#include "metadata/ring/ring_service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <asio.hpp>
#include <chrono>
#include <future>

#include "base/assert.h"
#include "metadata/ring/ring_wire.h"

namespace weft::metadata::ring {

struct RingService::Timer {
  explicit Timer(asio::io_context& io_context) : timer(io_context) {}
  asio::steady_timer timer;
};

namespace {

// A request no reply was produced for (a malformed one, or one whose write failed) is answered
// with an error after this many ticks, so that the caller's connection slot is freed.
constexpr uint64_t kPendingReplyTicksMax = 2000;

}  // namespace

Result<std::unique_ptr<RingService>> RingService::Open(asio::io_context& io_context,
                                                       RingServiceOptions options, RingConfig ring,
                                                       std::map<NodeId, rpc::Endpoint> peers) {
  if (options.self == 0) return Status::InvalidArgument("ring service: node id 0");
  if (!options.executor) return Status::InvalidArgument("ring service: no executor");
  if (options.tick_ms == 0) return Status::InvalidArgument("ring service: tick of 0 ms");
  if (Status valid = ValidateRingConfig(ring); !valid.ok()) return valid;
  Result<std::unique_ptr<RingStore>> store = RingStore::Open(options.db_path, options.self);
  if (!store.ok()) return store.status();
  Result<RecoveredState> recovered = (*store)->Load();
  if (!recovered.ok()) return recovered.status();
  spdlog::info("ring: node {} recovered {} rows (round floor {}) from {}", options.self,
               recovered->rows.size(), recovered->round_floor, options.db_path);
  return std::unique_ptr<RingService>(new RingService(io_context, std::move(options),
                                                      std::move(*store), std::move(*recovered),
                                                      std::move(ring), std::move(peers)));
}

RingService::RingService(asio::io_context& io_context, RingServiceOptions options,
                         std::unique_ptr<RingStore> store, RecoveredState recovered,
                         RingConfig ring, std::map<NodeId, rpc::Endpoint> peers)
    : io_context_(io_context),
      options_(std::move(options)),
      store_(std::move(store)),
      peers_(std::move(peers)) {
  RingNodeOptions node_options = options_.node;
  node_options.self = options_.self;
  if (node_options.seed == 0) node_options.seed = options_.self;
  snapshot_.epoch = ring.epoch;
  snapshot_.ring = ring;
  node_ = std::make_unique<RingNode>(node_options, std::move(recovered), std::move(ring));
  client_ = std::make_unique<rpc::RpcClient>(io_context_, options_.rpc);
  timer_ = std::make_unique<Timer>(io_context_);
  persist_thread_ = std::thread([this] { PersistLoop(); });
  Post([this] { ArmTimer(); });
}

RingService::~RingService() { Close(); }

void RingService::Post(std::function<void()> task) {
  std::weak_ptr<bool> alive = alive_;
  asio::post(io_context_, [alive, task = std::move(task)] {
    if (alive.lock()) task();
  });
}

void RingService::Close() {
  if (alive_ == nullptr) return;
  auto shut = [this] {
    if (closed_) return;
    closed_ = true;
    timer_->timer.cancel();
    client_->Close();
    for (auto& [op, done] : completions_) {
      std::visit(
          [this](auto& completion) {
            using C = std::decay_t<decltype(completion)>;
            Status aborted = Status::Aborted("metadata ring closed");
            if constexpr (std::is_same_v<C, DeleteCompletion>) {
              options_.executor([completion, aborted] { completion(aborted); });
            } else {
              options_.executor([completion, aborted] { completion(aborted); });
            }
          },
          done);
    }
    completions_.clear();
    for (auto& [token, pending] : pending_replies_) {
      if (pending.rpc) (*pending.rpc)(Status::Unavailable("metadata ring closed"));
    }
    pending_replies_.clear();
  };
  if (io_context_.stopped() || io_context_.get_executor().running_in_this_thread()) {
    shut();
  } else {
    std::promise<void> done;
    asio::post(io_context_, [&] {
      shut();
      done.set_value();
    });
    done.get_future().wait();
  }
  {
    std::lock_guard lock(persist_mutex_);
    persist_stop_ = true;
  }
  persist_wakeup_.notify_all();
  if (persist_thread_.joinable()) persist_thread_.join();
  alive_.reset();
}

// ---- Client operations -------------------------------------------------------------------------

void RingService::Get(std::string key, GetCompletion done) {
  Submit(
      std::move(done),
      [key = std::move(key)](RingNode& node, uint64_t op) { return node.Get(op, key); }, false);
}

void RingService::CompareAndSet(std::string key, uint64_t expected_version, std::string value,
                                SetCompletion done) {
  Submit(
      std::move(done),
      [key = std::move(key), expected_version, value = std::move(value)](RingNode& node,
                                                                         uint64_t op) {
        return node.CompareAndSet(op, key, expected_version, value);
      },
      true);
}

void RingService::CompareAndDelete(std::string key, uint64_t expected_version,
                                   DeleteCompletion done) {
  Submit(
      std::move(done),
      [key = std::move(key), expected_version](RingNode& node, uint64_t op) {
        return node.CompareAndDelete(op, key, expected_version);
      },
      true);
}

void RingService::Scan(std::string prefix, std::string start_after, uint32_t limit,
                       ScanCompletion done) {
  Submit(
      std::move(done),
      [prefix = std::move(prefix), start_after = std::move(start_after), limit](
          RingNode& node, uint64_t op) { return node.Scan(op, prefix, start_after, limit); },
      false);
}

void RingService::Submit(Completion done, std::function<RingNodeOutput(RingNode&, uint64_t)> start,
                         bool is_update) {
  auto fail = [this](Completion& completion, Status status) {
    std::visit([this, &status](auto& c) { options_.executor([c, status] { c(status); }); },
               completion);
  };
  if (alive_ == nullptr) {
    fail(done, Status::Aborted("metadata ring closed"));
    return;
  }
  Post([this, done = std::move(done), start = std::move(start), is_update, fail]() mutable {
    if (closed_) {
      fail(done, Status::Aborted("metadata ring closed"));
      return;
    }
    if (is_update && fenced_) {
      fail(done, Status::Unavailable(fmt::format(
                     "node {} is fenced: its ZooKeeper session expired; updates through it "
                     "resume when it rejoins the cluster",
                     options_.self)));
      return;
    }
    const uint64_t op = ++next_client_op_;
    completions_.emplace(op, std::move(done));
    Process(start(*node_, op));
  });
}

void RingService::Deliver(const ClientResult& result) {
  auto it = completions_.find(result.client_op);
  WEFT_ASSERT(it != completions_.end());
  Completion done = std::move(it->second);
  completions_.erase(it);
  std::visit(
      [this, &result](auto& completion) {
        using C = std::decay_t<decltype(completion)>;
        if constexpr (std::is_same_v<C, GetCompletion>) {
          Result<Row> row =
              result.status.ok() ? Result<Row>(result.rows.at(0)) : Result<Row>(result.status);
          options_.executor([completion, row = std::move(row)] { completion(row); });
        } else if constexpr (std::is_same_v<C, SetCompletion>) {
          Result<uint64_t> version = result.status.ok() ? Result<uint64_t>(result.version)
                                                        : Result<uint64_t>(result.status);
          options_.executor([completion, version] { completion(version); });
        } else if constexpr (std::is_same_v<C, DeleteCompletion>) {
          options_.executor([completion, status = result.status] { completion(status); });
        } else {
          Result<std::vector<Row>> rows = result.status.ok()
                                              ? Result<std::vector<Row>>(result.rows)
                                              : Result<std::vector<Row>>(result.status);
          options_.executor([completion, rows = std::move(rows)] { completion(rows); });
        }
      },
      done);
}

// ---- Driving the node --------------------------------------------------------------------------

void RingService::Process(RingNodeOutput out) {
  for (OutgoingRequest& request : out.requests) SendRequest(std::move(request));
  for (OutgoingReply& reply : out.replies) {
    auto it = pending_replies_.find(reply.reply_token);
    if (it == pending_replies_.end()) continue;  // Swept after a long wait.
    PendingReply pending = std::move(it->second);
    pending_replies_.erase(it);
    if (pending.rpc) {
      (*pending.rpc)(
          rpc::Message{.type = kRingReplyType, .body = EncodeReply(options_.self, reply.reply)});
    } else {
      Post([this, reply = std::move(reply.reply)] {
        if (!closed_) Process(node_->OnReply(options_.self, reply));
      });
    }
  }
  if (!out.persist_rows.empty() || !out.persist_round_floors.empty()) {
    PersistGroup group;
    // Ids in request order: floors and rows were numbered from one counter.
    for (const PersistRoundFloor& floor : out.persist_round_floors)
      group.ids.push_back(floor.persist_id);
    for (const PersistRow& row : out.persist_rows) group.ids.push_back(row.persist_id);
    std::sort(group.ids.begin(), group.ids.end());
    group.rows = std::move(out.persist_rows);
    group.floors = std::move(out.persist_round_floors);
    {
      std::lock_guard lock(persist_mutex_);
      persist_queue_.push_back(std::move(group));
    }
    persist_wakeup_.notify_one();
  }
  for (const ClientResult& result : out.results) Deliver(result);
  if (out.ring_refresh_wanted && options_.on_ring_refresh_wanted) options_.on_ring_refresh_wanted();
  if (out.stream_done && options_.on_stream_done) options_.on_stream_done(*out.stream_done);
}

void RingService::SendRequest(OutgoingRequest request) {
  if (request.to == options_.self) {
    // To ourselves without the network, but never inside the call that produced it.
    Post([this, request = std::move(request.request)] {
      if (closed_) return;
      const uint64_t token = ++next_reply_token_;
      pending_replies_[token] = PendingReply{.started_tick = ticks_};
      Process(node_->OnRequest(options_.self, token, request));
    });
    return;
  }
  auto peer = peers_.find(request.to);
  if (peer == peers_.end()) return;  // Unknown address: as if lost; the proposer retries.
  const NodeId to = request.to;
  const uint32_t timeout_ms = options_.tick_ms * std::max<uint32_t>(options_.node.attempt_ticks, 1);
  std::weak_ptr<bool> alive = alive_;
  client_->Call(
      peer->second,
      rpc::Message{.type = kRingRequestType, .body = EncodeRequest(options_.self, request.request)},
      timeout_ms, [this, alive, to](Result<rpc::Message> reply) {
        if (!alive.lock() || closed_) return;
        if (!reply.ok() || reply->type != kRingReplyType) {
          std::lock_guard lock(snapshot_mutex_);
          snapshot_.rpc_errors++;
          return;  // Lost: the proposer's attempt times out and retries.
        }
        Result<std::pair<NodeId, Reply>> decoded = DecodeReply(reply->body);
        if (!decoded.ok() || decoded->first != to) {
          spdlog::warn("ring: bad reply from node {}: {}", to,
                       decoded.ok() ? "wrong sender" : decoded.status().ToString());
          return;
        }
        Process(node_->OnReply(to, decoded->second));
      });
}

bool RingService::HandlesType(uint16_t message_type) { return message_type == kRingRequestType; }

void RingService::HandleRpc(const rpc::Message& request, rpc::IncomingContext context,
                            rpc::ReplyFn reply) {
  if (closed_) {
    reply(Status::Unavailable("metadata ring closed"));
    return;
  }
  Result<std::pair<NodeId, Request>> decoded = DecodeRequest(request.body);
  if (!decoded.ok()) {
    spdlog::warn("ring: bad request from {}: {}", context.peer, decoded.status().ToString());
    reply(decoded.status());
    return;
  }
  const uint64_t token = ++next_reply_token_;
  pending_replies_[token] = PendingReply{.rpc = std::move(reply), .started_tick = ticks_};
  Process(node_->OnRequest(decoded->first, token, decoded->second));
}

void RingService::ArmTimer() {
  if (closed_) return;
  timer_->timer.expires_after(std::chrono::milliseconds(options_.tick_ms));
  std::weak_ptr<bool> alive = alive_;
  timer_->timer.async_wait([this, alive](const std::error_code& error) {
    if (error || !alive.lock() || closed_) return;
    OnTimer();
    ArmTimer();
  });
}

void RingService::OnTimer() {
  ticks_++;
  Process(node_->OnTick());
  for (auto it = pending_replies_.begin(); it != pending_replies_.end();) {
    if (ticks_ - it->second.started_tick < kPendingReplyTicksMax) {
      ++it;
      continue;
    }
    if (it->second.rpc) (*it->second.rpc)(Status::Unavailable("ring request got no answer"));
    it = pending_replies_.erase(it);
  }
  std::lock_guard lock(snapshot_mutex_);
  snapshot_.stats = node_->stats();
  snapshot_.epoch = node_->ring().epoch();
  snapshot_.fenced = fenced_;
}

void RingService::PersistLoop() {
  for (;;) {
    std::deque<PersistGroup> groups;
    {
      std::unique_lock lock(persist_mutex_);
      persist_wakeup_.wait(lock, [this] { return persist_stop_ || !persist_queue_.empty(); });
      if (persist_queue_.empty()) return;  // Stopping and nothing left.
      groups.swap(persist_queue_);
    }
    // Group commit: every group queued meanwhile in one synced batch.
    PersistGroup all;
    for (PersistGroup& group : groups) {
      for (PersistRow& row : group.rows) all.rows.push_back(std::move(row));
      for (PersistRoundFloor& floor : group.floors) all.floors.push_back(floor);
      for (uint64_t id : group.ids) all.ids.push_back(id);
    }
    const Status status = store_->Write(all.rows, all.floors);
    if (!status.ok())
      spdlog::error("ring: persisting {} records failed: {}", all.ids.size(), status.ToString());
    {
      std::lock_guard lock(snapshot_mutex_);
      snapshot_.persist_batches++;
      snapshot_.persist_records += all.ids.size();
    }
    Post([this, ids = std::move(all.ids), status] {
      if (closed_) return;
      for (uint64_t id : ids) Process(node_->OnPersisted(id, status));
    });
  }
}

// ---- Ring changes and fencing ------------------------------------------------------------------

void RingService::UpdateRing(RingConfig ring, std::map<NodeId, rpc::Endpoint> peers) {
  Post([this, ring = std::move(ring), peers = std::move(peers)]() mutable {
    if (closed_) return;
    peers_ = std::move(peers);
    {
      std::lock_guard lock(snapshot_mutex_);
      if (ring.epoch > snapshot_.ring.epoch) snapshot_.ring = ring;
    }
    Process(node_->SetRing(std::move(ring)));
  });
}

void RingService::StartStream() {
  Post([this] {
    if (!closed_) Process(node_->StartStream());
  });
}

void RingService::SetFenced(bool fenced) {
  Post([this, fenced] {
    if (fenced != fenced_) {
      spdlog::warn("ring: node {} {}", options_.self,
                   fenced ? "fenced: updates through it are refused" : "unfenced");
    }
    fenced_ = fenced;
  });
}

RingServiceSnapshot RingService::snapshot() const {
  std::lock_guard lock(snapshot_mutex_);
  return snapshot_;
}

}  // namespace weft::metadata::ring
