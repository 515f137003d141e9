#include "cluster/config_record.h"

#include <fmt/format.h>

#include <cstring>

#include "base/crc32c.h"

namespace weft::cluster {
namespace {

uint32_t HeaderCrc(ConfigRecordHeader header) {
  header.header_crc = 0;
  return Crc32c(&header, sizeof(header));
}

}  // namespace

Result<std::string> EncodeConfigRecord(const ClusterConfig& config, int64_t version) {
  WEFT_ASSERT(version >= 0);
  std::string payload;
  if (!config.SerializeToString(&payload)) {
    return Status::InvalidArgument("cluster config: protobuf serialization failed");
  }
  if (payload.size() + sizeof(ConfigRecordHeader) > kConfigRecordBytesMax) {
    return Status::InvalidArgument(fmt::format("cluster config: {} bytes serialized, limit {}",
                                               payload.size(), kConfigRecordBytesMax));
  }
  ConfigRecordHeader header{};
  header.magic = kConfigRecordMagic;
  header.format_version = kConfigRecordFormatVersion;
  header.header_bytes = sizeof(ConfigRecordHeader);
  header.version = version;
  header.payload_bytes = static_cast<uint32_t>(payload.size());
  header.payload_crc = Crc32c(payload.data(), payload.size());
  header.header_crc = HeaderCrc(header);
  std::string record(sizeof(header), '\0');
  std::memcpy(record.data(), &header, sizeof(header));
  record += payload;
  WEFT_ASSERT(record.size() == sizeof(header) + header.payload_bytes);
  return record;
}

Result<VersionedConfig> DecodeConfigRecord(std::string_view bytes, std::string_view where) {
  auto corrupt = [&](std::string_view what) {
    return Status::Corruption(fmt::format("cluster config record {}: {}", where, what));
  };
  ConfigRecordHeader header{};
  if (bytes.size() < sizeof(header)) {
    return corrupt(fmt::format("{} bytes, shorter than the 32-byte header", bytes.size()));
  }
  std::memcpy(&header, bytes.data(), sizeof(header));
  if (header.magic != kConfigRecordMagic)
    return corrupt(fmt::format("bad magic {:#x}", header.magic));
  if (header.header_crc != HeaderCrc(header)) return corrupt("header crc mismatch");
  if (header.format_version != kConfigRecordFormatVersion) {
    return corrupt(fmt::format("format version {} (this build reads {})", header.format_version,
                               kConfigRecordFormatVersion));
  }
  if (header.header_bytes != sizeof(header)) {
    return corrupt(fmt::format("header_bytes {}", header.header_bytes));
  }
  if (header.version < 0) return corrupt(fmt::format("negative version {}", header.version));
  if (bytes.size() != sizeof(header) + header.payload_bytes) {
    return corrupt(fmt::format("{} bytes, the header says {} + {}", bytes.size(), sizeof(header),
                               header.payload_bytes));
  }
  const std::string_view payload = bytes.substr(sizeof(header));
  if (Crc32c(payload.data(), payload.size()) != header.payload_crc) {
    return corrupt("payload crc mismatch");
  }
  VersionedConfig result{ClusterConfig(), header.version};
  if (!result.config.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return corrupt("payload is not a ClusterConfig");
  }
  return result;
}

}  // namespace weft::cluster
