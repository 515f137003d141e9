#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "base/aligned_buffer.h"
#include "base/crc32c.h"
#include "base/status.h"
#include "base/uuid.h"

namespace weft {
namespace {

TEST(Crc32cTest, MatchesTheStandardCheckValue) {
  const std::string text = "123456789";
  EXPECT_EQ(Crc32c(text.data(), text.size()), 0xE3069283u);
}

TEST(Crc32cTest, ChainsLikeOneCall) {
  const std::string text = "hello, weft extent store";
  const uint32_t whole = Crc32c(text.data(), text.size());
  const uint32_t first = Crc32c(text.data(), 7);
  EXPECT_EQ(Crc32c(text.data() + 7, text.size() - 7, first), whole);
}

TEST(StatusTest, OkIsCheapAndErrorsCarryTheirMessage) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.ToString(), "OK");
  Status corrupt = Status::Corruption("egroup 3 offset 4096: checksum mismatch");
  EXPECT_TRUE(corrupt.IsCorruption());
  EXPECT_EQ(corrupt.ToString(), "Corruption: egroup 3 offset 4096: checksum mismatch");
  EXPECT_EQ(corrupt.WithContext("disk0").message(),
            "disk0: egroup 3 offset 4096: checksum mismatch");
  EXPECT_TRUE(Status::FromErrno(ENOSPC, "write").IsNoSpace());
}

Result<int> ParsePositive(int value) {
  if (value <= 0) return Status::InvalidArgument("not positive");
  return value;
}

Status UsesMacros(int value, int* out) {
  WEFT_ASSIGN_OR_RETURN(int parsed, ParsePositive(value));
  *out = parsed;
  return Status::Ok();
}

TEST(ResultTest, PropagatesThroughMacros) {
  int out = 0;
  EXPECT_TRUE(UsesMacros(5, &out).ok());
  EXPECT_EQ(out, 5);
  EXPECT_TRUE(UsesMacros(-1, &out).IsInvalidArgument());
}

TEST(AlignedBufferTest, IsAlignedZeroedAndMovable) {
  AlignedBuffer buffer(10000);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(buffer.data()) % kIoAlignmentBytes, 0u);
  EXPECT_EQ(buffer.size(), 10000u);
  for (std::byte byte : buffer.span()) ASSERT_EQ(byte, std::byte{0});
  AlignedBuffer moved = std::move(buffer);
  EXPECT_EQ(moved.size(), 10000u);
  EXPECT_TRUE(buffer.empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified.
}

TEST(UuidTest, RandomUuidsDifferAndFormat) {
  Uuid a = Uuid::Random();
  Uuid b = Uuid::Random();
  EXPECT_NE(a, b);
  EXPECT_FALSE(a.IsNil());
  EXPECT_EQ(a.ToString().size(), 36u);
}

}  // namespace
}  // namespace weft
