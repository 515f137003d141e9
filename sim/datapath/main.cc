// weft-sim-data: the replicated data path's deterministic simulation for one seed (--seed, to
// replay a failure with --verbose) or a range of seeds (--seeds). Every failure prints its seed
// and the command that replays it. docs/simulation.md, "The replicated data path".
//
// Exit codes: 0 every seed passed, 1 a seed failed (or the seeds did not exercise the faults),
// 2 usage error.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "sim/datapath/data_world.h"

namespace {

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
  uint64_t failures_shown_max = 5;
};

std::string ReplayCommand(const std::string& program,
                          const weft::sim::datapath::DataSimOptions& options, const Flags& flags) {
  std::string command = fmt::format("{} --nodes {} --rf {} --seed {}", program, options.nodes,
                                    options.rf, options.seed);
  if (options.clients != 0) command += fmt::format(" --clients {}", options.clients);
  if (options.operations != weft::sim::datapath::DataSimOptions{}.operations) {
    command += fmt::format(" --ops {}", options.operations);
  }
  if (flags.faults != "all") command += fmt::format(" --faults {}", flags.faults);
  return command + " --verbose";
}

// A run of many seeds must have exercised the faults it claims to survive.
std::string CheckExercised(const weft::sim::datapath::DataSimReport& total,
                           const weft::sim::datapath::DataFaults& faults, uint64_t seeds) {
  if (seeds < 50) return "";
  if (total.writes_ok * 10 < (total.writes_ok + total.writes_unknown) * 3) {
    return "fewer than 30 % of the writes were acknowledged";
  }
  if (total.writes_direct == 0) return "no writes went straight to the egroups";
  if (faults.crashes_per_10k_ticks_max > 0 &&
      (total.crashes == 0 || total.takeovers == 0 || total.torn_or_lost_records == 0 ||
       total.pauses == 0 || total.stale_epoch_refusals == 0)) {
    return "no crashes, pauses, takeovers, torn writes or stale-epoch refusals";
  }
  if (faults.bit_rots_per_10k_ticks_max > 0 && total.repairs == 0) return "no repairs";
  if (faults.partitions_per_10k_ticks_max > 0 &&
      (total.partitions == 0 || total.session_expiries == 0 || total.peer_changes == 0 ||
       total.replica_replacements == 0 || total.messages_delayed_long == 0)) {
    return "no partitions, expired sessions, peer changes, replica copies or long delays";
  }
  return "";
}

void PrintSummary(const weft::sim::datapath::DataSimReport& total,
                  const weft::sim::datapath::DataSimOptions& options, const std::string& faults,
                  uint64_t seeds, uint64_t failures, double seconds) {
  fmt::print(
      "{} seeds ({} nodes, RF {}, faults {}): {} failed; writes: {} ok ({} straight to the "
      "egroups), {} unknown, {} unavailable; reads: {} ok, {} failed; {} crashes ({} unsynced "
      "OpLog records lost or torn), {} "
      "pauses, "
      "{} partitions, {} session expiries, {} takeovers, {} OpLog peer changes, {} replica copies, "
      "{} bit rots, {} repairs, {} stale-epoch refusals; {} messages ({} dropped, {} held long); "
      "{} operations "
      "checked; {:.1f} s ({:.1f} seeds/s)\n",
      seeds, options.nodes, options.rf, faults, failures, total.writes_ok, total.writes_direct,
      total.writes_unknown, total.writes_unavailable, total.reads_ok, total.reads_failed,
      total.crashes, total.torn_or_lost_records, total.pauses, total.partitions,
      total.session_expiries, total.takeovers, total.peer_changes, total.replica_replacements,
      total.bit_rots, total.repairs, total.stale_epoch_refusals, total.messages,
      total.messages_dropped, total.messages_delayed_long, total.operations_checked, seconds,
      seconds > 0 ? static_cast<double>(seeds) / seconds : 0);
}

int Run(int argc, char** argv) {
  CLI::App app(
      "weft-sim-data: the replicated data path's deterministic simulation (docs/simulation.md)",
      "weft-sim-data");
  weft::sim::datapath::DataSimOptions options;
  Flags flags;
  app.add_option("--seed", flags.seed, "Run this one seed (replays a failure)");
  app.add_option("--seeds", flags.seeds, "Run this many seeds, from --first-seed");
  app.add_option("--first-seed", flags.first_seed, "The first seed of --seeds")->default_val(1);
  app.add_option("--nodes", options.nodes, "Nodes")->default_val(3)->check(CLI::Range(2, 8));
  app.add_option("--rf", options.rf, "Replication factor")
      ->default_val(2)
      ->check(CLI::IsMember({2, 3}));
  app.add_option("--clients", options.clients, "Concurrent clients (0: the seed picks 2..4)")
      ->default_val(0)
      ->check(CLI::Range(0, 32));
  app.add_option("--ops", options.operations, "Operations per client")
      ->default_val(options.operations)
      ->check(CLI::Range(1, 100000));
  app.add_option("--faults", flags.faults, "Fault profile")
      ->default_val(flags.faults)
      ->check(CLI::IsMember({"none", "network", "crash", "all"}));
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
    std::fprintf(stderr, "weft-sim-data: give exactly one of --seed S and --seeds N\n");
    return 2;
  }
  if (options.rf > options.nodes) {
    std::fprintf(stderr, "weft-sim-data: --rf must not exceed --nodes\n");
    return 2;
  }
  options.faults = weft::sim::datapath::DataFaultProfile(flags.faults);
  const uint64_t first = flags.seed != 0 ? flags.seed : flags.first_seed;
  const uint64_t count = flags.seed != 0 ? 1 : flags.seeds;
  std::signal(SIGABRT, OnAbort);
  const auto start = std::chrono::steady_clock::now();
  weft::sim::datapath::DataSimReport total;
  uint64_t failures = 0;
  uint64_t ran = 0;
  for (uint64_t seed = first; seed < first + count && failures < flags.failures_shown_max; seed++) {
    options.seed = seed;
    const std::string replay = ReplayCommand(argv[0], options, flags);
    const auto written = fmt::format_to_n(abort_line, sizeof(abort_line) - 1,
                                          "seed {} aborted; replay: {}\n", seed, replay);
    *written.out = '\0';
    const weft::sim::datapath::DataSimReport report =
        weft::sim::datapath::RunDataSimulation(options);
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
  const std::string weak = CheckExercised(total, options.faults, ran);
  if (!weak.empty()) {
    std::fprintf(stderr, "the seeds did not exercise the data path: %s\n", weak.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
