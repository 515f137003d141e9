// The seeded crash loop of the vDisk path with the OpLog and the cache: concurrent writes
// (small ones to the OpLog, large bursts past the characterizer's threshold straight to the
// extent store), trims and write-zeroes, the drainer running underneath, then a power loss at a
// random instant (during an OpLog append, a drain, a watermark, a trim), recovery, and a check
// of every byte: it holds what the newest acknowledged mutation covering it wrote, or what a
// newer mutation still in flight at the crash wrote. Iterations share the node (its disks and
// metadata), so each starts from the state the previous one verified.
//
// Replay: WEFT_SEED=N (the base seed) and WEFT_ITERATIONS=N; a failure prints both.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include "base/aligned_buffer.h"
#include "vdisk/vdisk_test_util.h"

namespace weft::vdisk {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kSpaceBytes = 4 * kMiB;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::strtoull(value, nullptr, 10) : fallback;
}

uint8_t PatternByte(uint64_t mutation_id, uint64_t position) {
  return static_cast<uint8_t>(
      (mutation_id * 2654435761u + position * 40503u + (position >> 12)) % 251 + 1);
}

enum class Kind { kWrite, kTrim, kZeroes };

struct Mutation {
  uint64_t id = 0;
  Kind kind = Kind::kWrite;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool acknowledged = false;
  bool failed = false;
  std::unique_ptr<AlignedBuffer> data;

  // Whether the mutation sets this byte, and to what.
  bool Covers(uint64_t position) const {
    if (kind == Kind::kTrim) {
      // Trim frees whole blocks only.
      const uint64_t first = (offset + 4095) / 4096 * 4096;
      const uint64_t last = (offset + length) / 4096 * 4096;
      return position >= first && position < last;
    }
    return position >= offset && position < offset + length;
  }
  uint8_t ValueAt(uint64_t position) const {
    return kind == Kind::kWrite ? PatternByte(id, position) : 0;
  }
};

class CrashLoop {
 public:
  explicit CrashLoop(uint64_t seed) : seed_(seed), node_(1, 256 * kMiB, seed) {
    node_.set_oplog_and_cache(true);
  }

  void Run(uint64_t iterations) {
    ASSERT_TRUE(node_.Start().ok());
    auto container = node_.Wait<records::Container>(
        [&](auto done) { node_.manager().CreateContainer("default", 1, done); });
    ASSERT_TRUE(container.ok());
    auto created = node_.Wait<records::Vdisk>(
        [&](auto done) { node_.manager().CreateVdisk("crash", kSpaceBytes, "", done); });
    ASSERT_TRUE(created.ok());
    for (iteration_ = 0; iteration_ < iterations && !::testing::Test::HasFailure(); ++iteration_) {
      RunIteration();
    }
  }

 private:
  std::string Replay() const {
    return "\n  replay: WEFT_SEED=" + std::to_string(seed_) +
           " WEFT_ITERATIONS=" + std::to_string(iteration_ + 1) + " vdisk_crash_test";
  }

  VdiskController& Vdisk() { return *node_.manager().FindVdisk("crash"); }

  void Submit(std::mt19937_64& random) {
    auto mutation = std::make_unique<Mutation>();
    mutation->id = ++next_id_;
    const uint64_t choice = random() % 10;
    mutation->kind = choice < 7 ? Kind::kWrite : choice < 8 ? Kind::kTrim : Kind::kZeroes;
    // Most land in the first 512 KiB, so that they overlap; some are large (past the
    // characterizer's threshold, or across vBlocks).
    const bool large = random() % 8 == 0;
    uint64_t offset = random() % (random() % 3 == 0 ? kSpaceBytes : 512 * kKiB);
    uint64_t length = 1 + random() % (large ? 2 * kMiB : 24 * kKiB);
    if (random() % 2 == 0) {
      offset = offset / 4096 * 4096;
      length = (length + 4095) / 4096 * 4096;
    }
    offset = std::min(offset, kSpaceBytes - 4096);
    length = std::min(length, kSpaceBytes - offset);
    mutation->offset = offset;
    mutation->length = length;
    Mutation* raw = mutation.get();
    auto done = [this, raw](Status status) {
      --pending_;
      if (status.ok()) {
        raw->acknowledged = true;
      } else {
        raw->failed = true;
      }
    };
    ++pending_;
    VdiskController& vdisk = Vdisk();
    if (mutation->kind == Kind::kWrite) {
      mutation->data = std::make_unique<AlignedBuffer>(length);
      for (uint64_t i = 0; i < length; ++i) {
        mutation->data->data()[i] = std::byte(PatternByte(mutation->id, offset + i));
      }
      vdisk.Write(offset, mutation->data->span(), done);
    } else if (mutation->kind == Kind::kTrim) {
      vdisk.Trim(offset, length, done);
    } else {
      vdisk.WriteZeroes(offset, length, random() % 2 == 0, done);
    }
    mutations_.push_back(std::move(mutation));
  }

  void RunIteration() {
    std::mt19937_64 random(seed_ * 1000003 + iteration_);
    mutations_.clear();
    const int steps = static_cast<int>(random() % 40);
    for (int step = 0; step < steps; ++step) {
      for (uint64_t count = random() % 4; count > 0 && pending_ < 16; --count) Submit(random);
      for (uint64_t polls = random() % 30; polls > 0; --polls) node_.PollOnce();
    }
    if (random() % 10 == 0) {
      ASSERT_TRUE(node_.RunUntil([&] { return pending_ == 0; }));
      node_.Stop();
    } else {
      node_.Crash(random() % 3 == 0 ? env::CrashMode::kDropUnsynced
                                    : env::CrashMode::kTearRandomly);
      ASSERT_EQ(pending_, 0) << Replay();
    }
    const Status started = node_.Start();
    ASSERT_TRUE(started.ok()) << "recovery: " << started.ToString() << Replay();
    Verify();
  }

  void Verify() {
    AlignedBuffer contents(kSpaceBytes);
    const Status read =
        node_.WaitStatus([&](Completion done) { Vdisk().Read(0, contents.span(), done); });
    ASSERT_TRUE(read.ok()) << read.ToString() << Replay();
    if (model_.empty()) model_.assign(kSpaceBytes, 0);
    // The newest acknowledged mutation over each byte (-1: none this iteration).
    std::vector<int32_t> newest_acked(kSpaceBytes, -1);
    for (size_t index = 0; index < mutations_.size(); ++index) {
      const Mutation& mutation = *mutations_[index];
      if (!mutation.acknowledged) continue;
      for (uint64_t position = mutation.offset; position < mutation.offset + mutation.length;
           ++position) {
        if (mutation.Covers(position)) newest_acked[position] = static_cast<int32_t>(index);
      }
    }
    for (uint64_t position = 0; position < kSpaceBytes; ++position) {
      const uint8_t got = static_cast<uint8_t>(contents.data()[position]);
      const Mutation* acked =
          newest_acked[position] >= 0 ? mutations_[newest_acked[position]].get() : nullptr;
      const uint8_t expected = acked != nullptr ? acked->ValueAt(position) : model_[position];
      bool explained = got == expected;
      // Otherwise a newer mutation that was in flight at the crash may have landed here.
      for (const auto& mutation : mutations_) {
        if (explained) break;
        if (mutation->acknowledged || !mutation->Covers(position)) continue;
        if (acked != nullptr && mutation->id < acked->id) continue;
        explained = got == mutation->ValueAt(position);
      }
      if (!explained) {
        FAIL() << "byte " << position << " reads " << int(got) << "; expected " << int(expected)
               << " (newest acknowledged mutation " << (acked ? acked->id : 0) << ")" << Replay();
      }
      model_[position] = got;
    }
  }

  uint64_t seed_;
  testing::TestNode node_;
  uint64_t iteration_ = 0;
  uint64_t next_id_ = 0;
  int pending_ = 0;
  std::vector<std::unique_ptr<Mutation>> mutations_;
  std::vector<uint8_t> model_;
};

TEST(VdiskCrashTest, EveryAcknowledgedMutationSurvivesCrashesOnTheOplogPath) {
  CrashLoop loop(EnvOr("WEFT_SEED", 20261122));
  loop.Run(EnvOr("WEFT_ITERATIONS", 1000));
}

}  // namespace
}  // namespace weft::vdisk
