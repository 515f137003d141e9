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

}  // namespace
}  // namespace weft::cli
