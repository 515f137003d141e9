// An owning, aligned byte buffer for O_DIRECT I/O. Alignment is 4096 bytes (the largest logical
// block size weft supports at the device layer), so any buffer works on any device.
//
// A buffer may come from a device's registered-buffer arena (io_uring fixed buffers); then its
// release function hands the pages back to that arena instead of freeing them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

namespace weft {

inline constexpr size_t kIoAlignmentBytes = 4096;

class AlignedBuffer {
 public:
  using ReleaseFunction = std::function<void(std::byte* data, size_t size_bytes)>;

  AlignedBuffer() = default;
  // A zero-filled heap buffer of `size_bytes` (rounded up to kIoAlignmentBytes internally).
  explicit AlignedBuffer(size_t size_bytes);
  // Adopts memory owned elsewhere; `release` is called once on destruction.
  AlignedBuffer(std::byte* data, size_t size_bytes, ReleaseFunction release);
  ~AlignedBuffer();

  AlignedBuffer(AlignedBuffer&& other) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  std::byte* data() { return data_; }
  const std::byte* data() const { return data_; }
  size_t size() const { return size_bytes_; }
  bool empty() const { return size_bytes_ == 0; }
  std::span<std::byte> span() { return {data_, size_bytes_}; }
  std::span<const std::byte> span() const { return {data_, size_bytes_}; }

 private:
  void Reset();

  std::byte* data_ = nullptr;
  size_t size_bytes_ = 0;
  ReleaseFunction release_;
};

}  // namespace weft
