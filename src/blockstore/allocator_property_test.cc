// Property tests of the block allocator (rapidcheck): for any sequence of allocations, frees,
// persists and reopens, no block is handed out twice, the free count is exact, and what was
// persisted is what a reopen finds.
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <map>
#include <set>

#include "blockstore/blockstore.h"
#include "blockstore/blockstore_test_util.h"
#include "env/memory_device.h"

namespace weft::blockstore {
namespace {

enum class Step { kAllocate, kAllocateAny, kFree, kPersist, kReopen };

struct Model {
  std::map<uint64_t, BlockRun> live;  // first block -> run, as the test believes.
  std::set<uint64_t> durable_live;    // First blocks of runs durable at the last persist.
  std::map<uint64_t, BlockRun> durable_runs;
};

// Checks the blockstore against the model: every live block allocated, the count exact.
void CheckAgainstModel(Blockstore& blockstore, const Model& model, uint64_t data_blocks) {
  uint64_t live_blocks = 0;
  for (const auto& [first, run] : model.live) {
    live_blocks += run.block_count;
    for (uint64_t block = run.first_block; block < run.end_block(); ++block) {
      RC_ASSERT(blockstore.IsAllocated(block));
    }
  }
  const BlockstoreStats stats = blockstore.stats();
  RC_ASSERT(stats.client_blocks == live_blocks);
  RC_ASSERT(stats.free_blocks + stats.quarantined_blocks + live_blocks == data_blocks);
}

void AddRun(Model& model, const BlockRun& run) {
  // No overlap with any live run: a double allocation would show here.
  auto next = model.live.lower_bound(run.first_block);
  if (next != model.live.end()) RC_ASSERT(run.end_block() <= next->second.first_block);
  if (next != model.live.begin()) RC_ASSERT(std::prev(next)->second.end_block() <= run.first_block);
  model.live[run.first_block] = run;
}

TEST(AllocatorPropertyTest, NoDoubleAllocationExactAccountingSurvivesReopen) {
  const bool passed = rc::check([] {
    env::MemoryDevice device("memory:prop", 8ull << 20);
    FormatOptions options;
    options.journal_blocks = *rc::gen::inRange<uint32_t>(4, 16);
    RC_ASSERT(Blockstore::Format(device, options).ok());
    auto opened = Blockstore::Open(device);
    RC_ASSERT(opened.ok());
    std::unique_ptr<Blockstore> blockstore = std::move(opened).value();
    const uint64_t data_blocks = blockstore->stats().data_blocks;
    Model model;
    const auto steps = *rc::gen::container<std::vector<Step>>(
        rc::gen::weightedElement<Step>({{6, Step::kAllocate},
                                        {3, Step::kAllocateAny},
                                        {4, Step::kFree},
                                        {2, Step::kPersist},
                                        {1, Step::kReopen}}));
    for (Step step : steps) {
      switch (step) {
        case Step::kAllocate: {
          const auto count = *rc::gen::inRange<uint32_t>(1, 1025);
          auto run = blockstore->Allocate(count);
          if (!run.ok()) {
            RC_ASSERT(run.status().IsNoSpace());
            break;
          }
          RC_ASSERT(run->block_count == count);
          AddRun(model, *run);
          break;
        }
        case Step::kAllocateAny: {
          const auto count = *rc::gen::inRange<uint64_t>(1, 3000);
          const uint64_t free_before = blockstore->free_block_count();
          auto runs = blockstore->AllocateAny(count);
          if (!runs.ok()) {
            RC_ASSERT(runs.status().IsNoSpace());
            RC_ASSERT(free_before < count);
            RC_ASSERT(blockstore->free_block_count() == free_before);
            break;
          }
          uint64_t total = 0;
          for (const BlockRun& run : *runs) {
            AddRun(model, run);
            total += run.block_count;
          }
          RC_ASSERT(total == count);
          break;
        }
        case Step::kFree: {
          if (model.live.empty()) break;
          auto victim = model.live.begin();
          std::advance(victim, *rc::gen::inRange<size_t>(0, model.live.size()));
          blockstore->Free(victim->second);
          model.live.erase(victim);
          break;
        }
        case Step::kPersist:
          RC_ASSERT(testing::PersistAndFlush(*blockstore).ok());
          model.durable_runs = model.live;
          break;
        case Step::kReopen: {
          // A reopen without persisting loses exactly the changes since the last persist.
          blockstore.reset();
          auto reopened = Blockstore::Open(device);
          RC_ASSERT(reopened.ok());
          blockstore = std::move(reopened).value();
          model.live = model.durable_runs;
          break;
        }
      }
      CheckAgainstModel(*blockstore, model, data_blocks);
    }
  });
  EXPECT_TRUE(passed);
}

}  // namespace
}  // namespace weft::blockstore
