// PostingMetadataStore: a MetadataStore whose completions run through a given Executor, in front
// of a store that completes on its own thread (the ring completes on the node's RPC thread; the
// vDisk layer wants its completions on the reactor). Header-only: it is a few forwarding lines.
#pragma once

#include <utility>

#include "base/assert.h"
#include "metadata/metadata_store.h"

namespace weft::metadata {

class PostingMetadataStore final : public MetadataStore {
 public:
  // `inner` must outlive this object; `executor` runs each completion on the owner's thread.
  PostingMetadataStore(MetadataStore& inner, Executor executor)
      : inner_(inner), executor_(std::move(executor)) {
    WEFT_ASSERT(executor_ != nullptr);
  }

  void Get(std::string key, GetCompletion done) override {
    inner_.Get(std::move(key), Post(std::move(done)));
  }
  void CompareAndSet(std::string key, uint64_t expected_version, std::string value,
                     SetCompletion done) override {
    inner_.CompareAndSet(std::move(key), expected_version, std::move(value), Post(std::move(done)));
  }
  void CompareAndDelete(std::string key, uint64_t expected_version,
                        DeleteCompletion done) override {
    inner_.CompareAndDelete(std::move(key), expected_version, Post(std::move(done)));
  }
  void Scan(std::string prefix, std::string start_after, uint32_t limit,
            ScanCompletion done) override {
    inner_.Scan(std::move(prefix), std::move(start_after), limit, Post(std::move(done)));
  }

 private:
  template <typename Completion>
  Completion Post(Completion done) {
    WEFT_ASSERT(done != nullptr);
    return [executor = executor_, done = std::move(done)](auto result) mutable {
      executor([done = std::move(done), result = std::move(result)]() mutable {
        done(std::move(result));
      });
    };
  }

  MetadataStore& inner_;
  Executor executor_;
};

}  // namespace weft::metadata
