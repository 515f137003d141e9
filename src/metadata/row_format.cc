#include "metadata/row_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "base/crc32c.h"

namespace weft::metadata::format {

namespace {

constexpr size_t kCrcBytes = sizeof(uint32_t);
constexpr size_t kDescribedKeyBytesMax = 64;

// The crc of a row covers its header after the crc field, then the value bytes.
uint32_t RowCrc(const RowHeader& header, std::string_view value) {
  const uint32_t header_crc =
      Crc32c(reinterpret_cast<const std::byte*>(&header) + kCrcBytes, sizeof(header) - kCrcBytes);
  return Crc32c(value.data(), value.size(), header_crc);
}

uint32_t HeaderCrc(const DatabaseHeader& header) {
  return Crc32c(reinterpret_cast<const std::byte*>(&header) + kCrcBytes,
                sizeof(header) - kCrcBytes);
}

}  // namespace

std::string EncodeDatabaseHeader(const Uuid& uuid) {
  DatabaseHeader header{};
  header.magic = kHeaderMagic;
  header.format_version = kFormatVersion;
  static_assert(sizeof(header.uuid) == sizeof(uuid.bytes));
  std::memcpy(header.uuid, uuid.bytes.data(), sizeof(header.uuid));
  header.crc32c = HeaderCrc(header);
  return std::string(reinterpret_cast<const char*>(&header), sizeof(header));
}

Result<Uuid> DecodeDatabaseHeader(std::string_view encoded) {
  if (encoded.size() != sizeof(DatabaseHeader)) {
    return Status::Corruption(fmt::format("database header is {} bytes, expected {}",
                                          encoded.size(), sizeof(DatabaseHeader)));
  }
  DatabaseHeader header;
  std::memcpy(&header, encoded.data(), sizeof(header));
  const uint32_t computed_crc = HeaderCrc(header);
  if (header.crc32c != computed_crc) {
    return Status::Corruption(
        fmt::format("database header crc32c mismatch (stored {:#010x}, computed {:#010x})",
                    header.crc32c, computed_crc));
  }
  if (header.magic != kHeaderMagic) {
    return Status::Corruption(fmt::format("database header magic is {:#010x}, expected {:#010x}",
                                          header.magic, kHeaderMagic));
  }
  // The crc and magic hold, so this is a real header written by another format version.
  if (header.format_version != kFormatVersion) {
    return Status::NotSupported(fmt::format("database format version {} (this build reads {})",
                                            header.format_version, kFormatVersion));
  }
  if (header.reserved != 0) {
    return Status::Corruption(
        fmt::format("database header reserved field is {:#06x}, expected 0", header.reserved));
  }
  Uuid uuid;
  std::memcpy(uuid.bytes.data(), header.uuid, sizeof(header.uuid));
  return uuid;
}

std::string EncodeRow(uint64_t row_version, std::string_view value) {
  WEFT_ASSERT(row_version >= 1);
  WEFT_ASSERT(value.size() <= kMaxValueBytes);
  RowHeader header{};
  header.magic = kRowMagic;
  header.format_version = kFormatVersion;
  header.value_length = static_cast<uint32_t>(value.size());
  header.row_version = row_version;
  header.crc32c = RowCrc(header, value);
  std::string encoded(sizeof(header) + value.size(), '\0');
  std::memcpy(encoded.data(), &header, sizeof(header));
  std::memcpy(encoded.data() + sizeof(header), value.data(), value.size());
  return encoded;
}

Result<Row> DecodeRow(std::string_view key, std::string_view encoded) {
  const auto corruption = [key](std::string problem) {
    return Status::Corruption(fmt::format("{}: {}", DescribeKey(key), problem));
  };
  if (encoded.size() < sizeof(RowHeader)) {
    return corruption(fmt::format("row is {} bytes, shorter than its {}-byte header",
                                  encoded.size(), sizeof(RowHeader)));
  }
  RowHeader header;
  std::memcpy(&header, encoded.data(), sizeof(header));
  const std::string_view value = encoded.substr(sizeof(header));
  // The length is checked before the crc so that a truncated row says so.
  if (header.value_length != value.size()) {
    return corruption(fmt::format("row header says {} value bytes, the row holds {}",
                                  header.value_length, value.size()));
  }
  const uint32_t computed_crc = RowCrc(header, value);
  if (header.crc32c != computed_crc) {
    return corruption(fmt::format("row crc32c mismatch (stored {:#010x}, computed {:#010x})",
                                  header.crc32c, computed_crc));
  }
  if (header.magic != kRowMagic) {
    return corruption(
        fmt::format("row magic is {:#010x}, expected {:#010x}", header.magic, kRowMagic));
  }
  if (header.format_version != kFormatVersion) {
    return corruption(fmt::format("row format version is {}, expected {}", header.format_version,
                                  kFormatVersion));
  }
  if (header.reserved != 0) {
    return corruption(fmt::format("row reserved field is {:#06x}, expected 0", header.reserved));
  }
  if (header.value_length > kMaxValueBytes) {
    return corruption(fmt::format("row value is {} bytes, more than the maximum {}",
                                  header.value_length, kMaxValueBytes));
  }
  if (header.row_version == 0) return corruption("row version is 0");
  return Row{std::string(key), std::string(value), header.row_version};
}

std::string DescribeKey(std::string_view key) {
  std::string described = "key \"";
  for (const char character : key.substr(0, std::min(key.size(), kDescribedKeyBytesMax))) {
    const auto byte = static_cast<unsigned char>(character);
    if (byte >= 0x20 && byte < 0x7f && byte != '"' && byte != '\\') {
      described.push_back(character);
    } else {
      described += fmt::format("\\x{:02x}", byte);
    }
  }
  described.push_back('"');
  if (key.size() > kDescribedKeyBytesMax) {
    described += fmt::format(" (first {} of {} bytes)", kDescribedKeyBytesMax, key.size());
  }
  return described;
}

}  // namespace weft::metadata::format
