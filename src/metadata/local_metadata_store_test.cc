// LocalMetadataStore: the MetadataStore contract (versions, conflicts, deletes, scans, limits,
// completions), persistence, and the checks on what it reads back from disk.
#include "metadata/local_metadata_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "metadata/metadata_test_util.h"

namespace weft::metadata {
namespace {

using testing::Printable;
using testing::TestStore;

std::vector<std::string> KeysOf(const std::vector<Row>& rows) {
  std::vector<std::string> keys;
  keys.reserve(rows.size());
  for (const Row& row : rows) keys.push_back(row.key);
  return keys;
}

TEST(LocalMetadataStoreTest, CreateUpdateConflictDeleteRecreate) {
  TestStore test;
  ASSERT_TRUE(test.Open().ok());
  Result<uint64_t> version = test.Set("vdisk/7", 0, "first");
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  EXPECT_EQ(*version, 1u);

  // Creating a row that exists is a conflict and changes nothing.
  version = test.Set("vdisk/7", 0, "other");
  ASSERT_EQ(version.status().code(), StatusCode::kAborted);
  EXPECT_EQ(version.status().message(), "version conflict: expected 0, found 1");
  Result<Row> row = test.Get("vdisk/7");
  ASSERT_TRUE(row.ok()) << row.status().ToString();
  EXPECT_EQ(row->key, "vdisk/7");
  EXPECT_EQ(row->value, "first");
  EXPECT_EQ(row->version, 1u);

  version = test.Set("vdisk/7", 1, "second");
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, 2u);
  version = test.Set("vdisk/7", 1, "stale");
  EXPECT_EQ(version.status().message(), "version conflict: expected 1, found 2");
  version = test.Set("vdisk/7", 3, "ahead");
  EXPECT_EQ(version.status().message(), "version conflict: expected 3, found 2");
  row = test.Get("vdisk/7");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->value, "second");
  EXPECT_EQ(row->version, 2u);

  Status deleted = test.Delete("vdisk/7", 1);
  ASSERT_EQ(deleted.code(), StatusCode::kAborted);
  EXPECT_EQ(deleted.message(), "version conflict: expected 1, found 2");
  EXPECT_TRUE(test.Get("vdisk/7").ok());
  ASSERT_TRUE(test.Delete("vdisk/7", 2).ok());
  EXPECT_TRUE(test.Get("vdisk/7").status().IsNotFound());
  EXPECT_NE(test.Get("vdisk/7").status().message().find("vdisk/7"), std::string::npos);

  // An absent row has version 0: deleting it with 0 agrees (and writes nothing), any other
  // version conflicts, and so does updating it.
  EXPECT_TRUE(test.Delete("vdisk/7", 0).ok());
  EXPECT_EQ(test.Delete("vdisk/7", 2).message(), "version conflict: expected 2, found 0");
  EXPECT_EQ(test.Set("vdisk/7", 2, "x").status().message(),
            "version conflict: expected 2, found 0");

  // Versions restart at 1 after a delete.
  version = test.Set("vdisk/7", 0, "again");
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, 1u);
  row = test.Get("vdisk/7");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->value, "again");
  EXPECT_EQ(row->version, 1u);
}

TEST(LocalMetadataStoreTest, EmptyValuesAndBinaryKeysAndValues) {
  TestStore test;
  ASSERT_TRUE(test.Open().ok());
  ASSERT_TRUE(test.Set("empty", 0, "").ok());
  Result<Row> row = test.Get("empty");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->value, "");
  EXPECT_EQ(row->version, 1u);

  const std::string key("\x00\xff\x01key\x00", 7);
  const std::string value("\x00\x00\xfe value \x00", 11);
  ASSERT_TRUE(test.Set(key, 0, value).ok());
  row = test.Get(key);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->key, key);
  EXPECT_EQ(row->value, value);
  // A key that differs only after a zero byte is another row.
  EXPECT_TRUE(test.Get(std::string("\x00\xff\x01key", 6)).status().IsNotFound());
}

TEST(LocalMetadataStoreTest, ScanReturnsPrefixRowsInBytewiseOrder) {
  TestStore test;
  ASSERT_TRUE(test.Open().ok());
  const std::vector<std::string> keys = {
      "a", "a/1", "a/2", "a0", "a\xff", "b", "\xff", std::string("a/\x00", 3), "a/\xff", "a.",
  };
  for (const std::string& key : keys) ASSERT_TRUE(test.Set(key, 0, "v:" + key).ok());
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());

  Result<std::vector<Row>> rows = test.Scan("", "", kMaxScanRows);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(KeysOf(*rows), sorted);
  for (const Row& row : *rows) {
    EXPECT_EQ(row.value, "v:" + row.key);
    EXPECT_EQ(row.version, 1u);
  }

  rows = test.Scan("a/", "", 100);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(KeysOf(*rows),
            (std::vector<std::string>{std::string("a/\x00", 3), "a/1", "a/2", "a/\xff"}));
  rows = test.Scan("a", "", 100);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(KeysOf(*rows), (std::vector<std::string>{"a", "a.", std::string("a/\x00", 3), "a/1",
                                                     "a/2", "a/\xff", "a0", "a\xff"}));
  // A prefix that is itself a key includes it; prefixes that match nothing return nothing.
  rows = test.Scan("a/1", "", 100);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(KeysOf(*rows), (std::vector<std::string>{"a/1"}));
  for (const char* prefix : {"c", "a/3", "a/11", "\xff\xff", "0"}) {
    rows = test.Scan(prefix, "", 100);
    ASSERT_TRUE(rows.ok());
    EXPECT_TRUE(rows->empty()) << "prefix " << Printable(prefix);
  }
  rows = test.Scan("\xff", "", 100);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(KeysOf(*rows), (std::vector<std::string>{"\xff"}));
}

TEST(LocalMetadataStoreTest, ScanPagesWithStartAfterAndLimit) {
  TestStore test;
  ASSERT_TRUE(test.Open().ok());
  std::vector<std::string> expected;
  for (int index = 0; index < 25; ++index) {
    expected.push_back("p/" + std::to_string(100 + index));
    ASSERT_TRUE(test.Set(expected.back(), 0, "v").ok());
  }
  ASSERT_TRUE(test.Set("o", 0, "outside").ok());
  ASSERT_TRUE(test.Set("p0", 0, "outside").ok());
  ASSERT_TRUE(test.Set("q", 0, "outside").ok());

  std::vector<std::string> seen;
  std::vector<size_t> page_sizes;
  std::string start_after;
  while (true) {
    Result<std::vector<Row>> page = test.Scan("p/", start_after, 7);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    if (page->empty()) break;
    ASSERT_LE(page->size(), 7u);
    page_sizes.push_back(page->size());
    for (const Row& row : *page) seen.push_back(row.key);
    start_after = page->back().key;
    ASSERT_LE(page_sizes.size(), 5u) << "paging does not advance";
  }
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(page_sizes, (std::vector<size_t>{7, 7, 7, 4}));

  // start_after need not be a stored key; before the prefix it is the start of the prefix,
  // after the prefix it leaves nothing.
  Result<std::vector<Row>> rows = test.Scan("p/", "p/1045", 3);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(KeysOf(*rows), (std::vector<std::string>{"p/105", "p/106", "p/107"}));
  rows = test.Scan("p/", "a", 2);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(KeysOf(*rows), (std::vector<std::string>{"p/100", "p/101"}));
  rows = test.Scan("p/", "p/", 1);  // The prefix itself, not a key here: excluded anyway.
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(KeysOf(*rows), (std::vector<std::string>{"p/100"}));
  rows = test.Scan("p/", "z", 10);
  ASSERT_TRUE(rows.ok());
  EXPECT_TRUE(rows->empty());
  rows = test.Scan("p/", "p/124", 10);
  ASSERT_TRUE(rows.ok());
  EXPECT_TRUE(rows->empty());
  // The prefix as a stored key, then start_after equal to it: excluded.
  ASSERT_TRUE(test.Set("p/", 0, "prefix row").ok());
  rows = test.Scan("p/", "", 1);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(KeysOf(*rows), (std::vector<std::string>{"p/"}));
  rows = test.Scan("p/", "p/", 1);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(KeysOf(*rows), (std::vector<std::string>{"p/100"}));
}

TEST(LocalMetadataStoreTest, LimitsAreInvalidArgument) {
  TestStore test;
  ASSERT_TRUE(test.Open().ok());
  const std::string longest_key(kMaxKeyBytes, 'k');
  const std::string too_long_key(kMaxKeyBytes + 1, 'k');
  const std::string largest_value(kMaxValueBytes, 'v');
  const std::string too_large_value(kMaxValueBytes + 1, 'v');

  EXPECT_TRUE(test.Get("").status().IsInvalidArgument());
  EXPECT_TRUE(test.Get(too_long_key).status().IsInvalidArgument());
  EXPECT_TRUE(test.Set("", 0, "v").status().IsInvalidArgument());
  EXPECT_TRUE(test.Set(too_long_key, 0, "v").status().IsInvalidArgument());
  EXPECT_TRUE(test.Set("k", 0, too_large_value).status().IsInvalidArgument());
  EXPECT_TRUE(test.Delete("", 0).IsInvalidArgument());
  EXPECT_TRUE(test.Delete(too_long_key, 0).IsInvalidArgument());
  EXPECT_TRUE(test.Scan("", "", 0).status().IsInvalidArgument());
  EXPECT_TRUE(test.Scan("", "", kMaxScanRows + 1).status().IsInvalidArgument());
  EXPECT_TRUE(test.Scan(too_long_key, "", 1).status().IsInvalidArgument());
  EXPECT_TRUE(test.Scan("", too_long_key, 1).status().IsInvalidArgument());
  // The synchronous forms check the same.
  EXPECT_TRUE(test.store().GetSync("").status().IsInvalidArgument());
  EXPECT_TRUE(test.store().CompareAndSetSync("k", 0, too_large_value).status().IsInvalidArgument());
  EXPECT_TRUE(test.store().CompareAndDeleteSync(too_long_key, 0).IsInvalidArgument());
  EXPECT_TRUE(test.store().ScanSync("", "", 0).status().IsInvalidArgument());
  // Nothing was written by the rejected calls.
  Result<std::vector<Row>> rows = test.Scan("", "", kMaxScanRows);
  ASSERT_TRUE(rows.ok());
  EXPECT_TRUE(rows->empty());

  // The limits themselves are accepted.
  Result<uint64_t> version = test.Set(longest_key, 0, largest_value);
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  Result<Row> row = test.Get(longest_key);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->value, largest_value);
  rows = test.Scan(longest_key, "", kMaxScanRows);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 1u);
  EXPECT_TRUE(test.Delete(longest_key, 1).ok());
}

TEST(LocalMetadataStoreTest, CompletionsRunOnTheExecutorNeverInline) {
  TestStore test;
  ASSERT_TRUE(test.Open().ok());
  const std::thread::id test_thread = std::this_thread::get_id();
  int completions = 0;
  bool returned = false;
  const auto check = [&] {
    // The call had returned before its completion ran, and it runs on the executor's thread.
    EXPECT_TRUE(returned);
    EXPECT_EQ(std::this_thread::get_id(), test_thread);
    ++completions;
  };
  LocalMetadataStore& store = test.store();
  store.CompareAndSet("k", 0, "v", [&](const Result<uint64_t>&) { check(); });
  store.Get("k", [&](const Result<Row>&) { check(); });
  store.Scan("", "", 1, [&](const Result<std::vector<Row>>&) { check(); });
  store.CompareAndDelete("k", 1, [&](const Status&) { check(); });
  // Invalid arguments too complete later, not inside the call.
  store.Get("", [&](const Result<Row>&) { check(); });
  returned = true;
  EXPECT_EQ(completions, 0);
  ASSERT_TRUE(test.queue().RunUntil([&] { return completions == 5; }));
  EXPECT_EQ(test.queue().pending(), 0u);
}

TEST(LocalMetadataStoreTest, OperationsRunInSubmissionOrder) {
  TestStore test;
  ASSERT_TRUE(test.Open().ok());
  constexpr int kUpdates = 50;
  std::vector<Result<uint64_t>> results;
  for (int index = 0; index < kUpdates; ++index) {
    test.store().CompareAndSet(
        "counter", index, std::to_string(index),
        [&](const Result<uint64_t>& version) { results.push_back(version); });
  }
  ASSERT_TRUE(test.queue().RunUntil([&] { return results.size() == kUpdates; }));
  for (int index = 0; index < kUpdates; ++index) {
    ASSERT_TRUE(results[index].ok()) << index << ": " << results[index].status().ToString();
    EXPECT_EQ(*results[index], static_cast<uint64_t>(index + 1));
  }
}

TEST(LocalMetadataStoreTest, ConcurrentCompareAndSetsNeverBothWin) {
  TestStore test;
  ASSERT_TRUE(test.Open().ok());
  // Threads race read-then-update cycles on one row (the helper thread joins in through the
  // asynchronous calls): each version must be won by exactly one update.
  constexpr int kThreads = 4;
  constexpr int kAttemptsPerThread = 200;
  std::vector<std::vector<uint64_t>> won(kThreads + 1);
  const auto race = [&](int thread_index) {
    for (int attempt = 0; attempt < kAttemptsPerThread; ++attempt) {
      Result<Row> row = test.store().GetSync("counter");
      const uint64_t version = row.ok() ? row->version : 0;
      Result<uint64_t> updated = test.store().CompareAndSetSync("counter", version, "x");
      if (updated.ok()) {
        won[thread_index].push_back(*updated);
      } else {
        ASSERT_EQ(updated.status().code(), StatusCode::kAborted) << updated.status().ToString();
      }
    }
  };
  int async_completions = 0;
  for (int attempt = 0; attempt < kAttemptsPerThread; ++attempt) {
    test.store().Get("counter", [&](const Result<Row>& row) {
      const uint64_t version = row.ok() ? row->version : 0;
      test.store().CompareAndSet("counter", version, "y", [&](const Result<uint64_t>& updated) {
        if (updated.ok()) won[kThreads].push_back(*updated);
        ++async_completions;
      });
    });
  }
  std::vector<std::thread> threads;
  for (int index = 0; index < kThreads; ++index) threads.emplace_back(race, index);
  ASSERT_TRUE(test.queue().RunUntil([&] { return async_completions == kAttemptsPerThread; }));
  for (std::thread& thread : threads) thread.join();

  std::vector<uint64_t> versions;
  for (const std::vector<uint64_t>& thread_versions : won) {
    versions.insert(versions.end(), thread_versions.begin(), thread_versions.end());
  }
  std::sort(versions.begin(), versions.end());
  ASSERT_FALSE(versions.empty());
  for (size_t index = 0; index < versions.size(); ++index) {
    ASSERT_EQ(versions[index], index + 1) << "a version won twice or never";
  }
  Result<Row> row = test.Get("counter");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->version, versions.size());
}

TEST(LocalMetadataStoreTest, CloseCompletesEveryOperationOnce) {
  TestStore test;
  ASSERT_TRUE(test.Open().ok());
  // Whatever Close catches in the queue completes with Aborted; what ran before it succeeded
  // in order, so the successes are a prefix and the row holds exactly that many updates.
  constexpr int kUpdates = 200;
  std::vector<int> completions(kUpdates, 0);
  std::vector<Status> statuses(kUpdates);
  for (int index = 0; index < kUpdates; ++index) {
    test.store().CompareAndSet("k", index, "v", [&, index](const Result<uint64_t>& version) {
      ++completions[index];
      statuses[index] = version.status();
      if (version.ok()) {
        EXPECT_EQ(*version, static_cast<uint64_t>(index + 1));
      }
    });
  }
  ASSERT_TRUE(test.store().Close().ok());
  ASSERT_TRUE(test.queue().RunUntil([&] { return test.queue().pending() == 0; }));
  int succeeded = 0;
  for (int index = 0; index < kUpdates; ++index) {
    EXPECT_EQ(completions[index], 1) << "operation " << index;
    if (statuses[index].ok()) {
      EXPECT_EQ(succeeded, index) << "a success after an abort";
      ++succeeded;
    } else {
      EXPECT_EQ(statuses[index].code(), StatusCode::kAborted) << statuses[index].ToString();
      EXPECT_NE(statuses[index].message().find("closed"), std::string::npos);
    }
  }

  // After Close every call fails with Aborted, through the executor as before.
  Result<Row> row = test.Get("k");
  EXPECT_EQ(row.status().code(), StatusCode::kAborted);
  EXPECT_EQ(test.Set("k", 0, "v").status().code(), StatusCode::kAborted);
  EXPECT_EQ(test.store().GetSync("k").status().code(), StatusCode::kAborted);
  EXPECT_TRUE(test.store().Close().ok());  // Idempotent.

  ASSERT_TRUE(test.Reopen().ok());
  row = test.Get("k");
  if (succeeded == 0) {
    EXPECT_TRUE(row.status().IsNotFound());
  } else {
    ASSERT_TRUE(row.ok()) << row.status().ToString();
    EXPECT_EQ(row->version, static_cast<uint64_t>(succeeded));
  }
}

}  // namespace
}  // namespace weft::metadata
