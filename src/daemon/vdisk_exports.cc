#include "daemon/vdisk_exports.h"

#include <fmt/format.h>

namespace weft::daemon {

namespace {

nbd::ExportInfo InfoOf(const vdisk::VdiskController& controller) {
  nbd::ExportInfo info;
  info.name = controller.record().name();
  info.description = fmt::format("weft vdisk {} (container {})", controller.record().name(),
                                 controller.record().container());
  info.size_bytes = controller.size_bytes();
  // Any alignment works (partial blocks are read-modify-written), 4 KiB is what is fast.
  info.block_size_min_bytes = 1;
  info.block_size_preferred_bytes = 4096;
  info.block_size_max_bytes = 32u << 20;
  info.can_fast_zero = false;
  return info;
}

Status Gone(std::string_view name) {
  return Status::NotFound(fmt::format("vdisk {}: weftd is shutting down", name));
}

class VdiskExport final : public nbd::Export {
 public:
  VdiskExport(vdisk::VdiskController& controller, std::shared_ptr<bool> alive)
      : controller_(controller), alive_(std::move(alive)), info_(InfoOf(controller)) {
    controller_.AddHandle();
  }
  ~VdiskExport() override {
    if (*alive_) controller_.RemoveHandle();
  }

  const nbd::ExportInfo& info() const override { return info_; }

  void Read(uint64_t offset_bytes, std::span<std::byte> buffer, nbd::Completion done) override {
    if (!*alive_) return done(Gone(info_.name));
    controller_.Read(offset_bytes, buffer, std::move(done));
  }
  void Write(uint64_t offset_bytes, std::span<const std::byte> data, bool /*fua*/,
             nbd::Completion done) override {
    // Every acknowledged write is durable: FUA needs nothing more.
    if (!*alive_) return done(Gone(info_.name));
    controller_.Write(offset_bytes, data, std::move(done));
  }
  void Flush(nbd::Completion done) override {
    if (!*alive_) return done(Gone(info_.name));
    controller_.Flush(std::move(done));
  }
  void Trim(uint64_t offset_bytes, uint64_t length_bytes, nbd::Completion done) override {
    if (!*alive_) return done(Gone(info_.name));
    controller_.Trim(offset_bytes, length_bytes, std::move(done));
  }
  void WriteZeroes(uint64_t offset_bytes, uint64_t length_bytes, bool no_hole, bool /*fua*/,
                   nbd::Completion done) override {
    if (!*alive_) return done(Gone(info_.name));
    controller_.WriteZeroes(offset_bytes, length_bytes, no_hole, std::move(done));
  }
  void BlockStatus(uint64_t offset_bytes, uint64_t length_bytes,
                   nbd::BlockStatusCompletion done) override {
    if (!*alive_) return done(Gone(info_.name));
    controller_.BlockStatus(
        offset_bytes, length_bytes,
        [done = std::move(done)](Result<std::vector<vdisk::AllocationRun>> runs) {
          if (!runs.ok()) return done(runs.status());
          std::vector<nbd::AllocationExtent> extents;
          extents.reserve(runs->size());
          for (const vdisk::AllocationRun& run : *runs) {
            extents.push_back({run.length_bytes, !run.allocated, !run.allocated});
          }
          done(std::move(extents));
        });
  }

 private:
  vdisk::VdiskController& controller_;
  std::shared_ptr<bool> alive_;
  const nbd::ExportInfo info_;
};

}  // namespace

VdiskExports::VdiskExports(vdisk::VdiskManager& manager) : manager_(manager) {}

VdiskExports::~VdiskExports() { *alive_ = false; }

std::vector<nbd::ExportInfo> VdiskExports::ListExports() {
  std::vector<nbd::ExportInfo> exports;
  for (const vdisk::VdiskController* controller : manager_.ListVdisks()) {
    exports.push_back(InfoOf(*controller));
  }
  return exports;
}

Result<std::shared_ptr<nbd::Export>> VdiskExports::OpenExport(std::string_view name) {
  vdisk::VdiskController* controller = manager_.FindVdisk(std::string(name));
  if (controller == nullptr) {
    return Status::NotFound(fmt::format("no vdisk named '{}'", name));
  }
  return std::shared_ptr<nbd::Export>(std::make_shared<VdiskExport>(*controller, alive_));
}

}  // namespace weft::daemon
