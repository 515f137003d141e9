// On-disk structures of the blockstore. The prose spec is docs/ondisk/blockstore.md; keep the two
// in step. All integers are little-endian (weft runs on little-endian machines only, asserted
// below); every structure starts with its crc32c, which covers the bytes after it.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace weft::blockstore::format {

static_assert(std::endian::native == std::endian::little, "weft on-disk formats are little-endian");

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint64_t kSuperblockMagic = 0x534B4C4254464557ull;   // "WEFTBLKS"
inline constexpr uint64_t kCheckpointMagic = 0x54504B4354464557ull;   // "WEFTCKPT"
inline constexpr uint64_t kJournalPageMagic = 0x4C4E524A54464557ull;  // "WEFTJRNL"

// The second superblock copy sits at this byte offset, whatever the block size, so that it can
// be found when the first copy (and with it the block size) is unreadable.
inline constexpr uint64_t kSecondSuperblockOffsetBytes = 64ull * 1024;
inline constexpr uint32_t kMinBlockSizeBytes = 4096;
inline constexpr uint32_t kMaxBlockSizeBytes = 64 * 1024;

#pragma pack(push, 1)

struct Superblock {
  uint32_t crc32c;  // Of bytes [4, sizeof(Superblock)).
  uint32_t format_version;
  uint64_t magic;
  uint8_t uuid[16];
  uint32_t block_size_bytes;
  uint32_t copy_index;   // 0 for the copy at byte 0, 1 for the copy at 64 KiB.
  uint64_t block_count;  // Formatted size in blocks; the device may not be shorter.
  uint64_t checkpoint_first_block[2];
  uint32_t checkpoint_blocks;  // Length of each of the two checkpoint areas.
  uint32_t journal_blocks;
  uint64_t journal_first_block;
  uint64_t data_first_block;  // Blocks [data_first_block, block_count) are allocatable.
  uint32_t max_files;
  uint32_t max_file_runs;
  uint64_t format_time_unix_seconds;
  uint8_t reserved[152];
};
static_assert(sizeof(Superblock) == 256);

// The first block of a checkpoint area; the payload follows in the next blocks.
struct CheckpointHeader {
  uint32_t crc32c;  // Of bytes [4, sizeof(CheckpointHeader)).
  uint32_t format_version;
  uint64_t magic;
  uint64_t blockstore_id;  // First 8 bytes of the uuid: a checkpoint of an earlier format of the
                           // same device is never taken for this one.
  uint64_t sequence;       // Journal pages that follow it carry sequence + 1, + 2, ...
  uint64_t block_count;
  uint64_t payload_bytes;
  uint32_t payload_crc32c;
  uint32_t file_count;
  uint32_t file_run_count;
  uint32_t reserved;
};
static_assert(sizeof(CheckpointHeader) == 64);

// Payload, after the bitmap: one of these per file, then the name (padded to 8 bytes), then its
// runs.
struct CheckpointFile {
  uint32_t file_id;
  uint16_t name_bytes;
  uint16_t reserved;
  uint64_t size_bytes;
  uint32_t run_count;
  uint32_t reserved2;
};
static_assert(sizeof(CheckpointFile) == 24);

struct CheckpointRun {
  uint64_t first_block;
  uint32_t block_count;
  uint32_t reserved;
};
static_assert(sizeof(CheckpointRun) == 16);

// One journal page is one block: this header, then record_bytes of records, then zeros.
struct JournalPageHeader {
  uint32_t crc32c;  // Of bytes [4, sizeof(JournalPageHeader) + record_bytes).
  uint32_t format_version;
  uint64_t magic;
  uint64_t blockstore_id;
  uint64_t sequence;
  uint32_t record_bytes;
  uint32_t record_count;
};
static_assert(sizeof(JournalPageHeader) == 40);

enum class RecordType : uint8_t {
  kAllocate = 1,      // first_block, block_count: client run allocated.
  kFree = 2,          // first_block, block_count: client run or file blocks freed.
  kFileCreate = 3,    // file_id, name.
  kFileExtend = 4,    // file_id, first_block, block_count: run appended to the file.
  kFileSize = 5,      // file_id, value = size in bytes (data up to it was durable first).
  kFileTruncate = 6,  // file_id, value = new size; blocks past it are freed.
  kFileDelete = 7,    // file_id: file removed, its blocks freed.
  kFileRename = 8,    // file_id, name: renamed; a file already holding the name is deleted.
};

// Followed by name_bytes of name, padded to a multiple of 8 bytes.
struct JournalRecord {
  uint8_t type;
  uint8_t reserved;
  uint16_t name_bytes;
  uint32_t file_id;
  uint64_t value;        // A first block, or a size in bytes.
  uint32_t block_count;  // For run records.
  uint32_t reserved2;
};
static_assert(sizeof(JournalRecord) == 24);

#pragma pack(pop)

inline constexpr size_t PaddedNameBytes(size_t name_bytes) { return (name_bytes + 7) / 8 * 8; }

}  // namespace weft::blockstore::format
