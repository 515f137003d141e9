// Tables and key/value lists line up, including non-ASCII cells, without trailing spaces.
#include "cli/table.h"

#include <gtest/gtest.h>

namespace weft::cli {
namespace {

TEST(TableTest, ColumnsAlignLeftOrRight) {
  Table table({{"NAME"}, {"SIZE", Table::Align::kRight}, {"STATE"}});
  table.AddRow({"vm1", "10 GiB", "online"});
  table.AddRow({"database", "512 MiB", ""});
  EXPECT_EQ(table.Render(),
            "NAME         SIZE  STATE\n"
            "vm1        10 GiB  online\n"
            "database  512 MiB\n");
}

TEST(TableTest, HeaderOnlyWhenThereAreNoRows) {
  Table table({{"NAME"}, {"SIZE", Table::Align::kRight}});
  EXPECT_EQ(table.Render(), "NAME  SIZE\n");
}

TEST(TableTest, WidthsCountCodePointsNotBytes) {
  Table table({{"NAME"}, {"X"}});
  table.AddRow({"d\xc3\xa9j\xc3\xa0", "1"});  // "déjà": 4 code points, 6 bytes.
  table.AddRow({"abcd", "2"});
  EXPECT_EQ(table.Render(),
            "NAME  X\n"
            "d\xc3\xa9j\xc3\xa0  1\n"
            "abcd  2\n");
}

TEST(RenderFieldsTest, ValuesStartInOneColumn) {
  EXPECT_EQ(RenderFields({{"Name", "vm1"}, {"Open connections", "0"}}),
            "Name:              vm1\n"
            "Open connections:  0\n");
}

TEST(RenderPairGridTest, FillsColumnsTopToBottom) {
  EXPECT_EQ(
      RenderPairGrid({{"a", "1"}, {"bb", "22"}, {"c", "333"}, {"d", "4"}, {"e", "5"}}, 3, 2, 100),
      "  a    1    c  333    e  5\n"
      "  bb  22    d    4\n");
}

TEST(RenderPairGridTest, FewerColumnsWhenLinesWouldBeTooWide) {
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"records_appended", "1"}, {"bytes_appended", "4096"}, {"x", "2"}};
  EXPECT_EQ(RenderPairGrid(pairs, 3, 0, 100),
            "records_appended  1    bytes_appended  4096    x  2\n");
  EXPECT_EQ(RenderPairGrid(pairs, 3, 0, 40),
            "records_appended     1    x  2\n"
            "bytes_appended    4096\n");
  EXPECT_EQ(RenderPairGrid(pairs, 3, 0, 10),
            "records_appended     1\n"
            "bytes_appended    4096\n"
            "x                    2\n");
  EXPECT_EQ(RenderPairGrid({}, 3, 2, 100), "");
}

}  // namespace
}  // namespace weft::cli
