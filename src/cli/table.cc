#include "cli/table.h"

#include <algorithm>

#include "base/assert.h"

namespace weft::cli {
namespace {

constexpr size_t kColumnGap = 2;

// Code points, so that a non-ASCII name does not shift its row.
size_t DisplayWidth(const std::string& text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

void AppendPadded(std::string& line, const std::string& cell, size_t width, Table::Align align) {
  const size_t padding = width - DisplayWidth(cell);
  if (align == Table::Align::kRight) line.append(padding, ' ');
  line += cell;
  if (align == Table::Align::kLeft) line.append(padding, ' ');
}

}  // namespace

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {
  WEFT_ASSERT(!columns_.empty());
}

void Table::AddRow(std::vector<std::string> cells) {
  WEFT_ASSERT(cells.size() == columns_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> widths;
  for (const Column& column : columns_) widths.push_back(DisplayWidth(column.header));
  for (const std::vector<std::string>& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }
  auto render_line = [&](auto cell_at) {
    std::string line;
    for (size_t i = 0; i < columns_.size(); ++i) {
      if (i > 0) line.append(kColumnGap, ' ');
      AppendPadded(line, cell_at(i), widths[i], columns_[i].align);
    }
    line.erase(line.find_last_not_of(' ') + 1);
    return line + "\n";
  };
  std::string text =
      render_line([&](size_t i) -> const std::string& { return columns_[i].header; });
  for (const std::vector<std::string>& row : rows_) {
    text += render_line([&](size_t i) -> const std::string& { return row[i]; });
  }
  return text;
}

std::string RenderFields(const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t key_width = 0;
  for (const auto& [key, value] : fields) key_width = std::max(key_width, DisplayWidth(key) + 1);
  std::string text;
  for (const auto& [key, value] : fields) {
    text += key + ":";
    text.append(key_width - DisplayWidth(key) - 1 + kColumnGap, ' ');
    text += value + "\n";
  }
  return text;
}

namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

// The grid's lines with `columns` columns; `width_max` gets the longest line's width.
std::vector<std::string> GridLines(const Pairs& pairs, size_t columns, size_t indent,
                                   size_t& width_max) {
  WEFT_ASSERT(columns > 0);
  const size_t rows = (pairs.size() + columns - 1) / columns;
  std::vector<std::string> lines(rows, std::string(indent, ' '));
  for (size_t column = 0; column * rows < pairs.size(); ++column) {
    const size_t first = column * rows;
    const size_t end = std::min(first + rows, pairs.size());
    size_t name_width = 0;
    size_t value_width = 0;
    for (size_t i = first; i < end; ++i) {
      name_width = std::max(name_width, DisplayWidth(pairs[i].first));
      value_width = std::max(value_width, DisplayWidth(pairs[i].second));
    }
    for (size_t i = first; i < end; ++i) {
      std::string& line = lines[i - first];
      if (column > 0) line.append(2 * kColumnGap, ' ');
      AppendPadded(line, pairs[i].first, name_width, Table::Align::kLeft);
      line.append(kColumnGap, ' ');
      AppendPadded(line, pairs[i].second, value_width, Table::Align::kRight);
    }
  }
  width_max = 0;
  for (const std::string& line : lines) width_max = std::max(width_max, DisplayWidth(line));
  return lines;
}

}  // namespace

std::string RenderPairGrid(const Pairs& pairs, size_t columns_max, size_t indent,
                           size_t line_width_max) {
  WEFT_ASSERT(columns_max > 0);
  if (pairs.empty()) return "";
  std::vector<std::string> lines;
  for (size_t columns = std::min(columns_max, pairs.size()); columns > 0; --columns) {
    size_t width_max = 0;
    lines = GridLines(pairs, columns, indent, width_max);
    if (width_max <= line_width_max) break;
  }
  std::string text;
  for (std::string& line : lines) {
    line.erase(line.find_last_not_of(' ') + 1);
    text += line + "\n";
  }
  return text;
}

}  // namespace weft::cli
