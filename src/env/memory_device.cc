#include "env/memory_device.h"

#include <algorithm>
#include <cstring>

namespace weft::env {

MemoryDevice::MemoryDevice(std::string name, uint64_t size_bytes, uint32_t alignment_bytes)
    : name_(std::move(name)), size_bytes_(size_bytes), alignment_bytes_(alignment_bytes) {
  WEFT_ASSERT(alignment_bytes == 512 || alignment_bytes == 4096);
  WEFT_ASSERT(size_bytes % alignment_bytes == 0);
}

void MemoryDevice::Enqueue(Operation operation) { queue_.push_back(std::move(operation)); }

void MemoryDevice::SubmitRead(uint64_t offset_bytes, std::span<std::byte> buffer,
                              IoCompletion done) {
  Enqueue({OperationType::kRead, offset_bytes, buffer.size(), buffer.data(), nullptr,
           std::move(done), ValidateRequest(*this, offset_bytes, buffer.size(), buffer.data())});
}

void MemoryDevice::SubmitWrite(uint64_t offset_bytes, std::span<const std::byte> data,
                               IoCompletion done) {
  Enqueue({OperationType::kWrite, offset_bytes, data.size(), nullptr, data.data(), std::move(done),
           ValidateRequest(*this, offset_bytes, data.size(), data.data())});
}

void MemoryDevice::SubmitFlush(IoCompletion done) {
  Enqueue({OperationType::kFlush, 0, 0, nullptr, nullptr, std::move(done), Status::Ok()});
}

void MemoryDevice::SubmitDiscard(uint64_t offset_bytes, uint64_t length_bytes, IoCompletion done) {
  Enqueue({OperationType::kDiscard, offset_bytes, length_bytes, nullptr, nullptr, std::move(done),
           ValidateRequest(*this, offset_bytes, length_bytes, nullptr)});
}

size_t MemoryDevice::Poll(bool /*wait*/) {
  // Everything queued is ready: a memory device never has to wait. Operations submitted by the
  // completions below run on the next Poll, as they would on a real device.
  size_t ready_count = queue_.size();
  size_t completed_count = 0;
  while (ready_count-- > 0) {
    Operation operation = std::move(queue_.front());
    queue_.pop_front();
    if (operation.validation.ok()) {
      switch (operation.type) {
        case OperationType::kRead:
          ReadRaw(operation.offset_bytes, {operation.read_buffer, operation.length_bytes});
          break;
        case OperationType::kWrite:
          WriteRaw(operation.offset_bytes, {operation.write_data, operation.length_bytes});
          break;
        case OperationType::kDiscard:
          Discard(operation.offset_bytes, operation.length_bytes);
          break;
        case OperationType::kFlush:
          break;
      }
    }
    operation.done(std::move(operation.validation));
    ++completed_count;
  }
  return completed_count;
}

void MemoryDevice::ReadRaw(uint64_t offset_bytes, std::span<std::byte> buffer) const {
  WEFT_ASSERT(offset_bytes + buffer.size() <= size_bytes_);
  uint64_t done_bytes = 0;
  while (done_bytes < buffer.size()) {
    const uint64_t position = offset_bytes + done_bytes;
    const uint64_t chunk_index = position / kChunkBytes;
    const uint64_t within_chunk = position % kChunkBytes;
    const uint64_t step =
        std::min<uint64_t>(kChunkBytes - within_chunk, buffer.size() - done_bytes);
    auto chunk = chunks_.find(chunk_index);
    if (chunk == chunks_.end()) {
      std::memset(buffer.data() + done_bytes, 0, step);
    } else {
      std::memcpy(buffer.data() + done_bytes, chunk->second.get() + within_chunk, step);
    }
    done_bytes += step;
  }
}

void MemoryDevice::WriteRaw(uint64_t offset_bytes, std::span<const std::byte> data) {
  WEFT_ASSERT(offset_bytes + data.size() <= size_bytes_);
  uint64_t done_bytes = 0;
  while (done_bytes < data.size()) {
    const uint64_t position = offset_bytes + done_bytes;
    const uint64_t chunk_index = position / kChunkBytes;
    const uint64_t within_chunk = position % kChunkBytes;
    const uint64_t step = std::min<uint64_t>(kChunkBytes - within_chunk, data.size() - done_bytes);
    auto& chunk = chunks_[chunk_index];
    if (!chunk) {
      chunk = std::make_unique<std::byte[]>(kChunkBytes);
      std::memset(chunk.get(), 0, kChunkBytes);
    }
    std::memcpy(chunk.get() + within_chunk, data.data() + done_bytes, step);
    done_bytes += step;
  }
}

void MemoryDevice::Discard(uint64_t offset_bytes, uint64_t length_bytes) {
  // Zero the range; whole chunks are released.
  uint64_t done_bytes = 0;
  while (done_bytes < length_bytes) {
    const uint64_t position = offset_bytes + done_bytes;
    const uint64_t chunk_index = position / kChunkBytes;
    const uint64_t within_chunk = position % kChunkBytes;
    const uint64_t step = std::min<uint64_t>(kChunkBytes - within_chunk, length_bytes - done_bytes);
    auto chunk = chunks_.find(chunk_index);
    if (chunk != chunks_.end()) {
      if (step == kChunkBytes) {
        chunks_.erase(chunk);
      } else {
        std::memset(chunk->second.get() + within_chunk, 0, step);
      }
    }
    done_bytes += step;
  }
}

void MemoryDevice::Resize(uint64_t size_bytes) {
  WEFT_ASSERT(size_bytes % alignment_bytes_ == 0);
  if (size_bytes < size_bytes_) Discard(size_bytes, size_bytes_ - size_bytes);
  // A partially kept chunk beyond the new end was zeroed above; whole ones were dropped.
  size_bytes_ = size_bytes;
}

}  // namespace weft::env
