// Helpers shared by the blockstore tests.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "blockstore/blockstore.h"
#include "env/memory_device.h"

namespace weft::blockstore::testing {

// Polls `blockstore` until `done` is set; fails the test if nothing is left to wait for.
inline void PollUntil(Blockstore& blockstore, const bool& done) {
  for (int idle_polls = 0; !done;) {
    if (blockstore.Poll(true) == 0 && ++idle_polls > 1000) {
      FAIL() << "operation never completed";
      return;
    }
  }
}

// Inverts one bit of a memory device's contents, bypassing everything.
inline void FlipRawBit(env::MemoryDevice& device, uint64_t offset_bytes, uint8_t bit_index) {
  std::byte sector[512];
  const uint64_t sector_offset = offset_bytes / 512 * 512;
  device.ReadRaw(sector_offset, sector);
  sector[offset_bytes - sector_offset] ^= std::byte(1u << bit_index);
  device.WriteRaw(sector_offset, sector);
}

inline Status PersistAndFlush(Blockstore& blockstore) {
  bool done = false;
  Status result;
  blockstore.PersistMetadata([&](Status status) {
    if (!status.ok()) {
      result = status;
      done = true;
      return;
    }
    blockstore.Flush([&](Status flushed) {
      result = flushed;
      done = true;
    });
  });
  PollUntil(blockstore, done);
  return result;
}

inline std::unique_ptr<Blockstore> FormatAndOpen(env::BlockDevice& device,
                                                 const FormatOptions& options = {}) {
  Status formatted = Blockstore::Format(device, options);
  EXPECT_TRUE(formatted.ok()) << formatted.ToString();
  auto opened = Blockstore::Open(device);
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  return opened.ok() ? std::move(opened).value() : nullptr;
}

}  // namespace weft::blockstore::testing
