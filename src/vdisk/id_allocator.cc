#include "vdisk/id_allocator.h"

#include <fmt/format.h>

#include "vdisk/vdisk_keys.h"

namespace weft::vdisk {

IdAllocator::IdAllocator(metadata::MetadataStore& store, std::string kind, uint64_t batch_size)
    : store_(store), key_(IdCounterKey(kind)), batch_size_(batch_size) {
  WEFT_ASSERT(batch_size_ >= 1);
  WEFT_ASSERT(!kind.empty());
}

void IdAllocator::Allocate(Completion done) {
  WEFT_ASSERT(done != nullptr);
  waiters_.push_back(std::move(done));
  if (reserving_) return;
  if (next_id_ < end_id_) {
    // Handed out through the executor like every other completion: never inline.
    OnReserved(Status::Ok());
    return;
  }
  Reserve(0);
}

void IdAllocator::Reserve(uint32_t attempt) {
  reserving_ = true;
  store_.Get(key_, [this, attempt](Result<metadata::Row> row) {
    uint64_t expected_version = 0;
    uint64_t first_free = 1;
    if (row.ok()) {
      records::IdCounter counter;
      const Status decoded = Decode(key_, row->value, counter);
      if (!decoded.ok()) return OnReserved(decoded);
      expected_version = row->version;
      first_free = counter.next_id();
    } else if (!row.status().IsNotFound()) {
      return OnReserved(row.status());
    }
    WEFT_ASSERT(first_free >= 1);
    records::IdCounter updated;
    updated.set_format_version(1);
    updated.set_next_id(first_free + batch_size_);
    store_.CompareAndSet(key_, expected_version, Encode(updated),
                         [this, attempt, first_free](Result<uint64_t> set) {
                           if (set.ok()) {
                             next_id_ = first_free;
                             end_id_ = first_free + batch_size_;
                             return OnReserved(Status::Ok());
                           }
                           // Another allocator (a node of the cluster) won the row: re-read it.
                           if (set.status().IsAborted() && attempt + 1 < kMaxConflictRetries) {
                             return Reserve(attempt + 1);
                           }
                           OnReserved(set.status());
                         });
  });
}

void IdAllocator::OnReserved(Status status) {
  reserving_ = false;
  while (!waiters_.empty()) {
    if (status.ok() && next_id_ == end_id_) {
      Reserve(0);  // More waiters than the batch held.
      return;
    }
    Completion done = std::move(waiters_.front());
    waiters_.pop_front();
    if (status.ok()) {
      done(next_id_++);
    } else {
      done(status.WithContext(fmt::format("allocating an id from {}", key_)));
    }
  }
}

}  // namespace weft::vdisk
