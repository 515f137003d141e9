// Test harness of the replicated data path (docs/protocol/replication.md): in-process nodes
// (memory disk -> blockstore -> extent store, the OpLog file layer on the same blockstore, a
// DataService), one loop that runs every node's executor tasks and polls every node's store as
// the reactors do, and InProcessPeerIo: a vdisk::PeerIo that encodes each call as the data RPC
// does (data_rpc.proto) and hands it to the target node's DataService::Handle through the loop,
// never inline. Nodes can be killed (calls to them fail with Unavailable) or held (calls to them
// wait until released), so tests decide exactly what a peer has seen.
#pragma once

#include <gtest/gtest.h>
#include <rocksdb/env.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/crc32c.h"
#include "blockstore/blockstore.h"
#include "env/memory_device.h"
#include "extent_store/extent_store.h"
#include "oplog/oplog.h"
#include "replication/data_rpc.h"
#include "replication/data_rpc.pb.h"
#include "replication/data_service.h"
#include "vdisk/peer_io.h"

namespace weft::replication::testing {

// Small OpLogs (the same on owners and peers: a peer's replica log is an ordinary OpLog).
inline oplog::OpLogOptions SmallOplogOptions() {
  oplog::OpLogOptions options;
  options.segment_bytes = 2ull << 20;
  options.size_bytes_max = 8ull << 20;
  options.batch_bytes_max = oplog::kRecordBytesMax + 64 * 1024;
  return options;
}

// One reactor for every node of a test: executor tasks in arrival order, and the nodes' stores
// polled between them. The executor is thread-safe (the metadata store posts from its thread).
class Loop {
 public:
  oplog::Executor executor() {
    return [this](std::function<void()> task) {
      const std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
      posted_.notify_all();
    };
  }
  void AddStore(extent_store::ExtentStore* store) { stores_.push_back(store); }
  void RemoveStore(extent_store::ExtentStore* store) { std::erase(stores_, store); }

  // One pass: the tasks queued now, then one non-blocking poll of every store.
  size_t RunOnce() {
    std::deque<std::function<void()>> tasks;
    {
      const std::lock_guard lock(mutex_);
      tasks.swap(tasks_);
    }
    size_t progress = tasks.size();
    for (auto& task : tasks) task();
    for (extent_store::ExtentStore* store : stores_) progress += store->Poll(/*wait=*/false);
    return progress;
  }

  // Runs until `done` holds; false when nothing happened for `idle_waits_max` waits of 1 ms
  // (a lost completion, or a condition that cannot come true).
  bool RunUntil(const std::function<bool()>& done, int idle_waits_max = 20000) {
    int idle_waits = 0;
    while (!done()) {
      if (RunOnce() > 0) {
        idle_waits = 0;
        continue;
      }
      std::unique_lock lock(mutex_);
      if (!posted_.wait_for(lock, std::chrono::milliseconds(1),
                            [this] { return !tasks_.empty(); })) {
        if (++idle_waits > idle_waits_max) return false;
      }
    }
    return true;
  }

  // Runs until a pass makes no progress. Only for tests without a metadata store (nothing then
  // arrives from another thread): deterministic.
  void RunUntilIdle() {
    while (RunOnce() > 0) {
    }
  }

  template <typename T>
  Result<T> Wait(const std::function<void(std::function<void(Result<T>)>)>& start) {
    std::optional<Result<T>> result;
    start([&](Result<T> got) { result = std::move(got); });
    if (!RunUntil([&] { return result.has_value(); })) return Status::Aborted("hung");
    return std::move(*result);
  }
  Status WaitStatus(const std::function<void(std::function<void(Status)>)>& start) {
    std::optional<Status> result;
    start([&](Status got) { result = std::move(got); });
    if (!RunUntil([&] { return result.has_value(); })) return Status::Aborted("hung");
    return *result;
  }

 private:
  std::mutex mutex_;
  std::condition_variable posted_;
  std::deque<std::function<void()>> tasks_;
  std::vector<extent_store::ExtentStore*> stores_;
};

// One node's storage and data service: a memory disk with a blockstore, its extent store, and
// the OpLog file layer on the same blockstore (the daemon's fast disk).
class Node {
 public:
  Node(Loop& loop, uint32_t node_id, uint64_t disk_bytes = 96ull << 20)
      : loop_(loop),
        node_id_(node_id),
        device_("memory:node" + std::to_string(node_id), disk_bytes, 4096),
        metadata_env_(rocksdb::NewMemEnv(rocksdb::Env::Default())) {
    EXPECT_TRUE(blockstore::Blockstore::Format(device_, {}).ok());
    auto opened = blockstore::Blockstore::Open(device_);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    blockstore_ = std::move(opened).value();
    extent_store::ExtentStoreOptions options;
    options.metadata_path = "/aes";
    options.metadata_env = metadata_env_.get();
    options.commit_thread = false;  // Deterministic: commits run inside Poll.
    auto store = extent_store::ExtentStore::Open(*blockstore_, options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    loop_.AddStore(store_.get());
    disks_.push_back(vdisk::NodeDisk{blockstore_->uuid().ToString(), device_.name(), store_.get()});
    DataServiceOptions service_options;
    service_options.disks = &disks_;
    service_options.oplog_files = &blockstore_->files();
    service_options.oplog = SmallOplogOptions();
    service_options.executor = loop_.executor();
    service_options.owns_vdisk = [this](uint64_t vdisk_id) { return owned_.contains(vdisk_id); };
    service_ = std::make_unique<DataService>(std::move(service_options));
  }
  ~Node() {
    bool closed = false;
    service_->Close([&] { closed = true; });
    EXPECT_TRUE(loop_.RunUntil([&] { return closed; }));
    service_.reset();
    loop_.RunUntilIdle();
    loop_.RemoveStore(store_.get());
    store_.reset();
    EXPECT_TRUE(blockstore_->Close().ok());
  }
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  uint32_t id() const { return node_id_; }
  env::MemoryDevice& device() { return device_; }
  blockstore::FileLayer& oplog_files() { return blockstore_->files(); }
  extent_store::ExtentStore& store() { return *store_; }
  std::vector<vdisk::NodeDisk>& disks() { return disks_; }
  const std::string& disk_uuid() const { return disks_.front().uuid; }
  DataService& service() { return *service_; }
  // vDisks this node serves itself (DataServiceOptions::owns_vdisk).
  std::set<uint64_t>& owned() { return owned_; }

  // Reads the node's replica straight from its extent store.
  Status ReadReplica(uint64_t egroup_id, uint64_t offset_bytes, std::span<std::byte> buffer) {
    return loop_.WaitStatus(
        [&](auto done) { store_->Read(egroup_id, offset_bytes, buffer, std::move(done)); });
  }

 private:
  Loop& loop_;
  const uint32_t node_id_;
  env::MemoryDevice device_;
  std::unique_ptr<rocksdb::Env> metadata_env_;
  std::unique_ptr<blockstore::Blockstore> blockstore_;
  std::unique_ptr<extent_store::ExtentStore> store_;
  std::vector<vdisk::NodeDisk> disks_;
  std::set<uint64_t> owned_;
  std::unique_ptr<DataService> service_;
};

// ---- Data RPC requests, encoded as PeerClient encodes them ----

inline rpc::Message Request(uint16_t type, const google::protobuf::MessageLite& body,
                            std::span<const std::byte> bulk = {}) {
  rpc::Message message;
  message.type = type;
  message.body = body.SerializeAsString();
  message.bulk.assign(reinterpret_cast<const char*>(bulk.data()), bulk.size());
  return message;
}

inline proto::OplogAppend OplogAppendBody(const vdisk::OplogRecordHeader& header) {
  proto::OplogAppend append;
  append.set_vdisk_id(header.vdisk_id);
  append.set_owner_epoch(header.owner_epoch);
  append.set_seq(header.seq);
  append.set_kind(header.kind);
  append.set_offset_bytes(header.offset_bytes);
  append.set_length_bytes(header.length_bytes);
  append.set_data_crc32c(header.data_crc32c);
  append.set_drained_seq(header.drained_seq);
  return append;
}

inline proto::EgroupWrite EgroupWriteBody(const vdisk::EgroupTarget& target,
                                          uint64_t replica_version, uint64_t offset_bytes,
                                          uint64_t length_bytes, uint32_t data_crc32c) {
  proto::EgroupWrite write;
  write.set_egroup_id(target.egroup_id);
  write.set_vdisk_id(target.vdisk_id);
  write.set_owner_epoch(target.owner_epoch);
  write.set_replica_version(replica_version);
  write.set_offset_bytes(offset_bytes);
  write.set_length_bytes(length_bytes);
  write.set_data_crc32c(data_crc32c);
  return write;
}

// The reply's body as `Proto`, or the call's error.
template <typename Proto>
Result<Proto> ParseReply(const Result<rpc::Message>& reply) {
  if (!reply.ok()) return reply.status();
  Proto parsed;
  if (reply->type != kDataReplyType || !parsed.ParseFromString(reply->body)) {
    return Status::Corruption("malformed data rpc reply");
  }
  return parsed;
}

// Which nodes are up and which are held, for every InProcessPeerIo of a test.
class Cluster {
 public:
  void Add(Node* node) { nodes_[node->id()] = node; }
  Node& node(uint32_t node_id) { return *nodes_.at(node_id); }
  const std::map<uint32_t, Node*>& nodes() const { return nodes_; }

  // A dead node leaves the live members and its calls fail with Unavailable. It can still send
  // (a partitioned old owner whose successor took over: what fencing is for).
  void Kill(uint32_t node_id) { dead_.insert(node_id); }
  bool dead(uint32_t node_id) const { return dead_.contains(node_id); }
  // Calls to a held node wait (in order) until Release.
  void Hold(uint32_t node_id) { held_nodes_.insert(node_id); }
  void Release(uint32_t node_id, const oplog::Executor& executor) {
    held_nodes_.erase(node_id);
    std::deque<std::function<void()>> calls = std::move(held_[node_id]);
    held_.erase(node_id);
    for (auto& call : calls) executor(std::move(call));
  }
  bool holding(uint32_t node_id) const { return held_nodes_.contains(node_id); }
  size_t held_calls(uint32_t node_id) const {
    auto found = held_.find(node_id);
    return found == held_.end() ? 0 : found->second.size();
  }
  void HoldCall(uint32_t node_id, std::function<void()> call) {
    held_[node_id].push_back(std::move(call));
  }

 private:
  std::map<uint32_t, Node*> nodes_;
  std::set<uint32_t> dead_;
  std::set<uint32_t> held_nodes_;
  std::map<uint32_t, std::deque<std::function<void()>>> held_;
};

// vdisk::PeerIo of one node: each call goes to the target's DataService::Handle through the
// loop, with the request and reply encoded as on the wire.
class InProcessPeerIo final : public vdisk::PeerIo {
 public:
  static constexpr uint64_t kFreeBytes = 1ull << 30;  // Equal on every node: placement rotates.

  InProcessPeerIo(Cluster& cluster, Loop& loop, uint32_t local_node_id)
      : cluster_(cluster), executor_(loop.executor()), local_node_id_(local_node_id) {}

  uint32_t local_node_id() const override { return local_node_id_; }
  std::vector<vdisk::PeerNode> LivePeers() const override {
    std::vector<vdisk::PeerNode> peers;
    for (const auto& [node_id, node] : cluster_.nodes()) {
      if (node_id != local_node_id_ && !cluster_.dead(node_id)) {
        peers.push_back({node_id, kFreeBytes});
      }
    }
    return peers;
  }
  bool may_acknowledge() const override { return true; }

  // Calls sent to each node, by message type.
  uint64_t calls(uint32_t node_id, uint16_t type) const {
    auto found = calls_.find({node_id, type});
    return found == calls_.end() ? 0 : found->second;
  }

  // Replies (answers and failures) received from each node.
  uint64_t replies(uint32_t node_id) const {
    auto found = replies_.find(node_id);
    return found == replies_.end() ? 0 : found->second;
  }

  void OplogAppend(uint32_t node, const vdisk::OplogRecordHeader& header,
                   std::span<const std::byte> data, vdisk::PeerCompletion done) override {
    Send(node, Request(kOplogAppendType, OplogAppendBody(header), data),
         [done = std::move(done)](Result<rpc::Message> reply) {
           done(ParseReply<proto::OplogAppendReply>(reply).status());
         });
  }
  void OplogTrim(uint32_t node, uint64_t vdisk_id, uint64_t owner_epoch, uint64_t drained_seq,
                 vdisk::PeerCompletion done) override {
    proto::OplogTrim trim;
    trim.set_vdisk_id(vdisk_id);
    trim.set_owner_epoch(owner_epoch);
    trim.set_drained_seq(drained_seq);
    Send(node, Request(kOplogTrimType, trim), [done = std::move(done)](Result<rpc::Message> reply) {
      done(ParseReply<proto::OplogAppendReply>(reply).status());
    });
  }
  void EgroupCreate(uint32_t node, const vdisk::EgroupTarget& target, uint64_t replica_version,
                    std::function<void(Result<std::string>)> done) override {
    proto::EgroupCreate create;
    create.set_egroup_id(target.egroup_id);
    create.set_vdisk_id(target.vdisk_id);
    create.set_owner_epoch(target.owner_epoch);
    create.set_replica_version(replica_version);
    Send(node, Request(kEgroupCreateType, create),
         [done = std::move(done)](Result<rpc::Message> reply) {
           Result<proto::EgroupCreateReply> created = ParseReply<proto::EgroupCreateReply>(reply);
           if (!created.ok()) return done(created.status());
           done(created->disk_uuid());
         });
  }
  void EgroupWrite(uint32_t node, const vdisk::EgroupTarget& target, uint64_t replica_version,
                   uint64_t offset_bytes, std::span<const std::byte> data,
                   vdisk::PeerCompletion done) override {
    Send(node,
         Request(kEgroupWriteType,
                 EgroupWriteBody(target, replica_version, offset_bytes, data.size(), Crc32c(data)),
                 data),
         [done = std::move(done)](Result<rpc::Message> reply) {
           done(ParseReply<proto::EgroupWriteReply>(reply).status());
         });
  }
  void EgroupTrim(uint32_t node, const vdisk::EgroupTarget& target, uint64_t replica_version,
                  uint64_t offset_bytes, uint64_t length_bytes,
                  vdisk::PeerCompletion done) override {
    Send(node,
         Request(kEgroupTrimType,
                 EgroupWriteBody(target, replica_version, offset_bytes, length_bytes, 0)),
         [done = std::move(done)](Result<rpc::Message> reply) {
           done(ParseReply<proto::EgroupWriteReply>(reply).status());
         });
  }
  void EgroupRead(uint32_t node, uint64_t egroup_id, uint64_t offset_bytes,
                  std::span<std::byte> buffer,
                  std::function<void(Result<vdisk::EgroupReadReply>)> done) override {
    proto::EgroupRead read;
    read.set_egroup_id(egroup_id);
    read.set_offset_bytes(offset_bytes);
    read.set_length_bytes(buffer.size());
    Send(node, Request(kEgroupReadType, read),
         [buffer, done = std::move(done)](Result<rpc::Message> reply) {
           Result<proto::EgroupReadReply> answer = ParseReply<proto::EgroupReadReply>(reply);
           if (!answer.ok()) return done(answer.status());
           if (reply->bulk.size() != buffer.size() ||
               Crc32c(reply->bulk.data(), reply->bulk.size()) != answer->data_crc32c()) {
             return done(Status::Corruption("egroup read: bad bulk"));
           }
           std::memcpy(buffer.data(), reply->bulk.data(), buffer.size());
           done(vdisk::EgroupReadReply{answer->replica_version()});
         });
  }
  void EgroupDelete(uint32_t node, uint64_t egroup_id, vdisk::PeerCompletion done) override {
    proto::EgroupDelete remove;
    remove.set_egroup_id(egroup_id);
    Send(node, Request(kEgroupDeleteType, remove),
         [done = std::move(done)](Result<rpc::Message> reply) {
           done(ParseReply<proto::EgroupWriteReply>(reply).status());
         });
  }
  void Fence(uint32_t node, uint64_t vdisk_id, uint64_t owner_epoch,
             vdisk::PeerCompletion done) override {
    proto::Fence fence;
    fence.set_vdisk_id(vdisk_id);
    fence.set_owner_epoch(owner_epoch);
    Send(node, Request(kFenceType, fence), [done = std::move(done)](Result<rpc::Message> reply) {
      done(ParseReply<proto::EgroupWriteReply>(reply).status());
    });
  }

 private:
  void Send(uint32_t node, rpc::Message request, rpc::ReplyFn done) {
    EXPECT_NE(node, local_node_id_) << "a node never calls itself";
    ++calls_[{node, request.type}];
    done = [this, node, done = std::move(done)](Result<rpc::Message> reply) {
      ++replies_[node];
      done(std::move(reply));
    };
    auto deliver = [this, node, request = std::move(request), done = std::move(done)]() mutable {
      if (cluster_.dead(node)) {
        return done(Status::Unavailable("node " + std::to_string(node) + " is down"));
      }
      cluster_.node(node).service().Handle(request, std::move(done));
    };
    if (cluster_.holding(node)) {
      cluster_.HoldCall(node, std::move(deliver));
      return;
    }
    executor_(std::move(deliver));
  }

  Cluster& cluster_;
  oplog::Executor executor_;
  const uint32_t local_node_id_;
  std::map<std::pair<uint32_t, uint16_t>, uint64_t> calls_;
  std::map<uint32_t, uint64_t> replies_;
};

// Deterministic bytes: a splitmix64 stream from `seed`.
inline void FillPattern(std::span<std::byte> buffer, uint64_t seed) {
  uint64_t state = seed;
  for (size_t offset = 0; offset < buffer.size(); offset += sizeof(uint64_t)) {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t value = state;
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ull;
    value = (value ^ (value >> 27)) * 0x94D049BB133111EBull;
    value ^= value >> 31;
    std::memcpy(buffer.data() + offset, &value, std::min(sizeof(value), buffer.size() - offset));
  }
}

inline AlignedBuffer PatternBuffer(size_t size_bytes, uint64_t seed) {
  AlignedBuffer buffer(size_bytes);
  FillPattern(buffer.span(), seed);
  return buffer;
}

}  // namespace weft::replication::testing
