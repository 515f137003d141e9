// The OpLog's on-disk format: batches of records in preallocated segment files. The prose spec is
// docs/ondisk/oplog.md; keep the two in step.
//
// A segment is written front to back in batches, each one device write padded to 4 KiB. A batch
// is a BatchHeader, then its records (RecordHeader + data, unpadded), then zero padding. The
// header's crc covers the header, payload_crc the records: a torn batch fails one of them and is
// discarded whole (its records were never acknowledged: a batch's writes are acknowledged only
// after its flush). Batches of one segment carry consecutive batch_seq values from offset 0, so
// stale batches left by an earlier use of a recycled segment end the scan (their batch_seq is
// lower). Every batch also carries the drain watermark: records with seq <= drained_seq are in
// the extent store and must not be replayed.
//
// Records are self-contained (vDisk, seq, offset, length, kind, crc of their data): what a peer
// node needs to persist a copy and acknowledge it (OpLog::AppendReplica). A replica's seqs may
// have gaps; a batch never spans one (its seqs are consecutive).
#pragma once

#include <bit>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "base/status.h"

namespace weft::oplog::format {

static_assert(std::endian::native == std::endian::little, "weft on-disk formats are little-endian");

inline constexpr uint16_t kFormatVersion = 1;
inline constexpr uint32_t kBatchMagic = 0x42504F57;   // "WOPB" dumped little-endian.
inline constexpr uint32_t kRecordMagic = 0x52504F57;  // "WOPR".
inline constexpr uint64_t kBatchAlignmentBytes = 4096;

enum class RecordKind : uint8_t {
  kData = 1,       // `length_bytes` of data follow the header.
  kZeroUnmap = 2,  // Reads as zeros; drained as an unmap (trim, write-zeroes that may unmap).
  kZeroFill = 3,   // Reads as zeros; drained as written zeros (write-zeroes with no_hole).
};

struct BatchHeader {
  uint32_t magic;  // kBatchMagic.
  uint16_t version;
  uint16_t header_bytes;  // sizeof(BatchHeader).
  uint64_t vdisk_id;
  uint64_t segment_number;  // The segment file's number: garbage from another file never fits.
  uint64_t batch_seq;       // Consecutive within a segment; increasing across the vDisk's log.
  uint64_t drained_seq;     // Records with seq <= drained_seq are in the extent store.
  uint32_t record_count;
  uint32_t payload_bytes;  // Record headers and data after this header, without padding.
  uint32_t batch_bytes;    // Header, payload and padding: a multiple of kBatchAlignmentBytes.
  uint32_t payload_crc;    // crc32c of the payload.
  uint32_t reserved;       // Zero.
  uint32_t header_crc;     // crc32c of this header with header_crc zero.
};
static_assert(sizeof(BatchHeader) == 64);
static_assert(std::has_unique_object_representations_v<BatchHeader>, "no padding");

struct RecordHeader {
  uint32_t magic;  // kRecordMagic.
  uint8_t kind;    // RecordKind.
  uint8_t reserved[3];
  uint64_t seq;  // Increasing across the vDisk's log, consecutive within a batch.
  uint64_t vdisk_offset_bytes;
  uint64_t length_bytes;  // Bytes of the vDisk the record covers.
  uint32_t data_bytes;    // Bytes of data after the header: length_bytes for kData, else 0.
  uint32_t data_crc;      // crc32c of the data (0 without data).
  uint32_t reserved2;     // Zero.
  uint32_t header_crc;    // crc32c of this header with header_crc zero.
};
static_assert(sizeof(RecordHeader) == 48);
static_assert(std::has_unique_object_representations_v<RecordHeader>, "no padding");

// A record as the log writer and the replay see it; `data` views bytes owned elsewhere.
struct RecordView {
  uint64_t seq = 0;
  RecordKind kind = RecordKind::kData;
  uint64_t vdisk_offset_bytes = 0;
  uint64_t length_bytes = 0;
  uint32_t data_crc = 0;
  std::span<const std::byte> data;  // kData only.
};

struct BatchInfo {
  uint64_t vdisk_id = 0;
  uint64_t segment_number = 0;
  uint64_t batch_seq = 0;
  uint64_t drained_seq = 0;
};

// Bytes a batch of records with `data_bytes` of data in total occupies on disk.
uint64_t BatchBytes(uint32_t record_count, uint64_t data_bytes);

// Serializes a batch into `out` (sized BatchBytes(...), zero padding included). Records must
// have consecutive seqs; their data_crc is computed here.
void EncodeBatch(const BatchInfo& info, std::span<const RecordView> records,
                 std::span<std::byte> out);

struct ParsedBatch {
  BatchInfo info;
  uint64_t offset_bytes = 0;  // Within the segment.
  uint64_t batch_bytes = 0;
  std::vector<RecordView> records;  // Data views into the parsed buffer.
};

// Parses the batches at the front of a segment's bytes: from offset 0 while each batch is whole
// and valid (crcs, magics, versions, the expected vDisk and segment, batch_seq consecutive).
// The scan ends at the first batch that is not; that is the normal end of a segment, not an
// error. Corruption only for a batch whose crcs hold but whose content is inconsistent
// (records that overrun the payload, seqs that are not consecutive, bad kinds) — something
// a torn write cannot produce.
Result<std::vector<ParsedBatch>> ParseSegment(std::span<const std::byte> segment, uint64_t vdisk_id,
                                              uint64_t segment_number);

// The file name of a vDisk's segment: "oplog.<vdisk 16 hex>.<segment 8 hex>".
std::string SegmentFileName(uint64_t vdisk_id, uint64_t segment_number);
// Parses a segment file name; false when `name` is not one of `vdisk_id`'s segments.
bool ParseSegmentFileName(std::string_view name, uint64_t vdisk_id, uint64_t* segment_number);

}  // namespace weft::oplog::format
