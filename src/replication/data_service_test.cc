// DataService alone (docs/protocol/replication.md): one node's memory disk, extent store and
// OpLog file layer, requests encoded as on the wire and handed to Handle, the executor a queue
// the test runs. No metadata store, so every run is deterministic.
#include "replication/data_service.h"

#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "replication/replication_test_util.h"

namespace weft::replication {
namespace {

using testing::Loop;
using testing::Node;
using testing::OplogAppendBody;
using testing::PatternBuffer;
using testing::Request;

constexpr uint64_t kVdisk = 42;
constexpr uint64_t kBlock = 4096;
constexpr auto kData = oplog::format::RecordKind::kData;

class DataServiceTest : public ::testing::Test {
 protected:
  Result<rpc::Message> Call(rpc::Message request) {
    std::optional<Result<rpc::Message>> reply;
    node_.service().Handle(request, [&](Result<rpc::Message> got) { reply = std::move(got); });
    EXPECT_TRUE(loop_.RunUntil([&] { return reply.has_value(); })) << "no reply";
    return reply.value_or(Status::Aborted("no reply"));
  }

  // A kData record of `length` bytes (pattern `seq`) at `offset`.
  rpc::Message Append(uint64_t seq, uint64_t epoch, uint64_t offset, uint64_t length,
                      uint64_t drained_seq = 0, uint64_t vdisk = kVdisk) {
    AlignedBuffer data = PatternBuffer(length, seq);
    vdisk::OplogRecordHeader header{
        vdisk,      epoch, seq, static_cast<uint32_t>(kData), offset, length, Crc32c(data.span()),
        drained_seq};
    return Request(kOplogAppendType, OplogAppendBody(header), data.span());
  }

  rpc::Message Create(uint64_t egroup, uint64_t epoch, uint64_t version = 0) {
    proto::EgroupCreate create;
    create.set_egroup_id(egroup);
    create.set_vdisk_id(kVdisk);
    create.set_owner_epoch(epoch);
    create.set_replica_version(version);
    return Request(kEgroupCreateType, create);
  }
  rpc::Message Write(uint64_t egroup, uint64_t epoch, uint64_t version, uint64_t offset,
                     std::span<const std::byte> data) {
    return Request(kEgroupWriteType,
                   testing::EgroupWriteBody({egroup, kVdisk, epoch}, version, offset, data.size(),
                                            Crc32c(data)),
                   data);
  }
  rpc::Message Trim(uint64_t egroup, uint64_t epoch, uint64_t version, uint64_t offset,
                    uint64_t length) {
    return Request(kEgroupTrimType,
                   testing::EgroupWriteBody({egroup, kVdisk, epoch}, version, offset, length, 0));
  }
  rpc::Message Read(uint64_t egroup, uint64_t offset, uint64_t length) {
    proto::EgroupRead read;
    read.set_egroup_id(egroup);
    read.set_offset_bytes(offset);
    read.set_length_bytes(length);
    return Request(kEgroupReadType, read);
  }
  rpc::Message Fence(uint64_t epoch, uint64_t vdisk = kVdisk) {
    proto::Fence fence;
    fence.set_vdisk_id(vdisk);
    fence.set_owner_epoch(epoch);
    return Request(kFenceType, fence);
  }

  Status Release(uint64_t vdisk = kVdisk) {
    return loop_.WaitStatus([&](auto done) { node_.service().ReleaseOplog(vdisk, done); });
  }
  // The replica OpLog as a node taking the vDisk over would open it (after Release).
  std::unique_ptr<oplog::OpLog> OpenFresh(uint64_t vdisk = kVdisk) {
    auto log = std::make_unique<oplog::OpLog>(node_.oplog_files(), vdisk,
                                              testing::SmallOplogOptions(), loop_.executor());
    const Status opened = loop_.WaitStatus([&](auto done) { log->Open(done); });
    EXPECT_TRUE(opened.ok()) << opened.ToString();
    return log;
  }
  static bool IndexHolds(const oplog::OpLog& log, uint64_t seq, uint64_t offset, uint64_t length) {
    std::vector<std::byte> bytes(length);
    if (log.index().Overlay(offset, bytes) != length) return false;
    AlignedBuffer expected = PatternBuffer(length, seq);
    return std::memcmp(bytes.data(), expected.data(), length) == 0;
  }

  uint64_t VersionOf(uint64_t egroup) {
    Result<uint64_t> version = node_.store().ReplicaVersion(egroup);
    return version.ok() ? *version : 0;
  }

  Loop loop_;
  Node node_{loop_, 2};
};

void ExpectRefused(const Result<rpc::Message>& reply, StatusCode code, std::string_view words) {
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), code) << reply.status().ToString();
  EXPECT_NE(reply.status().message().find(words), std::string::npos)
      << "\"" << words << "\" not in: " << reply.status().ToString();
}

TEST_F(DataServiceTest, MalformedRequestsOfEveryTypeAreRefusedAndChangeNothing) {
  // An egroup with known contents and version, to show that nothing changes.
  ASSERT_TRUE(Call(Create(7, 1)).ok());
  AlignedBuffer before = PatternBuffer(2 * kBlock, 1);
  ASSERT_TRUE(Call(Write(7, 1, 1, 0, before.span())).ok());
  const DataServiceStats start = node_.service().stats();

  // Bodies that are not protobuf, for every type; and a type that is not ours.
  for (uint16_t type = kOplogAppendType; type <= kFenceType; ++type) {
    rpc::Message garbage{type, std::string("\xff\xff\xff\xff", 4), {}};
    ExpectRefused(Call(garbage), StatusCode::kInvalidArgument, "malformed");
  }
  ExpectRefused(Call(rpc::Message{0x2FE, {}, {}}), StatusCode::kInvalidArgument, "unknown");

  // OpLog appends: wrong bulk size, data with a zero kind, kind 0 and 99, seq 0, length 0 and
  // over the record maximum, epoch 0.
  rpc::Message short_bulk = Append(1, 1, 0, kBlock);
  short_bulk.bulk.pop_back();
  ExpectRefused(Call(short_bulk), StatusCode::kInvalidArgument, "data bytes");
  for (uint32_t kind : {0u, 2u, 99u}) {
    rpc::Message bad_kind = Append(1, 1, 0, kBlock);
    proto::OplogAppend body;
    ASSERT_TRUE(body.ParseFromString(bad_kind.body));
    body.set_kind(kind);  // A zero kind (2) must carry no data.
    bad_kind.body = body.SerializeAsString();
    ExpectRefused(Call(bad_kind), StatusCode::kInvalidArgument, "kind");
  }
  ExpectRefused(Call(Append(0, 1, 0, kBlock)), StatusCode::kInvalidArgument, "seq 0");
  vdisk::OplogRecordHeader empty{kVdisk, 1, 1, 1, 0, 0, 0, 0};
  ExpectRefused(Call(Request(kOplogAppendType, OplogAppendBody(empty))),
                StatusCode::kInvalidArgument, "length 0");
  vdisk::OplogRecordHeader huge{kVdisk, 1, 1, 2, 0, oplog::kRecordBytesMax + kBlock, 0, 0};
  ExpectRefused(Call(Request(kOplogAppendType, OplogAppendBody(huge))),
                StatusCode::kInvalidArgument, "length");
  ExpectRefused(Call(Append(1, 0, 0, kBlock)), StatusCode::kInvalidArgument, "epoch 0");

  // Egroup writes and trims: unaligned offset and length, empty, over 1 MiB, past 4 MiB,
  // egroup 0, a bulk that does not match, a trim with a bulk, epoch 0.
  AlignedBuffer block = PatternBuffer(2 * kBlock, 9);
  const auto one = block.span().first(kBlock);
  ExpectRefused(Call(Write(7, 1, 2, 512, one)), StatusCode::kInvalidArgument, "aligned");
  ExpectRefused(Call(Write(7, 1, 2, 0, block.span().first(kBlock + 512))),
                StatusCode::kInvalidArgument, "aligned");
  ExpectRefused(Call(Write(7, 1, 2, 0, {})), StatusCode::kInvalidArgument, "aligned");
  AlignedBuffer big = PatternBuffer(kDataBytesMax + kBlock, 3);
  ExpectRefused(Call(Write(7, 1, 2, 0, big.span())), StatusCode::kInvalidArgument, "1 MiB");
  ExpectRefused(Call(Write(7, 1, 2, extent_store::kEgroupMaxBytes - kBlock, block.span())),
                StatusCode::kInvalidArgument, "4 MiB");
  ExpectRefused(Call(Write(7, 1, 2, extent_store::kEgroupMaxBytes, one)),
                StatusCode::kInvalidArgument, "4 MiB");
  ExpectRefused(Call(Write(0, 1, 2, 0, one)), StatusCode::kInvalidArgument, "egroup 0");
  rpc::Message mismatched = Write(7, 1, 2, 0, one);
  mismatched.bulk.append(std::string(kBlock, 'x'));
  ExpectRefused(Call(mismatched), StatusCode::kInvalidArgument, "write of 4096 bytes");
  rpc::Message trim_with_bulk = Trim(7, 1, 2, 0, kBlock);
  trim_with_bulk.bulk = std::string(kBlock, 'x');
  ExpectRefused(Call(trim_with_bulk), StatusCode::kInvalidArgument, "bytes with");
  ExpectRefused(Call(Trim(7, 1, 2, 100, kBlock)), StatusCode::kInvalidArgument, "aligned");
  ExpectRefused(Call(Write(7, 0, 2, 0, one)), StatusCode::kInvalidArgument, "epoch 0");
  // Reads: unaligned, oversized, egroup 0. Creates: egroup 0, epoch 0. Fence: epoch 0.
  ExpectRefused(Call(Read(7, 100, kBlock)), StatusCode::kInvalidArgument, "aligned");
  ExpectRefused(Call(Read(7, 0, kDataBytesMax + kBlock)), StatusCode::kInvalidArgument, "1 MiB");
  ExpectRefused(Call(Read(0, 0, kBlock)), StatusCode::kInvalidArgument, "egroup 0");
  ExpectRefused(Call(Create(0, 1)), StatusCode::kInvalidArgument, "egroup id 0");
  ExpectRefused(Call(Create(8, 0)), StatusCode::kInvalidArgument, "epoch 0");
  ExpectRefused(Call(Fence(0)), StatusCode::kInvalidArgument, "fence");
  // Unknown egroups are NotFound.
  ExpectRefused(Call(Write(99, 1, 2, 0, one)), StatusCode::kNotFound, "egroup 99");
  ExpectRefused(Call(Read(99, 0, kBlock)), StatusCode::kNotFound, "egroup 99");

  // Nothing changed: no replica OpLog, no append, no new egroup, the egroup's bytes and version.
  const DataServiceStats end = node_.service().stats();
  EXPECT_EQ(end.replica_oplogs, 0u);
  EXPECT_EQ(end.oplog_appends, start.oplog_appends);
  EXPECT_EQ(end.egroup_writes, start.egroup_writes);
  EXPECT_GE(end.bad_requests, start.bad_requests + 30);
  EXPECT_EQ(node_.store().ListEgroups().size(), 1u);
  EXPECT_EQ(VersionOf(7), 1u);
  AlignedBuffer after(2 * kBlock);
  ASSERT_TRUE(node_.ReadReplica(7, 0, after.span()).ok());
  EXPECT_EQ(std::memcmp(after.data(), before.data(), 2 * kBlock), 0);
  // A malformed request's epoch was not taken: epoch 1 is still accepted.
  EXPECT_TRUE(Call(Fence(1)).ok());
}

TEST_F(DataServiceTest, LowerEpochIsRefusedAfterAHigherOneForEveryMutation) {
  ASSERT_TRUE(Call(Create(7, 1)).ok());
  ASSERT_TRUE(Call(Append(1, 1, 0, kBlock)).ok());
  // Epoch 2 speaks (an append); epoch 1 is refused from then on, for every mutation.
  ASSERT_TRUE(Call(Append(2, 2, kBlock, kBlock)).ok());
  ExpectRefused(Call(Append(3, 1, 0, kBlock)), StatusCode::kAborted, "stale epoch");
  AlignedBuffer block = PatternBuffer(kBlock, 5);
  ExpectRefused(Call(Write(7, 1, 1, 0, block.span())), StatusCode::kAborted, "stale epoch");
  ExpectRefused(Call(Trim(7, 1, 1, 0, kBlock)), StatusCode::kAborted, "stale epoch");
  ExpectRefused(Call(Create(8, 1)), StatusCode::kAborted, "stale epoch");
  proto::OplogTrim trim;
  trim.set_vdisk_id(kVdisk);
  trim.set_owner_epoch(1);
  trim.set_drained_seq(1);
  ExpectRefused(Call(Request(kOplogTrimType, trim)), StatusCode::kAborted, "stale epoch");
  ExpectRefused(Call(Fence(1)), StatusCode::kAborted, "stale epoch");
  // A Fence raises it; then epoch 2 is stale too, and the service's own Fence raises it again.
  ASSERT_TRUE(Call(Fence(3)).ok());
  ExpectRefused(Call(Write(7, 2, 1, 0, block.span())), StatusCode::kAborted, "stale epoch");
  ExpectRefused(Call(Fence(2)), StatusCode::kAborted, "stale epoch");
  node_.service().Fence(kVdisk, 5);
  ExpectRefused(Call(Write(7, 4, 1, 0, block.span())), StatusCode::kAborted, "stale epoch");
  EXPECT_TRUE(Call(Write(7, 5, 1, 0, block.span())).ok());
  // Epochs are per vDisk: another vDisk's epoch 1 is fine.
  EXPECT_TRUE(Call(Fence(1, kVdisk + 1)).ok());
  EXPECT_EQ(node_.service().stats().stale_epoch_refusals, 9u);
  // Nothing the stale requests carried arrived: the egroup has version 1 (the epoch-5 write)
  // and no egroup 8 exists; the log holds seqs 1 and 2 only.
  EXPECT_EQ(VersionOf(7), 1u);
  EXPECT_FALSE(node_.store().GetEgroup(8).ok());
  ASSERT_TRUE(Release().ok());
  std::unique_ptr<oplog::OpLog> log = OpenFresh();
  EXPECT_EQ(log->last_seq(), 2u);
  EXPECT_EQ(log->stats().records_replayed, 2u);
}

TEST_F(DataServiceTest, AppendedRecordsReplayWithTheOwnersSeqs) {
  // Seqs with gaps (records the owner failed never reach a peer); zero records too.
  ASSERT_TRUE(Call(Append(5, 1, 0, 8 * kBlock)).ok());
  ASSERT_TRUE(Call(Append(6, 1, 64 * kBlock, kBlock)).ok());
  vdisk::OplogRecordHeader zeros{kVdisk, 1, 9, 2, 128 * kBlock, 2 * kBlock, 0, 0};
  ASSERT_TRUE(Call(Request(kOplogAppendType, OplogAppendBody(zeros))).ok());
  EXPECT_EQ(node_.service().stats().oplog_appends, 3u);
  EXPECT_EQ(node_.service().ReplicaOplogs(), std::vector<uint64_t>{kVdisk});
  ASSERT_TRUE(Release().ok());
  EXPECT_TRUE(node_.service().ReplicaOplogs().empty());
  std::unique_ptr<oplog::OpLog> log = OpenFresh();
  EXPECT_EQ(log->stats().records_replayed, 3u);
  EXPECT_EQ(log->last_seq(), 9u);
  EXPECT_TRUE(IndexHolds(*log, 5, 0, 8 * kBlock));
  EXPECT_TRUE(IndexHolds(*log, 6, 64 * kBlock, kBlock));
  std::vector<oplog::IndexPiece> pieces = log->index().Lookup(128 * kBlock, 2 * kBlock);
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].kind, oplog::RangeKind::kZeroUnmap);
  // The taking-over node appends on after the owner's last seq.
  EXPECT_EQ(log->Append(kData, 0, kBlock, PatternBuffer(kBlock, 1).span(), [](Status) {}), 10u);
  loop_.RunUntil([&] { return log->quiescent(); });
}

TEST_F(DataServiceTest, DrainedSeqOnAnAppendAndOplogTrimFreeRecords) {
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    ASSERT_TRUE(Call(Append(seq, 1, seq * 16 * kBlock, kBlock)).ok());
  }
  // The owner drained 1..2: the next append carries it, and the peer drops them first.
  ASSERT_TRUE(Call(Append(4, 1, 4 * 16 * kBlock, kBlock, /*drained_seq=*/2)).ok());
  ASSERT_TRUE(Release().ok());
  {
    std::unique_ptr<oplog::OpLog> log = OpenFresh();
    EXPECT_EQ(log->drained_seq(), 2u);
    EXPECT_EQ(log->stats().records_replayed, 2u);
    EXPECT_FALSE(log->index().Overlaps(16 * kBlock, 2 * 16 * kBlock));
    EXPECT_TRUE(IndexHolds(*log, 3, 3 * 16 * kBlock, kBlock));
    EXPECT_TRUE(IndexHolds(*log, 4, 4 * 16 * kBlock, kBlock));
  }
  // OplogTrim alone (the owner's drain, with no append after it).
  proto::OplogTrim trim;
  trim.set_vdisk_id(kVdisk);
  trim.set_owner_epoch(1);
  trim.set_drained_seq(4);
  ASSERT_TRUE(Call(Request(kOplogTrimType, trim)).ok());
  EXPECT_EQ(node_.service().stats().oplog_trims, 1u);
  ASSERT_TRUE(Release().ok());
  std::unique_ptr<oplog::OpLog> log = OpenFresh();
  EXPECT_EQ(log->drained_seq(), 4u);
  EXPECT_EQ(log->stats().records_replayed, 0u);
  EXPECT_FALSE(log->has_undrained());
}

// A new owner (epoch 2) starts its seqs where its own log ended, at or below the seqs an older
// owner sent here: the old records were never acknowledged (the new owner drained every
// acknowledged one), so the log is discarded and the retried append starts a fresh one.
TEST_F(DataServiceTest, SeqAtOrBelowTheLogsLastResetsItForTheNextAppend) {
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    ASSERT_TRUE(Call(Append(seq, 1, seq * 16 * kBlock, kBlock)).ok());
  }
  ExpectRefused(Call(Append(2, 2, 0, kBlock)), StatusCode::kUnavailable, "reset");
  // The retry (and one right behind it, before the reset has run) land in a fresh log.
  std::optional<Result<rpc::Message>> retry;
  std::optional<Result<rpc::Message>> next;
  node_.service().Handle(Append(2, 2, 0, kBlock), [&](auto reply) { retry = std::move(reply); });
  node_.service().Handle(Append(3, 2, kBlock, kBlock),
                         [&](auto reply) { next = std::move(reply); });
  ASSERT_TRUE(loop_.RunUntil([&] { return retry.has_value() && next.has_value(); }));
  ASSERT_TRUE(retry->ok()) << retry->status().ToString();
  // The one behind may be refused (retryable) while the reset runs, but never lost.
  if (!next->ok()) {
    EXPECT_EQ(next->status().code(), StatusCode::kUnavailable) << next->status().ToString();
    ASSERT_TRUE(Call(Append(3, 2, kBlock, kBlock)).ok());
  }
  ASSERT_TRUE(Release().ok());
  std::unique_ptr<oplog::OpLog> log = OpenFresh();
  EXPECT_EQ(log->last_seq(), 3u);
  EXPECT_EQ(log->stats().records_replayed, 2u);
  EXPECT_TRUE(IndexHolds(*log, 2, 0, kBlock));
  EXPECT_TRUE(IndexHolds(*log, 3, kBlock, kBlock));
  // The old owner's records are gone.
  EXPECT_FALSE(log->index().Overlaps(16 * kBlock, 3 * 16 * kBlock));
}

TEST_F(DataServiceTest, EgroupRoundTripWithReplicaVersions) {
  Result<rpc::Message> created = Call(Create(7, 1));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(testing::ParseReply<proto::EgroupCreateReply>(created)->disk_uuid(), node_.disk_uuid());
  AlignedBuffer first = PatternBuffer(4 * kBlock, 1);
  AlignedBuffer second = PatternBuffer(kBlock, 2);
  ASSERT_TRUE(Call(Write(7, 1, 1, kBlock, first.span())).ok());
  ASSERT_TRUE(Call(Write(7, 1, 2, 2 * kBlock, second.span())).ok());
  auto read = [&](uint64_t offset, uint64_t length) {
    Result<rpc::Message> reply = Call(Read(7, offset, length));
    EXPECT_TRUE(reply.ok()) << reply.status().ToString();
    Result<proto::EgroupReadReply> parsed = testing::ParseReply<proto::EgroupReadReply>(reply);
    EXPECT_TRUE(parsed.ok());
    EXPECT_EQ(reply->bulk.size(), length);
    EXPECT_EQ(parsed->data_crc32c(), Crc32c(reply->bulk.data(), reply->bulk.size()));
    return std::make_pair(parsed->replica_version(), reply->bulk);
  };
  auto [version, bytes] = read(0, 5 * kBlock);
  EXPECT_EQ(version, 2u);
  std::string expected(5 * kBlock, '\0');
  std::memcpy(expected.data() + kBlock, first.data(), 4 * kBlock);
  std::memcpy(expected.data() + 2 * kBlock, second.data(), kBlock);
  EXPECT_EQ(bytes, expected);
  // A trim at version 3 reads as zeros.
  ASSERT_TRUE(Call(Trim(7, 1, 3, 2 * kBlock, kBlock)).ok());
  std::tie(version, bytes) = read(2 * kBlock, kBlock);
  EXPECT_EQ(version, 3u);
  EXPECT_EQ(bytes, std::string(kBlock, '\0'));
  // Creating an egroup that exists (a retried create, a replica re-copied) sets its version.
  ASSERT_TRUE(Call(Create(7, 1, 9)).ok());
  EXPECT_EQ(read(0, kBlock).first, 9u);
  EXPECT_EQ(node_.service().stats().egroup_writes, 3u);
  // Delete, and delete again (idempotent); then it is gone.
  proto::EgroupDelete remove;
  remove.set_egroup_id(7);
  ASSERT_TRUE(Call(Request(kEgroupDeleteType, remove)).ok());
  ASSERT_TRUE(Call(Request(kEgroupDeleteType, remove)).ok());
  ExpectRefused(Call(Read(7, 0, kBlock)), StatusCode::kNotFound, "egroup 7");
  EXPECT_FALSE(node_.store().GetEgroup(7).ok());
  // And may be created again (the cache of where egroups live forgot it).
  ASSERT_TRUE(Call(Create(7, 1, 1)).ok());
  EXPECT_EQ(read(0, kBlock).second, std::string(kBlock, '\0'));
}

TEST_F(DataServiceTest, CrcMismatchInTransitIsRefused) {
  ASSERT_TRUE(Call(Create(7, 1)).ok());
  AlignedBuffer good = PatternBuffer(2 * kBlock, 1);
  ASSERT_TRUE(Call(Write(7, 1, 1, 0, good.span())).ok());
  // One bit flipped on the way: the crc was computed by the sender over the good bytes.
  rpc::Message write = Write(7, 1, 2, 0, PatternBuffer(2 * kBlock, 2).span());
  write.bulk[100] ^= 0x10;
  ExpectRefused(Call(write), StatusCode::kCorruption, "crc");
  EXPECT_EQ(VersionOf(7), 1u);
  AlignedBuffer after(2 * kBlock);
  ASSERT_TRUE(node_.ReadReplica(7, 0, after.span()).ok());
  EXPECT_EQ(std::memcmp(after.data(), good.data(), 2 * kBlock), 0);
  // The same for an OpLog record: nothing is appended.
  ASSERT_TRUE(Call(Append(1, 1, 0, kBlock)).ok());
  rpc::Message append = Append(2, 1, kBlock, kBlock);
  append.bulk[7] ^= 0x01;
  Result<rpc::Message> refused = Call(append);
  ExpectRefused(refused, StatusCode::kCorruption, "crc");
  ASSERT_TRUE(Release().ok());
  std::unique_ptr<oplog::OpLog> log = OpenFresh();
  EXPECT_EQ(log->last_seq(), 1u);
  EXPECT_FALSE(log->index().Overlaps(kBlock, kBlock));
}

TEST_F(DataServiceTest, ReleaseOplogWaitsForAppendsInFlight) {
  ASSERT_TRUE(Call(Append(1, 1, kBlock, kBlock)).ok());  // The log is open.
  std::vector<Status> replies;
  for (uint64_t seq = 2; seq <= 5; ++seq) {
    node_.service().Handle(Append(seq, 1, seq * kBlock, kBlock),
                           [&](Result<rpc::Message> reply) { replies.push_back(reply.status()); });
  }
  std::optional<Status> released;
  node_.service().ReleaseOplog(kVdisk, [&](Status status) {
    EXPECT_EQ(replies.size(), 4u) << "released before the appends in flight were durable";
    released = status;
  });
  // An append arriving while the release waits is refused (retryable), not lost in the log.
  std::optional<Status> late;
  node_.service().Handle(Append(6, 1, 6 * kBlock, kBlock),
                         [&](Result<rpc::Message> reply) { late = reply.status(); });
  ASSERT_TRUE(loop_.RunUntil([&] { return released.has_value() && late.has_value(); }));
  ASSERT_TRUE(released->ok()) << released->ToString();
  for (const Status& reply : replies) EXPECT_TRUE(reply.ok()) << reply.ToString();
  EXPECT_EQ(late->code(), StatusCode::kUnavailable) << late->ToString();
  std::unique_ptr<oplog::OpLog> log = OpenFresh();
  EXPECT_EQ(log->last_seq(), 5u);
  for (uint64_t seq = 1; seq <= 5; ++seq) EXPECT_TRUE(IndexHolds(*log, seq, seq * kBlock, kBlock));
}

// A takeover may release the replica log while the first append's Open is still running.
TEST_F(DataServiceTest, ReleaseWhileTheReplicaLogOpensCompletes) {
  std::optional<Status> appended;
  node_.service().Handle(Append(1, 1, 0, kBlock),
                         [&](Result<rpc::Message> reply) { appended = reply.status(); });
  std::optional<Status> released;
  node_.service().ReleaseOplog(kVdisk, [&](Status status) { released = status; });
  ASSERT_TRUE(loop_.RunUntil([&] { return appended.has_value(); }));
  loop_.RunUntilIdle();
  ASSERT_TRUE(released.has_value()) << "ReleaseOplog never completed";
  EXPECT_TRUE(released->ok()) << released->ToString();
  // The append was either refused or is in the log: never acknowledged and then lost.
  std::unique_ptr<oplog::OpLog> log = OpenFresh();
  EXPECT_EQ(log->last_seq(), appended->ok() ? 1u : 0u) << appended->ToString();
  EXPECT_TRUE(node_.service().ReplicaOplogs().empty());
}

// A node that serves the vDisk itself does not take replica records for it.
TEST_F(DataServiceTest, OwnerRefusesReplicaRecordsOfItsOwnVdisk) {
  node_.owned().insert(kVdisk);
  ExpectRefused(Call(Append(1, 1, 0, kBlock)), StatusCode::kAborted, "served by this node");
  EXPECT_EQ(node_.service().stats().replica_oplogs, 0u);
}

}  // namespace
}  // namespace weft::replication
