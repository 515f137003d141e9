// What the NBD server serves: an ExportProvider names the exports and opens them; an Export is
// one open block device (in weft, a vDisk's controller). The server (nbd_server.h) speaks the
// protocol; this interface is all it knows of what is behind it.
//
// Threading: every method is called on the server's reactor thread (the thread that runs its
// asio::io_context), and every completion must run on that thread too, never inside the call
// that submits it (post it, or run it from the reactor's poll loop).
//
// Requests reaching an Export are already validated by the server against the ExportInfo it
// got at open: offset + length within size_bytes, length within max_request_bytes, writes only
// on a writable export. Offsets and lengths need not be multiples of anything (a client may
// ignore the advertised block sizes); buffers are 4096-byte aligned (AlignedBuffer). An Export
// must still check bounds itself (the disk may have shrunk since the export was opened) and
// answer InvalidArgument.
//
// Status to NBD error: InvalidArgument -> EINVAL, NoSpace -> ENOSPC, NotSupported -> ENOTSUP,
// NotFound (the export was deleted) -> ESHUTDOWN, Busy -> ENOMEM (the spec's "try later"),
// anything else -> EIO.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace weft::nbd {

struct ExportInfo {
  std::string name;
  std::string description;
  uint64_t size_bytes = 0;
  bool read_only = false;
  // Block-size constraints advertised with NBD_INFO_BLOCK_SIZE.
  uint32_t block_size_min_bytes = 1;
  uint32_t block_size_preferred_bytes = 4096;
  uint32_t block_size_max_bytes = 32u << 20;  // Largest READ/WRITE payload accepted.
  bool can_trim = true;
  bool can_write_zeroes = true;
  bool can_fast_zero = false;
  bool can_multi_conn = true;  // Flush on one connection covers writes acknowledged on all.
  bool can_flush = true;
  bool can_fua = true;
};

// One run of BLOCK_STATUS base:allocation.
struct AllocationExtent {
  uint64_t length_bytes = 0;
  bool hole = false;  // NBD_STATE_HOLE: no storage allocated.
  bool zero = false;  // NBD_STATE_ZERO: reads as zeros.
};

using Completion = std::function<void(Status status)>;
using BlockStatusCompletion = std::function<void(Result<std::vector<AllocationExtent>> extents)>;

class Export {
 public:
  virtual ~Export() = default;
  virtual const ExportInfo& info() const = 0;

  virtual void Read(uint64_t offset_bytes, std::span<std::byte> buffer, Completion done) = 0;
  // With fua the write is durable when done runs. (weft acknowledges only durable writes
  // anyway, so fua costs nothing extra.)
  virtual void Write(uint64_t offset_bytes, std::span<const std::byte> data, bool fua,
                     Completion done) = 0;
  virtual void Flush(Completion done) = 0;
  // Frees the range's storage; it reads as zeros afterwards.
  virtual void Trim(uint64_t offset_bytes, uint64_t length_bytes, Completion done) = 0;
  // no_hole: the range must stay allocated (NBD_CMD_FLAG_NO_HOLE), zeros are written.
  virtual void WriteZeroes(uint64_t offset_bytes, uint64_t length_bytes, bool no_hole, bool fua,
                           Completion done) = 0;
  // Extents covering a prefix of [offset, offset + length) (at least one, at most length
  // bytes in total), in order.
  virtual void BlockStatus(uint64_t offset_bytes, uint64_t length_bytes,
                           BlockStatusCompletion done) = 0;
};

class ExportProvider {
 public:
  virtual ~ExportProvider() = default;
  virtual std::vector<ExportInfo> ListExports() = 0;
  // NotFound when no export has this name.
  virtual Result<std::shared_ptr<Export>> OpenExport(std::string_view name) = 0;
};

}  // namespace weft::nbd
