// On-disk encoding of LocalMetadataStore's RocksDB (format version 1). The prose spec is
// docs/ondisk/metadata.md; keep the two in step.
//
// Two column families: `default` holds one database header row (what this database is, and its
// uuid); `rows` holds the metadata rows under their own keys, so RocksDB's bytewise key order is
// the Scan order. Every value is a packed little-endian struct whose first field is the crc32c of
// every byte after it, and is checked (length, crc, magic, version, reserved zero) on every read.
#pragma once

#include <bit>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "base/status.h"
#include "base/uuid.h"
#include "metadata/metadata_store.h"

namespace weft::metadata::format {

static_assert(std::endian::native == std::endian::little, "weft on-disk formats are little-endian");

inline constexpr uint16_t kFormatVersion = 1;

// Magics spell their row kind in ASCII when the value is dumped little-endian.
inline constexpr uint32_t kHeaderMagic = 0x48444D57;  // "WMDH": weft metadata database header.
inline constexpr uint32_t kRowMagic = 0x57524D57;     // "WMRW": weft metadata row.

inline constexpr char kRowsFamily[] = "rows";
// The one row of the default column family.
inline constexpr std::string_view kHeaderKey = "weft.metadata.header";

struct DatabaseHeader {
  uint32_t crc32c;  // Of bytes [4, sizeof(DatabaseHeader)).
  uint32_t magic;   // kHeaderMagic.
  uint16_t format_version;
  uint16_t reserved;  // Zero.
  uint8_t uuid[16];   // Random, made when the database was created; names it in tools and logs.
};
static_assert(sizeof(DatabaseHeader) == 28);
static_assert(std::has_unique_object_representations_v<DatabaseHeader>, "no padding");

// Precedes the value bytes of every row.
struct RowHeader {
  uint32_t crc32c;  // Of the header bytes after this field and the value bytes.
  uint32_t magic;   // kRowMagic.
  uint16_t format_version;
  uint16_t reserved;      // Zero.
  uint32_t value_length;  // Bytes after the header; 0..kMaxValueBytes.
  uint64_t row_version;   // >= 1: the MetadataStore version of the row.
};
static_assert(sizeof(RowHeader) == 24);
static_assert(std::has_unique_object_representations_v<RowHeader>, "no padding");

std::string EncodeDatabaseHeader(const Uuid& uuid);
// The database uuid, or Corruption (length, crc, magic, reserved) or NotSupported (a header
// that is intact but of another format version).
Result<Uuid> DecodeDatabaseHeader(std::string_view encoded);

// `row_version` >= 1 and value.size() <= kMaxValueBytes (asserted: callers validate input).
std::string EncodeRow(uint64_t row_version, std::string_view value);
// The row stored under `key`, or Corruption naming the key.
Result<Row> DecodeRow(std::string_view key, std::string_view encoded);

// A key as error messages show it: printable ASCII as is, other bytes as \xNN, long keys cut
// after 64 bytes with their length. For example `key "vdisk/\x00\x07"`.
std::string DescribeKey(std::string_view key);

}  // namespace weft::metadata::format
