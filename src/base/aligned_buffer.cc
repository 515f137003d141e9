#include "base/aligned_buffer.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "base/assert.h"

namespace weft {

AlignedBuffer::AlignedBuffer(size_t size_bytes) : size_bytes_(size_bytes) {
  if (size_bytes == 0) return;
  const size_t rounded_bytes =
      (size_bytes + kIoAlignmentBytes - 1) / kIoAlignmentBytes * kIoAlignmentBytes;
  void* memory = std::aligned_alloc(kIoAlignmentBytes, rounded_bytes);
  if (memory == nullptr) throw std::bad_alloc();
  std::memset(memory, 0, rounded_bytes);
  data_ = static_cast<std::byte*>(memory);
  release_ = [](std::byte* data, size_t) { std::free(data); };
}

AlignedBuffer::AlignedBuffer(std::byte* data, size_t size_bytes, ReleaseFunction release)
    : data_(data), size_bytes_(size_bytes), release_(std::move(release)) {
  WEFT_ASSERT(reinterpret_cast<uintptr_t>(data) % kIoAlignmentBytes == 0);
  WEFT_ASSERT(release_ != nullptr);
}

AlignedBuffer::~AlignedBuffer() { Reset(); }

AlignedBuffer::AlignedBuffer(AlignedBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_bytes_(std::exchange(other.size_bytes_, 0)),
      release_(std::move(other.release_)) {
  other.release_ = nullptr;
}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& other) noexcept {
  if (this != &other) {
    Reset();
    data_ = std::exchange(other.data_, nullptr);
    size_bytes_ = std::exchange(other.size_bytes_, 0);
    release_ = std::move(other.release_);
    other.release_ = nullptr;
  }
  return *this;
}

void AlignedBuffer::Reset() {
  if (data_ != nullptr && release_) release_(data_, size_bytes_);
  data_ = nullptr;
  size_bytes_ = 0;
  release_ = nullptr;
}

}  // namespace weft
