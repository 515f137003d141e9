// CRC-32C (Castagnoli), the checksum of every weft on-disk and wire format. Computed by ISA-L
// (crc32_iscsi, SSE4.2/PCLMUL accelerated). The value is the standard CRC-32C: Crc32c("123456789")
// is 0xE3069283. Chaining: Crc32c(b, Crc32c(a)) == Crc32c(a concatenated with b).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace weft {

uint32_t Crc32c(std::span<const std::byte> data, uint32_t previous_crc = 0);
uint32_t Crc32c(const void* data, size_t length_bytes, uint32_t previous_crc = 0);

}  // namespace weft
