// MemoryDevice: a BlockDevice held in RAM, for tests and the simulator. Storage is sparse (64 KiB
// chunks allocated on first write), so a 1 GiB device costs only what is written. Operations are
// queued at submit and carried out, in submission order, when Poll() runs them; a flush is a
// no-op because nothing here is volatile. Crash behaviour comes from FaultInjectingDevice on top.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

#include "env/block_device.h"

namespace weft::env {

class MemoryDevice final : public BlockDevice {
 public:
  MemoryDevice(std::string name, uint64_t size_bytes, uint32_t alignment_bytes = 512);

  uint64_t size_bytes() const override { return size_bytes_; }
  uint32_t alignment_bytes() const override { return alignment_bytes_; }
  const std::string& name() const override { return name_; }

  void SubmitRead(uint64_t offset_bytes, std::span<std::byte> buffer, IoCompletion done) override;
  void SubmitWrite(uint64_t offset_bytes, std::span<const std::byte> data,
                   IoCompletion done) override;
  void SubmitFlush(IoCompletion done) override;
  void SubmitDiscard(uint64_t offset_bytes, uint64_t length_bytes, IoCompletion done) override;
  size_t Poll(bool wait) override;
  size_t inflight_count() const override { return queue_.size(); }

  // Direct access for test set-up and fault injection; bypasses the queue.
  void ReadRaw(uint64_t offset_bytes, std::span<std::byte> buffer) const;
  void WriteRaw(uint64_t offset_bytes, std::span<const std::byte> data);
  // Changes the reported size (simulates a truncated or grown device). Contents beyond are lost.
  void Resize(uint64_t size_bytes);

 private:
  static constexpr uint64_t kChunkBytes = 64ull * 1024;
  enum class OperationType { kRead, kWrite, kFlush, kDiscard };
  struct Operation {
    OperationType type;
    uint64_t offset_bytes;
    uint64_t length_bytes;
    std::byte* read_buffer;
    const std::byte* write_data;
    IoCompletion done;
    Status validation;
  };

  void Enqueue(Operation operation);
  void Discard(uint64_t offset_bytes, uint64_t length_bytes);

  std::string name_;
  uint64_t size_bytes_;
  uint32_t alignment_bytes_;
  std::unordered_map<uint64_t, std::unique_ptr<std::byte[]>> chunks_;
  std::deque<Operation> queue_;
};

}  // namespace weft::env
