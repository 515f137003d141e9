// The data path model's pieces (the OpLog copy, the replica rules, the metadata rows, sessions),
// its register checker, and the world's determinism.
#include "sim/datapath/data_model.h"

#include <gtest/gtest.h>

#include "sim/datapath/data_world.h"
#include "sim/datapath/register_checker.h"

namespace weft::sim::datapath {
namespace {

TEST(OplogStoreTest, CrashKeepsAPrefixOfTheUnsyncedTailAndRecoveryDropsTornRecords) {
  // Over many seeds: the synced records always survive; what survives of the unsynced tail is a
  // prefix, and a torn record never survives recovery.
  uint64_t torn_seen = 0;
  for (uint64_t seed = 1; seed <= 200; seed++) {
    SimRandom random(seed);
    OplogStore oplog;
    for (uint64_t seq = 1; seq <= 6; seq++) oplog.Append(MakeRecord(1, seq, 0, 100 + seq));
    oplog.Synced(1, 1);
    oplog.Synced(1, 2);
    ASSERT_EQ(oplog.unsynced_count(), 4u);
    oplog.Crash(random);
    torn_seen += oplog.Recover() > 0 ? 1 : 0;
    const auto& durable = oplog.durable();
    ASSERT_GE(durable.size(), 2u);
    for (size_t i = 0; i < durable.size(); i++) {
      EXPECT_EQ(durable[i].seq, i + 1);
      EXPECT_EQ(durable[i].value, 101 + i);
      EXPECT_EQ(RecordCrc(durable[i]), durable[i].crc);
    }
  }
  EXPECT_GT(torn_seen, 0u);
}

TEST(OplogStoreTest, SyncedOutOfOrderIsIgnoredAndTrimRemovesDrainedRecords) {
  OplogStore oplog;
  oplog.Append(MakeRecord(2, 5, 1, 10));
  oplog.Append(MakeRecord(2, 6, 1, 11));
  oplog.Synced(2, 6);  // Not the oldest: appends complete in order.
  EXPECT_TRUE(oplog.durable().empty());
  oplog.Synced(2, 5);
  oplog.Synced(2, 6);
  ASSERT_EQ(oplog.durable().size(), 2u);
  oplog.Trim(1, 100);  // Another epoch: untouched.
  EXPECT_EQ(oplog.durable().size(), 2u);
  oplog.Trim(2, 5);
  ASSERT_EQ(oplog.durable().size(), 1u);
  EXPECT_EQ(oplog.durable()[0].seq, 6u);
}

TEST(OplogStoreTest, ReplayTakesOneEpochFromTheStartSeqInOrder) {
  OplogStore oplog;
  for (const OplogRecord& record : {MakeRecord(3, 9, 0, 1), MakeRecord(2, 4, 0, 2),
                                    MakeRecord(3, 7, 0, 3), MakeRecord(3, 2, 0, 4)}) {
    oplog.Append(record);
    oplog.Synced(record.epoch, record.seq);
  }
  const std::vector<OplogRecord> replay = oplog.Replay(3, 5);
  ASSERT_EQ(replay.size(), 2u);
  EXPECT_EQ(replay[0].seq, 7u);
  EXPECT_EQ(replay[1].seq, 9u);
}

TEST(NodeStoreTest, EpochFenceRefusesOlderOwnersAtReceiptAndAtCommit) {
  NodeStore store;
  store.egroups[0] = {};
  EXPECT_EQ(store.ObserveEpoch(3), ReplicaAnswer::kOk);
  EXPECT_EQ(store.ObserveEpoch(2), ReplicaAnswer::kStaleEpoch);
  EXPECT_EQ(store.CommitWrite(2, 0, 1, 0, 7, MakeStamp(2, 1)), ReplicaAnswer::kStaleEpoch);
  EXPECT_EQ(store.egroups[0].version, 0u);
  EXPECT_EQ(store.CommitWrite(3, 0, 1, 0, 7, MakeStamp(3, 1)), ReplicaAnswer::kOk);
  EXPECT_EQ(store.egroups[0].values[0], 7u);
}

TEST(NodeStoreTest, WriteVersionsAreContiguousAndRetriesAreIdempotent) {
  NodeStore store;
  store.egroups[1] = {};
  EXPECT_EQ(store.CommitWrite(1, 1, 1, 2, 50, MakeStamp(1, 1)), ReplicaAnswer::kOk);
  EXPECT_EQ(store.CommitWrite(1, 1, 3, 2, 52, MakeStamp(1, 3)), ReplicaAnswer::kGap);
  EXPECT_EQ(store.CommitWrite(1, 1, 1, 2, 99, MakeStamp(1, 1)), ReplicaAnswer::kOk);
  EXPECT_EQ(store.egroups[1].values[2], 50u);  // Already applied: unchanged.
  EXPECT_EQ(store.CommitWrite(1, 9, 1, 0, 1, MakeStamp(1, 4)), ReplicaAnswer::kMissing);
}

TEST(NodeStoreTest, AnOlderStampAdvancesTheVersionButLeavesTheBlock) {
  // A successor replays a record that a later direct write superseded.
  NodeStore store;
  store.egroups[0] = {};
  ASSERT_EQ(store.CommitWrite(1, 0, 1, 3, 20, MakeStamp(1, 8)), ReplicaAnswer::kOk);
  ASSERT_EQ(store.CommitWrite(2, 0, 2, 3, 10, MakeStamp(1, 5)), ReplicaAnswer::kOk);
  EXPECT_EQ(store.egroups[0].version, 2u);
  EXPECT_EQ(store.egroups[0].values[3], 20u);
  ASSERT_EQ(store.CommitWrite(2, 0, 3, 3, 30, MakeStamp(2, 1)), ReplicaAnswer::kOk);
  EXPECT_EQ(store.egroups[0].values[3], 30u);
}

TEST(NodeStoreTest, InstallRefusesALateOlderCopyOfTheSameEpoch) {
  NodeStore store;
  EgroupReplica newer{.version = 5};
  EgroupReplica older{.version = 3};
  ASSERT_EQ(store.CommitInstall(4, 0, newer), ReplicaAnswer::kOk);
  EXPECT_EQ(store.CommitInstall(4, 0, older), ReplicaAnswer::kVersionMismatch);
  EXPECT_EQ(store.egroups[0].version, 5u);
  // A newer owner's copy replaces whatever an older one left.
  EXPECT_EQ(store.CommitInstall(5, 0, older), ReplicaAnswer::kOk);
  EXPECT_EQ(store.egroups[0].version, 3u);
}

TEST(NodeStoreTest, RepairOnlyAtTheSameVersion) {
  NodeStore store;
  store.egroups[0] = EgroupReplica{.version = 4};
  store.egroups[0].rotten[1] = true;
  EXPECT_EQ(store.CommitRepair(1, 0, 3, 1, 9), ReplicaAnswer::kVersionMismatch);
  EXPECT_TRUE(store.egroups[0].rotten[1]);
  EXPECT_EQ(store.CommitRepair(1, 0, 4, 1, 9), ReplicaAnswer::kOk);
  EXPECT_FALSE(store.egroups[0].rotten[1]);
  EXPECT_EQ(store.egroups[0].values[1], 9u);
}

TEST(MetadataServiceTest, CompareAndSetOnTheRowVersion) {
  MetadataService metadata(VdiskRow{.owner = 0, .epoch = 1, .oplog_peers = {1}},
                           {EgroupRow{.replicas = {0, 1}}});
  const uint64_t version = metadata.vdisk_version();
  VdiskRow next = metadata.vdisk();
  next.owner = 1;
  next.epoch = 2;
  EXPECT_TRUE(metadata.CasVdisk(version, next));
  EXPECT_FALSE(metadata.CasVdisk(version, VdiskRow{.owner = 2, .epoch = 2}));
  EXPECT_EQ(metadata.vdisk().owner, 1u);
  EXPECT_FALSE(metadata.CasEgroup(0, 7, EgroupRow{.replicas = {2}}));
  EXPECT_TRUE(metadata.CasEgroup(0, metadata.egroup_version(0), EgroupRow{.replicas = {2}}));
  EXPECT_EQ(metadata.egroup(0).replicas, std::vector<NodeId>{2});
}

TEST(MembershipTest, SessionsExpireAndARestartOpensANewOne) {
  Membership membership(150);
  const uint64_t first = membership.Heartbeat(0, 1, 0);
  EXPECT_EQ(membership.Heartbeat(0, 1, 100), first);
  EXPECT_EQ(membership.Expire(250), 0u);
  EXPECT_TRUE(membership.Live(0));
  EXPECT_EQ(membership.Expire(251), 1u);
  EXPECT_FALSE(membership.Live(0));
  const uint64_t second = membership.Heartbeat(0, 1, 300);
  EXPECT_NE(second, first);
  EXPECT_NE(membership.Heartbeat(0, 2, 301), second);  // A new process.
  EXPECT_EQ(membership.LiveMask(), 1u);
}

TEST(MembershipTest, ANodeFencesItselfBeforeItsSessionCanExpire) {
  // For any heartbeat sent at s, renewed at r >= s and answered: the node is fenced from
  // s + timeout / 3 on, the service expires the session after r + timeout.
  constexpr uint64_t kTimeout = 150;
  for (uint64_t send = 0; send < 50; send += 7) {
    for (uint64_t transit = 0; transit < 400; transit += 13) {
      Membership membership(kTimeout);
      membership.Heartbeat(3, 1, send + transit);
      SessionView view{.answered_send_tick = send, .has_session = true};
      for (uint64_t now = send; now < send + transit + 2 * kTimeout; now++) {
        if (membership.Expire(now) > 0 || !membership.Live(3)) {
          EXPECT_TRUE(view.Fenced(now, kTimeout)) << "send " << send << " now " << now;
        }
      }
    }
  }
  EXPECT_TRUE(SessionView{}.Fenced(0, kTimeout));
}

BlockOperation Write(uint64_t id, uint32_t block, uint64_t value, uint64_t invoke,
                     uint64_t response) {
  return BlockOperation{.id = id,
                        .is_write = true,
                        .block = block,
                        .value = value,
                        .invoke_time = invoke,
                        .response_time = response};
}

BlockOperation Read(uint64_t id, uint32_t block, uint64_t value, uint64_t invoke,
                    uint64_t response) {
  return BlockOperation{
      .id = id, .block = block, .value = value, .invoke_time = invoke, .response_time = response};
}

TEST(RegisterCheckerTest, AcceptsLinearizableHistories) {
  EXPECT_TRUE(CheckRegisters({Read(1, 0, 0, 1, 2), Write(2, 0, 5, 3, 4), Read(3, 0, 5, 5, 6)}).ok);
  // Concurrent write and reads may see either value, in a consistent order.
  EXPECT_TRUE(CheckRegisters({Write(1, 0, 5, 1, 10), Read(2, 0, 0, 2, 3), Read(3, 0, 5, 4, 5)}).ok);
  // An unknown-outcome write may take effect late, or never.
  EXPECT_TRUE(
      CheckRegisters({Write(1, 2, 7, 1, kNoResponse), Read(2, 2, 0, 5, 6), Read(3, 2, 7, 8, 9)})
          .ok);
  EXPECT_TRUE(CheckRegisters({Write(1, 2, 7, 1, kNoResponse), Read(2, 2, 0, 5, 6)}).ok);
}

TEST(RegisterCheckerTest, CatchesStaleReadsLostWritesAndPhantoms) {
  // A stale read after an acknowledged write.
  RegisterCheckResult stale =
      CheckRegisters({Write(1, 0, 5, 1, 2), Write(2, 0, 6, 3, 4), Read(3, 0, 5, 5, 6)});
  EXPECT_FALSE(stale.ok);
  EXPECT_EQ(stale.block, 0u);
  EXPECT_NE(stale.explanation.find("op 3"), std::string::npos);
  // A value seen, then the older one again (an unknown write cannot apply twice).
  EXPECT_FALSE(CheckRegisters({Write(1, 1, 5, 1, 2), Write(2, 1, 6, 3, kNoResponse),
                               Read(3, 1, 6, 4, 5), Read(4, 1, 5, 6, 7)})
                   .ok);
  // A value nobody wrote.
  EXPECT_FALSE(CheckRegisters({Read(1, 3, 42, 1, 2)}).ok);
  // Blocks are independent: only block 4 fails.
  RegisterCheckResult mixed = CheckRegisters(
      {Write(1, 2, 5, 1, 2), Read(2, 2, 5, 3, 4), Write(3, 4, 8, 1, 2), Read(4, 4, 0, 3, 4)});
  EXPECT_FALSE(mixed.ok);
  EXPECT_EQ(mixed.block, 4u);
}

TEST(DataWorldTest, ASeedReplaysExactly) {
  DataSimOptions options{.seed = 42, .nodes = 3, .rf = 2};
  const DataSimReport first = RunDataSimulation(options);
  const DataSimReport second = RunDataSimulation(options);
  EXPECT_TRUE(first.ok) << first.failure;
  EXPECT_EQ(first.messages, second.messages);
  EXPECT_EQ(first.ticks, second.ticks);
  EXPECT_EQ(first.writes_ok, second.writes_ok);
  EXPECT_EQ(first.operations_checked, second.operations_checked);
  options.seed = 43;
  EXPECT_NE(RunDataSimulation(options).messages, first.messages);
}

TEST(DataWorldTest, SeedsPassWithAndWithoutFaults) {
  for (uint64_t seed = 1; seed <= 20; seed++) {
    for (const char* faults : {"none", "all"}) {
      DataSimOptions options{.seed = seed, .nodes = 5, .rf = 3};
      options.faults = DataFaultProfile(faults);
      const DataSimReport report = RunDataSimulation(options);
      EXPECT_TRUE(report.ok) << "seed " << seed << " faults " << faults << ": " << report.failure;
      EXPECT_GT(report.writes_ok, 0u);
      if (std::string(faults) == "none") {
        EXPECT_EQ(report.writes_unknown, 0u);
      }
    }
  }
}

}  // namespace
}  // namespace weft::sim::datapath
