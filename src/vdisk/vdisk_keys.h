// Metadata keys and record codecs of the vDisk layer (docs/ondisk/vdisk_metadata.md), and the
// rules for names and sizes users give.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "vdisk/vdisk_records.pb.h"

namespace weft::vdisk {

inline constexpr uint64_t kVblockBytes = 1ull << 20;        // One extent.
inline constexpr uint64_t kVdiskSizeAlignmentBytes = 4096;  // vDisk sizes are multiples of this.
inline constexpr uint64_t kVdiskBytesMax = 64ull << 40;     // 64 TiB.
inline constexpr size_t kNameBytesMax = 128;
inline constexpr uint32_t kSlotsPerEgroup = 4;
inline constexpr uint32_t kReplicationFactorMax = 3;

// Names of containers and vDisks (a vDisk's name is its NBD export name): 1..128 bytes of
// [A-Za-z0-9._-], not starting with '.' or '-'. InvalidArgument naming `what` otherwise.
Status ValidateName(std::string_view what, std::string_view name);
// A vDisk size: a positive multiple of 4 KiB, at most 64 TiB.
Status ValidateVdiskSize(uint64_t size_bytes);

std::string ContainerKey(std::string_view name);
inline constexpr std::string_view kContainerPrefix = "container/";
std::string VdiskKey(std::string_view name);
inline constexpr std::string_view kVdiskPrefix = "vdisk/";
std::string BlockMapPrefix(uint64_t vdisk_id);
std::string BlockMapKey(uint64_t vdisk_id, uint64_t vblock);
std::string EgroupPrefix(uint64_t vdisk_id);
std::string EgroupKey(uint64_t vdisk_id, uint64_t egroup_id);
std::string IdCounterKey(std::string_view kind);
// The trailing 16-hex-digit number of a block-map or egroup key.
Result<uint64_t> ParseKeySuffix(std::string_view key);

// Serialises a record. Records are small; serialisation cannot fail for them.
std::string Encode(const google::protobuf::MessageLite& record);
// Parses `value` read under `key` into `record` and checks its format_version; Corruption
// naming the key otherwise.
Status Decode(std::string_view key, std::string_view value, records::Container& record);
Status Decode(std::string_view key, std::string_view value, records::Vdisk& record);
Status Decode(std::string_view key, std::string_view value, records::VblockMapping& record);
Status Decode(std::string_view key, std::string_view value, records::Egroup& record);
Status Decode(std::string_view key, std::string_view value, records::IdCounter& record);

}  // namespace weft::vdisk
