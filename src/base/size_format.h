// Sizes on command lines (weft, weftd) and in human output. weft uses binary units only: K = KiB =
// 1024 bytes, M = MiB, G = GiB, T = TiB, P = PiB; "10GB" is refused as ambiguous instead of
// guessed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace weft {

// Parses a positive size: a number of bytes ("4096", "4096B") or a number with a unit: K, M, G, T,
// P, or KiB, MiB, GiB, TiB, PiB (either case). A fraction is accepted when the result is a whole
// number of bytes ("1.5G" yes, "0.3K" no). InvalidArgument for anything else: junk, spaces, a
// sign, zero, more than 2^64-1 bytes, decimal units (KB, MB, GB, ...).
Result<uint64_t> ParseSize(std::string_view text);

// "0 B", "512 B", "4 KiB", "10 GiB"; an inexact value has one decimal: "1.5 GiB", "1.0 GiB" (a
// byte more than 1 GiB). The unit is the largest that leaves at least 1.
std::string FormatSize(uint64_t bytes);

}  // namespace weft
