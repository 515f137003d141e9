#include "metadata/ring/ring_store.h"

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <cstring>

#include "base/assert.h"
#include "base/crc32c.h"
#include "metadata/ring/ring_wire.h"

namespace weft::metadata::ring {

namespace {

// Key space: "h" the header, "f" the round floor, "r/<row key>" one row each.
constexpr std::string_view kHeaderKey = "h";
constexpr std::string_view kFloorKey = "f";
constexpr std::string_view kRowPrefix = "r/";

constexpr uint32_t kHeaderMagic = 0x53525257;  // "WRRS"
constexpr uint32_t kHeaderVersion = 1;

struct StoreHeader {
  uint32_t magic;
  uint32_t version;
  uint32_t node_id;
  uint32_t crc32c;  // Of the fields above.
};
static_assert(sizeof(StoreHeader) == 16);

struct FloorRecord {
  uint64_t round_floor;
  uint32_t reserved;
  uint32_t crc32c;  // Of the fields above.
};
static_assert(sizeof(FloorRecord) == 16);

template <typename T>
std::string Pack(T record) {
  record.crc32c = Crc32c(&record, offsetof(T, crc32c));
  std::string bytes(sizeof(T), '\0');
  std::memcpy(bytes.data(), &record, sizeof(T));
  return bytes;
}

template <typename T>
Result<T> Unpack(const std::string& bytes, std::string_view what) {
  T record;
  if (bytes.size() != sizeof(T)) {
    return Status::Corruption(
        fmt::format("ring store {}: {} bytes, expected {}", what, bytes.size(), sizeof(T)));
  }
  std::memcpy(&record, bytes.data(), sizeof(T));
  if (Crc32c(&record, offsetof(T, crc32c)) != record.crc32c) {
    return Status::Corruption(fmt::format("ring store {}: crc mismatch", what));
  }
  return record;
}

Status Translate(const rocksdb::Status& status, std::string_view context) {
  if (status.ok()) return Status::Ok();
  if (status.IsCorruption())
    return Status::Corruption(fmt::format("{}: {}", context, status.ToString()));
  return Status::IOError(fmt::format("{}: {}", context, status.ToString()));
}

}  // namespace

RingStore::RingStore(std::string path, std::unique_ptr<rocksdb::DB> db)
    : path_(std::move(path)), db_(std::move(db)) {}

RingStore::~RingStore() {
  if (db_) {
    rocksdb::FlushOptions flush;
    (void)db_->Flush(flush);
    (void)db_->Close();
  }
}

Result<std::unique_ptr<RingStore>> RingStore::Open(const std::string& path, NodeId self) {
  if (path.empty()) return Status::InvalidArgument("ring store: empty path");
  WEFT_ASSERT(self != 0);
  rocksdb::Options options;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  rocksdb::DB* raw = nullptr;
  if (Status status = Translate(rocksdb::DB::Open(options, path, &raw),
                                fmt::format("ring store {}: open", path));
      !status.ok()) {
    return status;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string bytes;
  rocksdb::Status read = db->Get(rocksdb::ReadOptions(), std::string(kHeaderKey), &bytes);
  if (read.IsNotFound()) {
    rocksdb::WriteOptions sync;
    sync.sync = true;
    const std::string header =
        Pack(StoreHeader{.magic = kHeaderMagic, .version = kHeaderVersion, .node_id = self});
    if (Status status = Translate(db->Put(sync, std::string(kHeaderKey), header),
                                  fmt::format("ring store {}: header", path));
        !status.ok()) {
      return status;
    }
  } else {
    if (Status status = Translate(read, fmt::format("ring store {}: header", path)); !status.ok()) {
      return status;
    }
    Result<StoreHeader> header = Unpack<StoreHeader>(bytes, "header");
    if (!header.ok()) return header.status();
    if (header->magic != kHeaderMagic || header->version != kHeaderVersion) {
      return Status::Corruption(fmt::format("ring store {}: not a weft ring store", path));
    }
    if (header->node_id != self) {
      return Status::Corruption(fmt::format("ring store {} belongs to node {}, not node {}", path,
                                            header->node_id, self));
    }
  }
  return std::unique_ptr<RingStore>(new RingStore(path, std::move(db)));
}

Result<RecoveredState> RingStore::Load() {
  RecoveredState state;
  std::string bytes;
  rocksdb::Status read = db_->Get(rocksdb::ReadOptions(), std::string(kFloorKey), &bytes);
  if (!read.IsNotFound()) {
    if (Status status = Translate(read, "ring store: floor"); !status.ok()) return status;
    Result<FloorRecord> floor = Unpack<FloorRecord>(bytes, "round floor");
    if (!floor.ok()) return floor.status();
    state.round_floor = floor->round_floor;
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(std::string(kRowPrefix)); it->Valid() && it->key().starts_with(kRowPrefix);
       it->Next()) {
    const std::string key = it->key().ToString().substr(kRowPrefix.size());
    Result<paxos::AcceptorState> row = DecodeAcceptorState(it->value().ToStringView());
    if (!row.ok()) {
      return Status::Corruption(
          fmt::format("ring store {}: row '{}': {}", path_, key, row.status().message()));
    }
    state.rows.emplace(key, std::move(*row));
  }
  if (Status status = Translate(it->status(), "ring store: scan"); !status.ok()) return status;
  return state;
}

Status RingStore::Write(const std::vector<PersistRow>& rows,
                        const std::vector<PersistRoundFloor>& floors) {
  rocksdb::WriteBatch batch;
  for (const PersistRow& row : rows) {
    WEFT_ASSERT(!row.key.empty());
    const std::string encoded = EncodeAcceptorState(row.state);
    // Check the record before it goes to disk: a bad encoder must not reach the log.
    WEFT_ASSERT(DecodeAcceptorState(encoded).ok());
    batch.Put(std::string(kRowPrefix) + row.key, encoded);
  }
  uint64_t floor_max = 0;
  for (const PersistRoundFloor& floor : floors) floor_max = std::max(floor_max, floor.round_floor);
  if (floor_max != 0) {
    batch.Put(std::string(kFloorKey), Pack(FloorRecord{.round_floor = floor_max}));
  }
  // One synced write makes every earlier unsynced one durable too (they precede it in the log).
  bool needs_sync = !floors.empty();
  for (const PersistRow& row : rows) needs_sync = needs_sync || row.sync;
  rocksdb::WriteOptions options;
  options.sync = needs_sync;
  return Translate(db_->Write(options, &batch), fmt::format("ring store {}: write", path_));
}

}  // namespace weft::metadata::ring
