#include "base/uuid.h"

#include <fmt/format.h>

#include <random>

namespace weft {

Uuid Uuid::Random() {
  std::random_device device;  // Reads the kernel's entropy; seeding is not needed.
  Uuid uuid;
  for (size_t i = 0; i < uuid.bytes.size(); i += 4) {
    const uint32_t word = device();
    for (size_t j = 0; j < 4; ++j) uuid.bytes[i + j] = static_cast<uint8_t>(word >> (8 * j));
  }
  uuid.bytes[6] = static_cast<uint8_t>((uuid.bytes[6] & 0x0f) | 0x40);  // Version 4.
  uuid.bytes[8] = static_cast<uint8_t>((uuid.bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant.
  return uuid;
}

std::string Uuid::ToString() const {
  std::string text;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text += '-';
    text += fmt::format("{:02x}", bytes[i]);
  }
  return text;
}

bool Uuid::IsNil() const {
  for (uint8_t byte : bytes) {
    if (byte != 0) return false;
  }
  return true;
}

}  // namespace weft
