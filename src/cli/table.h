// Plain-text layouts for the CLI's human output: aligned tables (one row per object) and
// aligned "Key:  value" lists (one object). Widths count UTF-8 code points, not bytes.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace weft::cli {

class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string header;
    Align align = Align::kLeft;
  };

  explicit Table(std::vector<Column> columns);

  // `cells` must have one entry per column.
  void AddRow(std::vector<std::string> cells);

  // The header line and the rows, each ending in '\n'; columns are two spaces apart and lines
  // carry no trailing spaces.
  std::string Render() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// "Name:     vm1\nSize:     10 GiB\n": each key gets a colon, values start in one column.
std::string RenderFields(const std::vector<std::pair<std::string, std::string>>& fields);

// Name/value pairs in a grid of up to `columns_max` columns, filled top to bottom and then left
// to right (as ls does), every line indented by `indent` spaces; names align left, values right.
// Uses fewer columns when more would make a line wider than `line_width_max` (one column is used
// even when it is wider). Empty `pairs`: "".
std::string RenderPairGrid(const std::vector<std::pair<std::string, std::string>>& pairs,
                           size_t columns_max, size_t indent, size_t line_width_max);

}  // namespace weft::cli
