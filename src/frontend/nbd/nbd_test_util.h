// Test helpers for the NBD server: an in-memory ExportProvider (a byte vector per export, a
// 4 KiB allocation map for block status, completions posted to the io_context as the Export
// contract requires), with switches to hold completions and inject errors.
#pragma once

#include <algorithm>
#include <asio.hpp>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "frontend/nbd/nbd_export.h"
#include "frontend/nbd/nbd_protocol.h"

namespace weft::nbd::testing {

// Builds what a client sends, in network order.
class WireBytes {
 public:
  WireBytes& U16(uint16_t value) { return Put(BigEndian<uint16_t>(value)); }
  WireBytes& U32(uint32_t value) { return Put(BigEndian<uint32_t>(value)); }
  WireBytes& U64(uint64_t value) { return Put(BigEndian<uint64_t>(value)); }
  WireBytes& Text(std::string_view text) {
    for (char c : text) bytes_.push_back(static_cast<std::byte>(c));
    return *this;
  }
  WireBytes& String32(std::string_view text) {
    return U32(static_cast<uint32_t>(text.size())).Text(text);
  }
  WireBytes& Raw(std::span<const std::byte> bytes) {
    bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
    return *this;
  }
  std::span<const std::byte> span() const { return bytes_; }
  const std::vector<std::byte>& vector() const { return bytes_; }

 private:
  template <typename Wire>
  WireBytes& Put(const Wire& wire) {
    const auto* data = reinterpret_cast<const std::byte*>(&wire);
    bytes_.insert(bytes_.end(), data, data + sizeof(wire));
    return *this;
  }
  std::vector<std::byte> bytes_;
};

inline constexpr uint64_t kAllocationBlockBytes = 4096;

// The disk behind an export; shared by every connection that opens it.
struct MemoryDisk {
  explicit MemoryDisk(uint64_t size_bytes)
      : data(size_bytes),
        allocated((size_bytes + kAllocationBlockBytes - 1) / kAllocationBlockBytes, false) {}

  std::vector<std::byte> data;
  std::vector<bool> allocated;  // Per 4 KiB block.
  // Test switches and observations.
  bool hold_completions = false;  // Completions wait for ReleaseHeld().
  std::vector<std::function<void()>> held;
  Status next_error;          // Returned (once) by the next request.
  uint32_t inflight = 0;      // Requests submitted and not completed.
  uint32_t inflight_max = 0;  // Highest `inflight` seen.
  uint64_t flushes = 0;
  uint64_t fua_writes = 0;
};

class MemoryExport : public Export {
 public:
  MemoryExport(asio::io_context& io_context, ExportInfo info, std::shared_ptr<MemoryDisk> disk)
      : io_context_(io_context), info_(std::move(info)), disk_(std::move(disk)) {}

  const ExportInfo& info() const override { return info_; }

  void Read(uint64_t offset_bytes, std::span<std::byte> buffer, Completion done) override {
    Status status = Check(offset_bytes, buffer.size());
    if (status.ok()) std::memcpy(buffer.data(), &disk_->data[offset_bytes], buffer.size());
    Complete(std::move(done), std::move(status));
  }
  void Write(uint64_t offset_bytes, std::span<const std::byte> data, bool fua,
             Completion done) override {
    Status status = Check(offset_bytes, data.size());
    if (status.ok()) {
      std::memcpy(&disk_->data[offset_bytes], data.data(), data.size());
      MarkAllocated(offset_bytes, data.size());
      disk_->fua_writes += fua ? 1 : 0;
    }
    Complete(std::move(done), std::move(status));
  }
  void Flush(Completion done) override {
    ++disk_->flushes;
    Complete(std::move(done), TakeInjectedError());
  }
  void Trim(uint64_t offset_bytes, uint64_t length_bytes, Completion done) override {
    Status status = Check(offset_bytes, length_bytes);
    if (status.ok()) Zero(offset_bytes, length_bytes, /*deallocate=*/true);
    Complete(std::move(done), std::move(status));
  }
  void WriteZeroes(uint64_t offset_bytes, uint64_t length_bytes, bool no_hole, bool,
                   Completion done) override {
    Status status = Check(offset_bytes, length_bytes);
    if (status.ok()) Zero(offset_bytes, length_bytes, /*deallocate=*/!no_hole);
    Complete(std::move(done), std::move(status));
  }
  void BlockStatus(uint64_t offset_bytes, uint64_t length_bytes,
                   BlockStatusCompletion done) override {
    Status status = Check(offset_bytes, length_bytes);
    std::vector<AllocationExtent> extents;
    const uint64_t end_bytes = offset_bytes + length_bytes;
    for (uint64_t position = offset_bytes; status.ok() && position < end_bytes;) {
      const uint64_t block = position / kAllocationBlockBytes;
      const uint64_t block_end = std::min((block + 1) * kAllocationBlockBytes, end_bytes);
      const bool hole = !disk_->allocated[block];
      if (!extents.empty() && extents.back().hole == hole) {
        extents.back().length_bytes += block_end - position;
      } else {
        extents.push_back({block_end - position, hole, hole});
      }
      position = block_end;
    }
    Result<std::vector<AllocationExtent>> result =
        status.ok() ? Result<std::vector<AllocationExtent>>(std::move(extents)) : status;
    StartRequest();
    Post([disk = disk_, done = std::move(done), result = std::move(result)]() mutable {
      --disk->inflight;
      done(std::move(result));
    });
  }

 private:
  Status TakeInjectedError() {
    Status status = std::move(disk_->next_error);
    disk_->next_error = Status::Ok();
    return status;
  }
  Status Check(uint64_t offset_bytes, uint64_t length_bytes) {
    if (offset_bytes > disk_->data.size() || length_bytes > disk_->data.size() - offset_bytes) {
      return Status::InvalidArgument("past the end of the memory disk");
    }
    return TakeInjectedError();
  }
  void MarkAllocated(uint64_t offset_bytes, uint64_t length_bytes) {
    const uint64_t first = offset_bytes / kAllocationBlockBytes;
    const uint64_t last = (offset_bytes + length_bytes - 1) / kAllocationBlockBytes;
    for (uint64_t block = first; block <= last; ++block) disk_->allocated[block] = true;
  }
  // Zeroes the range; with `deallocate`, blocks it covers whole become holes again.
  void Zero(uint64_t offset_bytes, uint64_t length_bytes, bool deallocate) {
    std::memset(&disk_->data[offset_bytes], 0, length_bytes);
    if (!deallocate) {
      MarkAllocated(offset_bytes, length_bytes);
      return;
    }
    const uint64_t first = (offset_bytes + kAllocationBlockBytes - 1) / kAllocationBlockBytes;
    const uint64_t end = offset_bytes + length_bytes;
    for (uint64_t block = first; (block + 1) * kAllocationBlockBytes <= end; ++block) {
      disk_->allocated[block] = false;
    }
  }
  void StartRequest() {
    ++disk_->inflight;
    disk_->inflight_max = std::max(disk_->inflight_max, disk_->inflight);
  }
  void Complete(Completion done, Status status) {
    StartRequest();
    Post([disk = disk_, done = std::move(done), status = std::move(status)]() mutable {
      --disk->inflight;
      done(std::move(status));
    });
  }
  // Runs `task` later on the io_context, or when the test runs the held completions. Tasks
  // capture the disk, not this export, so one outliving the connection stays safe.
  template <typename Task>
  void Post(Task task) {
    auto shared = std::make_shared<Task>(std::move(task));
    std::function<void()> run = [shared]() { (*shared)(); };
    if (disk_->hold_completions) {
      disk_->held.push_back(std::move(run));
    } else {
      asio::post(io_context_, std::move(run));
    }
  }

  asio::io_context& io_context_;
  ExportInfo info_;
  std::shared_ptr<MemoryDisk> disk_;
};

class MemoryExportProvider : public ExportProvider {
 public:
  explicit MemoryExportProvider(asio::io_context& io_context) : io_context_(io_context) {}

  std::shared_ptr<MemoryDisk> Add(const ExportInfo& info) {
    auto disk = std::make_shared<MemoryDisk>(info.size_bytes);
    exports_[info.name] = {info, disk};
    return disk;
  }
  std::vector<ExportInfo> ListExports() override {
    std::vector<ExportInfo> infos;
    for (const auto& [name, entry] : exports_) infos.push_back(entry.info);
    return infos;
  }
  Result<std::shared_ptr<Export>> OpenExport(std::string_view name) override {
    auto found = exports_.find(std::string(name));
    if (found == exports_.end()) return Status::NotFound(std::string(name));
    return std::shared_ptr<Export>(
        std::make_shared<MemoryExport>(io_context_, found->second.info, found->second.disk));
  }

 private:
  struct Entry {
    ExportInfo info;
    std::shared_ptr<MemoryDisk> disk;
  };
  asio::io_context& io_context_;
  std::map<std::string, Entry> exports_;
};

}  // namespace weft::nbd::testing
