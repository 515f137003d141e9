// extent_store_bench: weft's extent store against raw io_uring, in one run, on one O_DIRECT file.
//
// The raw baseline is what a durable write costs without weft: a UringDevice write followed by a
// flush (fdatasync), `queue_depth` such chains in flight. The weft side is ExtentStore::Write,
// whose completion also means durable (data flushed, metadata committed). Reads are plain reads
// of written data on both sides. Each workload alternates raw and weft `--rounds` times, because
// this machine's disk is noisy, and the table reports medians.
//
// Layout: both sides use the same file. The raw side works on its first 256 MiB. The weft side
// formats a blockstore over the whole file before each of its runs (the raw runs in between
// overwrite it), creates 64 egroups of 4 MiB (the same 256 MiB working set) and fills them, so
// that reads find data and writes replace blocks as they would in steady state.
//
// Usage: extent_store_bench [--path FILE] [--size-mib N] [--seconds S] [--rounds N]
//                           [--filter TEXT] [--json FILE]
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/status.h"
#include "blockstore/blockstore.h"
#include "env/uring_device.h"
#include "extent_store/extent_store.h"

namespace weft::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kEgroupCount = 64;
constexpr uint64_t kWorkingSetBytes = kEgroupCount * extent_store::kEgroupMaxBytes;  // 256 MiB.
constexpr uint64_t kFillChunkBytes = 1ull << 20;
constexpr uint32_t kFillQueueDepth = 8;
constexpr uint64_t kRegisteredBufferBytes = 32ull << 20;
constexpr uint64_t kSeed = 20261121;

struct Flags {
  std::string path = "/var/tmp/weft-bench.img";
  uint64_t size_mib = 1024;
  double seconds = 5;
  int rounds = 3;
  std::string filter;  // Runs only the workloads whose name contains this.
  std::string json_path;
};

enum class Operation { kWrite, kRead };
// What the weft figure is held to: its mean latency at most `target_ratio` times raw, or its IOPS
// at least `target_ratio` times raw.
enum class Goal { kLatency, kIops };

struct Workload {
  std::string name;
  Operation operation;
  uint64_t io_bytes;
  uint32_t queue_depth;
  bool sequential;
  Goal goal;
  double target_ratio;
};

std::vector<Workload> Workloads() {
  return {
      {"4 KiB random write QD1", Operation::kWrite, 4096, 1, false, Goal::kLatency, 2.0},
      {"4 KiB random write QD32", Operation::kWrite, 4096, 32, false, Goal::kIops, 0.8},
      {"4 KiB random read QD1", Operation::kRead, 4096, 1, false, Goal::kIops, 0.9},
      {"4 KiB random read QD32", Operation::kRead, 4096, 32, false, Goal::kIops, 0.9},
      {"1 MiB sequential write QD4", Operation::kWrite, 1 << 20, 4, true, Goal::kIops, 0.9},
  };
}

std::string TargetText(const Workload& workload) {
  if (workload.goal == Goal::kLatency) {
    return fmt::format("mean latency <= {:.1f}x raw", workload.target_ratio);
  }
  return fmt::format("IOPS >= {:.1f}x raw", workload.target_ratio);
}

struct Measurement {
  double iops = 0;
  double mean_latency_us = 0;
  double p99_latency_us = 0;
  uint64_t operations = 0;
};

void PrintUsage() {
  std::fprintf(stderr,
               "usage: extent_store_bench [--path FILE] [--size-mib N] [--seconds S] "
               "[--rounds N] [--filter TEXT] [--json FILE]\n");
}

// Accepts "--name value" and "--name=value".
Result<Flags> ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string name = argv[i];
    std::string value;
    if (name == "--help" || name == "-h") return Status::InvalidArgument("help");
    if (const size_t equals = name.find('='); equals != std::string::npos) {
      value = name.substr(equals + 1);
      name.resize(equals);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return Status::InvalidArgument(fmt::format("{} needs a value", name));
    }
    try {
      if (name == "--path") {
        flags.path = value;
      } else if (name == "--size-mib") {
        flags.size_mib = std::stoull(value);
      } else if (name == "--seconds") {
        flags.seconds = std::stod(value);
      } else if (name == "--rounds") {
        flags.rounds = std::stoi(value);
      } else if (name == "--filter") {
        flags.filter = value;
      } else if (name == "--json") {
        flags.json_path = value;
      } else {
        return Status::InvalidArgument(fmt::format("unknown flag {}", name));
      }
    } catch (const std::exception&) {
      return Status::InvalidArgument(fmt::format("bad value '{}' for {}", value, name));
    }
  }
  if (flags.seconds <= 0 || flags.rounds < 1) {
    return Status::InvalidArgument("--seconds and --rounds must be positive");
  }
  return flags;
}

// Picks the logical offset, within the working set, of each operation: uniformly random and
// aligned to the I/O size, or sequential and wrapping. The same stream feeds both sides.
class OffsetPicker {
 public:
  OffsetPicker(const Workload& workload, uint64_t seed)
      : io_bytes_(workload.io_bytes), sequential_(workload.sequential), random_(seed) {}

  uint64_t Next() {
    if (sequential_) {
      const uint64_t offset_bytes = cursor_bytes_;
      cursor_bytes_ = (cursor_bytes_ + io_bytes_) % kWorkingSetBytes;
      return offset_bytes;
    }
    std::uniform_int_distribution<uint64_t> slot(0, kWorkingSetBytes / io_bytes_ - 1);
    return slot(random_) * io_bytes_;
  }

 private:
  uint64_t io_bytes_;
  bool sequential_;
  std::mt19937_64 random_;
  uint64_t cursor_bytes_ = 0;
};

// Buffers with a random pattern (no store may take a shortcut for zero blocks), from the device's
// registered arena while it has room.
std::vector<AlignedBuffer> MakeBuffers(env::BlockDevice& device, uint32_t count, uint64_t bytes) {
  std::vector<AlignedBuffer> buffers;
  buffers.reserve(count);
  std::mt19937_64 random(kSeed + count);
  for (uint32_t i = 0; i < count; ++i) {
    buffers.push_back(device.AllocateBuffer(bytes));
    for (size_t word = 0; word + 8 <= buffers.back().size(); word += 8) {
      const uint64_t value = random();
      std::memcpy(buffers.back().data() + word, &value, sizeof(value));
    }
  }
  return buffers;
}

Measurement Summarize(std::vector<double>& latencies_us, uint64_t window_completions,
                      double seconds) {
  Measurement measurement;
  measurement.operations = window_completions;
  measurement.iops = static_cast<double>(window_completions) / seconds;
  if (latencies_us.empty()) return measurement;
  double total_us = 0;
  for (double latency_us : latencies_us) total_us += latency_us;
  measurement.mean_latency_us = total_us / static_cast<double>(latencies_us.size());
  const size_t p99_index = latencies_us.size() * 99 / 100;
  std::nth_element(latencies_us.begin(), latencies_us.begin() + p99_index, latencies_us.end());
  measurement.p99_latency_us = latencies_us[p99_index];
  return measurement;
}

// Issues one operation for `slot`; `done` runs (inside a poll) when it has completed.
using IssueFunction = std::function<void(uint32_t slot, env::IoCompletion done)>;
using PollFunction = std::function<void()>;

// Keeps `queue_depth` operations in flight, each slot reissuing from its completion, for a warm-up
// and then `seconds`. IOPS counts completions inside the window; latency covers the operations
// that both started and finished inside it.
Result<Measurement> RunClosedLoop(uint32_t queue_depth, double seconds, const IssueFunction& issue,
                                  const PollFunction& poll) {
  const auto warmup = std::chrono::duration<double>(std::min(1.0, seconds / 5));
  const auto window_start = Clock::now() + std::chrono::duration_cast<Clock::duration>(warmup);
  const auto window_end = window_start + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(seconds));
  std::vector<Clock::time_point> issued_at(queue_depth);
  std::vector<double> latencies_us;
  latencies_us.reserve(1 << 20);
  uint64_t window_completions = 0;
  uint32_t active = 0;
  Status first_error;
  std::function<void(uint32_t)> launch = [&](uint32_t slot) {
    ++active;
    issued_at[slot] = Clock::now();
    issue(slot, [&, slot](Status status) {
      --active;
      const Clock::time_point now = Clock::now();
      if (!status.ok()) {
        if (first_error.ok()) first_error = std::move(status);
        return;
      }
      if (now >= window_start && now <= window_end) {
        ++window_completions;
        if (issued_at[slot] >= window_start) {
          latencies_us.push_back(
              std::chrono::duration<double, std::micro>(now - issued_at[slot]).count());
        }
      }
      if (now < window_end && first_error.ok()) launch(slot);
    });
  };
  for (uint32_t slot = 0; slot < queue_depth; ++slot) launch(slot);
  while (active > 0) poll();
  if (!first_error.ok()) return first_error;
  return Summarize(latencies_us, window_completions, seconds);
}

using WriteFunction =
    std::function<void(uint64_t offset_bytes, std::span<const std::byte>, env::IoCompletion)>;

// Writes [0, total_bytes) in 1 MiB chunks, kFillQueueDepth in flight.
Status Fill(env::BlockDevice& device, uint64_t total_bytes, const WriteFunction& write,
            const PollFunction& poll) {
  std::vector<AlignedBuffer> buffers = MakeBuffers(device, kFillQueueDepth, kFillChunkBytes);
  uint64_t next_offset_bytes = 0;
  uint32_t active = 0;
  Status first_error;
  std::function<void(uint32_t)> launch = [&](uint32_t slot) {
    if (next_offset_bytes >= total_bytes || !first_error.ok()) return;
    const uint64_t offset_bytes = next_offset_bytes;
    next_offset_bytes += kFillChunkBytes;
    ++active;
    write(offset_bytes, buffers[slot].span(), [&, slot](Status status) {
      --active;
      if (!status.ok() && first_error.ok()) first_error = std::move(status);
      launch(slot);
    });
  };
  for (uint32_t slot = 0; slot < kFillQueueDepth; ++slot) launch(slot);
  while (active > 0) poll();
  return first_error;
}

Result<Measurement> MeasureRaw(env::UringDevice& device, const Workload& workload, double seconds,
                               uint64_t seed) {
  std::vector<AlignedBuffer> buffers = MakeBuffers(device, workload.queue_depth, workload.io_bytes);
  OffsetPicker picker(workload, seed);
  const IssueFunction issue = [&](uint32_t slot, env::IoCompletion done) {
    const uint64_t offset_bytes = picker.Next();
    if (workload.operation == Operation::kRead) {
      device.SubmitRead(offset_bytes, buffers[slot].span(), std::move(done));
      return;
    }
    device.SubmitWrite(offset_bytes, buffers[slot].span(),
                       [&device, done = std::move(done)](Status status) mutable {
                         if (!status.ok()) {
                           done(std::move(status));
                           return;
                         }
                         // Durable, like an extent store write: the flush is part of the op.
                         device.SubmitFlush(std::move(done));
                       });
  };
  return RunClosedLoop(workload.queue_depth, seconds, issue, [&] { device.Poll(/*wait=*/true); });
}

// The weft stack over the shared device. Members are destroyed in reverse order: the extent
// store before the blockstore it uses.
struct WeftStack {
  std::unique_ptr<blockstore::Blockstore> blockstore;
  std::unique_ptr<extent_store::ExtentStore> store;
};

// Formats the device, opens a blockstore and a fresh extent store on it, and fills the egroups.
Result<WeftStack> BuildWeftStack(env::UringDevice& device, const std::string& metadata_path) {
  std::error_code error;
  std::filesystem::remove_all(metadata_path, error);
  if (error) {
    return Status::IOError(fmt::format("removing {}: {}", metadata_path, error.message()));
  }
  WEFT_RETURN_IF_ERROR(blockstore::Blockstore::Format(device, blockstore::FormatOptions{}));
  WeftStack stack;
  WEFT_ASSIGN_OR_RETURN(stack.blockstore, blockstore::Blockstore::Open(device));
  extent_store::ExtentStoreOptions options;
  options.metadata_path = metadata_path;
  WEFT_ASSIGN_OR_RETURN(stack.store, extent_store::ExtentStore::Open(*stack.blockstore, options));
  for (extent_store::EgroupId id = 0; id < kEgroupCount; ++id) {
    WEFT_RETURN_IF_ERROR(stack.store->CreateEgroup(id));
  }
  extent_store::ExtentStore& store = *stack.store;
  const WriteFunction write = [&](uint64_t offset_bytes, std::span<const std::byte> data,
                                  env::IoCompletion done) {
    store.Write(offset_bytes / extent_store::kEgroupMaxBytes,
                offset_bytes % extent_store::kEgroupMaxBytes, data, std::move(done));
  };
  WEFT_RETURN_IF_ERROR(Fill(device, kWorkingSetBytes, write, [&] { store.Poll(/*wait=*/true); }));
  return stack;
}

Status CloseWeftStack(WeftStack& stack) {
  stack.store.reset();
  Status closed = stack.blockstore->Close();
  stack.blockstore.reset();
  return closed;
}

Result<Measurement> MeasureWeft(env::UringDevice& device, const Workload& workload,
                                const Flags& flags, uint64_t seed) {
  WEFT_ASSIGN_OR_RETURN(WeftStack stack, BuildWeftStack(device, flags.path + ".meta"));
  std::vector<AlignedBuffer> buffers = MakeBuffers(device, workload.queue_depth, workload.io_bytes);
  OffsetPicker picker(workload, seed);
  extent_store::ExtentStore& store = *stack.store;
  const IssueFunction issue = [&](uint32_t slot, env::IoCompletion done) {
    const uint64_t offset_bytes = picker.Next();
    const extent_store::EgroupId egroup_id = offset_bytes / extent_store::kEgroupMaxBytes;
    const uint64_t within_bytes = offset_bytes % extent_store::kEgroupMaxBytes;
    if (workload.operation == Operation::kRead) {
      store.Read(egroup_id, within_bytes, buffers[slot].span(), std::move(done));
    } else {
      store.Write(egroup_id, within_bytes, buffers[slot].span(), std::move(done));
    }
  };
  Result<Measurement> measurement =
      RunClosedLoop(workload.queue_depth, flags.seconds, issue, [&] { store.Poll(/*wait=*/true); });
  buffers.clear();
  // How the work was batched: the figures that explain a write result.
  const extent_store::ExtentStoreStats stats = store.stats();
  std::fprintf(stderr,
               "weft %s: %lu writes in %lu group commits (%.1f per commit), %lu journal pages, "
               "%lu checkpoints, %lu flushes\n",
               workload.name.c_str(), static_cast<unsigned long>(stats.writes),
               static_cast<unsigned long>(stats.group_commits),
               stats.group_commits ? double(stats.writes) / double(stats.group_commits) : 0.0,
               static_cast<unsigned long>(stats.blockstore.journal_pages_written),
               static_cast<unsigned long>(stats.blockstore.checkpoints_written),
               static_cast<unsigned long>(stats.blockstore.flushes));
  const Status closed = CloseWeftStack(stack);
  if (!measurement.ok()) return measurement;
  if (!closed.ok()) return closed;
  return measurement;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t middle = values.size() / 2;
  return values.size() % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

// The median of each figure over the rounds, taken separately.
Measurement MedianOf(const std::vector<Measurement>& rounds) {
  auto median_of = [&](double Measurement::*field) {
    std::vector<double> values;
    values.reserve(rounds.size());
    for (const Measurement& round : rounds) values.push_back(round.*field);
    return Median(std::move(values));
  };
  Measurement median;
  median.iops = median_of(&Measurement::iops);
  median.mean_latency_us = median_of(&Measurement::mean_latency_us);
  median.p99_latency_us = median_of(&Measurement::p99_latency_us);
  return median;
}

struct WorkloadResult {
  Workload workload;
  std::vector<Measurement> raw_rounds;
  std::vector<Measurement> weft_rounds;
  Measurement raw;
  Measurement weft;
  double ratio = 0;  // weft IOPS / raw IOPS.
  bool met = false;
};

void Evaluate(WorkloadResult& result) {
  result.raw = MedianOf(result.raw_rounds);
  result.weft = MedianOf(result.weft_rounds);
  result.ratio = result.raw.iops > 0 ? result.weft.iops / result.raw.iops : 0;
  if (result.workload.goal == Goal::kLatency) {
    result.met =
        result.weft.mean_latency_us <= result.workload.target_ratio * result.raw.mean_latency_us;
  } else {
    result.met = result.ratio >= result.workload.target_ratio;
  }
}

std::string MarkdownTable(const std::vector<WorkloadResult>& results) {
  std::string table =
      "| workload | raw IOPS | weft IOPS | ratio | raw mean/p99 latency µs | "
      "weft mean/p99 latency µs | target | met? |\n"
      "|---|---:|---:|---:|---:|---:|---|---|\n";
  for (const WorkloadResult& result : results) {
    table += fmt::format(
        "| {} | {:.0f} | {:.0f} | {:.2f} | {:.0f} / {:.0f} | {:.0f} / {:.0f} | "
        "{} | {} |\n",
        result.workload.name, result.raw.iops, result.weft.iops, result.ratio,
        result.raw.mean_latency_us, result.raw.p99_latency_us, result.weft.mean_latency_us,
        result.weft.p99_latency_us, TargetText(result.workload), result.met ? "yes" : "no");
  }
  return table;
}

std::string MeasurementJson(const Measurement& measurement) {
  return fmt::format(R"({{"iops": {:.1f}, "mean_latency_us": {:.1f}, "p99_latency_us": {:.1f}}})",
                     measurement.iops, measurement.mean_latency_us, measurement.p99_latency_us);
}

std::string RoundsJson(const std::vector<Measurement>& rounds) {
  std::string json = "[";
  for (size_t i = 0; i < rounds.size(); ++i) {
    json += (i == 0 ? "" : ", ") + MeasurementJson(rounds[i]);
  }
  return json + "]";
}

// Names and paths here contain no characters that need JSON escaping beyond quotes/backslashes.
std::string JsonString(const std::string& text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "\"";
}

std::string ResultsJson(const Flags& flags, const std::vector<WorkloadResult>& results) {
  std::string json = fmt::format(
      "{{\n  \"path\": {},\n  \"size_mib\": {},\n  \"seconds\": {},\n  \"rounds\": {},\n"
      "  \"working_set_bytes\": {},\n  \"workloads\": [\n",
      JsonString(flags.path), flags.size_mib, flags.seconds, flags.rounds, kWorkingSetBytes);
  for (size_t i = 0; i < results.size(); ++i) {
    const WorkloadResult& result = results[i];
    json += fmt::format(
        "    {{\"name\": {}, \"io_bytes\": {}, \"queue_depth\": {}, \"target\": {}, "
        "\"met\": {}, \"ratio\": {:.3f},\n     \"raw\": {}, \"weft\": {},\n"
        "     \"raw_rounds\": {},\n     \"weft_rounds\": {}}}{}\n",
        JsonString(result.workload.name), result.workload.io_bytes, result.workload.queue_depth,
        JsonString(TargetText(result.workload)), result.met, result.ratio,
        MeasurementJson(result.raw), MeasurementJson(result.weft), RoundsJson(result.raw_rounds),
        RoundsJson(result.weft_rounds), i + 1 < results.size() ? "," : "");
  }
  return json + "  ]\n}\n";
}

void PrintMeasurement(const Workload& workload, int round, const char* side,
                      const Measurement& measurement) {
  std::fprintf(stderr, "  %s round %d %-4s: %9.0f IOPS, mean %7.0f us, p99 %7.0f us\n",
               workload.name.c_str(), round + 1, side, measurement.iops,
               measurement.mean_latency_us, measurement.p99_latency_us);
}

// Runs one workload `rounds` times, raw then weft each round.
Result<WorkloadResult> RunWorkload(env::UringDevice& device, const Workload& workload,
                                   const Flags& flags) {
  WorkloadResult result{workload};
  for (int round = 0; round < flags.rounds; ++round) {
    // Both sides see the same offsets in a round; rounds differ.
    const uint64_t seed = kSeed + static_cast<uint64_t>(round);
    Result<Measurement> raw = MeasureRaw(device, workload, flags.seconds, seed);
    if (!raw.ok()) return raw.status().WithContext(workload.name + " (raw)");
    PrintMeasurement(workload, round, "raw", *raw);
    result.raw_rounds.push_back(*raw);
    Result<Measurement> weft = MeasureWeft(device, workload, flags, seed);
    if (!weft.ok()) return weft.status().WithContext(workload.name + " (weft)");
    PrintMeasurement(workload, round, "weft", *weft);
    result.weft_rounds.push_back(*weft);
  }
  Evaluate(result);
  return result;
}

std::string KernelRelease() {
  utsname name{};
  return ::uname(&name) == 0 ? std::string(name.release) : std::string("unknown");
}

// Writes every byte of the device once, so that neither side pays for the file system's first
// write to a block (unwritten-extent conversion) during a measurement.
Status PrefillDevice(env::UringDevice& device) {
  const WriteFunction write = [&](uint64_t offset_bytes, std::span<const std::byte> data,
                                  env::IoCompletion done) {
    device.SubmitWrite(offset_bytes, data, std::move(done));
  };
  const uint64_t fill_bytes = device.size_bytes() / kFillChunkBytes * kFillChunkBytes;
  WEFT_RETURN_IF_ERROR(Fill(device, fill_bytes, write, [&] { device.Poll(/*wait=*/true); }));
  return env::FlushSync(device);
}

Result<std::vector<WorkloadResult>> RunAll(env::UringDevice& device, const Flags& flags) {
  std::vector<WorkloadResult> results;
  for (const Workload& workload : Workloads()) {
    if (!flags.filter.empty() && workload.name.find(flags.filter) == std::string::npos) continue;
    std::fprintf(stderr, "%s\n", workload.name.c_str());
    WEFT_ASSIGN_OR_RETURN(WorkloadResult result, RunWorkload(device, workload, flags));
    results.push_back(std::move(result));
  }
  return results;
}

Result<std::unique_ptr<env::UringDevice>> OpenDevice(const Flags& flags) {
  env::UringDeviceOptions options;
  options.file_size_bytes = flags.size_mib << 20;
  options.registered_buffer_bytes = kRegisteredBufferBytes;
  WEFT_ASSIGN_OR_RETURN(std::unique_ptr<env::UringDevice> device,
                        env::UringDevice::Open(flags.path, options));
  if (device->size_bytes() < 2 * kWorkingSetBytes) {
    return Status::InvalidArgument(fmt::format("{} bytes is too small; need at least {}",
                                               device->size_bytes(), 2 * kWorkingSetBytes));
  }
  std::fprintf(stderr, "extent_store_bench: %s (%llu MiB), kernel %s, %.1f s x %d rounds\n",
               flags.path.c_str(), static_cast<unsigned long long>(device->size_bytes() >> 20),
               KernelRelease().c_str(), flags.seconds, flags.rounds);
  WEFT_RETURN_IF_ERROR(PrefillDevice(*device).WithContext("prefill"));
  return device;
}

int Run(const Flags& flags) {
  struct stat existing {};
  const bool created = ::stat(flags.path.c_str(), &existing) != 0;
  Result<std::vector<WorkloadResult>> results = Status::Aborted("not run");
  {
    Result<std::unique_ptr<env::UringDevice>> device = OpenDevice(flags);
    results = device.ok() ? RunAll(**device, flags) : device.status();
  }  // The device closes here, before its files are removed.
  std::error_code error;
  std::filesystem::remove_all(flags.path + ".meta", error);
  if (created) std::filesystem::remove(flags.path, error);
  if (!results.ok()) {
    std::fprintf(stderr, "%s: %s\n", flags.path.c_str(), results.status().ToString().c_str());
    return 1;
  }
  std::printf("%s", MarkdownTable(*results).c_str());
  if (!flags.json_path.empty()) {
    std::ofstream json(flags.json_path);
    json << ResultsJson(flags, *results);
    if (!json.good()) {
      std::fprintf(stderr, "writing %s failed\n", flags.json_path.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace weft::bench

int main(int argc, char** argv) {
  // stdout carries the table alone; the libraries' log lines go to stderr, and the per-format
  // chatter of the blockstore (info) is left out.
  spdlog::set_default_logger(spdlog::stderr_color_st("weft"));
  spdlog::set_level(spdlog::level::warn);
  auto flags = weft::bench::ParseFlags(argc, argv);
  if (!flags.ok()) {
    if (flags.status().message() != "help") {
      std::fprintf(stderr, "%s\n", flags.status().ToString().c_str());
    }
    weft::bench::PrintUsage();
    return 2;
  }
  return weft::bench::Run(*flags);
}
