// Message types of the data RPC (data_rpc.proto, docs/protocol/replication.md). Numbers are
// part of the wire format: only append.
#pragma once

#include <cstdint>

namespace weft::replication {

inline constexpr uint16_t kOplogAppendType = 0x200;
inline constexpr uint16_t kOplogTrimType = 0x201;
inline constexpr uint16_t kEgroupCreateType = 0x202;
inline constexpr uint16_t kEgroupWriteType = 0x203;
inline constexpr uint16_t kEgroupTrimType = 0x204;
inline constexpr uint16_t kEgroupReadType = 0x205;
inline constexpr uint16_t kEgroupDeleteType = 0x206;
inline constexpr uint16_t kFenceType = 0x207;
inline constexpr uint16_t kDataReplyType = 0x2FF;  // Every successful reply.

// Largest data part of one request (an egroup write or read, an OpLog record).
inline constexpr uint64_t kDataBytesMax = 1ull << 20;

}  // namespace weft::replication
