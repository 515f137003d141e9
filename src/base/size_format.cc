#include "base/size_format.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <limits>

namespace weft {
namespace {

using Uint128 = unsigned __int128;

struct Unit {
  std::string_view short_name;  // "G"
  std::string_view long_name;   // "GiB"
  uint64_t bytes;
};

constexpr std::array<Unit, 6> kUnits = {{{"B", "B", 1},
                                         {"K", "KiB", uint64_t{1} << 10},
                                         {"M", "MiB", uint64_t{1} << 20},
                                         {"G", "GiB", uint64_t{1} << 30},
                                         {"T", "TiB", uint64_t{1} << 40},
                                         {"P", "PiB", uint64_t{1} << 50}}};

// 20 integer digits hold any 64-bit value; 18 fraction digits keep every product in 128 bits.
constexpr size_t kIntegerDigitsMax = 20;
constexpr size_t kFractionDigitsMax = 18;

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

Status Invalid(std::string_view text, std::string_view why) {
  return Status::InvalidArgument(fmt::format(
      "invalid size '{}': {} (expected a positive number of bytes, optionally with a binary unit "
      "K, M, G, T, P or KiB, MiB, GiB, TiB, PiB: 4096, 512M, 10G, 1.5T)",
      text, why));
}

Result<uint64_t> UnitBytes(std::string_view text, std::string_view suffix) {
  if (suffix.empty()) return uint64_t{1};
  for (const Unit& unit : kUnits) {
    if (EqualsIgnoringCase(suffix, unit.short_name) || EqualsIgnoringCase(suffix, unit.long_name)) {
      return unit.bytes;
    }
  }
  for (std::string_view decimal : {"kb", "mb", "gb", "tb", "pb"}) {
    if (EqualsIgnoringCase(suffix, decimal)) {
      return Invalid(text, fmt::format("'{}' is ambiguous; weft uses binary units, write '{}' or "
                                       "'{}iB'",
                                       suffix, suffix.substr(0, 1), suffix.substr(0, 1)));
    }
  }
  return Invalid(text, fmt::format("unknown unit '{}'", suffix));
}

}  // namespace

Result<uint64_t> ParseSize(std::string_view text) {
  size_t position = 0;
  auto take_digits = [&] {
    size_t start = position;
    while (position < text.size() && std::isdigit(static_cast<unsigned char>(text[position]))) {
      ++position;
    }
    return text.substr(start, position - start);
  };
  std::string_view integer_digits = take_digits();
  if (integer_digits.empty()) return Invalid(text, "it does not start with a digit");
  std::string_view fraction_digits;
  if (position < text.size() && text[position] == '.') {
    ++position;
    fraction_digits = take_digits();
    if (fraction_digits.empty()) return Invalid(text, "no digits after the decimal point");
  }
  if (integer_digits.size() > kIntegerDigitsMax || fraction_digits.size() > kFractionDigitsMax) {
    return Invalid(text, "too many digits");
  }
  WEFT_ASSIGN_OR_RETURN(uint64_t unit_bytes, UnitBytes(text, text.substr(position)));

  Uint128 integer = 0;
  for (char digit : integer_digits) integer = integer * 10 + static_cast<unsigned>(digit - '0');
  Uint128 fraction = 0;
  Uint128 fraction_scale = 1;
  for (char digit : fraction_digits) {
    fraction = fraction * 10 + static_cast<unsigned>(digit - '0');
    fraction_scale *= 10;
  }
  const Uint128 fraction_bytes_scaled = fraction * unit_bytes;
  if (fraction_bytes_scaled % fraction_scale != 0) {
    return Invalid(text, "not a whole number of bytes");
  }
  const Uint128 bytes = integer * unit_bytes + fraction_bytes_scaled / fraction_scale;
  if (bytes == 0) return Invalid(text, "a size must be greater than zero");
  if (bytes > std::numeric_limits<uint64_t>::max()) {
    return Invalid(text, "more than 2^64-1 bytes");
  }
  return static_cast<uint64_t>(bytes);
}

std::string FormatSize(uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  // Units beyond PiB only matter for sizes near 2^64.
  constexpr Unit kExbibyte = {"E", "EiB", uint64_t{1} << 60};
  size_t index = kUnits.size() - 1;
  while (index > 0 && bytes < kUnits[index].bytes) --index;
  Unit unit = bytes >= kExbibyte.bytes ? kExbibyte : kUnits[index];
  if (bytes % unit.bytes == 0) return fmt::format("{} {}", bytes / unit.bytes, unit.long_name);
  // Tenths of the unit, rounded to nearest; 1023.96 MiB would show as "1024.0 MiB", so move up.
  Uint128 tenths = (Uint128{bytes} * 10 + unit.bytes / 2) / unit.bytes;
  if (tenths >= 10240 && unit.bytes != kExbibyte.bytes) {
    unit = index + 1 < kUnits.size() ? kUnits[index + 1] : kExbibyte;
    tenths = (Uint128{bytes} * 10 + unit.bytes / 2) / unit.bytes;
  }
  const auto whole = static_cast<uint64_t>(tenths / 10);
  const auto tenth = static_cast<uint64_t>(tenths % 10);
  return fmt::format("{}.{} {}", whole, tenth, unit.long_name);
}

}  // namespace weft
