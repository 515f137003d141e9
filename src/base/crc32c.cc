#include "base/crc32c.h"

#include <isa-l/crc.h>

namespace weft {

uint32_t Crc32c(const void* data, size_t length_bytes, uint32_t previous_crc) {
  // ISA-L's crc32_iscsi neither pre- nor post-inverts; the standard CRC-32C does both.
  return ~crc32_iscsi(static_cast<unsigned char*>(const_cast<void*>(data)),
                      static_cast<int>(length_bytes), ~previous_crc);
}

uint32_t Crc32c(std::span<const std::byte> data, uint32_t previous_crc) {
  return Crc32c(data.data(), data.size(), previous_crc);
}

}  // namespace weft
