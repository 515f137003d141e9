// The NBD server's view of the vDisks: one export per active vDisk, export name = vDisk name.
// An open export holds a handle on its controller, so the vDisk cannot be deleted under a
// connected client.
//
// Threading: the reactor thread (nbd_export.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "frontend/nbd/nbd_export.h"
#include "vdisk/vdisk_manager.h"

namespace weft::daemon {

class VdiskExports final : public nbd::ExportProvider {
 public:
  explicit VdiskExports(vdisk::VdiskManager& manager);
  // Exports still held (by connections the server has not torn down yet) stop touching their
  // controllers and answer every request with an error.
  ~VdiskExports() override;

  std::vector<nbd::ExportInfo> ListExports() override;
  Result<std::shared_ptr<nbd::Export>> OpenExport(std::string_view name) override;

 private:
  vdisk::VdiskManager& manager_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace weft::daemon
