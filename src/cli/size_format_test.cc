// Parsing and printing sizes: binary units, exact fractions, and everything that must be refused.
#include "base/size_format.h"

#include <gtest/gtest.h>

#include <string>

namespace weft::cli {
namespace {

constexpr uint64_t kKiB = uint64_t{1} << 10;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kTiB = uint64_t{1} << 40;
constexpr uint64_t kPiB = uint64_t{1} << 50;

uint64_t Parsed(const std::string& text) {
  Result<uint64_t> bytes = ParseSize(text);
  EXPECT_TRUE(bytes.ok()) << text << ": " << bytes.status().ToString();
  return bytes.ok() ? *bytes : 0;
}

std::string Refusal(const std::string& text) {
  Result<uint64_t> bytes = ParseSize(text);
  EXPECT_FALSE(bytes.ok()) << text << " parsed as " << (bytes.ok() ? *bytes : 0);
  if (bytes.ok()) return "";
  EXPECT_TRUE(bytes.status().IsInvalidArgument());
  EXPECT_NE(bytes.status().message().find("'" + text + "'"), std::string::npos)
      << "the message should quote the input: " << bytes.status().message();
  return bytes.status().message();
}

TEST(ParseSizeTest, PlainBytes) {
  EXPECT_EQ(Parsed("1"), 1u);
  EXPECT_EQ(Parsed("4096"), 4096u);
  EXPECT_EQ(Parsed("4096B"), 4096u);
  EXPECT_EQ(Parsed("4096b"), 4096u);
  EXPECT_EQ(Parsed("18446744073709551615"), UINT64_MAX);
}

TEST(ParseSizeTest, BinaryUnitsInEitherSpelling) {
  EXPECT_EQ(Parsed("512K"), 512 * kKiB);
  EXPECT_EQ(Parsed("512KiB"), 512 * kKiB);
  EXPECT_EQ(Parsed("512M"), 512 * kMiB);
  EXPECT_EQ(Parsed("512mib"), 512 * kMiB);
  EXPECT_EQ(Parsed("10G"), 10 * kGiB);
  EXPECT_EQ(Parsed("10g"), 10 * kGiB);
  EXPECT_EQ(Parsed("10GiB"), 10 * kGiB);
  EXPECT_EQ(Parsed("1T"), kTiB);
  EXPECT_EQ(Parsed("1TiB"), kTiB);
  EXPECT_EQ(Parsed("2P"), 2 * kPiB);
  EXPECT_EQ(Parsed("16383P"), 16383 * kPiB);
}

TEST(ParseSizeTest, ExactFractions) {
  EXPECT_EQ(Parsed("1.5G"), kGiB + kGiB / 2);
  EXPECT_EQ(Parsed("0.5K"), 512u);
  EXPECT_EQ(Parsed("0.25M"), 256 * kKiB);
  EXPECT_EQ(Parsed("1.0G"), kGiB);
  EXPECT_EQ(Parsed("2.000000000000000000T"), 2 * kTiB);
  EXPECT_EQ(Parsed("0.0009765625K"), 1u);  // 1/1024 KiB is one byte.
}

TEST(ParseSizeTest, FractionsThatAreNotWholeBytesAreRefused) {
  EXPECT_NE(Refusal("0.3K").find("not a whole number of bytes"), std::string::npos);
  EXPECT_NE(Refusal("1.5").find("not a whole number of bytes"), std::string::npos);
  Refusal("1.0000000001G");
}

TEST(ParseSizeTest, ZeroIsRefused) {
  EXPECT_NE(Refusal("0").find("greater than zero"), std::string::npos);
  Refusal("0G");
  Refusal("0.0M");
}

TEST(ParseSizeTest, OverflowIsRefused) {
  EXPECT_NE(Refusal("18446744073709551616").find("more than 2^64-1"), std::string::npos);
  Refusal("16384P");
  Refusal("99999999999999999999T");
  EXPECT_NE(Refusal("999999999999999999999999").find("too many digits"), std::string::npos);
}

TEST(ParseSizeTest, DecimalUnitsAreRefusedWithAHint) {
  std::string message = Refusal("10GB");
  EXPECT_NE(message.find("ambiguous"), std::string::npos) << message;
  EXPECT_NE(message.find("'G' or 'GiB'"), std::string::npos) << message;
  Refusal("512mb");
  Refusal("1TB");
}

TEST(ParseSizeTest, JunkIsRefused) {
  for (const char* junk :
       {"",    "G",   "abc",  "-1G",    "+1G", " 10G", "10G ",  "10 G",   "1,5G", "1.G",
        ".5G", "10X", "10Gi", "10GiBs", "1e9", "0x10", "10G10", "1.5.5G", "nan",  "inf"}) {
    Refusal(junk);
  }
}

TEST(FormatSizeTest, ExactValuesUseTheLargestUnit) {
  EXPECT_EQ(FormatSize(0), "0 B");
  EXPECT_EQ(FormatSize(1), "1 B");
  EXPECT_EQ(FormatSize(1023), "1023 B");
  EXPECT_EQ(FormatSize(kKiB), "1 KiB");
  EXPECT_EQ(FormatSize(4 * kKiB), "4 KiB");
  EXPECT_EQ(FormatSize(512 * kMiB), "512 MiB");
  EXPECT_EQ(FormatSize(10 * kGiB), "10 GiB");
  EXPECT_EQ(FormatSize(3 * kTiB), "3 TiB");
  EXPECT_EQ(FormatSize(5 * kPiB), "5 PiB");
  EXPECT_EQ(FormatSize(uint64_t{1} << 60), "1 EiB");
}

TEST(FormatSizeTest, InexactValuesHaveOneDecimal) {
  EXPECT_EQ(FormatSize(kGiB + kGiB / 2), "1.5 GiB");
  EXPECT_EQ(FormatSize(kGiB + 1), "1.0 GiB");
  EXPECT_EQ(FormatSize(1536), "1.5 KiB");
  EXPECT_EQ(FormatSize(kGiB - 1), "1.0 GiB");  // Not "1024.0 MiB".
  EXPECT_EQ(FormatSize(UINT64_MAX), "16.0 EiB");
}

TEST(FormatSizeTest, PrintedSizesParseBack) {
  for (uint64_t bytes : {uint64_t{1}, 4096 * uint64_t{3}, 10 * kGiB, kGiB + kGiB / 2, 7 * kTiB}) {
    std::string text = FormatSize(bytes);
    text.erase(text.find(' '), 1);
    EXPECT_EQ(Parsed(text), bytes) << text;
  }
}

}  // namespace
}  // namespace weft::cli
