#include "env/uring_device.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <map>
#include <utility>
#include <vector>

namespace weft::env {
namespace {

// The arena hands out whole pages so that any buffer it returns is aligned for any device.
constexpr uint64_t kArenaPageBytes = kIoAlignmentBytes;
// io_uring itself allows 32768 entries; beyond a few thousand the ring only costs pinned memory.
constexpr uint32_t kMaxQueueDepth = 4096;
// One submission moves at most this much; a larger request continues like a short transfer. The
// SQE length field is 32 bits and the kernel caps a single transfer just below 2 GiB anyway.
constexpr uint64_t kMaxTransferBytes = 1ull << 30;
// Completions copied out of the CQ per round, and rounds per Poll, so that one Poll is bounded
// even when completions keep resubmitting work that completes at once.
constexpr unsigned kReapBatch = 64;
constexpr int kMaxReapRounds = 16;
// EAGAIN/EINTR results are retried this often before they are reported.
constexpr uint32_t kMaxRetries = 16;
// Request objects kept for reuse beyond this many are freed.
constexpr size_t kMaxSpareRequests = 1024;

enum class OperationType : uint8_t { kRead, kWrite, kFlush, kPunchHole };

const char* OperationName(OperationType type) {
  switch (type) {
    case OperationType::kRead:
      return "read";
    case OperationType::kWrite:
      return "write";
    case OperationType::kFlush:
      return "flush";
    case OperationType::kPunchHole:
      return "discard";
  }
  return "operation";
}

// One submitted operation. It travels in the SQE's user_data and remembers what is left to
// transfer, so that a short read or write can be resubmitted for the remainder.
struct Request {
  OperationType type = OperationType::kRead;
  uint64_t offset_bytes = 0;  // Start of the whole request, for resubmission and messages.
  uint64_t length_bytes = 0;
  uint64_t done_bytes = 0;      // Transferred so far.
  std::byte* buffer = nullptr;  // Read target or write source (never written through for writes).
  bool fixed_buffer = false;    // The buffer lies inside the registered arena.
  uint32_t retry_count = 0;
  IoCompletion done;
};

// A completion decided at submit time (a rejected request, an empty one, a synchronous discard).
// It still runs only inside Poll(), as the BlockDevice contract demands.
struct ReadyCompletion {
  IoCompletion done;
  Status status;
};

uint64_t RoundUp(uint64_t value, uint64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Memory registered with the ring as fixed buffer 0, carved into page runs first fit. Buffers
// handed out hold a shared_ptr to it, so a buffer that outlives its device still returns its
// pages to live memory (the ring is gone by then, but the memory is not).
class RegisteredArena {
 public:
  static std::shared_ptr<RegisteredArena> Create(uint64_t size_bytes) {
    WEFT_ASSERT(size_bytes > 0);
    WEFT_ASSERT(size_bytes % kArenaPageBytes == 0);
    void* memory = std::aligned_alloc(kArenaPageBytes, size_bytes);
    if (memory == nullptr) return nullptr;
    return std::shared_ptr<RegisteredArena>(
        new RegisteredArena(static_cast<std::byte*>(memory), size_bytes));
  }
  ~RegisteredArena() { std::free(memory_); }
  RegisteredArena(const RegisteredArena&) = delete;
  RegisteredArena& operator=(const RegisteredArena&) = delete;

  std::byte* memory() const { return memory_; }
  uint64_t size_bytes() const { return size_bytes_; }
  bool Contains(const std::byte* data, uint64_t length_bytes) const {
    return data >= memory_ && length_bytes <= size_bytes_ &&
           static_cast<uint64_t>(data - memory_) <= size_bytes_ - length_bytes;
  }

  // Returns nullptr when no free run of `page_count` pages exists.
  std::byte* AllocatePages(uint64_t page_count) {
    WEFT_ASSERT(page_count > 0);
    for (auto run = free_runs_.begin(); run != free_runs_.end(); ++run) {
      if (run->second < page_count) continue;
      const uint64_t first_page = run->first;
      const uint64_t left_pages = run->second - page_count;
      free_runs_.erase(run);
      if (left_pages > 0) free_runs_.emplace(first_page + page_count, left_pages);
      return memory_ + first_page * kArenaPageBytes;
    }
    return nullptr;
  }

  // Returns a run to the free map, merging it with free neighbours so that large requests keep
  // finding room.
  void FreePages(std::byte* data, uint64_t page_count) {
    WEFT_ASSERT(Contains(data, page_count * kArenaPageBytes));
    uint64_t first_page = static_cast<uint64_t>(data - memory_) / kArenaPageBytes;
    auto next = free_runs_.lower_bound(first_page);
    // A run that overlaps a free one means a double release: stop before memory is shared.
    WEFT_ASSERT(next == free_runs_.end() || first_page + page_count <= next->first);
    if (next != free_runs_.begin()) {
      auto previous = std::prev(next);
      WEFT_ASSERT(previous->first + previous->second <= first_page);
      if (previous->first + previous->second == first_page) {
        first_page = previous->first;
        page_count += previous->second;
        free_runs_.erase(previous);
      }
    }
    if (next != free_runs_.end() && first_page + page_count == next->first) {
      page_count += next->second;
      free_runs_.erase(next);
    }
    free_runs_.emplace(first_page, page_count);
  }

 private:
  RegisteredArena(std::byte* memory, uint64_t size_bytes)
      : memory_(memory), size_bytes_(size_bytes) {
    free_runs_.emplace(0, size_bytes / kArenaPageBytes);
  }

  std::byte* memory_;
  uint64_t size_bytes_;
  std::map<uint64_t, uint64_t> free_runs_;  // First page -> page count, disjoint, not adjacent.
};

}  // namespace

// Where an accepted operation lives until its completion runs (inflight_count() is their sum):
// - `ready`: decided at submit time (rejected, empty, a block-device discard);
// - `waiting`: accepted while queue_depth requests held ring slots; promoted in FIFO order as
//   completions free slots;
// - the ring (`ring_count`): prepared SQE, owned through user_data until its CQE is handled.
struct UringDevice::State {
  std::string name;
  UringDeviceOptions options;
  int fd = -1;
  bool is_block_device = false;
  uint64_t size_bytes = 0;
  uint32_t alignment_bytes = 0;

  io_uring ring{};
  bool ring_initialized = false;
  std::shared_ptr<RegisteredArena> arena;  // Null without registered buffers.

  uint32_t ring_count = 0;                       // Requests holding a ring slot.
  std::deque<std::unique_ptr<Request>> waiting;  // Accepted while the ring was full.
  std::deque<ReadyCompletion> ready;             // Decided at submit time.
  std::vector<std::unique_ptr<Request>> spare_requests;
  uint32_t poll_depth = 0;      // Poll() frames on the stack; submission is batched inside.
  bool submit_pending = false;  // SQEs prepared but not yet handed to the kernel.
  uint64_t fixed_buffer_io_count = 0;
  // Wake(): another thread writes wake_fd; a read of it stays armed in the ring (outside
  // ring_count: it is not an operation of the device's user).
  int wake_fd = -1;
  std::atomic<int> notify_fd{-1};  // completion_notify_fd(); -1 until asked for.
  uint64_t wake_value = 0;
  bool wake_armed = false;
  bool woken = false;

  ~State();
  void ArmWake();

  std::unique_ptr<Request> NewRequest(OperationType type);
  void Recycle(std::unique_ptr<Request> request);
  void Start(std::unique_ptr<Request> request);
  void Prepare(Request* request);
  io_uring_sqe* GetSqe();
  void SubmitPending();
  void SubmitAndWait();
  size_t RunReadyCompletions();
  size_t ReapCompletions();
  // Returns true when the request finished (its completion ran), false when it was resubmitted.
  bool HandleResult(Request* request, int result);
  void Finish(Request* request, Status status);
  Status Discard(uint64_t offset_bytes, uint64_t length_bytes);

  void SubmitTransfer(const BlockDevice& device, OperationType type, uint64_t offset_bytes,
                      std::byte* buffer, uint64_t length_bytes, IoCompletion done);

  Status OpenTarget(const std::string& path);
  Status MeasureFile(const struct stat& file_status);
  Status MeasureBlockDevice();
  Status InitializeRing();
  Status RegisterArena();
};

UringDevice::State::~State() {
  WEFT_ASSERT(ring_count == 0);
  WEFT_ASSERT(waiting.empty());
  // Exiting the ring drops the registered file and buffers with it.
  if (ring_initialized) io_uring_queue_exit(&ring);
  if (fd >= 0) ::close(fd);
  if (wake_fd >= 0) ::close(wake_fd);
  if (notify_fd >= 0) ::close(notify_fd);
}

std::unique_ptr<Request> UringDevice::State::NewRequest(OperationType type) {
  std::unique_ptr<Request> request;
  if (spare_requests.empty()) {
    request = std::make_unique<Request>();
  } else {
    request = std::move(spare_requests.back());
    spare_requests.pop_back();
  }
  request->type = type;
  return request;
}

void UringDevice::State::Recycle(std::unique_ptr<Request> request) {
  if (spare_requests.size() >= kMaxSpareRequests) return;
  *request = Request();
  spare_requests.push_back(std::move(request));
}

void UringDevice::State::Start(std::unique_ptr<Request> request) {
  // FIFO: while anything waits, the ring is full, and a newcomer must not overtake it.
  if (ring_count < options.queue_depth && waiting.empty()) {
    ++ring_count;
    Prepare(request.release());
  } else {
    waiting.push_back(std::move(request));
  }
}

io_uring_sqe* UringDevice::State::GetSqe() {
  // A ring slot always has a free SQE: every request holds at most one unconsumed SQE and the
  // ring has at least queue_depth of them. Only an SQPOLL thread that has not yet consumed the
  // entries can make us wait here.
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  for (int attempt = 0; sqe == nullptr && attempt < 1000; ++attempt) {
    const int result = io_uring_submit(&ring);
    WEFT_ASSERT(result >= 0 || result == -EAGAIN || result == -EBUSY || result == -EINTR);
    if (options.sqpoll) io_uring_sqring_wait(&ring);
    sqe = io_uring_get_sqe(&ring);
  }
  WEFT_ASSERT(sqe != nullptr);
  return sqe;
}

void UringDevice::State::Prepare(Request* request) {
  io_uring_sqe* sqe = GetSqe();
  const uint64_t position_bytes = request->offset_bytes + request->done_bytes;
  std::byte* position = request->buffer + request->done_bytes;
  const auto chunk_bytes = static_cast<unsigned>(
      std::min(request->length_bytes - request->done_bytes, kMaxTransferBytes));
  // Index 0 names the registered file (IOSQE_FIXED_FILE) and, for *_FIXED, the arena.
  switch (request->type) {
    case OperationType::kRead:
      if (request->fixed_buffer) {
        io_uring_prep_read_fixed(sqe, 0, position, chunk_bytes, position_bytes, 0);
      } else {
        io_uring_prep_read(sqe, 0, position, chunk_bytes, position_bytes);
      }
      break;
    case OperationType::kWrite:
      if (request->fixed_buffer) {
        io_uring_prep_write_fixed(sqe, 0, position, chunk_bytes, position_bytes, 0);
      } else {
        io_uring_prep_write(sqe, 0, position, chunk_bytes, position_bytes);
      }
      break;
    case OperationType::kFlush:
      io_uring_prep_fsync(sqe, 0, IORING_FSYNC_DATASYNC);
      break;
    case OperationType::kPunchHole:
      io_uring_prep_fallocate(sqe, 0, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              static_cast<off_t>(request->offset_bytes),
                              static_cast<off_t>(request->length_bytes));
      break;
  }
  io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
  io_uring_sqe_set_data(sqe, request);
  submit_pending = true;
  // Inside Poll() submissions made by completions are batched into one system call at its end.
  if (poll_depth == 0) SubmitPending();
}

void UringDevice::State::SubmitPending() {
  if (!submit_pending) return;
  const int result = io_uring_submit(&ring);
  // Resource shortages leave the entries in the SQ for the next attempt; anything else means the
  // ring itself is broken, which no caller can handle.
  WEFT_ASSERT(result >= 0 || result == -EAGAIN || result == -EBUSY || result == -EINTR);
  submit_pending = io_uring_sq_ready(&ring) > 0;
}

void UringDevice::State::SubmitAndWait() {
  const int result = io_uring_submit_and_wait(&ring, 1);
  WEFT_ASSERT(result >= 0 || result == -EAGAIN || result == -EBUSY || result == -EINTR);
  submit_pending = io_uring_sq_ready(&ring) > 0;
}

size_t UringDevice::State::RunReadyCompletions() {
  // Only those queued before this call: one queued by a completion runs on the next Poll, so a
  // completion that keeps submitting bad requests cannot spin here forever.
  size_t count = ready.size();
  const size_t completed = count;
  while (count-- > 0) {
    ReadyCompletion completion = std::move(ready.front());
    ready.pop_front();
    completion.done(std::move(completion.status));
  }
  return completed;
}

size_t UringDevice::State::ReapCompletions() {
  size_t completed = 0;
  for (int round = 0; round < kMaxReapRounds; ++round) {
    std::array<io_uring_cqe*, kReapBatch> cqes;
    const unsigned count = io_uring_peek_batch_cqe(&ring, cqes.data(), kReapBatch);
    if (count == 0) break;
    // Copy out and release the CQEs before running completions: a completion may call Poll()
    // again, which must not see these entries a second time.
    std::array<std::pair<Request*, int>, kReapBatch> results;
    for (unsigned i = 0; i < count; ++i) {
      results[i] = {static_cast<Request*>(io_uring_cqe_get_data(cqes[i])), cqes[i]->res};
    }
    io_uring_cq_advance(&ring, count);
    for (unsigned i = 0; i < count; ++i) {
      if (results[i].first == nullptr) {  // The wake read: re-armed by the next wait.
        wake_armed = false;
        woken = true;
        continue;
      }
      if (HandleResult(results[i].first, results[i].second)) ++completed;
    }
    if (count < kReapBatch) break;
  }
  return completed;
}

bool UringDevice::State::HandleResult(Request* request, int result) {
  WEFT_ASSERT(request != nullptr);
  if (result < 0) {
    const int error_number = -result;
    if ((error_number == EAGAIN || error_number == EINTR) && request->retry_count < kMaxRetries) {
      ++request->retry_count;
      Prepare(request);
      return false;
    }
    if (request->type == OperationType::kPunchHole && error_number == EOPNOTSUPP) {
      Finish(request, Status::Ok());  // Discard is best effort (block_device.h).
      return true;
    }
    Finish(request, Status::FromErrno(error_number,
                                      fmt::format("{}: {} at offset {} ({} bytes)", name,
                                                  OperationName(request->type),
                                                  request->offset_bytes, request->length_bytes)));
    return true;
  }
  if (request->type == OperationType::kFlush || request->type == OperationType::kPunchHole) {
    Finish(request, Status::Ok());
    return true;
  }
  const auto transferred_bytes = static_cast<uint64_t>(result);
  WEFT_ASSERT(transferred_bytes <= request->length_bytes - request->done_bytes);
  request->done_bytes += transferred_bytes;
  if (request->done_bytes == request->length_bytes) {
    Finish(request, Status::Ok());
    return true;
  }
  if (transferred_bytes == 0) {
    if (request->type == OperationType::kRead) {
      // End of file: the file shrank under us. What lies beyond reads as zeros.
      std::memset(request->buffer + request->done_bytes, 0,
                  request->length_bytes - request->done_bytes);
      Finish(request, Status::Ok());
    } else {
      Finish(request, Status::IOError(fmt::format(
                          "{}: write at offset {} ({} bytes) stopped after {} bytes", name,
                          request->offset_bytes, request->length_bytes, request->done_bytes)));
    }
    return true;
  }
  Prepare(request);  // Short transfer: continue with the remainder.
  return false;
}

void UringDevice::State::Finish(Request* raw_request, Status status) {
  std::unique_ptr<Request> request(raw_request);
  IoCompletion done = std::move(request->done);
  WEFT_ASSERT(ring_count > 0);
  --ring_count;
  Recycle(std::move(request));
  while (ring_count < options.queue_depth && !waiting.empty()) {
    std::unique_ptr<Request> next = std::move(waiting.front());
    waiting.pop_front();
    ++ring_count;
    Prepare(next.release());
  }
  done(std::move(status));
}

// Block devices only: BLKDISCARD has no io_uring opcode, so it runs synchronously here.
Status UringDevice::State::Discard(uint64_t offset_bytes, uint64_t length_bytes) {
  WEFT_ASSERT(is_block_device);
  uint64_t range[2] = {offset_bytes, length_bytes};
  if (::ioctl(fd, BLKDISCARD, &range) == 0) return Status::Ok();
  const int error_number = errno;
  // A device that cannot discard keeps the data, which the contract allows.
  if (error_number == EOPNOTSUPP) return Status::Ok();
  return Status::FromErrno(error_number, fmt::format("{}: discard at offset {} ({} bytes)", name,
                                                     offset_bytes, length_bytes));
}

void UringDevice::State::SubmitTransfer(const BlockDevice& device, OperationType type,
                                        uint64_t offset_bytes, std::byte* buffer,
                                        uint64_t length_bytes, IoCompletion done) {
  WEFT_ASSERT(done != nullptr);
  Status validation = ValidateRequest(device, offset_bytes, length_bytes, buffer);
  if (!validation.ok() || length_bytes == 0) {
    ready.push_back({std::move(done), std::move(validation)});
    return;
  }
  std::unique_ptr<Request> request = NewRequest(type);
  request->offset_bytes = offset_bytes;
  request->length_bytes = length_bytes;
  request->buffer = buffer;
  request->fixed_buffer = arena != nullptr && arena->Contains(buffer, length_bytes);
  request->done = std::move(done);
  if (request->fixed_buffer) ++fixed_buffer_io_count;
  Start(std::move(request));
}

Status UringDevice::State::OpenTarget(const std::string& path) {
  int flags = O_RDWR | O_DIRECT | O_CLOEXEC;
  if (options.file_size_bytes > 0) flags |= O_CREAT;
  fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) {
    const int error_number = errno;
    // EINVAL here is a file system without direct I/O (tmpfs, some FUSE): the environment, not
    // the request, is wrong.
    if (error_number == EINVAL) {
      return Status::IOError(fmt::format("{}: open with O_DIRECT: {} (no direct I/O here?)", path,
                                         std::strerror(error_number)));
    }
    return Status::FromErrno(error_number, fmt::format("{}: open", path));
  }
  struct stat file_status {};
  if (::fstat(fd, &file_status) != 0) {
    return Status::FromErrno(errno, fmt::format("{}: fstat", path));
  }
  if (S_ISREG(file_status.st_mode)) return MeasureFile(file_status);
  if (S_ISBLK(file_status.st_mode)) {
    is_block_device = true;
    return MeasureBlockDevice();
  }
  return Status::InvalidArgument(
      fmt::format("{}: neither a regular file nor a block device", path));
}

Status UringDevice::State::MeasureFile(const struct stat& file_status) {
  // 4096 satisfies O_DIRECT on every file system we run on, whatever the disk's sector size.
  alignment_bytes = kIoAlignmentBytes;
  auto file_bytes = static_cast<uint64_t>(file_status.st_size);
  const uint64_t wanted_bytes = options.file_size_bytes;
  if (wanted_bytes > 0 && wanted_bytes % alignment_bytes != 0) {
    return Status::InvalidArgument(fmt::format("{}: file_size_bytes {} is not a multiple of {}",
                                               name, wanted_bytes, alignment_bytes));
  }
  if (wanted_bytes > file_bytes) {
    // Reserve the blocks now so that a write cannot fail with ENOSPC later; a file system
    // without fallocate gets a sparse file instead.
    if (::fallocate(fd, 0, 0, static_cast<off_t>(wanted_bytes)) != 0) {
      const int error_number = errno;
      if (error_number != EOPNOTSUPP) {
        return Status::FromErrno(error_number,
                                 fmt::format("{}: extending to {} bytes", name, wanted_bytes));
      }
      if (::ftruncate(fd, static_cast<off_t>(wanted_bytes)) != 0) {
        return Status::FromErrno(errno,
                                 fmt::format("{}: extending to {} bytes", name, wanted_bytes));
      }
    }
    file_bytes = wanted_bytes;
  }
  if (file_bytes == 0 || file_bytes % alignment_bytes != 0) {
    return Status::InvalidArgument(fmt::format("{}: size {} bytes is not a positive multiple of {}",
                                               name, file_bytes, alignment_bytes));
  }
  size_bytes = file_bytes;
  return Status::Ok();
}

Status UringDevice::State::MeasureBlockDevice() {
  uint64_t device_bytes = 0;
  if (::ioctl(fd, BLKGETSIZE64, &device_bytes) != 0) {
    return Status::FromErrno(errno, fmt::format("{}: BLKGETSIZE64", name));
  }
  int logical_block_bytes = 0;
  if (::ioctl(fd, BLKSSZGET, &logical_block_bytes) != 0) {
    return Status::FromErrno(errno, fmt::format("{}: BLKSSZGET", name));
  }
  if (logical_block_bytes <= 0 || logical_block_bytes > static_cast<int>(kIoAlignmentBytes)) {
    return Status::InvalidArgument(
        fmt::format("{}: unsupported logical block size {}", name, logical_block_bytes));
  }
  // The contract offers 512 or 4096; 4096 is a multiple of every smaller sector size.
  alignment_bytes = logical_block_bytes <= 512 ? 512 : kIoAlignmentBytes;
  size_bytes = device_bytes / alignment_bytes * alignment_bytes;
  if (size_bytes == 0) {
    return Status::InvalidArgument(fmt::format("{}: the device is empty", name));
  }
  return Status::Ok();
}

Status UringDevice::State::InitializeRing() {
  wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) return Status::FromErrno(errno, name + ": eventfd");
  io_uring_params params{};
  if (options.sqpoll) {
    params.flags |= IORING_SETUP_SQPOLL;
    params.sq_thread_idle = options.sqpoll_idle_ms;
  }
  // The CQ gets twice the SQ's entries, and at most queue_depth requests hold a slot, so the
  // CQ cannot overflow.
  // One SQE more than queue_depth: the armed wake read.
  int result = io_uring_queue_init_params(options.queue_depth + 1, &ring, &params);
  if (result < 0) {
    return Status::IOError(fmt::format("{}: io_uring_queue_init ({} entries{}): {}", name,
                                       options.queue_depth, options.sqpoll ? ", SQPOLL" : "",
                                       std::strerror(-result)));
  }
  ring_initialized = true;
  result = io_uring_register_files(&ring, &fd, 1);
  if (result < 0) {
    return Status::IOError(
        fmt::format("{}: io_uring_register_files: {}", name, std::strerror(-result)));
  }
  return Status::Ok();
}

Status UringDevice::State::RegisterArena() {
  if (options.registered_buffer_bytes == 0) return Status::Ok();
  // The kernel takes at most 1 GiB per registered buffer, and the arena is one buffer.
  constexpr uint64_t kMaxArenaBytes = 1ull << 30;
  const uint64_t arena_bytes = RoundUp(options.registered_buffer_bytes, kArenaPageBytes);
  if (arena_bytes > kMaxArenaBytes) {
    return Status::InvalidArgument(fmt::format("{}: registered_buffer_bytes {} is above {}", name,
                                               options.registered_buffer_bytes, kMaxArenaBytes));
  }
  arena = RegisteredArena::Create(arena_bytes);
  if (arena == nullptr) {
    return Status::IOError(fmt::format("{}: cannot allocate a {}-byte arena", name, arena_bytes));
  }
  iovec vector{arena->memory(), arena_bytes};
  const int result = io_uring_register_buffers(&ring, &vector, 1);
  if (result < 0) {
    arena.reset();
    // ENOMEM here is usually RLIMIT_MEMLOCK: registered buffers are pinned memory.
    return Status::IOError(
        fmt::format("{}: io_uring_register_buffers ({} bytes): {} (check ulimit -l, or lower "
                    "registered_buffer_bytes)",
                    name, arena_bytes, std::strerror(-result)));
  }
  return Status::Ok();
}

Result<std::unique_ptr<UringDevice>> UringDevice::Open(const std::string& path,
                                                       const UringDeviceOptions& options) {
  if (options.queue_depth == 0 || options.queue_depth > kMaxQueueDepth) {
    return Status::InvalidArgument(fmt::format("{}: queue_depth {} is not in [1, {}]", path,
                                               options.queue_depth, kMaxQueueDepth));
  }
  auto state = std::make_unique<State>();
  state->name = path;
  state->options = options;
  WEFT_RETURN_IF_ERROR(state->OpenTarget(path));
  WEFT_RETURN_IF_ERROR(state->InitializeRing());
  WEFT_RETURN_IF_ERROR(state->RegisterArena());
  return std::unique_ptr<UringDevice>(new UringDevice(std::move(state)));
}

UringDevice::UringDevice(std::unique_ptr<State> state) : state_(std::move(state)) {}

UringDevice::~UringDevice() {
  // The kernel may still write into callers' buffers: wait for every operation before the ring
  // and the arena go away. Their completions run here, like in any other Poll.
  while (inflight_count() > 0) Poll(/*wait=*/true);
}

uint64_t UringDevice::size_bytes() const { return state_->size_bytes; }
uint32_t UringDevice::alignment_bytes() const { return state_->alignment_bytes; }
const std::string& UringDevice::name() const { return state_->name; }
uint64_t UringDevice::fixed_buffer_io_count() const { return state_->fixed_buffer_io_count; }

size_t UringDevice::inflight_count() const {
  return state_->ring_count + state_->waiting.size() + state_->ready.size();
}

void UringDevice::SubmitRead(uint64_t offset_bytes, std::span<std::byte> buffer,
                             IoCompletion done) {
  state_->SubmitTransfer(*this, OperationType::kRead, offset_bytes, buffer.data(), buffer.size(),
                         std::move(done));
}

void UringDevice::SubmitWrite(uint64_t offset_bytes, std::span<const std::byte> data,
                              IoCompletion done) {
  // The kernel only reads from a write's buffer; Request keeps one pointer type for both.
  state_->SubmitTransfer(*this, OperationType::kWrite, offset_bytes,
                         const_cast<std::byte*>(data.data()), data.size(), std::move(done));
}

void UringDevice::SubmitFlush(IoCompletion done) {
  WEFT_ASSERT(done != nullptr);
  std::unique_ptr<Request> request = state_->NewRequest(OperationType::kFlush);
  request->done = std::move(done);
  state_->Start(std::move(request));
}

void UringDevice::SubmitDiscard(uint64_t offset_bytes, uint64_t length_bytes, IoCompletion done) {
  WEFT_ASSERT(done != nullptr);
  Status validation = ValidateRequest(*this, offset_bytes, length_bytes, nullptr);
  if (!validation.ok() || length_bytes == 0) {
    state_->ready.push_back({std::move(done), std::move(validation)});
    return;
  }
  if (state_->is_block_device) {
    state_->ready.push_back({std::move(done), state_->Discard(offset_bytes, length_bytes)});
    return;
  }
  std::unique_ptr<Request> request = state_->NewRequest(OperationType::kPunchHole);
  request->offset_bytes = offset_bytes;
  request->length_bytes = length_bytes;
  request->done = std::move(done);
  state_->Start(std::move(request));
}

void UringDevice::State::ArmWake() {
  if (wake_armed) return;
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_read(sqe, wake_fd, &wake_value, sizeof(wake_value), 0);
  io_uring_sqe_set_data(sqe, nullptr);  // Requests are never null: null marks the wake read.
  wake_armed = true;
  submit_pending = true;
}

void UringDevice::Wake() {
  // eventfd writes are thread-safe and add up; the armed read consumes them all at once.
  const uint64_t one = 1;
  const ssize_t written = ::write(state_->wake_fd, &one, sizeof(one));
  WEFT_ASSERT(written == sizeof(one));
  const int notify_fd = state_->notify_fd;
  if (notify_fd >= 0) {
    const ssize_t notified = ::write(notify_fd, &one, sizeof(one));
    WEFT_ASSERT(notified == sizeof(one));
  }
}

int UringDevice::completion_notify_fd() {
  State& state = *state_;
  if (state.notify_fd >= 0) return state.notify_fd;
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  WEFT_ASSERT(fd >= 0);  // Only fd exhaustion fails here, at start-up.
  const int result = io_uring_register_eventfd(&state.ring, fd);
  WEFT_ASSERT(result == 0);
  state.notify_fd = fd;
  return fd;
}

size_t UringDevice::PollUntilWoken() {
  State& state = *state_;
  size_t completed = Poll(/*wait=*/false);
  if (completed > 0 || state.woken) {
    state.woken = false;
    return completed;
  }
  state.ArmWake();
  ++state.poll_depth;
  while (completed == 0 && !state.woken) {
    state.SubmitAndWait();
    completed += state.ReapCompletions();
  }
  --state.poll_depth;
  if (state.poll_depth == 0) state.SubmitPending();
  state.woken = false;
  return completed;
}

size_t UringDevice::Poll(bool wait) {
  State& state = *state_;
  ++state.poll_depth;
  size_t completed = state.RunReadyCompletions();
  completed += state.ReapCompletions();
  // A reaped short transfer is resubmitted without completing, hence the loop. A Wake() ends a
  // wait early (the caller then picks up what the other thread finished).
  if (wait && state.ring_count > 0 && state.wake_fd >= 0) state.ArmWake();
  while (completed == 0 && wait && state.ring_count > 0 && !state.woken) {
    state.SubmitAndWait();
    completed += state.ReapCompletions();
  }
  if (wait) state.woken = false;  // A wake interrupts one blocking wait, not every later one.
  --state.poll_depth;
  if (state.poll_depth == 0) state.SubmitPending();
  return completed;
}

AlignedBuffer UringDevice::AllocateBuffer(size_t size_bytes) {
  if (size_bytes == 0) return AlignedBuffer();
  const uint64_t rounded_bytes = RoundUp(size_bytes, state_->alignment_bytes);
  if (state_->arena != nullptr) {
    const uint64_t page_count = RoundUp(rounded_bytes, kArenaPageBytes) / kArenaPageBytes;
    std::byte* data = state_->arena->AllocatePages(page_count);
    if (data != nullptr) {
      // Zeroed like a heap AlignedBuffer, so that padding never carries an earlier user's bytes
      // to the disk.
      std::memset(data, 0, rounded_bytes);
      return AlignedBuffer(
          data, rounded_bytes, [arena = state_->arena](std::byte* released, size_t released_bytes) {
            arena->FreePages(released, RoundUp(released_bytes, kArenaPageBytes) / kArenaPageBytes);
          });
    }
  }
  return AlignedBuffer(rounded_bytes);
}

}  // namespace weft::env
