// BlockDevice: the one interface through which weft touches a disk.
//
// Contract (every implementation, every operation):
// - Offsets, lengths and buffer addresses are multiples of alignment_bytes(); offset + length is
//   at most size_bytes(). A request that breaks this completes with InvalidArgument (it is never
//   sent to the disk) and names the offending value.
// - Submit* never runs a completion itself; completions run only inside Poll(), on the thread
//   that calls Poll(). A device is owned by one thread (its reactor): no method is thread-safe.
// - The buffer of a read or write must stay valid and unmodified until its completion has run.
// - Write completion means the kernel/device accepted the data, not that it is durable. Data is
//   durable once a Flush submitted after the write's completion has completed. Writes that are in
//   flight together may complete and reach the medium in any order, and a write that was in
//   flight at a crash may be torn at sector (512 B) granularity.
// - Errors: IOError (EIO and friends, retry elsewhere), NoSpace (the device is full: thin
//   provisioning or a simulated full disk), InvalidArgument (bad request).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>

#include "base/aligned_buffer.h"
#include "base/status.h"

namespace weft::env {

using IoCompletion = std::function<void(Status status)>;

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;

  // Usable capacity in bytes (a multiple of alignment_bytes()).
  virtual uint64_t size_bytes() const = 0;
  // Required alignment of offsets, lengths and buffer addresses: 512 or 4096.
  virtual uint32_t alignment_bytes() const = 0;
  // A human-readable name for error messages ("/dev/vdb", "memory:disk0").
  virtual const std::string& name() const = 0;

  virtual void SubmitRead(uint64_t offset_bytes, std::span<std::byte> buffer,
                          IoCompletion done) = 0;
  virtual void SubmitWrite(uint64_t offset_bytes, std::span<const std::byte> data,
                           IoCompletion done) = 0;
  // Makes every write that completed before this call durable.
  virtual void SubmitFlush(IoCompletion done) = 0;
  // Tells the device the range's contents are no longer needed; reads of it return unspecified
  // bytes afterwards (zeros on every implementation we have). Best effort: devices that cannot
  // discard complete with OK.
  virtual void SubmitDiscard(uint64_t offset_bytes, uint64_t length_bytes, IoCompletion done) = 0;

  // Runs completions that are ready. With wait=true and nothing ready but I/O in flight, blocks
  // until at least one completion is ready. Returns the number of completions run.
  virtual size_t Poll(bool wait) = 0;
  // Operations submitted whose completion has not run yet.
  virtual size_t inflight_count() const = 0;

  // Waking the owner thread from another thread (a RocksDB commit running on a helper thread).
  // Wake() is the one thread-safe method: it makes PollUntilWoken() return, and a Poll(true)
  // that is blocked on I/O return early. PollUntilWoken() is Poll(true) that also blocks when
  // nothing is in flight, until I/O completes or Wake() is called (a Wake() since the last
  // return counts). The default, for devices whose Poll never blocks (memory, fault-injecting
  // over memory), waits on a condition variable.
  virtual void Wake();
  virtual size_t PollUntilWoken();
  // For an event loop that waits on file descriptors (env/reactor.h): an fd that becomes
  // readable (an eventfd: read 8 bytes to reset it) whenever a completion may be ready for
  // Poll() or Wake() was called. -1: the device has none (its completions are ready right after
  // submission, so polling after each handler suffices). The device owns the fd.
  virtual int completion_notify_fd() { return -1; }

  // An aligned buffer suited to this device (registered with io_uring when the device has a
  // registered arena with room; otherwise a plain heap buffer). Size is rounded to alignment.
  virtual AlignedBuffer AllocateBuffer(size_t size_bytes) { return AlignedBuffer(size_bytes); }

 private:
  std::mutex wake_mutex_;
  std::condition_variable wake_condition_;
  bool woken_ = false;  // Guarded by wake_mutex_.
};

// Checks a request against the contract above; returns InvalidArgument naming the problem.
Status ValidateRequest(const BlockDevice& device, uint64_t offset_bytes, uint64_t length_bytes,
                       const void* buffer_address);

// Blocking helpers: submit one operation and Poll(wait=true) until it completes. For format,
// open, recovery, tools and tests, never for the data path. Completions of other operations that
// happen to be ready run too.
Status ReadSync(BlockDevice& device, uint64_t offset_bytes, std::span<std::byte> buffer);
Status WriteSync(BlockDevice& device, uint64_t offset_bytes, std::span<const std::byte> data);
Status FlushSync(BlockDevice& device);
Status DiscardSync(BlockDevice& device, uint64_t offset_bytes, uint64_t length_bytes);

}  // namespace weft::env
