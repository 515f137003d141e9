// IdAllocator: unique ids of one kind ("vdisk", "egroup") from a counter row in the metadata
// store. Ids are reserved in batches by compare-and-set on the row, so most allocations cost no
// metadata write; ids of a batch not handed out before a restart are skipped, never reused.
// Works unchanged when several nodes share the store: each reservation is one CAS, and a
// conflict just re-reads the row and tries again.
//
// Threading: the owner (reactor) thread; completions come back through the store's executor.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>

#include "base/status.h"
#include "metadata/metadata_store.h"

namespace weft::vdisk {

class IdAllocator {
 public:
  using Completion = std::function<void(Result<uint64_t> id)>;
  static constexpr uint32_t kMaxConflictRetries = 16;

  // Ids start at 1 (0 means "none" everywhere).
  IdAllocator(metadata::MetadataStore& store, std::string kind, uint64_t batch_size);
  void Allocate(Completion done);

 private:
  void Reserve(uint32_t attempt);
  void OnReserved(Status status);

  metadata::MetadataStore& store_;
  const std::string key_;
  const uint64_t batch_size_;
  uint64_t next_id_ = 0;  // [next_id_, end_id_) reserved and not handed out.
  uint64_t end_id_ = 0;
  bool reserving_ = false;
  std::deque<Completion> waiters_;
};

}  // namespace weft::vdisk
