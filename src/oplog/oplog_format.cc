// Batch encoding and segment parsing (oplog_format.h, docs/ondisk/oplog.md).
#include "oplog/oplog_format.h"

#include <fmt/format.h>

#include <charconv>
#include <cstring>

#include "base/assert.h"
#include "base/crc32c.h"

namespace weft::oplog::format {

namespace {

template <typename Header>
uint32_t HeaderCrc(Header header) {
  header.header_crc = 0;
  return Crc32c(&header, sizeof(header));
}

bool ValidKind(uint8_t kind) {
  return kind >= static_cast<uint8_t>(RecordKind::kData) &&
         kind <= static_cast<uint8_t>(RecordKind::kZeroFill);
}

}  // namespace

uint64_t BatchBytes(uint32_t record_count, uint64_t data_bytes) {
  const uint64_t unpadded =
      sizeof(BatchHeader) + uint64_t{record_count} * sizeof(RecordHeader) + data_bytes;
  return (unpadded + kBatchAlignmentBytes - 1) / kBatchAlignmentBytes * kBatchAlignmentBytes;
}

void EncodeBatch(const BatchInfo& info, std::span<const RecordView> records,
                 std::span<std::byte> out) {
  uint64_t data_bytes = 0;
  for (const RecordView& record : records) data_bytes += record.data.size();
  const uint64_t batch_bytes = BatchBytes(static_cast<uint32_t>(records.size()), data_bytes);
  WEFT_ASSERT(out.size() == batch_bytes);
  WEFT_ASSERT(batch_bytes <= UINT32_MAX);
  std::byte* at = out.data() + sizeof(BatchHeader);
  for (size_t index = 0; index < records.size(); ++index) {
    const RecordView& record = records[index];
    WEFT_ASSERT(index == 0 || record.seq == records[index - 1].seq + 1);
    WEFT_ASSERT(record.kind == RecordKind::kData ? record.data.size() == record.length_bytes
                                                 : record.data.empty());
    RecordHeader header{};
    header.magic = kRecordMagic;
    header.kind = static_cast<uint8_t>(record.kind);
    header.seq = record.seq;
    header.vdisk_offset_bytes = record.vdisk_offset_bytes;
    header.length_bytes = record.length_bytes;
    header.data_bytes = static_cast<uint32_t>(record.data.size());
    header.data_crc = record.data.empty() ? 0 : Crc32c(record.data);
    header.header_crc = HeaderCrc(header);
    std::memcpy(at, &header, sizeof(header));
    at += sizeof(header);
    if (!record.data.empty()) std::memcpy(at, record.data.data(), record.data.size());
    at += record.data.size();
  }
  const uint64_t payload_bytes = static_cast<uint64_t>(at - out.data()) - sizeof(BatchHeader);
  std::memset(at, 0, out.size() - static_cast<size_t>(at - out.data()));
  BatchHeader header{};
  header.magic = kBatchMagic;
  header.version = kFormatVersion;
  header.header_bytes = sizeof(BatchHeader);
  header.vdisk_id = info.vdisk_id;
  header.segment_number = info.segment_number;
  header.batch_seq = info.batch_seq;
  header.drained_seq = info.drained_seq;
  header.record_count = static_cast<uint32_t>(records.size());
  header.payload_bytes = static_cast<uint32_t>(payload_bytes);
  header.batch_bytes = static_cast<uint32_t>(batch_bytes);
  header.payload_crc = Crc32c(out.subspan(sizeof(BatchHeader), payload_bytes));
  header.header_crc = HeaderCrc(header);
  std::memcpy(out.data(), &header, sizeof(header));
}

Result<std::vector<ParsedBatch>> ParseSegment(std::span<const std::byte> segment, uint64_t vdisk_id,
                                              uint64_t segment_number) {
  std::vector<ParsedBatch> batches;
  uint64_t offset = 0;
  while (offset + sizeof(BatchHeader) <= segment.size()) {
    BatchHeader header;
    std::memcpy(&header, segment.data() + offset, sizeof(header));
    // Anything that a torn write, stale bytes or garbage can produce ends the scan.
    if (header.magic != kBatchMagic || header.header_crc != HeaderCrc(header)) break;
    if (header.version != kFormatVersion || header.header_bytes != sizeof(BatchHeader) ||
        header.vdisk_id != vdisk_id || header.segment_number != segment_number) {
      break;
    }
    if (!batches.empty() && header.batch_seq != batches.back().info.batch_seq + 1) break;
    if (header.batch_bytes % kBatchAlignmentBytes != 0 || header.batch_bytes == 0 ||
        header.batch_bytes > segment.size() - offset ||
        header.payload_bytes > header.batch_bytes - sizeof(BatchHeader)) {
      break;
    }
    const auto payload = segment.subspan(offset + sizeof(BatchHeader), header.payload_bytes);
    if (Crc32c(payload) != header.payload_crc) break;
    // From here the batch is exactly what was written: inconsistencies are bugs or corruption.
    auto corrupt = [&](std::string_view what) {
      return Status::Corruption(
          fmt::format("oplog segment {} of vdisk {}: batch {} at offset {}: {}", segment_number,
                      vdisk_id, header.batch_seq, offset, what));
    };
    ParsedBatch batch;
    batch.info = {header.vdisk_id, header.segment_number, header.batch_seq, header.drained_seq};
    batch.offset_bytes = offset;
    batch.batch_bytes = header.batch_bytes;
    uint64_t at = 0;
    for (uint32_t index = 0; index < header.record_count; ++index) {
      if (payload.size() - at < sizeof(RecordHeader)) return corrupt("records overrun the payload");
      RecordHeader record;
      std::memcpy(&record, payload.data() + at, sizeof(record));
      at += sizeof(record);
      if (record.magic != kRecordMagic || record.header_crc != HeaderCrc(record) ||
          !ValidKind(record.kind)) {
        return corrupt(fmt::format("record {} has a bad header", index));
      }
      const auto kind = static_cast<RecordKind>(record.kind);
      const bool has_data = kind == RecordKind::kData;
      if ((has_data && record.data_bytes != record.length_bytes) ||
          (!has_data && record.data_bytes != 0) || record.length_bytes == 0 ||
          record.vdisk_offset_bytes + record.length_bytes < record.vdisk_offset_bytes) {
        return corrupt(fmt::format("record {} has inconsistent lengths", index));
      }
      if (payload.size() - at < record.data_bytes) return corrupt("record data overruns");
      const auto data = payload.subspan(at, record.data_bytes);
      at += record.data_bytes;
      if (has_data && Crc32c(data) != record.data_crc) {
        return corrupt(fmt::format("record {} (seq {}) data crc mismatch", index, record.seq));
      }
      if (!batch.records.empty() && record.seq != batch.records.back().seq + 1) {
        return corrupt("record seqs are not consecutive");
      }
      batch.records.push_back({record.seq, kind, record.vdisk_offset_bytes, record.length_bytes,
                               record.data_crc, data});
    }
    if (at != payload.size()) return corrupt("payload longer than its records");
    offset += header.batch_bytes;
    batches.push_back(std::move(batch));
  }
  return batches;
}

std::string SegmentFileName(uint64_t vdisk_id, uint64_t segment_number) {
  WEFT_ASSERT(segment_number <= UINT32_MAX);
  return fmt::format("oplog.{:016x}.{:08x}", vdisk_id, segment_number);
}

bool ParseSegmentFileName(std::string_view name, uint64_t vdisk_id, uint64_t* segment_number) {
  const std::string prefix = fmt::format("oplog.{:016x}.", vdisk_id);
  if (name.size() != prefix.size() + 8 || !name.starts_with(prefix)) return false;
  const std::string_view digits = name.substr(prefix.size());
  uint64_t value = 0;
  const auto [end, error] =
      std::from_chars(digits.data(), digits.data() + digits.size(), value, 16);
  if (error != std::errc() || end != digits.data() + digits.size()) return false;
  *segment_number = value;
  return true;
}

}  // namespace weft::oplog::format
