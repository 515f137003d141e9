// ExtentStore: extent groups (egroups) on one disk, the seeds' Extent Store with AES (per-disk
// metadata in RocksDB). Formats: docs/ondisk/extent_store.md.
//
// An egroup is up to 4 MiB of data on one disk, addressed by byte offset within it, and holds
// up to four 1 MiB extents (extent slot k is egroup bytes [k MiB, (k+1) MiB)). Every 4 KiB block
// has a crc32c (ISA-L) kept in RocksDB beside its physical location.
//
// Durability: a write's completion runs only after its data is durable on the device and its
// metadata (new block locations and checksums) is committed in one synced RocksDB WriteBatch.
// Writes are out of place: new data goes to newly allocated blocks and the batch switches the
// block map, so after a crash every 4 KiB block holds its old or its new contents, never a mix,
// and never a checksum error; a multi-block write is all-or-nothing. Concurrent writes share
// device flushes and RocksDB syncs (group commit); overlapping writes apply in submission order.
//
// Reads verify every block's checksum; a mismatch is a Corruption status naming the disk, the
// egroup and the offset. Unwritten blocks of an egroup read as zeros.
//
// Replica versions (issue 7): an egroup has one replica on each of RF nodes, under the same id.
// The vDisk owner numbers its writes to an egroup (replica_version, counting up per egroup), and
// each replica commits the number with the write's block map, in the same synced batch: after a
// crash a replica's version says exactly which writes it holds (if write v's data is there, the
// version is at least v; if the version is v, write v's data is there), so a replica that missed
// writes shows a lower version and is not served.
//
// Threading: one owner thread; completions run inside Poll(). RocksDB commits run on that thread,
// batched (one commit per group).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "blockstore/blockstore.h"

namespace rocksdb {
class Env;
}

namespace weft::extent_store {

using EgroupId = uint64_t;

inline constexpr uint64_t kEgroupMaxBytes = 4ull << 20;
inline constexpr uint64_t kExtentBytes = 1ull << 20;
inline constexpr uint64_t kChecksumBlockBytes = 4096;
inline constexpr uint64_t kMaxIoBytes = 1ull << 20;  // Largest single read or write.

struct ExtentStoreOptions {
  std::string metadata_path;               // RocksDB directory of this disk's AES metadata.
  rocksdb::Env* metadata_env = nullptr;    // nullptr: the default (POSIX) env. Tests pass a
                                           // memory env.
  std::string disk_name;                   // Used in error messages; defaults to device name.
  uint32_t max_inflight_writes = 256;      // Writes beyond this are rejected with Busy.
  uint32_t max_group_commit_writes = 128;  // Most writes committed in one RocksDB batch.
  // Synced RocksDB batches run on a helper thread while other writes are queued, so the owner
  // thread keeps serving the device meanwhile (a lone write commits inline: no hand-off). False:
  // every commit runs on the owner thread, which makes runs deterministic (crash loop, sim).
  bool commit_thread = true;
};

struct EgroupInfo {
  EgroupId id = 0;
  uint64_t written_bytes = 0;    // Bytes of blocks holding data.
  uint64_t replica_version = 0;  // As committed; 0 if never given one.
};

struct ScrubReport {
  uint64_t egroups_checked = 0;
  uint64_t blocks_checked = 0;
  struct BadBlock {
    EgroupId egroup_id = 0;
    uint64_t offset_bytes = 0;  // Within the egroup.
    std::string reason;
  };
  std::vector<BadBlock> bad_blocks;
  Status metadata_status;  // RocksDB's own checksum verification of its files.
};

struct ExtentStoreStats {
  uint64_t egroups = 0;
  uint64_t writes = 0;
  uint64_t trims = 0;
  uint64_t reads = 0;
  uint64_t bytes_written = 0;
  uint64_t bytes_read = 0;
  uint64_t group_commits = 0;  // RocksDB batches committed.
  uint64_t checksum_errors = 0;
  uint64_t orphan_blocks_reclaimed = 0;  // At open.
  uint64_t metadata_cache_hits = 0;      // Slot rows served from memory.
  uint64_t metadata_cache_misses = 0;    // Slot rows read from RocksDB.
  blockstore::BlockstoreStats blockstore;
};

using WriteCompletion = std::function<void(Status status)>;
using ReadCompletion = std::function<void(Status status)>;

class ExtentStore {
 public:
  // Opens (creating on first use) the metadata at options.metadata_path for `blockstore`,
  // checks that it belongs to this blockstore (uuid), and reclaims blocks no egroup references.
  static Result<std::unique_ptr<ExtentStore>> Open(blockstore::Blockstore& blockstore,
                                                   const ExtentStoreOptions& options);
  ~ExtentStore();  // Waits for in-flight I/O (errors included) to finish.

  // AlreadyExists if present. Synchronous (one RocksDB write), with the given replica version.
  Status CreateEgroup(EgroupId egroup_id, uint64_t replica_version = 0);
  // Frees the egroup's blocks once its removal is committed. NotFound; Busy while I/O runs on it.
  Status DeleteEgroup(EgroupId egroup_id);
  std::vector<EgroupInfo> ListEgroups() const;
  Result<EgroupInfo> GetEgroup(EgroupId egroup_id) const;  // NotFound.

  // The egroup's replica version as committed (writes in flight do not count). NotFound.
  Result<uint64_t> ReplicaVersion(EgroupId egroup_id) const;
  // Sets the replica version exactly, lower included: for a replica whose whole contents were
  // just copied from another (repair, re-replication). Synchronous (one synced RocksDB write).
  // NotFound; Busy while writes to the egroup are in flight or waiting (the version could not
  // be ordered with theirs).
  Status SetReplicaVersion(EgroupId egroup_id, uint64_t replica_version);

  // offset and length multiples of 4 KiB, length 4 KiB..1 MiB, within the egroup's 4 MiB.
  // `data` must stay valid until `done` runs. Errors: InvalidArgument, NotFound, NoSpace, Busy,
  // IOError. A non-zero `replica_version` raises the egroup's version to at least that, in the
  // same synced batch as the write's block map (a crash keeps both or neither); 0 leaves it.
  void Write(EgroupId egroup_id, uint64_t offset_bytes, std::span<const std::byte> data,
             WriteCompletion done, uint64_t replica_version = 0);
  void Read(EgroupId egroup_id, uint64_t offset_bytes, std::span<std::byte> buffer,
            ReadCompletion done);
  // Unmaps the range's blocks: they read as zeros afterwards and their space is freed. Ordered
  // with writes exactly like a write (an overlapping write submitted before it is trimmed, one
  // submitted after it lands), committed the same way (durable when `done` runs), and
  // all-or-nothing across a crash. offset and length multiples of 4 KiB, length 4 KiB..4 MiB,
  // within the egroup. Errors and `replica_version` as Write.
  void Trim(EgroupId egroup_id, uint64_t offset_bytes, uint64_t length_bytes, WriteCompletion done,
            uint64_t replica_version = 0);
  // Which 4 KiB blocks of the range hold data, as committed (writes still in flight are not
  // seen). One entry per block. Synchronous (slot rows come from the cache or RocksDB). Same
  // range rules as Trim.
  Result<std::vector<bool>> AllocatedBlocks(EgroupId egroup_id, uint64_t offset_bytes,
                                            uint64_t length_bytes);
  // The stored crc32c of each 4 KiB block of the range (0 for unwritten blocks), as committed:
  // lets replicas be compared without reading their data. Synchronous, same rules as
  // AllocatedBlocks.
  Result<std::vector<uint32_t>> BlockChecksums(EgroupId egroup_id, uint64_t offset_bytes,
                                               uint64_t length_bytes);

  // Re-reads every written block of every egroup and verifies its checksum, and asks RocksDB to
  // verify its files. Synchronous; reports, never repairs.
  ScrubReport Scrub();
  ExtentStoreStats stats() const;

  // Runs completions (the blockstore's device Poll).
  size_t Poll(bool wait);

  struct State;

 private:
  explicit ExtentStore(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace weft::extent_store
