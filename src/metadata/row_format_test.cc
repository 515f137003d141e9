// The row encoding of docs/ondisk/metadata.md: field offsets, round trips, and every check on
// decode (each damaged field is planted with a recomputed crc, so that the field's own check,
// not the crc, must catch it).
#include "metadata/row_format.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <functional>
#include <string>

#include "base/crc32c.h"

namespace weft::metadata::format {
namespace {

TEST(RowFormatTest, LayoutMatchesTheSpec) {
  EXPECT_EQ(offsetof(RowHeader, crc32c), 0u);
  EXPECT_EQ(offsetof(RowHeader, magic), 4u);
  EXPECT_EQ(offsetof(RowHeader, format_version), 8u);
  EXPECT_EQ(offsetof(RowHeader, reserved), 10u);
  EXPECT_EQ(offsetof(RowHeader, value_length), 12u);
  EXPECT_EQ(offsetof(RowHeader, row_version), 16u);
  EXPECT_EQ(offsetof(DatabaseHeader, format_version), 8u);
  EXPECT_EQ(offsetof(DatabaseHeader, uuid), 12u);
  // The magics read as ASCII in a little-endian dump.
  const std::string row = EncodeRow(1, "");
  EXPECT_EQ(row.substr(4, 4), "WMRW");
  const std::string header = EncodeDatabaseHeader(Uuid::Random());
  EXPECT_EQ(header.substr(4, 4), "WMDH");
}

TEST(RowFormatTest, RowRoundTrips) {
  for (const std::string& value : {std::string(), std::string("a"), std::string("\x00\xff", 2),
                                   std::string(kMaxValueBytes, 'z')}) {
    const std::string encoded = EncodeRow(42, value);
    ASSERT_EQ(encoded.size(), sizeof(RowHeader) + value.size());
    Result<Row> row = DecodeRow("key", encoded);
    ASSERT_TRUE(row.ok()) << row.status().ToString();
    EXPECT_EQ(row->key, "key");
    EXPECT_EQ(row->value, value);
    EXPECT_EQ(row->version, 42u);
  }
}

// Encodes "value" at version 3, lets `damage` change the header, and recomputes the crc.
std::string WithHeader(const std::function<void(RowHeader&)>& damage) {
  std::string encoded = EncodeRow(3, "value");
  RowHeader header;
  std::memcpy(&header, encoded.data(), sizeof(header));
  damage(header);
  const uint32_t header_crc =
      Crc32c(reinterpret_cast<const char*>(&header) + 4, sizeof(header) - 4);
  header.crc32c =
      Crc32c(encoded.data() + sizeof(header), encoded.size() - sizeof(header), header_crc);
  std::memcpy(encoded.data(), &header, sizeof(header));
  return encoded;
}

void ExpectCorruption(const std::string& encoded, const std::string& problem) {
  Result<Row> row = DecodeRow("vdisk/9", encoded);
  ASSERT_FALSE(row.ok()) << "expected: " << problem;
  EXPECT_TRUE(row.status().IsCorruption()) << row.status().ToString();
  EXPECT_NE(row.status().message().find("key \"vdisk/9\""), std::string::npos)
      << row.status().ToString();
  EXPECT_NE(row.status().message().find(problem), std::string::npos) << row.status().ToString();
}

TEST(RowFormatTest, EveryFieldIsChecked) {
  // The recomputed crc alone leaves a valid row.
  ASSERT_TRUE(DecodeRow("vdisk/9", WithHeader([](RowHeader&) {})).ok());

  std::string encoded = EncodeRow(3, "value");
  ExpectCorruption(encoded.substr(0, sizeof(RowHeader) - 1), "shorter than its 24-byte header");
  ExpectCorruption(encoded.substr(0, encoded.size() - 1), "row header says 5 value bytes");
  ExpectCorruption(encoded + "x", "row header says 5 value bytes");
  for (size_t offset = 0; offset < encoded.size(); ++offset) {
    std::string flipped = encoded;
    flipped[offset] ^= 0x10;
    // Flipping the length field is caught by the length check first; every other bit by the crc.
    const bool length_field = offset >= 12 && offset < 16;
    ExpectCorruption(flipped, length_field ? "value bytes" : "crc32c mismatch");
  }
  ExpectCorruption(WithHeader([](RowHeader& header) { header.magic = kHeaderMagic; }), "row magic");
  ExpectCorruption(WithHeader([](RowHeader& header) { header.format_version = 2; }),
                   "row format version is 2");
  ExpectCorruption(WithHeader([](RowHeader& header) { header.reserved = 1; }), "reserved field");
  ExpectCorruption(WithHeader([](RowHeader& header) { header.row_version = 0; }),
                   "row version is 0");
}

TEST(RowFormatTest, OversizedValueLengthIsCorruption) {
  // A row whose length field and bytes agree but exceed the maximum: written by no weft.
  RowHeader header{};
  header.magic = kRowMagic;
  header.format_version = kFormatVersion;
  header.value_length = kMaxValueBytes + 1;
  header.row_version = 1;
  const std::string value(kMaxValueBytes + 1, 'v');
  header.crc32c = Crc32c(value.data(), value.size(),
                         Crc32c(reinterpret_cast<const char*>(&header) + 4, sizeof(header) - 4));
  std::string encoded(reinterpret_cast<const char*>(&header), sizeof(header));
  encoded += value;
  ExpectCorruption(encoded, "more than the maximum");
}

TEST(RowFormatTest, DatabaseHeaderRoundTripsAndIsChecked) {
  const Uuid uuid = Uuid::Random();
  const std::string encoded = EncodeDatabaseHeader(uuid);
  ASSERT_EQ(encoded.size(), sizeof(DatabaseHeader));
  Result<Uuid> decoded = DecodeDatabaseHeader(encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, uuid);

  EXPECT_TRUE(DecodeDatabaseHeader(encoded.substr(1)).status().IsCorruption());
  for (size_t offset = 0; offset < encoded.size(); ++offset) {
    std::string flipped = encoded;
    flipped[offset] ^= 0x01;
    EXPECT_TRUE(DecodeDatabaseHeader(flipped).status().IsCorruption()) << "offset " << offset;
  }
  const auto with = [&](const std::function<void(DatabaseHeader&)>& change) {
    DatabaseHeader header;
    std::memcpy(&header, encoded.data(), sizeof(header));
    change(header);
    header.crc32c = Crc32c(reinterpret_cast<const char*>(&header) + 4, sizeof(header) - 4);
    return std::string(reinterpret_cast<const char*>(&header), sizeof(header));
  };
  EXPECT_TRUE(DecodeDatabaseHeader(with([](DatabaseHeader& header) { header.magic = kRowMagic; }))
                  .status()
                  .IsCorruption());
  EXPECT_TRUE(DecodeDatabaseHeader(with([](DatabaseHeader& header) { header.reserved = 7; }))
                  .status()
                  .IsCorruption());
  EXPECT_EQ(DecodeDatabaseHeader(with([](DatabaseHeader& header) { header.format_version = 2; }))
                .status()
                .code(),
            StatusCode::kNotSupported);
}

TEST(RowFormatTest, DescribeKeyEscapesAndShortens) {
  EXPECT_EQ(DescribeKey("vdisk/1"), "key \"vdisk/1\"");
  EXPECT_EQ(DescribeKey(std::string("a\x00\xff\"\\", 5)), "key \"a\\x00\\xff\\x22\\x5c\"");
  const std::string long_key(100, 'k');
  EXPECT_EQ(DescribeKey(long_key), "key \"" + std::string(64, 'k') + "\" (first 64 of 100 bytes)");
}

}  // namespace
}  // namespace weft::metadata::format
