#include "extent_store/metadata_format.h"

#include <fmt/format.h>

#include <cstring>

#include "base/crc32c.h"

namespace weft::extent_store::format {

namespace {

constexpr size_t kCrcBytes = sizeof(uint32_t);
constexpr size_t kEgroupKeyBytes = 8;
constexpr size_t kSlotKeyBytes = kEgroupKeyBytes + 1;

void PutBigEndian64(uint64_t value, char* out) {
  for (int index = 7; index >= 0; --index) {
    out[index] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
}

uint64_t GetBigEndian64(const char* in) {
  uint64_t value = 0;
  for (int index = 0; index < 8; ++index) {
    value = (value << 8) | static_cast<uint8_t>(in[index]);
  }
  return value;
}

// The crc covers everything after the crc field itself.
template <typename Row>
uint32_t RowCrc(const Row& row) {
  static_assert(offsetof(Row, crc32c) == 0);
  return Crc32c(reinterpret_cast<const std::byte*>(&row) + kCrcBytes, sizeof(Row) - kCrcBytes);
}

template <typename Row>
std::string EncodeRow(Row row) {
  row.crc32c = RowCrc(row);
  return std::string(reinterpret_cast<const char*>(&row), sizeof(row));
}

// Size, crc, magic and version: the checks every row kind shares.
template <typename Row>
Result<Row> DecodeRow(std::string_view value, uint32_t expected_magic, std::string_view kind,
                      uint16_t expected_version = kFormatVersion) {
  if (value.size() != sizeof(Row)) {
    return Status::Corruption(
        fmt::format("{} row is {} bytes, expected {}", kind, value.size(), sizeof(Row)));
  }
  Row row;
  std::memcpy(&row, value.data(), sizeof(row));
  const uint32_t computed_crc = RowCrc(row);
  if (row.crc32c != computed_crc) {
    return Status::Corruption(
        fmt::format("{} row crc32c mismatch (stored {:#010x}, computed {:#010x})", kind, row.crc32c,
                    computed_crc));
  }
  if (row.magic != expected_magic) {
    return Status::Corruption(fmt::format("{} row has magic {:#010x}, expected {:#010x}", kind,
                                          row.magic, expected_magic));
  }
  if (row.version != expected_version) {
    return Status::Corruption(fmt::format("{} row of {} bytes has format version {}, expected {}",
                                          kind, value.size(), row.version, expected_version));
  }
  return row;
}

// The row's size tells its version (each version has its own size), and the version field must
// agree. A version 1 row becomes a version 2 row with replica version 0: before replica versions
// every egroup was a single copy, which no owner had numbered.
Result<EgroupRow> DecodeEgroupRowOfAnyVersion(std::string_view value) {
  if (value.size() != sizeof(EgroupRowV1)) {
    return DecodeRow<EgroupRow>(value, kEgroupMagic, "egroup", kEgroupRowVersion);
  }
  WEFT_ASSIGN_OR_RETURN(EgroupRowV1 old_row,
                        DecodeRow<EgroupRowV1>(value, kEgroupMagic, "egroup", kEgroupRowVersionV1));
  EgroupRow row{};
  row.magic = old_row.magic;
  row.version = kEgroupRowVersion;
  row.state = old_row.state;
  row.reserved = old_row.reserved;
  row.written_block_count = old_row.written_block_count;
  row.egroup_id = old_row.egroup_id;
  row.created_micros = old_row.created_micros;
  row.replica_version = 0;
  row.crc32c = RowCrc(row);  // As if read from disk: the crc matches the fields.
  return row;
}

}  // namespace

std::string EgroupKey(EgroupId egroup_id) {
  std::string key(kEgroupKeyBytes, '\0');
  PutBigEndian64(egroup_id, key.data());
  return key;
}

std::string SlotKey(EgroupId egroup_id, uint32_t slot) {
  WEFT_ASSERT(slot < kSlotsPerEgroup);
  std::string key(kSlotKeyBytes, '\0');
  PutBigEndian64(egroup_id, key.data());
  key[kEgroupKeyBytes] = static_cast<char>(slot);
  return key;
}

std::optional<EgroupId> DecodeEgroupKey(std::string_view key) {
  if (key.size() != kEgroupKeyBytes) return std::nullopt;
  return GetBigEndian64(key.data());
}

std::optional<SlotAddress> DecodeSlotKey(std::string_view key) {
  if (key.size() != kSlotKeyBytes) return std::nullopt;
  const uint32_t slot = static_cast<uint8_t>(key[kEgroupKeyBytes]);
  if (slot >= kSlotsPerEgroup) return std::nullopt;
  return SlotAddress{GetBigEndian64(key.data()), slot};
}

HeaderRow MakeHeaderRow(const Uuid& blockstore_uuid, uint32_t block_size_bytes) {
  HeaderRow row{};
  row.magic = kHeaderMagic;
  row.version = kFormatVersion;
  row.block_size_bytes = block_size_bytes;
  static_assert(sizeof(row.blockstore_uuid) == sizeof(blockstore_uuid.bytes));
  std::memcpy(row.blockstore_uuid, blockstore_uuid.bytes.data(), sizeof(row.blockstore_uuid));
  return row;
}

EgroupRow MakeEgroupRow(EgroupId egroup_id, uint32_t written_block_count, uint64_t created_micros,
                        uint64_t replica_version) {
  WEFT_ASSERT(written_block_count <= kBlocksPerEgroup);
  EgroupRow row{};
  row.magic = kEgroupMagic;
  row.version = kEgroupRowVersion;
  row.state = static_cast<uint8_t>(EgroupState::kLive);
  row.written_block_count = written_block_count;
  row.egroup_id = egroup_id;
  row.created_micros = created_micros;
  row.replica_version = replica_version;
  return row;
}

SlotRows MakeEmptySlotRows(SlotAddress address) {
  WEFT_ASSERT(address.slot < kSlotsPerEgroup);
  SlotRows rows{};
  for (BlockMapRow* row : {&rows.layout, &rows.checksums}) {
    row->version = kFormatVersion;
    row->egroup_id = address.egroup_id;
    row->slot = static_cast<uint8_t>(address.slot);
  }
  rows.layout.magic = kLayoutMagic;
  rows.checksums.magic = kChecksumsMagic;
  return rows;
}

std::string EncodeHeaderRow(const HeaderRow& row) {
  WEFT_ASSERT(row.magic == kHeaderMagic);
  return EncodeRow(row);
}

std::string EncodeEgroupRow(const EgroupRow& row) {
  WEFT_ASSERT(row.magic == kEgroupMagic);
  WEFT_ASSERT(row.version == kEgroupRowVersion);  // Version 1 rows are never written.
  WEFT_ASSERT(row.written_block_count <= kBlocksPerEgroup);
  return EncodeRow(row);
}

std::string EncodeBlockMapRow(const BlockMapRow& row) {
  WEFT_ASSERT(row.magic == kLayoutMagic || row.magic == kChecksumsMagic);
  WEFT_ASSERT(row.slot < kSlotsPerEgroup);
  return EncodeRow(row);
}

Result<HeaderRow> DecodeHeaderRow(std::string_view value) {
  WEFT_ASSIGN_OR_RETURN(HeaderRow row, DecodeRow<HeaderRow>(value, kHeaderMagic, "header"));
  if (row.reserved != 0) return Status::Corruption("header row: reserved field is not zero");
  return row;
}

Result<EgroupRow> DecodeEgroupRow(std::string_view value, EgroupId expected_egroup_id) {
  WEFT_ASSIGN_OR_RETURN(EgroupRow row, DecodeEgroupRowOfAnyVersion(value));
  if (row.egroup_id != expected_egroup_id) {
    return Status::Corruption(fmt::format("egroup row names egroup {} under the key of egroup {}",
                                          row.egroup_id, expected_egroup_id));
  }
  if (row.state != static_cast<uint8_t>(EgroupState::kLive) || row.reserved != 0) {
    return Status::Corruption(fmt::format("egroup row has unknown state {}", row.state));
  }
  if (row.written_block_count > kBlocksPerEgroup) {
    return Status::Corruption(fmt::format("egroup row claims {} written blocks (at most {})",
                                          row.written_block_count, kBlocksPerEgroup));
  }
  return row;
}

Result<BlockMapRow> DecodeBlockMapRow(std::string_view value, uint32_t expected_magic,
                                      SlotAddress expected_address) {
  WEFT_ASSERT(expected_magic == kLayoutMagic || expected_magic == kChecksumsMagic);
  const std::string_view kind = expected_magic == kLayoutMagic ? "layout" : "checksums";
  WEFT_ASSIGN_OR_RETURN(BlockMapRow row, DecodeRow<BlockMapRow>(value, expected_magic, kind));
  if (row.egroup_id != expected_address.egroup_id || row.slot != expected_address.slot) {
    return Status::Corruption(fmt::format(
        "{} row names egroup {} slot {} under the key of "
        "egroup {} slot {}",
        kind, row.egroup_id, row.slot, expected_address.egroup_id, expected_address.slot));
  }
  if (row.reserved != 0 || row.reserved2 != 0) {
    return Status::Corruption(fmt::format("{} row: reserved field is not zero", kind));
  }
  return row;
}

}  // namespace weft::extent_store::format
