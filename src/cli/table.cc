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

}  // namespace weft::cli
