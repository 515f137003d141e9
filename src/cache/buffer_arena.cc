#include "cache/buffer_arena.h"

#include <algorithm>

#include "base/assert.h"

namespace weft::cache {

std::byte* BufferArena::Allocate() {
  WEFT_ASSERT(buffers_in_use_ < capacity_buffers_);
  if (free_buffers_.empty()) {
    // Carve a new slab, never more than the capacity still needs.
    const uint64_t count = std::min<uint64_t>(kBuffersPerSlab, capacity_buffers_ - buffers_carved_);
    WEFT_ASSERT(count > 0);
    AlignedBuffer& slab = slabs_.emplace_back(count * kBufferBytes);
    for (uint64_t index = count; index > 0; --index) {
      free_buffers_.push_back(slab.data() + (index - 1) * kBufferBytes);
    }
    buffers_carved_ += count;
  }
  std::byte* buffer = free_buffers_.back();
  free_buffers_.pop_back();
  ++buffers_in_use_;
  return buffer;
}

void BufferArena::Release(std::byte* buffer) {
  WEFT_ASSERT(buffer != nullptr);
  WEFT_ASSERT(buffers_in_use_ > 0);
  free_buffers_.push_back(buffer);
  --buffers_in_use_;
}

void BufferArena::set_capacity_buffers(uint64_t capacity_buffers) {
  WEFT_ASSERT(capacity_buffers >= capacity_buffers_);
  capacity_buffers_ = capacity_buffers;
}

}  // namespace weft::cache
