// The seeded crash loop: random concurrent writes, overwrites and reads, a simulated power loss
// at a random instant, recovery, and a check of every block against a model of what the
// extent store promised (extent_store.h: acknowledged writes survive, every block is old or new
// and never torn, multi-block writes are all or nothing, no checksum errors).
//
// Every write fills each of its 4 KiB blocks with (write id, egroup, block) repeated, so a block
// read back names exactly the write it came from, and a block torn between two writes (the
// device tears at 512 B) or landed in the wrong place is caught.
//
// Replica versions: three writes in four carry their write id as replica version (ids grow in
// submission order, as an owner's per-egroup counter does), the fourth carries 0. After recovery
// an egroup's version V must agree with its data: every block showing a versioned write w has
// V >= w, write V's data is there (not older data), and V covers every acknowledged versioned
// write.
//
// Replay: the binary takes --seed=N and --iterations=N (or WEFT_SEED / WEFT_ITERATIONS). The
// iterations share one device and one metadata env, so a failure at iteration K replays with
// the same seed and --iterations=K+1; each failure message prints that command line.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "extent_store/extent_store.h"
#include "extent_store/extent_store_test_util.h"

namespace weft::extent_store {
namespace {

struct CrashLoopOptions {
  uint64_t seed = 20261121;
  uint64_t iterations = 1000;
};
CrashLoopOptions crash_loop_options;

constexpr uint64_t kDeviceBytes = 64ull << 20;
constexpr uint32_t kEgroupCount = 3;
constexpr uint32_t kBlocksPerEgroup = kEgroupMaxBytes / kChecksumBlockBytes;
constexpr uint32_t kBlocksPerSlot = kExtentBytes / kChecksumBlockBytes;
constexpr uint32_t kHotBlocks = 48;  // Most writes land here, so that they overlap.
constexpr uint32_t kWritesInFlightMax = 12;
constexpr uint32_t kReadsInFlightMax = 4;
constexpr uint32_t kStepsMax = 80;
constexpr int kPollsMax = 100'000;

struct PatternUnit {
  uint64_t write_id;
  uint32_t egroup_id;
  uint32_t block_index;
};
static_assert(sizeof(PatternUnit) == 16);
static_assert(kChecksumBlockBytes % sizeof(PatternUnit) == 0);

void FillBlock(std::byte* block, uint64_t write_id, uint32_t egroup_id, uint32_t block_index) {
  const PatternUnit unit{write_id, egroup_id, block_index};
  for (uint64_t offset = 0; offset < kChecksumBlockBytes; offset += sizeof(unit)) {
    std::memcpy(block + offset, &unit, sizeof(unit));
  }
}

// The write id a block holds (0: never written), or a description of why it is neither.
struct DecodedBlock {
  uint64_t write_id = 0;
  std::string problem;
};

DecodedBlock DecodeBlock(const std::byte* block, uint32_t egroup_id, uint32_t block_index) {
  PatternUnit first;
  std::memcpy(&first, block, sizeof(first));
  if (first.write_id == 0) {
    for (uint64_t offset = 0; offset < kChecksumBlockBytes; ++offset) {
      if (block[offset] != std::byte{0}) return {0, "a mix of zeros and data"};
    }
    return {0, ""};
  }
  if (first.egroup_id != egroup_id || first.block_index != block_index) {
    return {first.write_id, "data of egroup " + std::to_string(first.egroup_id) + " block " +
                                std::to_string(first.block_index) + " landed here"};
  }
  for (uint64_t offset = sizeof(first); offset < kChecksumBlockBytes; offset += sizeof(first)) {
    if (std::memcmp(block + offset, &first, sizeof(first)) != 0) {
      return {first.write_id, "torn at byte " + std::to_string(offset)};
    }
  }
  return {first.write_id, ""};
}

enum class Outcome { kPending, kAcknowledged, kFailed };

struct WriteRecord {
  uint32_t egroup_index = 0;
  uint32_t first_block = 0;
  uint32_t block_count = 0;
  bool trim = false;             // A Trim: the blocks read as zeros once it applies.
  uint64_t replica_version = 0;  // Its write id, or 0 for an unversioned write.
  Outcome outcome = Outcome::kPending;
  AlignedBuffer data;  // Released once the write completes.

  bool Covers(uint32_t egroup, uint32_t block) const {
    return egroup == egroup_index && block >= first_block && block < first_block + block_count;
  }
};

struct ReadRecord {
  uint32_t egroup_index = 0;
  uint32_t first_block = 0;
  AlignedBuffer buffer;
  std::vector<uint64_t> floor;  // Per block: the newest acknowledged write at submission.
  uint64_t reset_write_id = 0;  // Writes older than this predate the egroup's recreation.
};

class CrashLoop {
 public:
  // With `commit_thread` the RocksDB batches run on the store's helper thread: the interleaving
  // then depends on timing, so a seed no longer replays exactly (the checks are the same).
  CrashLoop(uint64_t base_seed, bool commit_thread)
      : base_seed_(base_seed), disk_(kDeviceBytes, base_seed, "/crash_loop_metadata") {
    disk_.options().commit_thread = commit_thread;
    last_acknowledged_.assign(kEgroupCount, std::vector<uint64_t>(kBlocksPerEgroup, 0));
    last_trim_submitted_.assign(kEgroupCount, std::vector<uint64_t>(kBlocksPerEgroup, 0));
    reset_write_id_.assign(kEgroupCount, 0);
    acknowledged_version_.assign(kEgroupCount, 0);
    pending_writes_per_egroup_.assign(kEgroupCount, 0);
  }

  void Run(uint64_t iterations) {
    // A short journal ring makes the blockstore write a checkpoint every few rounds, so crashes
    // land in checkpoints and ring wrap-arounds as well as in plain journal appends.
    blockstore::FormatOptions format_options;
    format_options.journal_blocks = 8;
    ASSERT_TRUE(disk_.FormatAndOpen(format_options).ok());
    for (uint32_t index = 0; index < kEgroupCount; ++index) {
      ASSERT_TRUE(disk_.store().CreateEgroup(EgroupIdOf(index)).ok());
    }
    for (iteration_ = 0; iteration_ < iterations; ++iteration_) {
      RunIteration();
      if (::testing::Test::HasFailure()) return;
    }
  }

  uint64_t crashes() const { return crashes_; }
  uint64_t writes() const { return next_write_id_ - 1; }
  uint64_t acknowledged() const { return acknowledged_; }
  uint64_t unacknowledged_seen() const { return unacknowledged_seen_; }

 private:
  static EgroupId EgroupIdOf(uint32_t index) { return index + 1; }

  // Mixed first, so that runs with nearby base seeds do not share iterations.
  uint64_t IterationSeed() const {
    uint64_t mixed = base_seed_ + 0x9E3779B97F4A7C15ull;
    mixed = (mixed ^ (mixed >> 30)) * 0xBF58476D1CE4E5B9ull;
    mixed = (mixed ^ (mixed >> 27)) * 0x94D049BB133111EBull;
    return (mixed ^ (mixed >> 31)) + iteration_;
  }

  std::string Replay() const {
    return "\n  seed " + std::to_string(base_seed_) + ", iteration " + std::to_string(iteration_) +
           " (iteration seed " + std::to_string(IterationSeed()) +
           "); replay: extent_store_crash_test --seed=" + std::to_string(base_seed_) +
           " --iterations=" + std::to_string(iteration_ + 1);
  }

  uint32_t Uniform(uint32_t low, uint32_t high) {  // Inclusive.
    return std::uniform_int_distribution<uint32_t>(low, high)(random_);
  }
  bool OneIn(uint32_t n) { return Uniform(1, n) == 1; }

  void RunIteration();
  void SubmitWrite();
  void SubmitRead();
  void RecreateEgroup();
  void OnReadDone(ReadRecord& read, const Status& status);
  void WaitForTestOperations();
  void ScrubWhileRunning();
  void Recover(bool crashed);
  void Verify(uint64_t first_write_id_of_iteration);
  void CheckBlock(uint32_t egroup, uint32_t block, const DecodedBlock& decoded, uint64_t floor,
                  uint64_t reset_write_id, std::string_view what);
  void CheckReplicaVersion(uint32_t egroup, uint64_t version, const std::vector<uint64_t>& shown);

  const uint64_t base_seed_;
  uint64_t iteration_ = 0;
  std::mt19937_64 random_;
  testing::TestDisk disk_;
  bool crashed_ = false;
  bool process_died_ = false;  // Completions after this crash are never seen.

  std::map<uint64_t, WriteRecord> writes_;  // By write id; kept for the whole run (small).
  uint64_t next_write_id_ = 1;
  std::vector<std::vector<uint64_t>> last_acknowledged_;  // [egroup][block]; 0 = zeros.
  // [egroup][block]: the newest trim submitted over the block (acknowledged or not), so that
  // zeros are explained by a trim that may have applied.
  std::vector<std::vector<uint64_t>> last_trim_submitted_;
  std::vector<uint64_t> reset_write_id_;
  // [egroup]: the newest acknowledged versioned write since the egroup's creation (after a
  // recovery: the version the egroup came back with).
  std::vector<uint64_t> acknowledged_version_;
  std::vector<uint32_t> pending_writes_per_egroup_;
  uint32_t pending_writes_ = 0;
  uint32_t pending_reads_ = 0;

  uint64_t crashes_ = 0;
  uint64_t acknowledged_ = 0;
  uint64_t unacknowledged_seen_ = 0;  // Blocks that showed a write never acknowledged.
};

void CrashLoop::RunIteration() {
  random_.seed(IterationSeed());
  crashed_ = false;
  const uint64_t first_write_id = next_write_id_;
  const uint32_t steps = Uniform(0, kStepsMax);
  const bool clean_close = OneIn(10);
  for (uint32_t step = 0; step < steps && !::testing::Test::HasFailure(); ++step) {
    const uint32_t new_writes = Uniform(0, 3);
    for (uint32_t index = 0; index < new_writes && pending_writes_ < kWritesInFlightMax; ++index) {
      SubmitWrite();
    }
    if (pending_reads_ < kReadsInFlightMax && OneIn(3)) SubmitRead();
    if (OneIn(60)) RecreateEgroup();
    if (OneIn(200)) ScrubWhileRunning();
    disk_.store().Poll(/*wait=*/false);
  }
  if (clean_close) {
    WaitForTestOperations();
  } else {
    crashed_ = true;
    process_died_ = OneIn(2);
    ++crashes_;
    disk_.fault().Crash(OneIn(5) ? env::CrashMode::kDropUnsynced : env::CrashMode::kTearRandomly);
    WaitForTestOperations();  // Everything in flight fails now.
  }
  if (::testing::Test::HasFailure()) return;
  Recover(crashed_);
  if (::testing::Test::HasFailure()) return;
  Verify(first_write_id);
}

void CrashLoop::SubmitWrite() {
  WriteRecord write;
  write.egroup_index = Uniform(0, kEgroupCount - 1);
  write.block_count = OneIn(10) ? Uniform(9, 64) : Uniform(1, 8);
  const uint32_t placement = Uniform(0, 9);
  if (placement < 6) {  // Hot: overlapping writes.
    write.first_block = Uniform(0, kHotBlocks - 1);
  } else if (placement < 8) {  // Across an extent slot boundary.
    const uint32_t boundary = kBlocksPerSlot * Uniform(1, 3);
    write.first_block = boundary - Uniform(1, std::min(write.block_count, 8u));
  } else {
    write.first_block = Uniform(0, kBlocksPerEgroup - write.block_count);
  }
  write.first_block = std::min(write.first_block, kBlocksPerEgroup - write.block_count);
  const uint64_t write_id = next_write_id_++;
  // From the id, not a random draw: the seeds' operation sequences stay what they were.
  write.replica_version = write_id % 4 == 0 ? 0 : write_id;
  write.trim = OneIn(6);
  if (write.trim) {
    for (uint32_t block = write.first_block; block < write.first_block + write.block_count;
         ++block) {
      last_trim_submitted_[write.egroup_index][block] = write_id;
    }
  } else {
    write.data = AlignedBuffer(uint64_t{write.block_count} * kChecksumBlockBytes);
    for (uint32_t index = 0; index < write.block_count; ++index) {
      FillBlock(write.data.data() + uint64_t{index} * kChecksumBlockBytes, write_id,
                EgroupIdOf(write.egroup_index), write.first_block + index);
    }
  }
  const std::span<const std::byte> data = write.data.span();
  const uint32_t egroup_index = write.egroup_index;
  const uint64_t offset_bytes = uint64_t{write.first_block} * kChecksumBlockBytes;
  const uint64_t length_bytes = uint64_t{write.block_count} * kChecksumBlockBytes;
  const bool trim = write.trim;
  const uint64_t replica_version = write.replica_version;
  writes_.emplace(write_id, std::move(write));
  ++pending_writes_;
  ++pending_writes_per_egroup_[egroup_index];
  auto done = [this, write_id](Status status) {
    WriteRecord& done = writes_.at(write_id);
    --pending_writes_;
    --pending_writes_per_egroup_[done.egroup_index];
    done.data = AlignedBuffer();
    // A process that died at the crash never delivers completions: in such iterations an
    // OK that arrives after the crash does not count, so commits whose acknowledgement was
    // lost show up as unacknowledged writes that must still be all-or-nothing.
    if (status.ok() && crashed_ && process_died_) {
      done.outcome = Outcome::kFailed;
      return;
    }
    if (status.ok()) {
      done.outcome = Outcome::kAcknowledged;
      ++acknowledged_;
      for (uint32_t block = done.first_block; block < done.first_block + done.block_count;
           ++block) {
        uint64_t& last = last_acknowledged_[done.egroup_index][block];
        last = std::max(last, write_id);
      }
      uint64_t& version = acknowledged_version_[done.egroup_index];
      version = std::max(version, done.replica_version);
      return;
    }
    done.outcome = Outcome::kFailed;
    // Without a crash nothing may fail: there is space, and no fault is injected.
    if (!crashed_ || status.IsCorruption()) {
      ADD_FAILURE() << "write " << write_id << " failed: " << status.ToString() << Replay();
    }
  };
  if (trim) {
    disk_.store().Trim(EgroupIdOf(egroup_index), offset_bytes, length_bytes, std::move(done),
                       replica_version);
  } else {
    disk_.store().Write(EgroupIdOf(egroup_index), offset_bytes, data, std::move(done),
                        replica_version);
  }
}

void CrashLoop::SubmitRead() {
  auto read = std::make_shared<ReadRecord>();
  read->egroup_index = Uniform(0, kEgroupCount - 1);
  const uint32_t block_count = Uniform(1, 16);
  read->first_block =
      OneIn(2) ? Uniform(0, kHotBlocks - 1) : Uniform(0, kBlocksPerEgroup - block_count);
  read->first_block = std::min(read->first_block, kBlocksPerEgroup - block_count);
  read->buffer = AlignedBuffer(uint64_t{block_count} * kChecksumBlockBytes);
  for (uint32_t index = 0; index < block_count; ++index) {
    read->floor.push_back(last_acknowledged_[read->egroup_index][read->first_block + index]);
  }
  read->reset_write_id = reset_write_id_[read->egroup_index];
  ++pending_reads_;
  disk_.store().Read(EgroupIdOf(read->egroup_index),
                     uint64_t{read->first_block} * kChecksumBlockBytes, read->buffer.span(),
                     [this, read](Status status) {
                       --pending_reads_;
                       OnReadDone(*read, status);
                     });
}

void CrashLoop::OnReadDone(ReadRecord& read, const Status& status) {
  if (!status.ok()) {
    // Only a crashed device may fail a read, and never with a checksum error.
    if (!crashed_ || status.IsCorruption()) {
      ADD_FAILURE() << "read failed: " << status.ToString() << Replay();
    }
    return;
  }
  for (uint32_t index = 0; index < read.floor.size(); ++index) {
    const uint32_t block = read.first_block + index;
    const DecodedBlock decoded =
        DecodeBlock(read.buffer.data() + uint64_t{index} * kChecksumBlockBytes,
                    EgroupIdOf(read.egroup_index), block);
    CheckBlock(read.egroup_index, block, decoded, read.floor[index], read.reset_write_id,
               "concurrent read");
  }
}

void CrashLoop::RecreateEgroup() {
  // Only without writes in flight on it (the store answers Busy otherwise).
  const uint32_t egroup_index = Uniform(0, kEgroupCount - 1);
  if (pending_writes_per_egroup_[egroup_index] > 0) return;
  const Status deleted = disk_.store().DeleteEgroup(EgroupIdOf(egroup_index));
  const Status created = disk_.store().CreateEgroup(EgroupIdOf(egroup_index));
  if (!deleted.ok() || !created.ok()) {
    ADD_FAILURE() << "recreating egroup: " << deleted.ToString() << ", " << created.ToString()
                  << Replay();
    return;
  }
  std::fill(last_acknowledged_[egroup_index].begin(), last_acknowledged_[egroup_index].end(), 0);
  reset_write_id_[egroup_index] = next_write_id_;
  acknowledged_version_[egroup_index] = 0;
}

void CrashLoop::ScrubWhileRunning() {
  // Before the crash nothing is damaged, and writes in flight must not confuse the scrub.
  const ScrubReport report = disk_.store().Scrub();
  if (!report.bad_blocks.empty() || !report.metadata_status.ok()) {
    ADD_FAILURE() << "scrub while running: " << report.bad_blocks.size() << " bad blocks"
                  << (report.bad_blocks.empty() ? ""
                                                : " (first: " + report.bad_blocks[0].reason + ")")
                  << ", metadata " << report.metadata_status.ToString() << Replay();
  }
}

void CrashLoop::WaitForTestOperations() {
  for (int polls = 0; pending_writes_ > 0 || pending_reads_ > 0; ++polls) {
    if (polls >= kPollsMax) {
      ADD_FAILURE() << pending_writes_ << " writes and " << pending_reads_
                    << " reads never completed" << Replay();
      return;
    }
    disk_.store().Poll(/*wait=*/true);
  }
}

void CrashLoop::Recover(bool crashed) {
  if (crashed) {
    disk_.store_pointer().reset();  // Drains: the store's own I/O fails too.
    disk_.blockstore_pointer().reset();
    disk_.fault().Revive();
  } else {
    const Status closed = disk_.Close();
    if (!closed.ok()) {
      ADD_FAILURE() << "clean close: " << closed.ToString() << Replay();
      return;
    }
  }
  // Vary the group size between runs of the store.
  const uint32_t group_sizes[] = {1, 2, 5, 128};
  disk_.options().max_group_commit_writes = group_sizes[Uniform(0, 3)];
  Status opened = disk_.OpenBlockstore();
  if (opened.ok()) opened = disk_.OpenStore();
  if (!opened.ok()) {
    ADD_FAILURE() << "reopen after " << (crashed ? "crash" : "clean close") << ": "
                  << opened.ToString() << Replay();
    return;
  }
  if (!crashed && disk_.store().stats().orphan_blocks_reclaimed != 0) {
    ADD_FAILURE() << "a clean close leaked " << disk_.store().stats().orphan_blocks_reclaimed
                  << " blocks" << Replay();
  }
}

void CrashLoop::CheckBlock(uint32_t egroup, uint32_t block, const DecodedBlock& decoded,
                           uint64_t floor, uint64_t reset_write_id, std::string_view what) {
  const auto fail = [&](std::string_view why) {
    ADD_FAILURE() << what << ": egroup " << EgroupIdOf(egroup) << " block " << block << " holds "
                  << (decoded.write_id == 0 ? std::string("zeros")
                                            : "write " + std::to_string(decoded.write_id))
                  << ", newest acknowledged write " << floor << ": " << why << Replay();
  };
  if (!decoded.problem.empty()) return fail(decoded.problem);
  if (decoded.write_id == 0) {
    // Zeros: never written, the newest acknowledged change was a trim, or a newer trim (maybe
    // unacknowledged) applied.
    const bool trimmed =
        (floor != 0 && writes_.at(floor).trim) || last_trim_submitted_[egroup][block] > floor;
    if (floor != 0 && !trimmed) fail("an acknowledged write was lost");
    return;
  }
  auto write = writes_.find(decoded.write_id);
  if (write == writes_.end()) return fail("no such write was submitted");
  if (!write->second.Covers(egroup, block)) return fail("that write did not cover this block");
  if (write->second.trim) return fail("a trim's id holds data");
  if (decoded.write_id < reset_write_id) return fail("data from before the egroup was deleted");
  if (decoded.write_id < floor) return fail("older than the newest acknowledged write");
}

void CrashLoop::CheckReplicaVersion(uint32_t egroup, uint64_t version,
                                    const std::vector<uint64_t>& shown) {
  const auto fail = [&](const std::string& why) {
    ADD_FAILURE() << "egroup " << EgroupIdOf(egroup) << " came back with replica version "
                  << version << ": " << why << Replay();
  };
  if (version < acknowledged_version_[egroup]) {
    return fail("acknowledged versioned write " + std::to_string(acknowledged_version_[egroup]) +
                " is not counted");
  }
  // Data newer than the version: the version was committed apart from the data.
  for (uint32_t block = 0; block < kBlocksPerEgroup; ++block) {
    if (shown[block] == 0 || writes_.at(shown[block]).replica_version == 0) continue;
    if (shown[block] > version) {
      return fail("block " + std::to_string(block) + " holds versioned write " +
                  std::to_string(shown[block]));
    }
  }
  if (version == 0) return;
  // The version names a write of this egroup whose data (or, for a trim, zeros) is there, or
  // was replaced by a later write or trim: never by older data.
  auto write = writes_.find(version);
  if (write == writes_.end() || write->second.replica_version != version ||
      write->second.egroup_index != egroup || version < reset_write_id_[egroup]) {
    return fail("no versioned write of this egroup has that number");
  }
  const WriteRecord& record = write->second;
  const std::vector<uint64_t>& trims = last_trim_submitted_[egroup];
  for (uint32_t block = record.first_block; block < record.first_block + record.block_count;
       ++block) {
    const bool zero_explained = record.trim || trims[block] > version;
    if (shown[block] >= version || (shown[block] == 0 && zero_explained)) continue;
    return fail(
        "its block " + std::to_string(block) + " holds " +
        (shown[block] == 0 ? std::string("zeros") : "write " + std::to_string(shown[block])));
  }
}

void CrashLoop::Verify(uint64_t first_write_id_of_iteration) {
  ExtentStore& store = disk_.store();
  std::vector<std::vector<uint64_t>> observed(kEgroupCount,
                                              std::vector<uint64_t>(kBlocksPerEgroup, 0));
  uint64_t written_blocks = 0;
  const std::vector<EgroupInfo> egroups = store.ListEgroups();
  if (egroups.size() != kEgroupCount) {
    ADD_FAILURE() << egroups.size() << " egroups after recovery" << Replay();
    return;
  }
  AlignedBuffer buffer(kMaxIoBytes);
  for (uint32_t egroup = 0; egroup < kEgroupCount; ++egroup) {
    uint64_t egroup_written_blocks = 0;
    for (uint32_t slot = 0; slot < kBlocksPerEgroup / kBlocksPerSlot; ++slot) {
      const Status status =
          testing::ReadSync(store, EgroupIdOf(egroup), slot * kExtentBytes, buffer.span());
      if (!status.ok()) {
        ADD_FAILURE() << "read after recovery: " << status.ToString() << Replay();
        return;
      }
      for (uint32_t index = 0; index < kBlocksPerSlot; ++index) {
        const uint32_t block = slot * kBlocksPerSlot + index;
        const DecodedBlock decoded = DecodeBlock(
            buffer.data() + uint64_t{index} * kChecksumBlockBytes, EgroupIdOf(egroup), block);
        CheckBlock(egroup, block, decoded, last_acknowledged_[egroup][block],
                   reset_write_id_[egroup], "after recovery");
        observed[egroup][block] = decoded.write_id;
        if (decoded.write_id != 0) ++egroup_written_blocks;
        if (decoded.write_id != 0 && decoded.write_id != last_acknowledged_[egroup][block]) {
          ++unacknowledged_seen_;
        }
      }
    }
    Result<uint64_t> version = store.ReplicaVersion(EgroupIdOf(egroup));
    if (!version.ok() || *version != egroups[egroup].replica_version) {
      ADD_FAILURE() << "egroup " << EgroupIdOf(egroup) << ": ReplicaVersion "
                    << (version.ok() ? std::to_string(*version) : version.status().ToString())
                    << ", ListEgroups " << egroups[egroup].replica_version << Replay();
      return;
    }
    CheckReplicaVersion(egroup, *version, observed[egroup]);
    acknowledged_version_[egroup] = *version;  // What came back is the floor from now on.
    if (egroups[egroup].written_bytes != egroup_written_blocks * kChecksumBlockBytes) {
      ADD_FAILURE() << "egroup " << EgroupIdOf(egroup) << " reports "
                    << egroups[egroup].written_bytes << " written bytes, " << egroup_written_blocks
                    << " blocks hold data" << Replay();
    }
    written_blocks += egroup_written_blocks;
  }
  // A multi-block write is all or nothing: if one block shows it, every block shows it or a
  // later write.
  for (auto write = writes_.lower_bound(first_write_id_of_iteration); write != writes_.end();
       ++write) {
    const WriteRecord& record = write->second;
    if (record.trim) continue;  // Zeros cannot be told apart by trim.
    const std::vector<uint64_t>& shown = observed[record.egroup_index];
    const std::vector<uint64_t>& trims = last_trim_submitted_[record.egroup_index];
    bool any = false;
    bool all = true;
    for (uint32_t block = record.first_block; block < record.first_block + record.block_count;
         ++block) {
      any = any || shown[block] == write->first;
      // A later trim may have zeroed part of it.
      all = all &&
            (shown[block] >= write->first || (shown[block] == 0 && trims[block] > write->first));
    }
    if (any && !all) {
      ADD_FAILURE() << "write " << write->first << " (egroup " << EgroupIdOf(record.egroup_index)
                    << " blocks " << record.first_block << "+" << record.block_count
                    << ") survived in part" << Replay();
    }
  }
  last_acknowledged_ = observed;

  const ScrubReport scrub = store.Scrub();
  if (!scrub.bad_blocks.empty() || !scrub.metadata_status.ok() ||
      scrub.blocks_checked != written_blocks) {
    ADD_FAILURE() << "scrub: " << scrub.bad_blocks.size() << " bad blocks"
                  << (scrub.bad_blocks.empty() ? ""
                                               : " (first: " + scrub.bad_blocks[0].reason + ")")
                  << ", metadata " << scrub.metadata_status.ToString() << ", "
                  << scrub.blocks_checked << " blocks checked of " << written_blocks << Replay();
  }
  const ExtentStoreStats stats = store.stats();
  const blockstore::BlockstoreStats& blocks = stats.blockstore;
  if (stats.checksum_errors != 0 || blocks.client_blocks != written_blocks ||
      blocks.quarantined_blocks != 0 ||
      blocks.free_blocks + blocks.client_blocks + blocks.file_blocks != blocks.data_blocks) {
    ADD_FAILURE() << "accounting: " << stats.checksum_errors << " checksum errors, "
                  << blocks.client_blocks << " client blocks for " << written_blocks << " written, "
                  << blocks.free_blocks << " free, " << blocks.quarantined_blocks
                  << " quarantined, " << blocks.file_blocks << " file blocks, "
                  << blocks.data_blocks << " data blocks" << Replay();
  }
}

void RunCrashLoop(uint64_t seed, uint64_t iterations, bool commit_thread) {
  const auto start = std::chrono::steady_clock::now();
  CrashLoop loop(seed, commit_thread);
  loop.Run(iterations);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "crash loop%s: seed %llu, %llu iterations, %llu crashes, %llu writes (%llu "
      "acknowledged), %llu blocks showed unacknowledged writes, %.1f s\n",
      commit_thread ? " (commit thread)" : "", static_cast<unsigned long long>(seed),
      static_cast<unsigned long long>(iterations), static_cast<unsigned long long>(loop.crashes()),
      static_cast<unsigned long long>(loop.writes()),
      static_cast<unsigned long long>(loop.acknowledged()),
      static_cast<unsigned long long>(loop.unacknowledged_seen()), seconds);
  EXPECT_GT(loop.crashes(), 0u);
  EXPECT_GT(loop.acknowledged(), 0u);
}

// Deterministic: every commit on the owner thread, so --seed replays a failure exactly.
TEST(ExtentStoreCrashTest, SeededCrashLoop) {
  RunCrashLoop(crash_loop_options.seed, crash_loop_options.iterations, /*commit_thread=*/false);
}

// The production configuration, with RocksDB batches on the commit thread; a fifth of the
// iterations (timing decides interleavings, so the seed is a starting point, not a replay).
TEST(ExtentStoreCrashTest, CrashLoopWithCommitThread) {
  RunCrashLoop(crash_loop_options.seed + 1,
               std::max<uint64_t>(1, crash_loop_options.iterations / 5),
               /*commit_thread=*/true);
}

bool ParseNumber(std::string_view text, uint64_t& value) {
  if (text.empty()) return false;
  char* end = nullptr;
  const std::string copy(text);
  value = std::strtoull(copy.c_str(), &end, 0);
  return end != nullptr && *end == '\0';
}

}  // namespace
}  // namespace weft::extent_store

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);  // Removes the --gtest_* flags.
  auto& options = weft::extent_store::crash_loop_options;
  if (const char* seed = std::getenv("WEFT_SEED")) {
    if (!weft::extent_store::ParseNumber(seed, options.seed)) {
      std::fprintf(stderr, "bad WEFT_SEED: %s\n", seed);
      return 2;
    }
  }
  if (const char* iterations = std::getenv("WEFT_ITERATIONS")) {
    if (!weft::extent_store::ParseNumber(iterations, options.iterations)) {
      std::fprintf(stderr, "bad WEFT_ITERATIONS: %s\n", iterations);
      return 2;
    }
  }
  for (int index = 1; index < argc; ++index) {
    const std::string_view argument = argv[index];
    bool parsed = false;
    if (argument.starts_with("--seed=")) {
      parsed = weft::extent_store::ParseNumber(argument.substr(7), options.seed);
    } else if (argument.starts_with("--iterations=")) {
      parsed = weft::extent_store::ParseNumber(argument.substr(13), options.iterations);
    }
    if (!parsed) {
      std::fprintf(stderr, "usage: %s [--seed=N] [--iterations=N] [gtest flags]\n", argv[0]);
      return 2;
    }
  }
  std::printf("extent_store_crash_test: --seed=%llu --iterations=%llu\n",
              static_cast<unsigned long long>(options.seed),
              static_cast<unsigned long long>(options.iterations));
  return RUN_ALL_TESTS();
}
