#include "daemon/daemon_options.h"

#include <gtest/gtest.h>

namespace weft::daemon {
namespace {

TEST(DaemonOptionsTest, DiskSpecs) {
  Result<DiskSpec> plain = ParseDiskSpec("/dev/vdb");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->path, "/dev/vdb");
  EXPECT_EQ(plain->size_bytes, 0u);
  Result<DiskSpec> sized = ParseDiskSpec("/var/tmp/d1.img:2G");
  ASSERT_TRUE(sized.ok());
  EXPECT_EQ(sized->path, "/var/tmp/d1.img");
  EXPECT_EQ(sized->size_bytes, 2ull << 30);
  EXPECT_EQ(ParseDiskSpec("x.img:512MiB")->size_bytes, 512ull << 20);
  EXPECT_TRUE(ParseDiskSpec(":1G").status().IsInvalidArgument());
  EXPECT_TRUE(ParseDiskSpec("x.img:1Q").status().IsInvalidArgument());
  EXPECT_TRUE(ParseDiskSpec("x.img:1M").status().IsInvalidArgument());  // Under 64 MiB.
  EXPECT_TRUE(ParseDiskSpec("x.img:99999999999T").status().IsInvalidArgument());
  EXPECT_TRUE(ParseDiskSpec("x.img:").status().IsInvalidArgument());
  EXPECT_EQ(plain->tier, DiskTier::kUnspecified);
  Result<DiskSpec> tiered = ParseDiskSpec("/nvme/a.img:2G:ssd");
  ASSERT_TRUE(tiered.ok());
  EXPECT_EQ(tiered->path, "/nvme/a.img");
  EXPECT_EQ(tiered->size_bytes, 2ull << 30);
  EXPECT_EQ(tiered->tier, DiskTier::kSsd);
  Result<DiskSpec> tier_only = ParseDiskSpec("/dev/sdb:hdd");
  ASSERT_TRUE(tier_only.ok());
  EXPECT_EQ(tier_only->path, "/dev/sdb");
  EXPECT_EQ(tier_only->size_bytes, 0u);
  EXPECT_EQ(tier_only->tier, DiskTier::kHdd);
  EXPECT_TRUE(ParseDiskSpec("x.img:2G:nvme").status().IsInvalidArgument());
}

TEST(DaemonOptionsTest, HostPorts) {
  auto parsed = ParseHostPort("--listen-nbd", "127.0.0.1:10809");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->first, "127.0.0.1");
  EXPECT_EQ(parsed->second, 10809);
  EXPECT_EQ(ParseHostPort("x", "[::1]:80")->first, "::1");
  EXPECT_TRUE(ParseHostPort("x", "127.0.0.1").status().IsInvalidArgument());
  EXPECT_TRUE(ParseHostPort("x", "127.0.0.1:70000").status().IsInvalidArgument());
  EXPECT_TRUE(ParseHostPort("x", ":80").status().IsInvalidArgument());
  EXPECT_TRUE(ParseHostPort("x", "h:8a").status().IsInvalidArgument());
}

}  // namespace
}  // namespace weft::daemon
