#include "env/block_device.h"

#include <fmt/format.h>

namespace weft::env {

Status ValidateRequest(const BlockDevice& device, uint64_t offset_bytes, uint64_t length_bytes,
                       const void* buffer_address) {
  const uint64_t alignment = device.alignment_bytes();
  if (offset_bytes % alignment != 0) {
    return Status::InvalidArgument(fmt::format("{}: offset {} is not a multiple of {} bytes",
                                               device.name(), offset_bytes, alignment));
  }
  if (length_bytes % alignment != 0) {
    return Status::InvalidArgument(fmt::format("{}: length {} is not a multiple of {} bytes",
                                               device.name(), length_bytes, alignment));
  }
  if (offset_bytes > device.size_bytes() || length_bytes > device.size_bytes() - offset_bytes) {
    return Status::InvalidArgument(
        fmt::format("{}: range [{}, +{}) is beyond the device end at {} bytes", device.name(),
                    offset_bytes, length_bytes, device.size_bytes()));
  }
  if (buffer_address != nullptr && reinterpret_cast<uintptr_t>(buffer_address) % alignment != 0) {
    return Status::InvalidArgument(fmt::format("{}: buffer address {} is not {}-byte aligned",
                                               device.name(), buffer_address, alignment));
  }
  return Status::Ok();
}

void BlockDevice::Wake() {
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    woken_ = true;
  }
  wake_condition_.notify_one();
}

size_t BlockDevice::PollUntilWoken() {
  // This default serves devices whose Poll(true) never blocks for long: poll if anything is
  // ready or in flight, otherwise sleep until Wake().
  const size_t ran = Poll(/*wait=*/false);
  if (ran > 0) return ran;
  if (inflight_count() > 0) return Poll(/*wait=*/true);
  std::unique_lock<std::mutex> lock(wake_mutex_);
  wake_condition_.wait(lock, [this] { return woken_; });
  woken_ = false;
  return 0;
}

namespace {

// Submits via `submit`, then polls until its completion has run.
template <typename SubmitFunction>
Status RunSync(BlockDevice& device, SubmitFunction submit) {
  bool done = false;
  Status result;
  submit([&](Status status) {
    result = std::move(status);
    done = true;
  });
  while (!done) {
    // A device that has nothing in flight and runs nothing lost the completion: a bug.
    const size_t ran = device.Poll(/*wait=*/true);
    WEFT_ASSERT(ran > 0 || device.inflight_count() > 0 || done);
  }
  return result;
}

}  // namespace

Status ReadSync(BlockDevice& device, uint64_t offset_bytes, std::span<std::byte> buffer) {
  return RunSync(
      device, [&](IoCompletion done) { device.SubmitRead(offset_bytes, buffer, std::move(done)); });
}

Status WriteSync(BlockDevice& device, uint64_t offset_bytes, std::span<const std::byte> data) {
  return RunSync(
      device, [&](IoCompletion done) { device.SubmitWrite(offset_bytes, data, std::move(done)); });
}

Status FlushSync(BlockDevice& device) {
  return RunSync(device, [&](IoCompletion done) { device.SubmitFlush(std::move(done)); });
}

Status DiscardSync(BlockDevice& device, uint64_t offset_bytes, uint64_t length_bytes) {
  return RunSync(device, [&](IoCompletion done) {
    device.SubmitDiscard(offset_bytes, length_bytes, std::move(done));
  });
}

}  // namespace weft::env
