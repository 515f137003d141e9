// A randomized test of LocalMetadataStore against a std::map model: random gets, compare-and-sets
// and deletes (with right and wrong versions), scans with random prefixes, start_after and limits,
// pipelined asynchronous calls and synchronous ones, and reopens. Keys come from a tiny alphabet
// (including 0x00 and 0xff) so that prefixes, conflicts and recreated rows are common.
//
// Replay one seed: WEFT_SEED=N ./metadata_test --gtest_filter='MetadataModelTest.*'
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "metadata/metadata_test_util.h"

namespace weft::metadata {
namespace {

using testing::Printable;
using testing::TestStore;

constexpr int kOperationsPerSeed = 800;
constexpr uint64_t kDefaultSeeds = 10;

struct ModelRow {
  std::string value;
  uint64_t version = 0;
};

std::string ConflictMessage(uint64_t expected, uint64_t found) {
  return "version conflict: expected " + std::to_string(expected) + ", found " +
         std::to_string(found);
}

class ModelRun {
 public:
  explicit ModelRun(uint64_t seed) : random_(seed) {}

  void Run() {
    ASSERT_TRUE(test_.Open().ok());
    for (int step = 0; step < kOperationsPerSeed && !::testing::Test::HasFailure(); ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const uint32_t choice = Uniform(100);
      if (choice < 35) {
        Set(/*right_version=*/Uniform(5) != 0);
      } else if (choice < 50) {
        Delete(/*right_version=*/Uniform(4) != 0);
      } else if (choice < 70) {
        Get();
      } else if (choice < 88) {
        Scan();
      } else if (choice < 99) {
        // Let the pipeline drain now and then, so that synchronous calls get their turn.
        Drain();
        use_sync_ = !use_sync_;
      } else {
        Drain();
        ASSERT_TRUE(test_.Reopen().ok());
      }
    }
    // The whole store equals the model at the end.
    Drain();
    Result<std::vector<Row>> rows = test_.store().ScanSync("", "", kMaxScanRows);
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    ASSERT_EQ(rows->size(), model_.size());
    auto expected = model_.begin();
    for (const Row& row : *rows) {
      EXPECT_EQ(row.key, expected->first);
      EXPECT_EQ(row.value, expected->second.value);
      EXPECT_EQ(row.version, expected->second.version);
      ++expected;
    }
  }

 private:
  uint32_t Uniform(uint32_t bound) {
    return std::uniform_int_distribution<uint32_t>(0, bound - 1)(random_);
  }

  std::string RandomBytes(uint32_t length_min, uint32_t length_max) {
    static constexpr char kAlphabet[] = {'a', 'b', '/', '\x00', '\xff'};
    std::string bytes(length_min + Uniform(length_max - length_min + 1), '\0');
    for (char& byte : bytes) byte = kAlphabet[Uniform(sizeof(kAlphabet))];
    return bytes;
  }
  std::string RandomKey() { return RandomBytes(1, 3); }

  uint64_t VersionOf(const std::string& key) const {
    const auto found = model_.find(key);
    return found == model_.end() ? 0 : found->second.version;
  }
  // A version other than the row's.
  uint64_t WrongVersion(uint64_t version) {
    return Uniform(2) == 0 && version > 0 ? version - 1 : version + 1 + Uniform(3);
  }

  void Set(bool right_version) {
    const std::string key = RandomKey();
    const std::string value = RandomBytes(0, 16);
    const uint64_t current = VersionOf(key);
    const uint64_t expected = right_version ? current : WrongVersion(current);
    const auto check = [=](const Result<uint64_t>& result) {
      if (right_version) {
        ASSERT_TRUE(result.ok()) << Printable(key) << ": " << result.status().ToString();
        EXPECT_EQ(*result, current + 1) << Printable(key);
      } else {
        EXPECT_EQ(result.status().message(), ConflictMessage(expected, current)) << Printable(key);
      }
    };
    if (right_version) model_[key] = ModelRow{value, current + 1};
    if (use_sync_) return check(test_.store().CompareAndSetSync(key, expected, value));
    Submit();
    test_.store().CompareAndSet(key, expected, value,
                                [this, check](const Result<uint64_t>& result) {
                                  check(result);
                                  --outstanding_;
                                });
  }

  void Delete(bool right_version) {
    const std::string key = RandomKey();
    const uint64_t current = VersionOf(key);
    const uint64_t expected = right_version ? current : WrongVersion(current);
    const auto check = [=](const Status& status) {
      if (right_version) {
        EXPECT_TRUE(status.ok()) << Printable(key) << ": " << status.ToString();
      } else {
        EXPECT_EQ(status.message(), ConflictMessage(expected, current)) << Printable(key);
      }
    };
    if (right_version) model_.erase(key);
    if (use_sync_) return check(test_.store().CompareAndDeleteSync(key, expected));
    Submit();
    test_.store().CompareAndDelete(key, expected, [this, check](const Status& status) {
      check(status);
      --outstanding_;
    });
  }

  void Get() {
    const std::string key = RandomKey();
    const auto found = model_.find(key);
    const bool exists = found != model_.end();
    const ModelRow expected = exists ? found->second : ModelRow{};
    const auto check = [=](const Result<Row>& row) {
      if (!exists) {
        EXPECT_TRUE(row.status().IsNotFound()) << Printable(key) << ": " << row.status().ToString();
        return;
      }
      ASSERT_TRUE(row.ok()) << Printable(key) << ": " << row.status().ToString();
      EXPECT_EQ(row->key, key);
      EXPECT_EQ(row->value, expected.value) << Printable(key);
      EXPECT_EQ(row->version, expected.version) << Printable(key);
    };
    if (use_sync_) return check(test_.store().GetSync(key));
    Submit();
    test_.store().Get(key, [this, check](const Result<Row>& row) {
      check(row);
      --outstanding_;
    });
  }

  void Scan() {
    const std::string prefix = Uniform(4) == 0 ? std::string() : RandomBytes(1, 2);
    const std::string start_after = Uniform(2) == 0 ? std::string() : RandomKey();
    const uint32_t limit = 1 + Uniform(8);
    std::vector<Row> expected;
    for (auto row = model_.upper_bound(start_after); row != model_.end(); ++row) {
      if (expected.size() == limit) break;
      if (row->first < prefix) continue;
      if (!row->first.starts_with(prefix)) break;
      expected.push_back(Row{row->first, row->second.value, row->second.version});
    }
    const auto check = [=](const Result<std::vector<Row>>& rows) {
      const std::string call = "scan prefix " + Printable(prefix) + " after " +
                               Printable(start_after) + " limit " + std::to_string(limit);
      ASSERT_TRUE(rows.ok()) << call << ": " << rows.status().ToString();
      ASSERT_EQ(rows->size(), expected.size()) << call;
      for (size_t index = 0; index < expected.size(); ++index) {
        EXPECT_EQ((*rows)[index].key, expected[index].key) << call;
        EXPECT_EQ((*rows)[index].value, expected[index].value) << call;
        EXPECT_EQ((*rows)[index].version, expected[index].version) << call;
      }
    };
    if (use_sync_) return check(test_.store().ScanSync(prefix, start_after, limit));
    Submit();
    test_.store().Scan(prefix, start_after, limit,
                       [this, check](const Result<std::vector<Row>>& rows) {
                         check(rows);
                         --outstanding_;
                       });
  }

  void Submit() { ++outstanding_; }
  void Drain() {
    ASSERT_TRUE(test_.queue().RunUntil([this] { return outstanding_ == 0; }))
        << outstanding_ << " completions never arrived";
  }

  std::mt19937_64 random_;
  TestStore test_;
  std::map<std::string, ModelRow> model_;
  // Asynchronous calls run in submission order, so the model is updated at submission; a
  // synchronous call runs on this thread and may only follow once the pipeline is drained.
  bool use_sync_ = false;
  int outstanding_ = 0;
};

TEST(MetadataModelTest, MatchesAMapModel) {
  std::vector<uint64_t> seeds;
  if (const char* seed = std::getenv("WEFT_SEED"); seed != nullptr) {
    seeds.push_back(std::strtoull(seed, nullptr, 10));
  } else {
    for (uint64_t seed = 1; seed <= kDefaultSeeds; ++seed) seeds.push_back(seed);
  }
  for (const uint64_t seed : seeds) {
    SCOPED_TRACE("replay: WEFT_SEED=" + std::to_string(seed) +
                 " ./metadata_test --gtest_filter='MetadataModelTest.*'");
    ModelRun(seed).Run();
    if (HasFailure()) break;
  }
}

}  // namespace
}  // namespace weft::metadata
