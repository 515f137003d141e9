// The simulator itself: a seed replays the same run event for event, and a world with a fault
// the ring does not claim to survive (a disk that forgets synced rows) makes seeds fail.
#include "sim/simulation.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace weft::sim {
namespace {

SimOptions Options(uint64_t seed) {
  SimOptions options;
  options.seed = seed;
  options.nodes = 3;
  options.operations = 40;
  options.membership_changes = 1;
  options.faults = FaultProfileNamed("all").value();
  return options;
}

// Runs one seed with the trace captured.
std::string TracedRun(SimOptions options, SimReport* report) {
  std::FILE* trace = std::tmpfile();
  EXPECT_NE(trace, nullptr);
  options.verbose = true;
  options.trace = trace;
  *report = RunSimulation(options);
  std::string text;
  std::rewind(trace);
  char buffer[65536];
  size_t read_bytes = 0;
  while ((read_bytes = std::fread(buffer, 1, sizeof(buffer), trace)) > 0) {
    text.append(buffer, read_bytes);
  }
  std::fclose(trace);
  return text;
}

TEST(SimulationTest, ASeedReplaysTheSameRun) {
  for (uint64_t seed : {3, 11}) {
    SimReport first;
    SimReport second;
    const std::string trace = TracedRun(Options(seed), &first);
    EXPECT_EQ(trace, TracedRun(Options(seed), &second)) << "seed " << seed;
    ASSERT_TRUE(first.ok) << first.failure;
    EXPECT_EQ(first.ticks, second.ticks);
    EXPECT_EQ(first.messages_sent, second.messages_sent);
    EXPECT_EQ(first.operations_ok, second.operations_ok);
    EXPECT_EQ(first.joins, 1u);
    EXPECT_EQ(first.leaves, 1u);
    EXPECT_GT(trace.size(), 10000u);
  }
  SimReport other;
  SimReport again;
  EXPECT_NE(TracedRun(Options(4), &other), TracedRun(Options(3), &again));
}

TEST(SimulationTest, ADiskThatForgetsSyncedRowsIsCaught) {
  int failures = 0;
  std::string first_failure;
  for (uint64_t seed = 1; seed <= 200 && failures < 3; seed++) {
    SimOptions options = Options(seed);
    options.operations = 150;
    options.membership_changes = -1;
    options.forget_synced_rows_on_crash = true;
    const SimReport report = RunSimulation(options);
    if (report.ok) continue;
    failures++;
    if (first_failure.empty()) first_failure = report.failure;
  }
  EXPECT_EQ(failures, 3) << "lost synced rows went unnoticed";
  EXPECT_TRUE(first_failure.find("not linearizable") != std::string::npos ||
              first_failure.find("replicas hold") != std::string::npos)
      << first_failure;
}

TEST(SimulationTest, UnknownProfileIsRefused) {
  EXPECT_FALSE(FaultProfileNamed("gentle").ok());
  for (const std::string& name : FaultProfileNames()) EXPECT_TRUE(FaultProfileNamed(name).ok());
}

}  // namespace
}  // namespace weft::sim
