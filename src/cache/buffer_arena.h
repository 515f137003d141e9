// BufferArena: the memory pools' 4 KiB block buffers, carved from 1 MiB slabs so that a fill
// costs no malloc. Slabs are added on demand up to the capacity and kept until the arena is
// destroyed: the cache runs full most of its life, so returning slabs would only churn.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/aligned_buffer.h"

namespace weft::cache {

class BufferArena {
 public:
  static constexpr size_t kBufferBytes = 4096;
  static constexpr size_t kBuffersPerSlab = 256;

  explicit BufferArena(uint64_t capacity_buffers) : capacity_buffers_(capacity_buffers) {}

  // A 4096-byte, 4096-aligned buffer. At most capacity_buffers() may be out at once (asserted).
  std::byte* Allocate();
  void Release(std::byte* buffer);

  uint64_t capacity_buffers() const { return capacity_buffers_; }
  // Only grows (the SSD tier's index charge is handed back when the tier fails to open).
  void set_capacity_buffers(uint64_t capacity_buffers);
  uint64_t buffers_in_use() const { return buffers_in_use_; }

 private:
  uint64_t capacity_buffers_;
  uint64_t buffers_in_use_ = 0;
  uint64_t buffers_carved_ = 0;
  std::vector<AlignedBuffer> slabs_;
  std::vector<std::byte*> free_buffers_;
};

}  // namespace weft::cache
