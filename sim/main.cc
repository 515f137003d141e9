// weft-sim: runs the metadata ring's deterministic simulation for one seed (--seed, for
// replaying a failure, usually with --verbose) or for a range of seeds (--seeds). Every failure
// prints its seed and the command that replays it. docs/simulation.md.
//
// Exit codes: 0 every seed passed, 1 a seed failed (or the seeds did not exercise the ring),
// 2 usage error.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "sim/simulation.h"

namespace {

// The line the SIGABRT handler prints when a RingNode assertion (or the simulator's) kills the
// process: the seed would otherwise be lost in a run of many.
char abort_line[1024];

extern "C" void OnAbort(int signal_number) {
  const ssize_t written = write(STDERR_FILENO, abort_line, std::strlen(abort_line));
  (void)written;
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

struct Flags {
  uint64_t seed = 0;
  uint64_t seeds = 0;
  uint64_t first_seed = 1;
  std::string faults = "all";
  std::string membership = "auto";
  bool no_scan_absence = false;
  uint64_t failures_shown_max = 5;
};

std::string ReplayCommand(const std::string& program, const weft::sim::SimOptions& options,
                          const Flags& flags) {
  std::string command =
      fmt::format("{} --nodes {} --seed {}", program, options.nodes, options.seed);
  if (options.replicas != 0) command += fmt::format(" --replicas {}", options.replicas);
  if (options.clients != 0) command += fmt::format(" --clients {}", options.clients);
  if (options.operations != weft::sim::SimOptions{}.operations) {
    command += fmt::format(" --ops {}", options.operations);
  }
  if (options.keys != weft::sim::SimOptions{}.keys)
    command += fmt::format(" --keys {}", options.keys);
  if (flags.faults != "all") command += fmt::format(" --faults {}", flags.faults);
  if (flags.membership != "auto") command += fmt::format(" --membership {}", flags.membership);
  if (flags.no_scan_absence) command += " --no-scan-absence";
  if (options.write_error_per_mille != 0) {
    command += fmt::format(" --write-errors {}", options.write_error_per_mille);
  }
  return command + " --verbose";
}

// A run of many seeds must have exercised what it claims to test, or passing means little.
std::string CheckExercised(const weft::sim::SimReport& total, const weft::sim::SimOptions& options,
                           const Flags& flags, uint64_t seeds) {
  if (seeds < 50) return "";
  const uint64_t issued = total.operations_ok + total.operations_aborted +
                          total.operations_not_found + total.operations_unknown;
  if (total.operations_ok * 10 < issued * 3) {
    return fmt::format("only {} of {} operations succeeded", total.operations_ok, issued);
  }
  if (total.operations_aborted == 0 || total.scans_ok == 0) return "no aborts or no scans";
  if (flags.membership != "off" && (total.joins == 0 || total.leaves == 0)) {
    return "no joins or no leaves";
  }
  if (options.faults.crash_per_100k_max > 0 && total.crashes == 0) return "no crashes";
  if (options.faults.partition_per_100k_max > 0 && total.partitions == 0) return "no partitions";
  if (options.faults.clock_jump_per_100k_max > 0 && total.clock_jumps == 0) {
    return "no clock jumps";
  }
  return "";
}

void PrintSummary(const weft::sim::SimReport& total, const weft::sim::SimOptions& options,
                  const std::string& faults, uint64_t seeds, uint64_t failures, double seconds) {
  fmt::print(
      "{} seeds ({} nodes, faults {}): {} failed; operations: {} ok, {} not found, {} aborted, {} "
      "unknown; {} scans; {} crashes, {} write errors, {} partitions, {} clock jumps, {} joins, {} "
      "leaves ({} keys "
      "streamed), {} epoch mismatches; {} messages ({} dropped); {} Paxos attempts; {} operations "
      "checked; {:.1f} s\n",
      seeds, options.nodes, faults, failures, total.operations_ok, total.operations_not_found,
      total.operations_aborted, total.operations_unknown, total.scans_ok, total.crashes,
      total.write_errors, total.partitions, total.clock_jumps, total.joins, total.leaves,
      total.stream_keys_repaired, total.epoch_mismatches, total.messages_sent,
      total.messages_dropped, total.paxos_attempts, total.checked_operations, seconds);
}

int Run(int argc, char** argv) {
  CLI::App app("weft-sim: the metadata ring's deterministic simulation (docs/simulation.md)",
               "weft-sim");
  weft::sim::SimOptions options;
  Flags flags;
  app.add_option("--seed", flags.seed, "Run this one seed (replays a failure)");
  app.add_option("--seeds", flags.seeds, "Run this many seeds, from --first-seed");
  app.add_option("--first-seed", flags.first_seed, "The first seed of --seeds")->default_val(1);
  app.add_option("--nodes", options.nodes, "Initial ring members")
      ->default_val(3)
      ->check(CLI::Range(1, 7));
  app.add_option("--replicas", options.replicas, "Replicas per row (0: the seed picks)")
      ->default_val(0)
      ->check(CLI::IsMember({0, 1, 3, 5, 7}));
  app.add_option("--clients", options.clients, "Concurrent clients (0: the seed picks 3..6)")
      ->default_val(0)
      ->check(CLI::Range(0, 64));
  app.add_option("--ops", options.operations, "Operations per client")
      ->default_val(options.operations)
      ->check(CLI::Range(1, 100000));
  app.add_option("--keys", options.keys, "Rows under the shared prefix")
      ->default_val(options.keys)
      ->check(CLI::Range(1, 1000));
  app.add_option("--faults", flags.faults, "Fault profile")
      ->default_val(flags.faults)
      ->check(CLI::IsMember(weft::sim::FaultProfileNames()));
  app.add_option("--membership", flags.membership,
                 "Join and remove a node during the workload: auto (half the seeds), on, off")
      ->default_val(flags.membership)
      ->check(CLI::IsMember({"auto", "on", "off"}));
  app.add_option("--write-errors", options.write_error_per_mille,
                 "Writes that fail, per mille (0: none; other decisions stay the same)")
      ->default_val(0)
      ->check(CLI::Range(0, 500));
  app.add_flag("--no-scan-absence", flags.no_scan_absence,
               "Do not check that keys a scan skipped were absent at some point of it");
  app.add_flag("--verbose", options.verbose, "Trace every event (for one seed)");
  app.add_option("--failures-shown", flags.failures_shown_max,
                 "Stop a run of many seeds after this many failures")
      ->default_val(flags.failures_shown_max);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : 2;
  }
  if ((flags.seed == 0) == (flags.seeds == 0)) {
    std::fprintf(stderr, "weft-sim: give exactly one of --seed S and --seeds N\n");
    return 2;
  }
  options.faults = weft::sim::FaultProfileNamed(flags.faults).value();
  options.membership_changes = flags.membership == "auto" ? -1 : flags.membership == "on" ? 1 : 0;
  options.scan_absence_checks = !flags.no_scan_absence;

  const uint64_t first = flags.seed != 0 ? flags.seed : flags.first_seed;
  const uint64_t count = flags.seed != 0 ? 1 : flags.seeds;
  std::signal(SIGABRT, OnAbort);
  const auto start = std::chrono::steady_clock::now();
  weft::sim::SimReport total;
  uint64_t failures = 0;
  uint64_t ran = 0;
  for (uint64_t seed = first; seed < first + count && failures < flags.failures_shown_max; seed++) {
    options.seed = seed;
    const std::string replay = ReplayCommand(argv[0], options, flags);
    const auto written = fmt::format_to_n(abort_line, sizeof(abort_line) - 1,
                                          "seed {} aborted; replay: {}\n", seed, replay);
    *written.out = '\0';
    const weft::sim::SimReport report = weft::sim::RunSimulation(options);
    total.Add(report);
    ran++;
    if (!report.ok) {
      failures++;
      std::fprintf(stderr, "seed %llu failed: %s; replay: %s\n",
                   static_cast<unsigned long long>(seed), report.failure.c_str(), replay.c_str());
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  PrintSummary(total, options, flags.faults, ran, failures, seconds);
  if (failures != 0) return 1;
  const std::string weak = CheckExercised(total, options, flags, ran);
  if (!weak.empty()) {
    std::fprintf(stderr, "the seeds did not exercise the ring: %s\n", weak.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
