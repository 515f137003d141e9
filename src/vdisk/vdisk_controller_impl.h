// VdiskController internals shared by its .cc files: an operation (one client request) and its
// pieces (the part of a mutation that falls in one vBlock and one alignment class).
#pragma once

#include <cstdint>
#include <span>

#include "vdisk/vdisk_controller.h"

namespace weft::vdisk {

inline constexpr uint64_t kBlockBytes = 4096;

enum PieceKind : int {
  kWriteData = 0,  // Write the caller's bytes.
  kUnmap = 1,      // Trim, or WriteZeroes allowed to leave a hole: unmap whole blocks.
  kZeroFill = 2,   // WriteZeroes with no_hole: write zeros.
  kTrimHint = 3,   // Trim: like kUnmap, but partial blocks are left alone.
};

struct VdiskController::Operation {
  Completion done;
  uint32_t pieces_outstanding = 0;
  bool background = false;  // The drainer's, not a client's.
  Status status;            // The first error of its pieces.
};

struct VdiskController::Piece {
  int kind = kWriteData;
  uint64_t vblock = 0;
  uint64_t offset_in_vblock = 0;  // Bytes.
  uint64_t length_bytes = 0;
  std::span<const std::byte> data;  // kWriteData: the caller's bytes of this piece.
  std::shared_ptr<Operation> operation;

  // A piece inside one 4 KiB block that does not cover all of it.
  bool partial() const {
    return offset_in_vblock % kBlockBytes != 0 || length_bytes % kBlockBytes != 0;
  }
};

// A shared 1 MiB block of zeros for kZeroFill writes (never written to).
std::span<const std::byte> ZeroBytes(uint64_t length_bytes);

}  // namespace weft::vdisk
