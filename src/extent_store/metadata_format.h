// Row formats of the extent store's per-disk RocksDB (the AES metadata). The prose spec is
// docs/ondisk/extent_store.md; keep the two in step.
//
// Keys are big-endian so that RocksDB's bytewise order is egroup order. Values are fixed-size
// little-endian structs (weft runs on little-endian machines only, asserted below) laid out
// without padding (asserted), whose first field is the crc32c of every byte after it. A value is
// checked (size, crc, magic, version, the key it claims to belong to) on every read.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "base/status.h"
#include "base/uuid.h"
#include "extent_store/extent_store.h"

namespace weft::extent_store::format {

static_assert(std::endian::native == std::endian::little, "weft on-disk formats are little-endian");

// Header and block map rows. Egroup rows have their own version: replica versions (issue 7) grew
// them to version 2; version 1 rows (older stores) are still read, as replica version 0.
inline constexpr uint16_t kFormatVersion = 1;
inline constexpr uint16_t kEgroupRowVersion = 2;
inline constexpr uint16_t kEgroupRowVersionV1 = 1;
inline constexpr uint32_t kBlocksPerSlot = kExtentBytes / kChecksumBlockBytes;  // 256
inline constexpr uint32_t kSlotsPerEgroup = kEgroupMaxBytes / kExtentBytes;     // 4
inline constexpr uint32_t kBlocksPerEgroup = kBlocksPerSlot * kSlotsPerEgroup;  // 1024

// Magics spell their row kind in ASCII when the value is dumped little-endian.
inline constexpr uint32_t kHeaderMagic = 0x52485345;     // "ESHR": extent store header row.
inline constexpr uint32_t kEgroupMagic = 0x52474745;     // "EGGR": egroup row.
inline constexpr uint32_t kLayoutMagic = 0x52594C45;     // "ELYR": layout row.
inline constexpr uint32_t kChecksumsMagic = 0x52534345;  // "ECSR": checksums row.

// Column families.
inline constexpr char kEgroupsFamily[] = "egroups";
inline constexpr char kLayoutFamily[] = "layout";
inline constexpr char kChecksumsFamily[] = "checksums";
// The one row of the default column family.
inline constexpr std::string_view kHeaderKey = "weft.extent_store.header";

enum class EgroupState : uint8_t {
  kLive = 1,  // The only state today; others are reserved (a later format may add kDeleting).
};

struct HeaderRow {
  uint32_t crc32c;  // Of bytes [4, sizeof(HeaderRow)).
  uint32_t magic;   // kHeaderMagic.
  uint16_t version;
  uint16_t reserved;  // Zero.
  uint32_t block_size_bytes;
  uint8_t blockstore_uuid[16];  // The blockstore whose blocks the layout rows name.
};
static_assert(sizeof(HeaderRow) == 32);
static_assert(std::has_unique_object_representations_v<HeaderRow>, "no padding");

struct EgroupRow {
  uint32_t crc32c;               // Of bytes [4, sizeof(EgroupRow)).
  uint32_t magic;                // kEgroupMagic.
  uint16_t version;              // kEgroupRowVersion.
  uint8_t state;                 // EgroupState.
  uint8_t reserved;              // Zero.
  uint32_t written_block_count;  // Non-zero entries over the egroup's layout rows.
  uint64_t egroup_id;            // Repeats the key: a row read under another key is caught.
  uint64_t created_micros;       // Metadata env clock at creation; informational.
  // Which writes of the vDisk owner this replica holds (the owner numbers them per egroup).
  // Committed in the batch of the write that raised it, so it never claims data that is not
  // there, and data that is there is never newer than it.
  uint64_t replica_version;
};
static_assert(sizeof(EgroupRow) == 40);
static_assert(std::has_unique_object_representations_v<EgroupRow>, "no padding");

// An egroup row of version 1: EgroupRow without replica_version. Read (as replica version 0),
// never written.
struct EgroupRowV1 {
  uint32_t crc32c;   // Of bytes [4, sizeof(EgroupRowV1)).
  uint32_t magic;    // kEgroupMagic.
  uint16_t version;  // kEgroupRowVersionV1.
  uint8_t state;
  uint8_t reserved;
  uint32_t written_block_count;
  uint64_t egroup_id;
  uint64_t created_micros;
};
static_assert(sizeof(EgroupRowV1) == 32);
static_assert(std::has_unique_object_representations_v<EgroupRowV1>, "no padding");
static_assert(offsetof(EgroupRow, replica_version) == sizeof(EgroupRowV1),
              "version 2 appends to version 1");

// A layout row (entries are physical block numbers, 0 = unwritten) or a checksums row (entries
// are the crc32c of each 4 KiB block; meaningful where the layout entry is non-zero) of one
// extent slot: 256 blocks, 1 MiB of the egroup.
struct BlockMapRow {
  uint32_t crc32c;     // Of bytes [4, sizeof(BlockMapRow)).
  uint32_t magic;      // kLayoutMagic or kChecksumsMagic.
  uint64_t egroup_id;  // Repeats the key.
  uint16_t version;
  uint8_t slot;        // Repeats the key: 0..3.
  uint8_t reserved;    // Zero.
  uint32_t reserved2;  // Zero.
  uint32_t entries[kBlocksPerSlot];
};
static_assert(sizeof(BlockMapRow) == 24 + 4 * kBlocksPerSlot);
static_assert(std::has_unique_object_representations_v<BlockMapRow>, "no padding");

// Both rows of one slot; they are always written together in one batch.
struct SlotRows {
  BlockMapRow layout;
  BlockMapRow checksums;
};

// Keys.
std::string EgroupKey(EgroupId egroup_id);               // 8 bytes, big-endian.
std::string SlotKey(EgroupId egroup_id, uint32_t slot);  // 9 bytes: egroup big-endian, slot.
std::optional<EgroupId> DecodeEgroupKey(std::string_view key);
struct SlotAddress {
  EgroupId egroup_id = 0;
  uint32_t slot = 0;
  friend auto operator<=>(const SlotAddress&, const SlotAddress&) = default;
};
std::optional<SlotAddress> DecodeSlotKey(std::string_view key);

// Fresh rows (crc not yet set; Encode* sets it).
HeaderRow MakeHeaderRow(const Uuid& blockstore_uuid, uint32_t block_size_bytes);
EgroupRow MakeEgroupRow(EgroupId egroup_id, uint32_t written_block_count, uint64_t created_micros,
                        uint64_t replica_version);
// An all-unwritten slot: zero entries.
SlotRows MakeEmptySlotRows(SlotAddress address);

// Encoding stamps the crc32c; the input's crc field is ignored.
std::string EncodeHeaderRow(const HeaderRow& row);
std::string EncodeEgroupRow(const EgroupRow& row);
std::string EncodeBlockMapRow(const BlockMapRow& row);

// Decoding checks size, crc, magic, version, reserved fields and, where the row repeats its key,
// that it matches. Errors are Corruption with a reason; the caller adds which disk and row.
Result<HeaderRow> DecodeHeaderRow(std::string_view value);
// Egroup rows of version 1 (32 bytes) decode to an EgroupRow with replica_version 0; the row's
// size must match its version.
Result<EgroupRow> DecodeEgroupRow(std::string_view value, EgroupId expected_egroup_id);
Result<BlockMapRow> DecodeBlockMapRow(std::string_view value, uint32_t expected_magic,
                                      SlotAddress expected_address);

}  // namespace weft::extent_store::format
