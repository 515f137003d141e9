// The stored form of a ClusterConfig, the same in the local backend's file and in the
// ZooKeeper /<root>/config znode (docs/cluster.md, "The config record"): a 32-byte
// little-endian header with magic, format version, the config version, the payload's size and
// crc32c and the header's own crc32c, then the serialized ClusterConfig.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "cluster/cluster_backend.h"

namespace weft::cluster {

#pragma pack(push, 1)
struct ConfigRecordHeader {
  uint32_t magic;
  uint16_t format_version;
  uint16_t header_bytes;
  int64_t version;  // The CAS token the record was written as.
  uint32_t payload_bytes;
  uint32_t payload_crc;
  uint32_t reserved;
  uint32_t header_crc;  // crc32c of the header with this field 0.
};
#pragma pack(pop)
static_assert(sizeof(ConfigRecordHeader) == 32);

inline constexpr uint32_t kConfigRecordMagic = 0x47464357;  // "WCFG" little-endian.
inline constexpr uint16_t kConfigRecordFormatVersion = 1;
// ZooKeeper refuses znodes over ~1 MiB (jute.maxbuffer); the local file keeps the same bound.
inline constexpr uint32_t kConfigRecordBytesMax = 1000 * 1000;

// The record for `config` written as `version`. InvalidArgument when it would exceed
// kConfigRecordBytesMax.
Result<std::string> EncodeConfigRecord(const ClusterConfig& config, int64_t version);

// Parses and checks a record; Corruption names `where` (a file or znode) and the failed check.
Result<VersionedConfig> DecodeConfigRecord(std::string_view bytes, std::string_view where);

}  // namespace weft::cluster
