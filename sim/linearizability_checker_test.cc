// The linearizability checker on hand-written histories (linearizable ones, and stale reads, lost
// updates, double applies, version skips), on generated histories that are linearizable by
// construction, and on mutations of those that no row could have produced.
#include "sim/linearizability_checker.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <optional>
#include <random>

namespace weft::sim {
namespace {

constexpr const char* kKey = "k";

// Builders for one key's operations; times are given by the test.
class Builder {
 public:
  Builder& Read(uint64_t invoke, uint64_t response, uint64_t version, std::string value) {
    return Push({.kind = OperationKind::kRead,
                 .invoke_time = invoke,
                 .response_time = response,
                 .outcome = Outcome::kOk,
                 .result_version = version,
                 .result_value = std::move(value)});
  }
  Builder& ReadAbsent(uint64_t invoke, uint64_t response) {
    return Push({.kind = OperationKind::kRead,
                 .invoke_time = invoke,
                 .response_time = response,
                 .outcome = Outcome::kNotFound});
  }
  Builder& Set(uint64_t invoke, uint64_t response, uint64_t expected, std::string value,
               Outcome outcome) {
    const bool known = outcome != Outcome::kUnknown;
    return Push({.kind = OperationKind::kCompareAndSet,
                 .expected_version = expected,
                 .value = std::move(value),
                 .invoke_time = invoke,
                 .response_time = known ? response : kNeverReturned,
                 .outcome = outcome,
                 .result_version = outcome == Outcome::kOk ? expected + 1 : 0});
  }
  Builder& Delete(uint64_t invoke, uint64_t response, uint64_t expected, Outcome outcome) {
    const bool known = outcome != Outcome::kUnknown;
    return Push({.kind = OperationKind::kCompareAndDelete,
                 .expected_version = expected,
                 .invoke_time = invoke,
                 .response_time = known ? response : kNeverReturned,
                 .outcome = outcome});
  }
  Builder& Push(RowOperation operation) {
    operation.id = history_.operations.size() + 1;
    operation.client = operation.id;
    operation.key = kKey;
    history_.operations.push_back(std::move(operation));
    return *this;
  }
  History& history() { return history_; }
  CheckResult Check() const { return CheckLinearizable(history_); }

 private:
  History history_;
};

TEST(LinearizabilityCheckerTest, EmptyHistoryIsLinearizable) {
  EXPECT_TRUE(CheckLinearizable(History{}).ok);
}

TEST(LinearizabilityCheckerTest, SequentialLifecycleIsLinearizable) {
  Builder builder;
  builder.ReadAbsent(1, 2)
      .Set(3, 4, 0, "a", Outcome::kOk)
      .Read(5, 6, 1, "a")
      .Set(7, 8, 1, "b", Outcome::kOk)
      .Set(9, 10, 1, "c", Outcome::kAborted)
      .Delete(11, 12, 2, Outcome::kOk)
      .ReadAbsent(13, 14)
      .Delete(15, 16, 2, Outcome::kAborted)
      .Set(17, 18, 0, "d", Outcome::kOk)  // Versions restart at 1 after a delete.
      .Read(19, 20, 1, "d");
  const CheckResult result = builder.Check();
  EXPECT_TRUE(result.ok) << result.explanation;
  EXPECT_EQ(result.operations_checked, 10u);
}

TEST(LinearizabilityCheckerTest, ConcurrentCreatesOneWins) {
  Builder builder;
  builder.Set(1, 10, 0, "a", Outcome::kAborted)
      .Set(2, 9, 0, "b", Outcome::kOk)
      .Read(3, 8, 1, "b")  // Overlaps the winner: may see it.
      .Read(11, 12, 1, "b");
  const CheckResult result = builder.Check();
  EXPECT_TRUE(result.ok) << result.explanation;
}

TEST(LinearizabilityCheckerTest, ConcurrentReadMaySeeEitherState) {
  Builder builder;
  builder.Set(1, 2, 0, "a", Outcome::kOk)
      .Set(3, 10, 1, "b", Outcome::kOk)
      .Read(4, 5, 2, "b")
      .Read(6, 7, 2, "b");
  EXPECT_TRUE(builder.Check().ok);
  Builder reversed;  // But once a read saw the new state, a later one cannot see the old one.
  reversed.Set(1, 2, 0, "a", Outcome::kOk)
      .Set(3, 10, 1, "b", Outcome::kOk)
      .Read(4, 5, 2, "b")
      .Read(6, 7, 1, "a");
  EXPECT_FALSE(reversed.Check().ok);
}

TEST(LinearizabilityCheckerTest, StaleReadIsCaught) {
  Builder builder;
  builder.Set(1, 2, 0, "a", Outcome::kOk).Set(3, 4, 1, "b", Outcome::kOk).Read(5, 6, 1, "a");
  const CheckResult result = builder.Check();
  ASSERT_FALSE(result.ok);
  EXPECT_FALSE(result.inconclusive);
  EXPECT_EQ(result.key, kKey);
  EXPECT_NE(result.explanation.find("op 3"), std::string::npos) << result.explanation;
}

TEST(LinearizabilityCheckerTest, ReadOfAbsentRowAfterCreateIsCaught) {
  Builder builder;
  builder.Set(1, 2, 0, "a", Outcome::kOk).ReadAbsent(3, 4);
  EXPECT_FALSE(builder.Check().ok);
}

TEST(LinearizabilityCheckerTest, LostUpdateIsCaught) {
  // Two sequential updates from the same version both succeed: the second overwrote the first.
  Builder builder;
  builder.Set(1, 2, 0, "a", Outcome::kOk)
      .Set(3, 4, 1, "b", Outcome::kOk)
      .Set(5, 6, 1, "c", Outcome::kOk);
  EXPECT_FALSE(builder.Check().ok);
  // The same with the updates concurrent: still only one can win from version 1.
  Builder concurrent;
  concurrent.Set(1, 2, 0, "a", Outcome::kOk)
      .Set(3, 8, 1, "b", Outcome::kOk)
      .Set(4, 7, 1, "c", Outcome::kOk);
  EXPECT_FALSE(concurrent.Check().ok);
}

TEST(LinearizabilityCheckerTest, WrongAbortIsCaught) {
  Builder builder;
  builder.Set(1, 2, 0, "a", Outcome::kOk).Set(3, 4, 1, "b", Outcome::kAborted);
  EXPECT_FALSE(builder.Check().ok);
  Builder deleted;
  deleted.Set(1, 2, 0, "a", Outcome::kOk).Delete(3, 4, 1, Outcome::kAborted);
  EXPECT_FALSE(deleted.Check().ok);
}

TEST(LinearizabilityCheckerTest, DoubleApplyIsCaught) {
  // An unknown-outcome update may take effect once: reads see its value at version 2, and later
  // at version 3 with no other write that could have made version 3.
  Builder builder;
  builder.Set(1, 2, 0, "a", Outcome::kOk)
      .Set(3, 0, 1, "x", Outcome::kUnknown)
      .Read(5, 6, 2, "x")
      .Read(7, 8, 3, "x");
  EXPECT_FALSE(builder.Check().ok);
}

TEST(LinearizabilityCheckerTest, VersionSkipIsCaught) {
  Builder builder;
  builder.Set(1, 2, 0, "a", Outcome::kOk);
  builder.Push({.kind = OperationKind::kCompareAndSet,
                .expected_version = 1,
                .value = "b",
                .invoke_time = 3,
                .response_time = 4,
                .outcome = Outcome::kOk,
                .result_version = 3});
  EXPECT_FALSE(builder.Check().ok);
  Builder read;  // A read that sees a version nobody wrote.
  read.Set(1, 2, 0, "a", Outcome::kOk).Read(3, 4, 2, "a");
  EXPECT_FALSE(read.Check().ok);
}

TEST(LinearizabilityCheckerTest, UnknownOutcomeMayOrMayNotTakeEffect) {
  Builder applied;
  applied.Set(1, 0, 0, "a", Outcome::kUnknown).Read(5, 6, 1, "a").Read(7, 8, 1, "a");
  EXPECT_TRUE(applied.Check().ok);
  Builder never;
  never.Set(1, 0, 0, "a", Outcome::kUnknown).ReadAbsent(5, 6).ReadAbsent(7, 8);
  EXPECT_TRUE(never.Check().ok);
  Builder late;  // It may take effect long after the client gave up.
  late.Set(1, 0, 0, "a", Outcome::kUnknown).ReadAbsent(5, 6).Read(7, 8, 1, "a");
  EXPECT_TRUE(late.Check().ok);
  Builder undone;  // But once seen it cannot disappear.
  undone.Set(1, 0, 0, "a", Outcome::kUnknown).Read(5, 6, 1, "a").ReadAbsent(7, 8);
  EXPECT_FALSE(undone.Check().ok);
  Builder early;  // Nor take effect before its invocation.
  early.Read(1, 2, 1, "a").Set(3, 0, 0, "a", Outcome::kUnknown);
  EXPECT_FALSE(early.Check().ok);
}

TEST(LinearizabilityCheckerTest, UnknownDeleteMayTakeEffect) {
  Builder builder;
  builder.Set(1, 2, 0, "a", Outcome::kOk)
      .Delete(3, 0, 1, Outcome::kUnknown)
      .ReadAbsent(5, 6)
      .Set(7, 8, 0, "b", Outcome::kOk);
  EXPECT_TRUE(builder.Check().ok);
}

TEST(LinearizabilityCheckerTest, MalformedOperationsAreRefused) {
  Builder builder;
  builder.Push({.kind = OperationKind::kRead,
                .invoke_time = 5,
                .response_time = 4,
                .outcome = Outcome::kNotFound});
  const CheckResult result = builder.Check();
  EXPECT_FALSE(result.ok);
  EXPECT_NE(result.explanation.find("malformed"), std::string::npos);
}

TEST(LinearizabilityCheckerTest, KeysAreCheckedIndependently) {
  History history;
  history.operations.push_back({.id = 1,
                                .kind = OperationKind::kCompareAndSet,
                                .key = "a",
                                .invoke_time = 1,
                                .response_time = 2,
                                .outcome = Outcome::kOk,
                                .result_version = 1});
  history.operations.push_back({.id = 2,
                                .kind = OperationKind::kRead,
                                .key = "b",
                                .invoke_time = 3,
                                .response_time = 4,
                                .outcome = Outcome::kNotFound});
  EXPECT_TRUE(CheckLinearizable(history).ok);
  history.operations.push_back({.id = 3,
                                .kind = OperationKind::kRead,
                                .key = "b",
                                .invoke_time = 5,
                                .response_time = 6,
                                .outcome = Outcome::kOk,
                                .result_version = 1});
  const CheckResult result = CheckLinearizable(history);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.key, "b");
}

History ScanHistory() {
  History history;
  uint64_t id = 1;
  for (const char* key : {"p/a", "p/b", "p/c"}) {
    history.operations.push_back({.id = id++,
                                  .kind = OperationKind::kCompareAndSet,
                                  .key = key,
                                  .value = std::string("v") + key,
                                  .invoke_time = 1,
                                  .response_time = 2,
                                  .outcome = Outcome::kOk,
                                  .result_version = 1});
  }
  return history;
}

TEST(LinearizabilityCheckerTest, ScanRowsAreReads) {
  History history = ScanHistory();
  history.scans.push_back({.id = 10,
                           .prefix = "p/",
                           .limit = 10,
                           .invoke_time = 3,
                           .response_time = 4,
                           .rows = {{"p/a", "vp/a", 1}, {"p/b", "vp/b", 1}, {"p/c", "vp/c", 1}}});
  EXPECT_TRUE(CheckLinearizable(history).ok);
  history.scans.back().rows[1].version = 2;  // A version nobody wrote.
  const CheckResult result = CheckLinearizable(history);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.key, "p/b");
}

TEST(LinearizabilityCheckerTest, ScanMissingAnExistingRowIsCaughtWithAbsenceChecks) {
  History history = ScanHistory();
  history.scans.push_back({.id = 10,
                           .prefix = "p/",
                           .limit = 10,
                           .invoke_time = 3,
                           .response_time = 4,
                           .rows = {{"p/a", "vp/a", 1}, {"p/c", "vp/c", 1}}});
  const CheckResult result = CheckLinearizable(history);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.key, "p/b");
  EXPECT_TRUE(CheckLinearizable(history, CheckerOptions{.scan_absence = false}).ok);
}

TEST(LinearizabilityCheckerTest, FullScanPageSaysNothingPastItsLastRow) {
  History history = ScanHistory();
  history.scans.push_back({.id = 10,
                           .prefix = "p/",
                           .start_after = "p/a",
                           .limit = 1,
                           .invoke_time = 3,
                           .response_time = 4,
                           .rows = {{"p/b", "vp/b", 1}}});
  EXPECT_TRUE(CheckLinearizable(history).ok);
}

TEST(LinearizabilityCheckerTest, BadScanShapeIsCaught) {
  History history = ScanHistory();
  history.scans.push_back({.id = 10,
                           .prefix = "p/",
                           .limit = 10,
                           .invoke_time = 3,
                           .response_time = 4,
                           .rows = {{"p/b", "vp/b", 1}, {"p/a", "vp/a", 1}}});
  const CheckResult result = CheckLinearizable(history);
  EXPECT_FALSE(result.ok);
  EXPECT_NE(result.explanation.find("bad scan"), std::string::npos) << result.explanation;
}

// Generates a history of one row that is linearizable by construction: clients invoke
// operations, each takes effect at one random instant of its interval (applied to a real
// register), and responds later with what the register said; some updates never respond (their
// effect applied or not). With `sequential`, operations never overlap and all respond.
class HistoryGenerator {
 public:
  HistoryGenerator(uint64_t seed, int clients, bool sequential)
      : random_(seed), sequential_(sequential), pending_(clients) {}

  History Generate(int operations_total) {
    History history;
    while (started_ < operations_total || Busy()) {
      time_++;
      const size_t client = Uniform(0, pending_.size() - 1);
      std::optional<Pending>& slot = pending_[client];
      if (!slot) {
        if (started_ < operations_total && (!sequential_ || !Busy())) Invoke(client, slot);
      } else if (!slot->applied) {
        Apply(*slot);
      } else {
        Respond(client, *slot, history);
        slot.reset();
      }
    }
    return history;
  }

 private:
  struct Pending {
    RowOperation operation;
    bool applied = false;
  };

  uint64_t Uniform(uint64_t low, uint64_t high) {
    return std::uniform_int_distribution<uint64_t>(low, high)(random_);
  }
  bool Busy() const {
    for (const auto& slot : pending_) {
      if (slot) return true;
    }
    return false;
  }

  void Invoke(size_t client, std::optional<Pending>& slot) {
    RowOperation operation{.id = static_cast<uint64_t>(++started_),
                           .client = client,
                           .key = kKey,
                           .invoke_time = time_};
    // Usually the current version, sometimes a wrong one, so that conflicts happen.
    operation.expected_version = Uniform(0, 3) == 0 ? Uniform(0, 3) : version_;
    const uint64_t pick = Uniform(0, 9);
    if (pick < 4) {
      operation.kind = OperationKind::kRead;
    } else if (pick < 6 && operation.expected_version != 0) {
      operation.kind = OperationKind::kCompareAndDelete;
    } else {
      operation.kind = OperationKind::kCompareAndSet;
      operation.value = fmt::format("v{}", operation.id);
    }
    slot = Pending{.operation = std::move(operation)};
  }

  void Apply(Pending& pending) {
    RowOperation& operation = pending.operation;
    pending.applied = true;
    const bool lost = !sequential_ && operation.kind != OperationKind::kRead && Uniform(0, 9) == 0;
    if (lost && Uniform(0, 1) == 0) {
      operation.outcome = Outcome::kUnknown;  // Never took effect.
      return;
    }
    if (operation.kind == OperationKind::kRead) {
      operation.outcome = version_ == 0 ? Outcome::kNotFound : Outcome::kOk;
      operation.result_version = version_;
      operation.result_value = value_;
    } else if (version_ != operation.expected_version) {
      operation.outcome = Outcome::kAborted;
    } else if (operation.kind == OperationKind::kCompareAndSet) {
      version_++;
      value_ = operation.value;
      operation.outcome = Outcome::kOk;
      operation.result_version = version_;
    } else {
      version_ = 0;
      value_.clear();
      operation.outcome = Outcome::kOk;
    }
    if (lost) operation.outcome = Outcome::kUnknown;  // Took effect; the client never learns.
  }

  void Respond(size_t client, Pending& pending, History& history) {
    (void)client;
    RowOperation& operation = pending.operation;
    if (operation.outcome == Outcome::kUnknown) {
      operation.response_time = kNeverReturned;
      operation.result_version = 0;
    } else {
      operation.response_time = time_;
    }
    history.operations.push_back(operation);
  }

  std::mt19937_64 random_;
  bool sequential_;
  std::vector<std::optional<Pending>> pending_;
  int started_ = 0;
  uint64_t time_ = 0;
  uint64_t version_ = 0;
  std::string value_;
};

TEST(LinearizabilityCheckerTest, GeneratedConcurrentHistoriesAreLinearizable) {
  for (uint64_t seed = 1; seed <= 300; seed++) {
    const History history = HistoryGenerator(seed, 4, false).Generate(60);
    const CheckResult result = CheckLinearizable(history);
    ASSERT_TRUE(result.ok) << "seed " << seed << ": " << result.explanation;
  }
}

TEST(LinearizabilityCheckerTest, LongHighlyConcurrentHistoryIsChecked) {
  // About 300 operations of 8 clients on one key, the size a simulation run gives.
  for (uint64_t seed = 1; seed <= 5; seed++) {
    const History history = HistoryGenerator(seed, 8, false).Generate(300);
    const CheckResult result = CheckLinearizable(history);
    ASSERT_TRUE(result.ok) << "seed " << seed << ": " << result.explanation;
    EXPECT_FALSE(result.inconclusive);
    EXPECT_EQ(result.operations_checked,
              history.operations.size() -
                  std::count_if(history.operations.begin(), history.operations.end(),
                                [](const RowOperation& operation) {
                                  return operation.kind == OperationKind::kRead &&
                                         operation.outcome == Outcome::kUnknown;
                                }));
  }
}

// Mutates one known result of a history into one that no register could have given.
void MutateImpossibly(History& history, std::mt19937_64& random) {
  std::vector<size_t> known;
  for (size_t i = 0; i < history.operations.size(); i++) {
    if (history.operations[i].outcome != Outcome::kUnknown) known.push_back(i);
  }
  ASSERT_FALSE(known.empty());
  RowOperation& operation = history.operations[known[random() % known.size()]];
  switch (operation.kind) {
    case OperationKind::kRead:
      operation.outcome = Outcome::kOk;
      operation.result_version += 1;
      operation.result_value = "never written";
      break;
    case OperationKind::kCompareAndSet:
      if (operation.outcome == Outcome::kOk) {
        operation.result_version += 1;  // A version skip.
      } else {
        operation.outcome = Outcome::kOk;  // Succeeds with a value nobody reads...
        operation.result_version = operation.expected_version + 2;  // ...and skips a version.
      }
      break;
    case OperationKind::kCompareAndDelete:
      // A delete of a version the row never had.
      operation.expected_version = 1000;
      operation.outcome = Outcome::kOk;
      break;
  }
}

TEST(LinearizabilityCheckerTest, ImpossibleMutationsOfConcurrentHistoriesAreCaught) {
  std::mt19937_64 random(7);
  for (uint64_t seed = 1; seed <= 200; seed++) {
    History history = HistoryGenerator(seed, 4, false).Generate(40);
    MutateImpossibly(history, random);
    EXPECT_FALSE(CheckLinearizable(history).ok) << "seed " << seed;
  }
}

// In a sequential history every operation has exactly one right answer, so flipping any
// outcome must be caught.
TEST(LinearizabilityCheckerTest, AnyWrongResultOfASequentialHistoryIsCaught) {
  std::mt19937_64 random(11);
  int mutated = 0;
  for (uint64_t seed = 1; seed <= 200; seed++) {
    History history = HistoryGenerator(seed, 3, true).Generate(30);
    ASSERT_TRUE(CheckLinearizable(history).ok) << "seed " << seed;
    RowOperation& operation = history.operations[random() % history.operations.size()];
    if (operation.kind == OperationKind::kRead) {
      if (operation.outcome == Outcome::kOk) {
        operation.outcome = Outcome::kNotFound;
        operation.result_version = 0;
        operation.result_value.clear();
      } else {
        operation.outcome = Outcome::kOk;
        operation.result_version = 1;
      }
    } else if (operation.outcome == Outcome::kOk) {
      operation.outcome = Outcome::kAborted;
      operation.result_version = 0;
    } else {
      operation.outcome = Outcome::kOk;
      operation.result_version =
          operation.kind == OperationKind::kCompareAndSet ? operation.expected_version + 1 : 0;
    }
    mutated++;
    EXPECT_FALSE(CheckLinearizable(history).ok)
        << "seed " << seed << ": " << DescribeOperation(operation);
  }
  EXPECT_EQ(mutated, 200);
}

}  // namespace
}  // namespace weft::sim
