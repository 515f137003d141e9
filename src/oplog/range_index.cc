#include "oplog/range_index.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "base/assert.h"

namespace weft::oplog {
namespace {

constexpr uint64_t kMaxOffset = std::numeric_limits<uint64_t>::max();

// A range must not wrap past the end of the address space; that is a caller bug, not bad input
// (the frontends reject such requests before they reach the OpLog).
void AssertNoWrap(uint64_t offset, uint64_t length) { WEFT_ASSERT(length <= kMaxOffset - offset); }

}  // namespace

std::span<const std::byte> IndexPiece::bytes() const {
  if (kind != RangeKind::kData) return {};
  WEFT_ASSERT(data != nullptr);
  WEFT_ASSERT(data_offset + length_bytes <= data->bytes().size());
  return data->bytes().subspan(data_offset, length_bytes);
}

void RangeIndex::Insert(uint64_t offset, uint64_t length, uint64_t seq, RangeKind kind,
                        std::shared_ptr<const RecordData> data, uint64_t data_offset) {
  WEFT_ASSERT(length > 0);
  AssertNoWrap(offset, length);
  // Newest wins only if newer means larger: replay and the write path both insert in seq order.
  WEFT_ASSERT(seq > last_seq_);
  if (kind == RangeKind::kData) {
    WEFT_ASSERT(data != nullptr);
    WEFT_ASSERT(data_offset <= data->bytes().size());
    WEFT_ASSERT(length <= data->bytes().size() - data_offset);
  } else {
    WEFT_ASSERT(data == nullptr);
    WEFT_ASSERT(data_offset == 0);
  }
  const auto hint = Punch(offset, offset + length);
  by_offset_.emplace_hint(hint, offset, Entry{length, seq, kind, std::move(data), data_offset});
  // The largest seq so far: its place in the seq ordering is the end.
  by_seq_.emplace_hint(by_seq_.end(), seq, offset);
  live_bytes_ += length;
  last_seq_ = seq;
}

bool RangeIndex::Overlaps(uint64_t offset, uint64_t length) const {
  if (length == 0) return false;
  AssertNoWrap(offset, length);
  const auto it = FirstEndingAfter(offset);
  return it != by_offset_.end() && it->first < offset + length;
}

std::vector<IndexPiece> RangeIndex::Lookup(uint64_t offset, uint64_t length) const {
  std::vector<IndexPiece> pieces;
  if (length == 0) return pieces;
  AssertNoWrap(offset, length);
  const uint64_t end = offset + length;
  for (auto it = FirstEndingAfter(offset); it != by_offset_.end() && it->first < end; ++it) {
    const uint64_t entry_end = it->first + it->second.length_bytes;
    pieces.push_back(
        MakePiece(it->first, it->second, std::max(offset, it->first), std::min(end, entry_end)));
  }
  return pieces;
}

uint64_t RangeIndex::Overlay(uint64_t offset, std::span<std::byte> buffer) const {
  if (buffer.empty()) return 0;
  AssertNoWrap(offset, buffer.size());
  const uint64_t end = offset + buffer.size();
  uint64_t covered_bytes = 0;
  for (auto it = FirstEndingAfter(offset); it != by_offset_.end() && it->first < end; ++it) {
    const Entry& entry = it->second;
    const uint64_t start = std::max(offset, it->first);
    const uint64_t stop = std::min(end, it->first + entry.length_bytes);
    std::byte* destination = buffer.data() + (start - offset);
    if (entry.kind == RangeKind::kData) {
      const uint64_t source_offset = entry.data_offset + (start - it->first);
      std::memcpy(destination, entry.data->bytes().data() + source_offset, stop - start);
    } else {
      std::memset(destination, 0, stop - start);
    }
    covered_bytes += stop - start;
  }
  WEFT_ASSERT(covered_bytes <= buffer.size());
  return covered_bytes;
}

std::vector<IndexPiece> RangeIndex::PiecesUpTo(uint64_t max_seq) const {
  std::vector<IndexPiece> pieces;
  for (auto seq_it = by_seq_.begin(); seq_it != by_seq_.end() && seq_it->first <= max_seq;
       ++seq_it) {
    const auto it = by_offset_.find(seq_it->second);
    WEFT_ASSERT(it != by_offset_.end());
    WEFT_ASSERT(it->second.seq == seq_it->first);
    pieces.push_back(
        MakePiece(it->first, it->second, it->first, it->first + it->second.length_bytes));
  }
  std::sort(pieces.begin(), pieces.end(), [](const IndexPiece& left, const IndexPiece& right) {
    return left.offset_bytes < right.offset_bytes;
  });
  return pieces;
}

void RangeIndex::EraseUpTo(uint64_t max_seq) {
  while (!by_seq_.empty() && by_seq_.begin()->first <= max_seq) {
    const auto it = by_offset_.find(by_seq_.begin()->second);
    WEFT_ASSERT(it != by_offset_.end());
    WEFT_ASSERT(it->second.length_bytes <= live_bytes_);
    live_bytes_ -= it->second.length_bytes;
    by_offset_.erase(it);
    by_seq_.erase(by_seq_.begin());
  }
}

void RangeIndex::EraseRange(uint64_t offset, uint64_t length) {
  if (length == 0) return;
  AssertNoWrap(offset, length);
  Punch(offset, offset + length);
}

RangeIndex::OffsetMap::const_iterator RangeIndex::FirstEndingAfter(uint64_t offset) const {
  auto it = by_offset_.upper_bound(offset);
  if (it != by_offset_.begin()) {
    const auto previous = std::prev(it);
    if (previous->first + previous->second.length_bytes > offset) return previous;
  }
  return it;
}

RangeIndex::OffsetMap::iterator RangeIndex::FirstEndingAfter(uint64_t offset) {
  auto it = by_offset_.upper_bound(offset);
  if (it != by_offset_.begin()) {
    const auto previous = std::prev(it);
    if (previous->first + previous->second.length_bytes > offset) return previous;
  }
  return it;
}

RangeIndex::OffsetMap::iterator RangeIndex::Punch(uint64_t start, uint64_t end) {
  WEFT_ASSERT(start < end);
  auto it = FirstEndingAfter(start);
  while (it != by_offset_.end() && it->first < end) {
    const uint64_t entry_start = it->first;
    Entry& entry = it->second;
    const uint64_t entry_end = entry_start + entry.length_bytes;
    if (entry_start < start && entry_end > end) {
      // The hole is strictly inside: the left part stays, the right part becomes a new entry.
      Entry right = entry;
      right.length_bytes = entry_end - end;
      if (right.kind == RangeKind::kData) right.data_offset += end - entry_start;
      entry.length_bytes = start - entry_start;
      live_bytes_ -= end - start;
      by_seq_.emplace(right.seq, end);
      return by_offset_.emplace_hint(std::next(it), end, std::move(right));
    }
    if (entry_start < start) {  // Over the entry's right edge: keep its left part.
      live_bytes_ -= entry_end - start;
      entry.length_bytes = start - entry_start;
      ++it;
      continue;
    }
    if (entry_end > end) {  // Over the entry's left edge: keep its right part, the last one.
      live_bytes_ -= end - entry_start;
      return ClipFront(it, end);
    }
    WEFT_ASSERT(entry.length_bytes <= live_bytes_);  // Covered whole.
    live_bytes_ -= entry.length_bytes;
    const size_t erased = by_seq_.erase({entry.seq, entry_start});
    WEFT_ASSERT(erased == 1);
    it = by_offset_.erase(it);
  }
  return it;
}

RangeIndex::OffsetMap::iterator RangeIndex::ClipFront(OffsetMap::iterator it, uint64_t start) {
  const uint64_t entry_start = it->first;
  WEFT_ASSERT(start > entry_start);
  WEFT_ASSERT(start < entry_start + it->second.length_bytes);
  const uint64_t clipped_bytes = start - entry_start;
  it->second.length_bytes -= clipped_bytes;
  if (it->second.kind == RangeKind::kData) it->second.data_offset += clipped_bytes;
  // Re-key both nodes in place rather than reallocating them.
  auto seq_node = by_seq_.extract({it->second.seq, entry_start});
  WEFT_ASSERT(!seq_node.empty());
  seq_node.value().second = start;
  by_seq_.insert(std::move(seq_node));
  const auto next = std::next(it);
  auto node = by_offset_.extract(it);
  node.key() = start;
  return by_offset_.insert(next, std::move(node));
}

IndexPiece RangeIndex::MakePiece(uint64_t entry_start, const Entry& entry, uint64_t start,
                                 uint64_t end) {
  WEFT_ASSERT(entry_start <= start);
  WEFT_ASSERT(start < end && end <= entry_start + entry.length_bytes);
  IndexPiece piece;
  piece.offset_bytes = start;
  piece.length_bytes = end - start;
  piece.seq = entry.seq;
  piece.kind = entry.kind;
  if (entry.kind == RangeKind::kData) {
    piece.data = entry.data;
    piece.data_offset = entry.data_offset + (start - entry_start);
  }
  return piece;
}

void RangeIndex::CheckInvariants() const {
  WEFT_ASSERT(by_seq_.size() == by_offset_.size());
  uint64_t covered_bytes = 0;
  uint64_t previous_end = 0;
  uint64_t previous_seq = 0;
  for (const auto& [start, entry] : by_offset_) {
    WEFT_ASSERT(entry.length_bytes > 0);
    WEFT_ASSERT(entry.length_bytes <= kMaxOffset - start);
    WEFT_ASSERT(start >= previous_end);  // Non-overlapping (and sorted).
    // Pieces of one record are never adjacent: only something newer or a hole splits a record.
    WEFT_ASSERT(start != previous_end || entry.seq != previous_seq);
    WEFT_ASSERT(entry.seq > 0 && entry.seq <= last_seq_);
    WEFT_ASSERT(by_seq_.contains({entry.seq, start}));
    if (entry.kind == RangeKind::kData) {
      WEFT_ASSERT(entry.data != nullptr);
      WEFT_ASSERT(entry.data_offset + entry.length_bytes <= entry.data->bytes().size());
    } else {
      WEFT_ASSERT(entry.data == nullptr);
    }
    covered_bytes += entry.length_bytes;
    previous_end = start + entry.length_bytes;
    previous_seq = entry.seq;
  }
  WEFT_ASSERT(covered_bytes == live_bytes_);
}

}  // namespace weft::oplog
