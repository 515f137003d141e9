// UringDevice: the production BlockDevice. io_uring (liburing) over a file or a raw block device
// opened with O_DIRECT: no page cache, no copies, the nearest thing to SPDK a kernel gives us.
//
// - Files: opened (and created/extended to `file_size_bytes` when asked) with O_DIRECT; flush is
//   IORING_OP_FSYNC with IORING_FSYNC_DATASYNC. Block devices: size from BLKGETSIZE64, alignment
//   from BLKSSZGET; discard is BLKDISCARD for block devices and fallocate(PUNCH_HOLE) for files.
// - Registered buffers: an arena of `registered_buffer_bytes` is registered with the ring at open;
//   AllocateBuffer() carves buffers from it (4 KiB pages, first fit) while it has room, and reads
//   and writes whose buffer lies inside the arena use READ_FIXED/WRITE_FIXED (no per-I/O page
//   pinning). Buffers from elsewhere work too, through plain READ/WRITE.
// - The file descriptor is registered (IOSQE_FIXED_FILE).
// - SQPOLL: with `sqpoll` set, a kernel thread polls the submission queue, so submitting costs no
//   system call (it spends a core; on a 2-core machine measure before turning it on).
// - Short reads/writes are resubmitted for the remainder; a read past end-of-file fills zeros.
#pragma once

#include <memory>
#include <string>

#include "env/block_device.h"

namespace weft::env {

struct UringDeviceOptions {
  uint32_t queue_depth = 256;                      // Submission queue entries; max in flight.
  bool sqpoll = false;                             // Kernel submission-queue polling thread.
  uint32_t sqpoll_idle_ms = 1000;                  // Poller sleeps after this much idle time.
  uint64_t registered_buffer_bytes = 16ull << 20;  // Arena registered as fixed buffers; 0: none.
  uint64_t file_size_bytes = 0;  // For a regular file: create and extend it to this size. 0: use
                                 // the existing size (the file must exist).
};

class UringDevice final : public BlockDevice {
 public:
  // Opens `path` (regular file or block device). Errors: NotFound, InvalidArgument (size not a
  // multiple of the alignment, zero size), IOError (io_uring or O_DIRECT unavailable).
  static Result<std::unique_ptr<UringDevice>> Open(const std::string& path,
                                                   const UringDeviceOptions& options);
  ~UringDevice() override;  // Waits for in-flight operations, then closes.

  uint64_t size_bytes() const override;
  uint32_t alignment_bytes() const override;
  const std::string& name() const override;
  void SubmitRead(uint64_t offset_bytes, std::span<std::byte> buffer, IoCompletion done) override;
  void SubmitWrite(uint64_t offset_bytes, std::span<const std::byte> data,
                   IoCompletion done) override;
  void SubmitFlush(IoCompletion done) override;
  void SubmitDiscard(uint64_t offset_bytes, uint64_t length_bytes, IoCompletion done) override;
  size_t Poll(bool wait) override;
  size_t inflight_count() const override;
  // Through an eventfd whose read sits in the ring, so a Poll blocked on I/O wakes too.
  void Wake() override;
  size_t PollUntilWoken() override;
  // An eventfd registered with the ring (io_uring_register_eventfd: every completion signals it),
  // created on first call; Wake() signals it too.
  int completion_notify_fd() override;
  AlignedBuffer AllocateBuffer(size_t size_bytes) override;

  // How many submitted reads/writes used registered (fixed) buffers; for tests and stats.
  uint64_t fixed_buffer_io_count() const;

 private:
  struct State;
  explicit UringDevice(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace weft::env
