// A 128-bit random identifier (RFC 4122 version 4 layout), used to name disks and blockstores.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace weft {

struct Uuid {
  std::array<uint8_t, 16> bytes{};

  static Uuid Random();
  std::string ToString() const;  // 8-4-4-4-12 lowercase hex.
  bool IsNil() const;
  friend bool operator==(const Uuid&, const Uuid&) = default;
};

}  // namespace weft
