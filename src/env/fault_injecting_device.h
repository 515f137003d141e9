// FaultInjectingDevice: wraps any BlockDevice and, seeded and reproducibly, injects the faults a
// real disk has. Modelled on RocksDB's FaultInjectionTestFS and FoundationDB's non-durable files.
//
// Model:
// - Writes are held in a volatile overlay (per 512-byte sector, every version written since the
//   last flush) and only reach the inner device when a flush makes them durable. Reads see the
//   newest version. A flush makes durable exactly the writes whose completion ran before the flush
//   was submitted.
// - Completions of operations in flight together run in a seeded random order (never inside
//   Submit*, as the BlockDevice contract says).
// - Crash(): every sector with unsynced versions independently ends up holding the durable
//   contents or any one of its unsynced versions (the newest is not favoured), so in-flight and
//   completed-but-unflushed writes are dropped or torn at 512 B granularity. With
//   CrashMode::kDropUnsynced every unsynced version is lost instead. Every operation still in
//   flight completes with IOError("device crashed"), as does every operation submitted until
//   Revive(); the caller then destroys whatever used the device and reopens it after Revive().
// - FlipBit() corrupts durable bytes; FailRange() makes reads and/or writes touching a range fail
//   with IOError (EIO); SetFull(true) makes every write fail with NoSpace.
// All randomness comes from the seed given at construction, so one seed replays one run.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "env/block_device.h"

namespace weft::env {

enum class CrashMode {
  kTearRandomly,  // Each unsynced sector keeps the durable bytes or one of its unsynced versions.
  kDropUnsynced,  // Every unsynced sector keeps the durable bytes.
};

enum class FailOperations : uint8_t { kReads = 1, kWrites = 2, kReadsAndWrites = 3 };

class FaultInjectingDevice final : public BlockDevice {
 public:
  static constexpr uint32_t kSectorBytes = 512;

  // `inner` must outlive this wrapper and must not be used directly while wrapped.
  FaultInjectingDevice(BlockDevice& inner, uint64_t seed);
  ~FaultInjectingDevice() override;

  uint64_t size_bytes() const override;
  uint32_t alignment_bytes() const override;
  const std::string& name() const override;
  void SubmitRead(uint64_t offset_bytes, std::span<std::byte> buffer, IoCompletion done) override;
  void SubmitWrite(uint64_t offset_bytes, std::span<const std::byte> data,
                   IoCompletion done) override;
  void SubmitFlush(IoCompletion done) override;
  void SubmitDiscard(uint64_t offset_bytes, uint64_t length_bytes, IoCompletion done) override;
  size_t Poll(bool wait) override;
  size_t inflight_count() const override;
  void Wake() override;
  size_t PollUntilWoken() override;

  // Simulates power loss now (see the model above). Returns how many sectors had unsynced data.
  uint64_t Crash(CrashMode mode = CrashMode::kTearRandomly);
  // Ends the crashed state; the device then holds exactly what the crash left durable.
  void Revive();
  bool crashed() const;

  // Inverts one bit of durable data (bit 0 is the low bit of byte offset_bytes).
  void FlipBit(uint64_t offset_bytes, uint8_t bit_index);
  // Operations touching [offset, offset + length) fail with IOError until ClearFailures().
  void FailRange(uint64_t offset_bytes, uint64_t length_bytes, FailOperations operations);
  void ClearFailures();
  void SetFull(bool full);

  // Counters for tests.
  uint64_t unsynced_sector_count() const;
  uint64_t flush_count() const;
  uint64_t write_count() const;

 private:
  // Implementation state lives in the .cc (pimpl keeps <random>-heavy details out of users).
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace weft::env
