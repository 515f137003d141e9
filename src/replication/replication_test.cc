// The replicated data path end to end in one process (docs/protocol/replication.md): three nodes,
// each with its own memory disk, extent store, OpLog file layer and DataService, one shared
// metadata store, and InProcessPeerIo between them. VdiskControllers with replication_factor 2
// or 3 write, lose peers, are taken over, read corrupted and remote replicas. Every wait runs
// the loop until a condition holds; nothing sleeps.
#include <gtest/gtest.h>
#include <rocksdb/env.h>

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "metadata/local_metadata_store.h"
#include "replication/replication_test_util.h"
#include "vdisk/id_allocator.h"
#include "vdisk/vdisk_controller.h"
#include "vdisk/vdisk_keys.h"

namespace weft::replication {
namespace {

using testing::Cluster;
using testing::InProcessPeerIo;
using testing::Loop;
using testing::Node;
using testing::PatternBuffer;
using vdisk::VdiskController;

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kBlock = 4096;
constexpr uint64_t kVdiskBytes = 16 * kMiB;

class ReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    metadata_env_.reset(rocksdb::NewMemEnv(rocksdb::Env::Default()));
    metadata::LocalMetadataStoreOptions options;
    options.path = "/metadata";
    options.env = metadata_env_.get();
    options.executor = loop_.executor();
    auto metadata = metadata::LocalMetadataStore::Open(options);
    ASSERT_TRUE(metadata.ok()) << metadata.status().ToString();
    metadata_ = std::move(metadata).value();
    for (uint32_t id = 1; id <= 3; ++id) {
      nodes_[id] = std::make_unique<Node>(loop_, id);
      cluster_.Add(nodes_[id].get());
      peers_[id] = std::make_unique<InProcessPeerIo>(cluster_, loop_, id);
      ids_[id] = std::make_unique<vdisk::IdAllocator>(*metadata_, "egroup", 4);
    }
  }
  void TearDown() override {
    for (auto& [controller, node] : controllers_) Close(*controller);
    controllers_.clear();
    ids_.clear();
    peers_.clear();
    nodes_.clear();
    metadata_.reset();
  }

  Node& node(uint32_t id) { return *nodes_.at(id); }

  // Writes the vDisk's row; returns its version.
  uint64_t PutRow(const vdisk::records::Vdisk& record, uint64_t expected_version) {
    Result<uint64_t> set = loop_.Wait<uint64_t>([&](auto done) {
      metadata_->CompareAndSet(vdisk::VdiskKey(record.name()), expected_version,
                               vdisk::Encode(record), done);
    });
    EXPECT_TRUE(set.ok()) << set.status().ToString();
    return set.ok() ? *set : 0;
  }
  vdisk::records::Vdisk Record(uint32_t rf, uint32_t owner, uint64_t epoch,
                               std::vector<uint32_t> peers) {
    vdisk::records::Vdisk record;
    record.set_format_version(1);
    record.set_name("disk");
    record.set_id(77);
    record.set_container("default");
    record.set_size_bytes(kVdiskBytes);
    record.set_state(vdisk::records::VDISK_STATE_ACTIVE);
    record.set_replication_factor(rf);
    record.set_owner_node(owner);
    record.set_owner_epoch(epoch);
    for (uint32_t peer : peers) record.add_oplog_peers(peer);
    return record;
  }
  std::pair<vdisk::records::Vdisk, uint64_t> GetRow() {
    Result<metadata::Row> row = loop_.Wait<metadata::Row>(
        [&](auto done) { metadata_->Get(vdisk::VdiskKey("disk"), done); });
    EXPECT_TRUE(row.ok()) << row.status().ToString();
    vdisk::records::Vdisk record;
    if (row.ok()) {
      EXPECT_TRUE(vdisk::Decode(row->key, row->value, record).ok());
    }
    return {record, row.ok() ? row->version : 0};
  }
  std::vector<vdisk::records::Egroup> EgroupRows(uint64_t vdisk_id = 77) {
    auto rows = loop_.Wait<std::vector<metadata::Row>>(
        [&](auto done) { metadata_->Scan(vdisk::EgroupPrefix(vdisk_id), "", 1000, done); });
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    std::vector<vdisk::records::Egroup> egroups;
    for (const metadata::Row& row : rows.ok() ? *rows : std::vector<metadata::Row>{}) {
      EXPECT_TRUE(vdisk::Decode(row.key, row.value, egroups.emplace_back()).ok());
    }
    return egroups;
  }
  vdisk::records::VblockMapping Mapping(uint64_t vblock) {
    Result<metadata::Row> row = loop_.Wait<metadata::Row>(
        [&](auto done) { metadata_->Get(vdisk::BlockMapKey(77, vblock), done); });
    EXPECT_TRUE(row.ok()) << row.status().ToString();
    vdisk::records::VblockMapping mapping;
    if (row.ok()) {
      EXPECT_TRUE(vdisk::Decode(row->key, row->value, mapping).ok());
    }
    return mapping;
  }
  static std::set<uint32_t> ReplicaNodes(const vdisk::records::Egroup& egroup) {
    std::set<uint32_t> nodes;
    for (const auto& replica : egroup.replicas()) nodes.insert(replica.node_id());
    return nodes;
  }

  // A controller of `record` on `node_id`, loaded (its OpLog replayed). hold_idle_drain: the
  // idle drain's timer never fires, so small OpLog tails (under 1 MiB) stay undrained.
  VdiskController& Open(uint32_t node_id, const vdisk::records::Vdisk& record, uint64_t row_version,
                        bool with_oplog, bool hold_idle_drain = false) {
    vdisk::ControllerContext context;
    context.metadata = metadata_.get();
    context.executor = loop_.executor();
    context.disks = &node(node_id).disks();
    context.egroup_ids = ids_.at(node_id).get();
    context.peers = peers_.at(node_id).get();
    if (with_oplog) {
      context.io.oplog_files = &node(node_id).oplog_files();
      context.io.oplog = testing::SmallOplogOptions();
    }
    // The idle drain's timer fires at once (unless held); the 1 s retry after a failed drain
    // never does, so a drain that cannot succeed stops instead of spinning.
    context.io.schedule = [this, hold_idle_drain](std::chrono::microseconds delay,
                                                  std::function<void()> task) {
      if (hold_idle_drain || delay >= std::chrono::seconds(1)) {
        never_run_.push_back(std::move(task));
      } else {
        loop_.executor()(std::move(task));
      }
    };
    node(node_id).owned().insert(record.id());
    controllers_.emplace_back(std::make_unique<VdiskController>(std::move(context), record),
                              node_id);
    VdiskController& controller = *controllers_.back().first;
    controller.set_row_version(row_version);
    const Status loaded = loop_.WaitStatus([&](auto done) { controller.Load(done); });
    EXPECT_TRUE(loaded.ok()) << loaded.ToString();
    return controller;
  }
  void Close(VdiskController& controller) {
    EXPECT_TRUE(loop_.RunUntil([&] { return controller.inflight_operations() == 0; }));
    EXPECT_TRUE(loop_.WaitStatus([&](auto done) { controller.Quiesce(done); }).ok());
  }
  void Drop(VdiskController& controller) {
    Close(controller);
    for (auto it = controllers_.begin(); it != controllers_.end(); ++it) {
      if (it->first.get() != &controller) continue;
      node(it->second).owned().erase(controller.id());
      controllers_.erase(it);
      return;
    }
  }

  Status Write(VdiskController& controller, uint64_t offset, std::span<const std::byte> data) {
    const Status status =
        loop_.WaitStatus([&](auto done) { controller.Write(offset, data, done); });
    if (status.ok()) std::memcpy(model_.data() + offset, data.data(), data.size());
    return status;
  }
  Status Read(VdiskController& controller, uint64_t offset, std::span<std::byte> buffer) {
    return loop_.WaitStatus([&](auto done) { controller.Read(offset, buffer, done); });
  }
  // Every acknowledged write reads back through `controller`.
  void ExpectModel(VdiskController& controller) {
    AlignedBuffer buffer(kVdiskBytes);
    for (uint64_t offset = 0; offset < kVdiskBytes; offset += 4 * kMiB) {
      const Status status = Read(controller, offset, buffer.span().subspan(offset, 4 * kMiB));
      ASSERT_TRUE(status.ok()) << status.ToString();
    }
    for (uint64_t offset = 0; offset < kVdiskBytes; offset += kBlock) {
      ASSERT_EQ(std::memcmp(buffer.data() + offset, model_.data() + offset, kBlock), 0)
          << "block at " << offset << " differs from what was acknowledged";
    }
  }
  void WaitDrained(VdiskController& controller) {
    ASSERT_TRUE(loop_.RunUntil([&] {
      const oplog::OpLog* log = controller.oplog();
      return log == nullptr || (!log->has_undrained() && log->appends_pending() == 0);
    }));
  }
  // Every listed replica of every egroup holds the same blocks at the same version.
  void ExpectReplicasAgree(size_t replication_factor) {
    for (const vdisk::records::Egroup& egroup : EgroupRows()) {
      ASSERT_EQ(ReplicaNodes(egroup).size(), replication_factor) << egroup.ShortDebugString();
      std::optional<std::vector<uint32_t>> first_checksums;
      std::optional<uint64_t> first_version;
      for (uint32_t id : ReplicaNodes(egroup)) {
        extent_store::ExtentStore& store = node(id).store();
        auto checksums = store.BlockChecksums(egroup.egroup_id(), 0, extent_store::kEgroupMaxBytes);
        ASSERT_TRUE(checksums.ok()) << "node " << id << ": " << checksums.status().ToString();
        auto version = store.ReplicaVersion(egroup.egroup_id());
        ASSERT_TRUE(version.ok());
        if (!first_checksums) {
          first_checksums = *checksums;
          first_version = *version;
          continue;
        }
        EXPECT_TRUE(*checksums == *first_checksums)
            << "egroup " << egroup.egroup_id() << ": node " << id << "'s replica differs";
        EXPECT_EQ(*version, *first_version) << "egroup " << egroup.egroup_id() << " node " << id;
      }
    }
  }

  Loop loop_;
  std::unique_ptr<rocksdb::Env> metadata_env_;
  std::unique_ptr<metadata::LocalMetadataStore> metadata_;
  std::map<uint32_t, std::unique_ptr<Node>> nodes_;
  Cluster cluster_;
  std::map<uint32_t, std::unique_ptr<InProcessPeerIo>> peers_;
  std::map<uint32_t, std::unique_ptr<vdisk::IdAllocator>> ids_;
  std::vector<std::function<void()>> never_run_;
  std::vector<std::pair<std::unique_ptr<VdiskController>, uint32_t>> controllers_;
  std::vector<std::byte> model_ = std::vector<std::byte>(kVdiskBytes, std::byte{0});
};

class ReplicationFactorTest : public ReplicationTest,
                              public ::testing::WithParamInterface<uint32_t> {
 protected:
  uint32_t rf() const { return GetParam(); }
  std::vector<uint32_t> Peers() const {
    return rf() == 2 ? std::vector<uint32_t>{2} : std::vector<uint32_t>{2, 3};
  }
};

// An OpLog write is acknowledged only once every OpLog peer has the record durable: held peers
// hold the ack; each peer's replica OpLog then replays it with the owner's seq.
TEST_P(ReplicationFactorTest, OplogWriteIsAcknowledgedOnlyOnceEveryPeerHasIt) {
  const auto record = Record(rf(), 1, 1, Peers());
  VdiskController& owner = Open(1, record, PutRow(record, 0), true, /*hold_idle_drain=*/true);
  AlignedBuffer data = PatternBuffer(64 * 1024, 1);
  for (uint32_t peer : Peers()) cluster_.Hold(peer);
  std::optional<Status> acked;
  owner.Write(3 * kMiB, data.span(), [&](Status status) { acked = status; });
  ASSERT_TRUE(loop_.RunUntil([&] {
    for (uint32_t peer : Peers()) {
      if (cluster_.held_calls(peer) == 0) return false;
    }
    return owner.oplog() != nullptr && owner.oplog()->appends_pending() == 0;
  }));
  EXPECT_FALSE(acked.has_value()) << "acknowledged with the record on the owner only";
  // Peers answer one by one: the ack waits for the last.
  for (size_t index = 0; index < Peers().size(); ++index) {
    const uint32_t peer = Peers()[index];
    const uint64_t replies = peers_[1]->replies(peer);
    cluster_.Release(peer, loop_.executor());
    ASSERT_TRUE(loop_.RunUntil([&] { return peers_[1]->replies(peer) > replies; }));
    if (index + 1 < Peers().size()) {
      EXPECT_FALSE(acked.has_value());
    }
  }
  ASSERT_TRUE(loop_.RunUntil([&] { return acked.has_value(); }));
  ASSERT_TRUE(acked->ok()) << acked->ToString();
  std::memcpy(model_.data() + 3 * kMiB, data.data(), data.size());
  const uint64_t seq = owner.oplog()->last_seq();
  for (uint32_t peer : Peers()) {
    ASSERT_TRUE(
        loop_.WaitStatus([&](auto done) { node(peer).service().ReleaseOplog(77, done); }).ok());
    oplog::OpLog replica(node(peer).oplog_files(), 77, testing::SmallOplogOptions(),
                         loop_.executor());
    ASSERT_TRUE(loop_.WaitStatus([&](auto done) { replica.Open(done); }).ok());
    EXPECT_EQ(replica.last_seq(), seq) << "node " << peer;
    std::vector<std::byte> bytes(data.size());
    EXPECT_EQ(replica.index().Overlay(3 * kMiB, bytes), data.size());
    EXPECT_EQ(std::memcmp(bytes.data(), data.data(), data.size()), 0) << "node " << peer;
  }
  EXPECT_EQ(owner.stats().oplog_peer_appends, Peers().size());
  // The peers reopen their replica logs for the next record.
  AlignedBuffer more = PatternBuffer(8192, 2);
  ASSERT_TRUE(Write(owner, 5 * kMiB, more.span()).ok());
  ExpectModel(owner);
}

// A sequential write goes to the extent store: when it is acknowledged, every replica listed
// in the egroup's row has committed its blocks.
TEST_P(ReplicationFactorTest, SequentialWriteIsOnEveryReplicaWhenAcknowledged) {
  const auto record = Record(rf(), 1, 1, Peers());
  VdiskController& owner = Open(1, record, PutRow(record, 0), true);
  AlignedBuffer data = PatternBuffer(2 * kMiB, 3);
  // At the ack: each node's committed block checksums of every egroup it holds.
  std::map<uint32_t, std::map<uint64_t, std::vector<uint32_t>>> at_ack;
  std::optional<Status> acked;
  owner.Write(4 * kMiB, data.span(), [&](Status status) {
    acked = status;
    for (uint32_t id = 1; id <= 3; ++id) {
      extent_store::ExtentStore& store = node(id).store();
      for (const extent_store::EgroupInfo& info : store.ListEgroups()) {
        auto checksums = store.BlockChecksums(info.id, 0, extent_store::kEgroupMaxBytes);
        if (checksums.ok()) at_ack[id][info.id] = *checksums;
      }
    }
  });
  ASSERT_TRUE(loop_.RunUntil([&] { return acked.has_value(); }));
  ASSERT_TRUE(acked->ok()) << acked->ToString();
  std::memcpy(model_.data() + 4 * kMiB, data.data(), data.size());
  EXPECT_EQ(owner.stats().writes_sequential_bypass, 1u);
  for (uint64_t vblock = 4; vblock < 6; ++vblock) {
    const vdisk::records::VblockMapping mapping = Mapping(vblock);
    std::optional<vdisk::records::Egroup> egroup;
    for (const auto& row : EgroupRows()) {
      if (row.egroup_id() == mapping.egroup_id()) egroup = row;
    }
    ASSERT_TRUE(egroup.has_value());
    const std::set<uint32_t> replicas = ReplicaNodes(*egroup);
    ASSERT_EQ(replicas.size(), rf());
    EXPECT_TRUE(replicas.contains(1)) << "the owner keeps a local replica";
    for (uint32_t id : replicas) {
      ASSERT_TRUE(at_ack[id].contains(mapping.egroup_id())) << "node " << id;
      const std::vector<uint32_t>& checksums = at_ack[id][mapping.egroup_id()];
      for (uint64_t block = 0; block < kMiB / kBlock; ++block) {
        const uint64_t in_data = (vblock - 4) * kMiB + block * kBlock;
        ASSERT_EQ(checksums[mapping.slot() * (kMiB / kBlock) + block],
                  Crc32c(data.span().subspan(in_data, kBlock)))
            << "node " << id << " lacked block " << block << " of vblock " << vblock
            << " when the write was acknowledged";
      }
    }
  }
  ExpectReplicasAgree(rf());
  ExpectModel(owner);
}

// With fewer live nodes than RF, writes fail (OpLog and extent store, new and existing egroups)
// rather than being acknowledged with fewer copies; what was acknowledged still reads back.
TEST_P(ReplicationFactorTest, WritesFailWithFewerLiveNodesThanCopies) {
  const auto record = Record(rf(), 1, 1, Peers());
  VdiskController& owner = Open(1, record, PutRow(record, 0), true);
  AlignedBuffer first = PatternBuffer(2 * kMiB, 4);
  ASSERT_TRUE(Write(owner, 0, first.span()).ok());
  if (rf() == 2) cluster_.Kill(2);
  cluster_.Kill(3);
  AlignedBuffer small = PatternBuffer(64 * 1024, 5);
  Status status = Write(owner, 8 * kMiB, small.span());
  EXPECT_FALSE(status.ok()) << "an OpLog write acknowledged without a live peer";
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  AlignedBuffer over = PatternBuffer(2 * kMiB, 6);
  status = Write(owner, 0, over.span());  // Into the existing egroup.
  EXPECT_FALSE(status.ok()) << "an egroup write acknowledged with fewer copies";
  status = Write(owner, 12 * kMiB, over.span());  // A new egroup.
  EXPECT_FALSE(status.ok()) << "a new egroup acknowledged with fewer copies";
  AlignedBuffer buffer(2 * kMiB);
  ASSERT_TRUE(Read(owner, 0, buffer.span()).ok());
  // The failed write into the egroup may have reached some replicas; the first one must have
  // been overwritten completely or not at all per block, never torn within a block.
  for (uint64_t offset = 0; offset < 2 * kMiB; offset += kBlock) {
    const bool old_bytes = std::memcmp(buffer.data() + offset, first.data() + offset, kBlock) == 0;
    const bool new_bytes = std::memcmp(buffer.data() + offset, over.data() + offset, kBlock) == 0;
    ASSERT_TRUE(old_bytes || new_bytes) << "block at " << offset;
  }
}

INSTANTIATE_TEST_SUITE_P(Rf, ReplicationFactorTest, ::testing::Values(2u, 3u),
                         [](const auto& info) { return "Rf" + std::to_string(info.param); });

// A dead OpLog peer and dead egroup replicas are replaced; writes continue with RF copies.
TEST_F(ReplicationTest, KilledPeerIsReplacedAndWritesContinue) {
  const auto record = Record(2, 1, 1, {2});
  VdiskController& owner = Open(1, record, PutRow(record, 0), true);
  for (uint64_t vblock = 0; vblock < 12; ++vblock) {
    AlignedBuffer data = PatternBuffer(kMiB, 10 + vblock);
    ASSERT_TRUE(Write(owner, vblock * kMiB, data.span()).ok());
  }
  WaitDrained(owner);
  size_t on_node_2 = 0;
  for (const auto& egroup : EgroupRows()) on_node_2 += ReplicaNodes(egroup).contains(2) ? 1 : 0;
  ASSERT_GE(on_node_2, 1u) << "placement put no egroup on node 2: nothing to replace";

  cluster_.Kill(2);
  // Every egroup gets a write (through the OpLog), and a new one a sequential write.
  for (uint64_t vblock = 0; vblock < 12; ++vblock) {
    AlignedBuffer data = PatternBuffer(8192, 100 + vblock);
    const Status status = Write(owner, vblock * kMiB + 4096, data.span());
    ASSERT_TRUE(status.ok()) << "vblock " << vblock << ": " << status.ToString();
  }
  AlignedBuffer sequential = PatternBuffer(2 * kMiB, 200);
  ASSERT_TRUE(Write(owner, 12 * kMiB, sequential.span()).ok());
  WaitDrained(owner);

  const auto [row, version] = GetRow();
  ASSERT_EQ(row.oplog_peers_size(), 1);
  EXPECT_EQ(row.oplog_peers(0), 3u) << "the OpLog peer set still names the dead node";
  EXPECT_GE(owner.stats().oplog_repeers, 1u);
  for (const auto& egroup : EgroupRows()) {
    EXPECT_EQ(ReplicaNodes(egroup), (std::set<uint32_t>{1, 3})) << egroup.ShortDebugString();
  }
  EXPECT_EQ(owner.stats().replica_replacements, on_node_2);
  ExpectReplicasAgree(2);
  ExpectModel(owner);
}

// The owner dies with records in its OpLog; node 2 (its OpLog peer) takes over at epoch 2:
// every acknowledged write reads back, and the old owner can no longer change anything.
TEST_P(ReplicationFactorTest, TakeoverKeepsEveryAcknowledgedWriteAndFencesTheOldOwner) {
  const auto record = Record(rf(), 1, 1, Peers());
  VdiskController& old_owner = Open(1, record, PutRow(record, 0), true, /*hold_idle_drain=*/true);
  AlignedBuffer sequential = PatternBuffer(2 * kMiB, 20);
  ASSERT_TRUE(Write(old_owner, 0, sequential.span()).ok());
  std::mt19937_64 random(7);
  for (int index = 0; index < 12; ++index) {
    const uint64_t length = (1 + random() % 4) * kBlock;
    const uint64_t offset = random() % (8 * kMiB / kBlock) * kBlock;
    AlignedBuffer data = PatternBuffer(length, 30 + index);
    ASSERT_TRUE(Write(old_owner, offset, data.span()).ok());
  }
  AlignedBuffer unaligned = PatternBuffer(1000, 50);
  ASSERT_TRUE(Write(old_owner, 12345, unaligned.span()).ok());
  ASSERT_TRUE(old_owner.oplog()->has_undrained()) << "nothing left for the takeover to replay";

  // Node 1 leaves the membership; node 2 takes over as VdiskManager::TakeOver does.
  cluster_.Kill(1);
  auto [taken, version] = GetRow();
  taken.set_owner_node(2);
  taken.set_owner_epoch(2);
  taken.clear_oplog_peers();
  for (uint32_t peer : Peers()) {
    if (peer != 2) taken.add_oplog_peers(peer);
  }
  const uint64_t taken_version = PutRow(taken, version);
  ASSERT_TRUE(loop_.WaitStatus([&](auto done) { node(2).service().ReleaseOplog(77, done); }).ok());
  node(2).service().Fence(77, 2);
  ASSERT_TRUE(loop_.WaitStatus([&](auto done) { peers_[2]->Fence(3, 77, 2, done); }).ok());
  VdiskController& successor = Open(2, taken, taken_version, true);
  const Status recovered =
      loop_.WaitStatus([&](auto done) { successor.RecoverAfterTakeover(done); });
  ASSERT_TRUE(recovered.ok()) << recovered.ToString();
  ExpectModel(successor);

  // The old owner, still running: its egroup writes and OpLog records are refused by the nodes
  // that heard from the successor.
  const uint64_t refusals_before = node(2).service().stats().stale_epoch_refusals +
                                   node(3).service().stats().stale_epoch_refusals;
  AlignedBuffer late = PatternBuffer(2 * kMiB, 60);
  EXPECT_FALSE(loop_.WaitStatus([&](auto done) { old_owner.Write(0, late.span(), done); }).ok());
  vdisk::OplogRecordHeader header{77, 1, 1000, 1, 0, kBlock, Crc32c(late.span().first(kBlock)), 0};
  Status append = loop_.WaitStatus(
      [&](auto done) { peers_[1]->OplogAppend(2, header, late.span().first(kBlock), done); });
  EXPECT_TRUE(append.IsAborted()) << append.ToString();
  EXPECT_NE(append.message().find("stale epoch"), std::string::npos) << append.ToString();
  const uint64_t egroup = EgroupRows().front().egroup_id();
  Status write = loop_.WaitStatus([&](auto done) {
    peers_[1]->EgroupWrite(3, {egroup, 77, 1}, 1000, 0, late.span().first(kBlock), done);
  });
  EXPECT_NE(write.message().find("stale epoch"), std::string::npos) << write.ToString();
  EXPECT_GE(node(2).service().stats().stale_epoch_refusals +
                node(3).service().stats().stale_epoch_refusals,
            refusals_before + 3);
  // It serves nothing any more (its bytes may be stale), and nothing of it reached the data.
  AlignedBuffer buffer(kBlock);
  EXPECT_FALSE(Read(old_owner, 0, buffer.span()).ok());
  ExpectModel(successor);

  // The successor writes on: with RF2 it found a new peer (node 3); RF3 lacks a third node.
  AlignedBuffer next = PatternBuffer(64 * 1024, 70);
  const Status written = Write(successor, 6 * kMiB, next.span());
  if (rf() == 2) {
    ASSERT_TRUE(written.ok()) << written.ToString();
    EXPECT_EQ(GetRow().first.oplog_peers(0), 3u);
  } else {
    EXPECT_EQ(written.code(), StatusCode::kUnavailable) << written.ToString();
  }
  ExpectModel(successor);
}

// Offsets (4 KiB-aligned) on the device where `block` is stored.
std::vector<uint64_t> FindOnDevice(env::MemoryDevice& device, std::span<const std::byte> block) {
  std::vector<uint64_t> found;
  AlignedBuffer chunk(kMiB);
  for (uint64_t base = 0; base < device.size_bytes(); base += kMiB) {
    device.ReadRaw(base, chunk.span());
    for (uint64_t offset = 0; offset < kMiB; offset += kBlock) {
      if (std::memcmp(chunk.data() + offset, block.data(), kBlock) == 0) {
        found.push_back(base + offset);
      }
    }
  }
  return found;
}

// A block of the owner's replica rots on its disk: the read is served from the other replica
// and the bad block rewritten.
TEST_F(ReplicationTest, CorruptLocalReplicaIsReadFromAnotherAndRepaired) {
  const auto record = Record(2, 1, 1, {2});
  VdiskController& owner = Open(1, record, PutRow(record, 0), /*with_oplog=*/false);
  AlignedBuffer data = PatternBuffer(2 * kMiB, 80);
  ASSERT_TRUE(Write(owner, 0, data.span()).ok());
  const vdisk::records::VblockMapping mapping = Mapping(0);
  const uint64_t in_egroup = mapping.slot() * kMiB;
  const std::vector<uint64_t> places = FindOnDevice(node(1).device(), data.span().first(kBlock));
  ASSERT_EQ(places.size(), 1u);
  AlignedBuffer rotten(kBlock);
  node(1).device().ReadRaw(places[0], rotten.span());
  rotten.data()[100] ^= std::byte{0xFF};
  node(1).device().WriteRaw(places[0], rotten.span());
  AlignedBuffer direct(kBlock);
  ASSERT_EQ(node(1).ReadReplica(mapping.egroup_id(), in_egroup, direct.span()).code(),
            StatusCode::kCorruption);

  AlignedBuffer buffer(8192);
  ASSERT_TRUE(Read(owner, 0, buffer.span()).ok());
  EXPECT_EQ(std::memcmp(buffer.data(), data.data(), 8192), 0);
  ASSERT_TRUE(loop_.RunUntil([&] { return owner.stats().replica_repairs == 1; }));
  const Status repaired = node(1).ReadReplica(mapping.egroup_id(), in_egroup, direct.span());
  ASSERT_TRUE(repaired.ok()) << repaired.ToString();
  EXPECT_EQ(std::memcmp(direct.data(), data.data(), kBlock), 0);
  EXPECT_EQ(owner.stats().reads_local, 1u);
  ExpectReplicasAgree(2);
}

// A controller on a node without a replica of an egroup reads it remotely, then copies it here
// and replaces a remote replica with the local one in the row.
TEST_F(ReplicationTest, RemoteOnlyEgroupIsReadRemotelyThenLocalized) {
  auto record = Record(2, 1, 1, {2});
  uint64_t version = PutRow(record, 0);
  VdiskController& first = Open(1, record, version, /*with_oplog=*/false);
  AlignedBuffer data = PatternBuffer(kMiB, 90);
  ASSERT_TRUE(Write(first, 0, data.span()).ok());
  Drop(first);
  ASSERT_EQ(EgroupRows().size(), 1u);
  const vdisk::records::Egroup before = EgroupRows().front();
  const std::set<uint32_t> holders = ReplicaNodes(before);
  uint32_t elsewhere = 0;
  for (uint32_t id = 1; id <= 3; ++id) {
    if (!holders.contains(id)) elsewhere = id;
  }
  ASSERT_NE(elsewhere, 0u);
  const uint32_t replaced = before.replicas(before.replicas_size() - 1).node_id();

  std::tie(record, version) = GetRow();
  record.set_owner_node(elsewhere);
  record.set_owner_epoch(2);
  version = PutRow(record, version);
  node(elsewhere).service().Fence(77, 2);
  VdiskController& moved = Open(elsewhere, record, version, /*with_oplog=*/false);
  AlignedBuffer buffer(kMiB);
  ASSERT_TRUE(Read(moved, 0, buffer.span()).ok());
  EXPECT_EQ(std::memcmp(buffer.data(), data.data(), kMiB), 0);
  EXPECT_EQ(moved.stats().reads_remote, 1u);
  ASSERT_TRUE(loop_.RunUntil([&] { return moved.stats().egroups_localized == 1; }));
  const vdisk::records::Egroup after = EgroupRows().front();
  std::set<uint32_t> expected = holders;
  expected.erase(replaced);
  expected.insert(elsewhere);
  EXPECT_EQ(ReplicaNodes(after), expected) << after.ShortDebugString();
  ASSERT_TRUE(node(elsewhere).store().GetEgroup(before.egroup_id()).ok());
  ASSERT_TRUE(loop_.RunUntil([&] {
    return !node(replaced).store().GetEgroup(before.egroup_id()).ok();
  })) << "the replaced replica was not deleted";
  std::memset(buffer.data(), 0, kMiB);
  ASSERT_TRUE(Read(moved, 0, buffer.span()).ok());
  EXPECT_EQ(std::memcmp(buffer.data(), data.data(), kMiB), 0);
  EXPECT_EQ(moved.stats().reads_local, 1u);
  std::memcpy(model_.data(), data.data(), kMiB);
  ExpectReplicasAgree(2);
}

// Known bug, kept disabled until fixed (run with --gtest_also_run_disabled_tests): a
// controller that holds no replica of an egroup learns no replica version at Load
// (AddLoadedEgroup in vdisk_controller_mapping.cc reads only a local replica's), so its first
// write to that egroup is numbered 1 while the replicas are at 2: ExtentStore::Write keeps the
// higher version, the write leaves no trace in the versions, and a replica that missed it can
// no longer be told from one that has it (docs/protocol/replication.md, "Replica version").
TEST_F(ReplicationTest, WriteToARemoteOnlyEgroupAfterLoadAdvancesItsReplicaVersion) {
  auto record = Record(2, 1, 1, {2});
  uint64_t version = PutRow(record, 0);
  VdiskController& first = Open(1, record, version, /*with_oplog=*/false);
  AlignedBuffer data = PatternBuffer(2 * kMiB, 95);
  ASSERT_TRUE(Write(first, 0, data.span()).ok());  // Versions 1 and 2 (two vBlocks).
  Drop(first);
  const vdisk::records::Egroup egroup = EgroupRows().front();
  uint32_t elsewhere = 0;
  for (uint32_t id = 1; id <= 3; ++id) {
    if (!ReplicaNodes(egroup).contains(id)) elsewhere = id;
  }
  ASSERT_NE(elsewhere, 0u);
  std::tie(record, version) = GetRow();
  record.set_owner_node(elsewhere);
  record.set_owner_epoch(2);
  version = PutRow(record, version);
  VdiskController& moved = Open(elsewhere, record, version, /*with_oplog=*/false);
  AlignedBuffer more = PatternBuffer(kBlock, 96);
  ASSERT_TRUE(Write(moved, 0, more.span()).ok());
  for (uint32_t id : ReplicaNodes(EgroupRows().front())) {
    Result<uint64_t> replica_version = node(id).store().ReplicaVersion(egroup.egroup_id());
    ASSERT_TRUE(replica_version.ok());
    EXPECT_EQ(*replica_version, 3u) << "node " << id << ": the write did not advance the version";
  }
}

}  // namespace
}  // namespace weft::replication
