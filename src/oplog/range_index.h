// RangeIndex: the OpLog's in-memory map of undrained data. It answers, for any byte of a vDisk's
// address space, whether that byte currently lives in the OpLog, from which record, and what it
// reads as. It does no I/O; the OpLog feeds it records as they become durable and removes them as
// the drainer moves them to the extent store.
//
// Semantics:
// - Ranges are byte-granular, half-open [offset, offset + length) in a 64-bit address space (vDisk
//   byte offsets), and never overlap: each byte maps to at most one entry.
// - Every Insert is one record with a sequence number. Sequence numbers are strictly increasing
//   across inserts (the caller guarantees it; the index asserts it) and start at 1, so a newer
//   Insert always wins: it clips or splits the older entries it overlaps, and each byte maps to
//   the newest record that covered it and has not been erased.
// - An entry is one piece of one record. Adjacent entries are never merged, even when they come
//   from the same record's buffer, so a piece always names exactly one record (the drainer and
//   recovery need that). Two pieces of one record are never adjacent (the index only splits a
//   record by putting something newer, or a hole, between its parts), so each piece returned is
//   maximal within its query.
// - Kinds: kData bytes come from a shared immutable RecordData at data_offset; kZeroUnmap (a trim,
//   or write-zeroes that may unmap) and kZeroFill (write-zeroes that must write zeros) both read
//   as zeros; the kind survives so that the drainer can choose between unmapping and writing.
// - Draining: PiecesUpTo(s) lists the bytes of records with seq <= s that are still visible (not
//   overwritten); EraseUpTo(s) forgets them. A secondary ordering by seq keeps both proportional
//   to the number of such pieces, not to the size of the index.
//
// Costs (n pieces in the index, k pieces touched): Insert, EraseRange, Lookup, Overlay, Overlaps
// O(log n + k); PiecesUpTo O(k log k); EraseUpTo O(k log n). Not thread-safe: one owner (the
// vDisk's reactor) uses it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <utility>
#include <vector>

#include "base/aligned_buffer.h"

namespace weft::oplog {

enum class RangeKind : uint8_t { kData, kZeroUnmap, kZeroFill };

// The bytes of one record, shared by every piece of it left in the index (and by any reader that
// holds a piece), freed when the last piece is erased and the last reader lets go. An
// AlignedBuffer so that the buffer the OpLog wrote with O_DIRECT can be kept without a copy; a
// record header in front of the payload is skipped with data_offset.
struct RecordData {
  AlignedBuffer buffer;

  std::span<const std::byte> bytes() const { return buffer.span(); }
};

// One maximal piece of one record, clipped to a query.
struct IndexPiece {
  uint64_t offset_bytes = 0;
  uint64_t length_bytes = 0;
  uint64_t seq = 0;
  RangeKind kind = RangeKind::kData;
  std::shared_ptr<const RecordData> data;  // kData only; keeps the bytes alive.
  uint64_t data_offset = 0;                // Where this piece's bytes start inside data.

  uint64_t end_bytes() const { return offset_bytes + length_bytes; }
  // kData: the piece's bytes (length_bytes of them). Empty for the zero kinds.
  std::span<const std::byte> bytes() const;
};

class RangeIndex {
 public:
  // Adds record `seq` over [offset, offset + length), overriding what it overlaps. Requires
  // length > 0, no wrap past 2^64, seq greater than every seq inserted before; kData requires
  // data with data_offset + length <= data->bytes().size(), the zero kinds require no data.
  void Insert(uint64_t offset, uint64_t length, uint64_t seq, RangeKind kind,
              std::shared_ptr<const RecordData> data = nullptr, uint64_t data_offset = 0);

  // Whether any byte of [offset, offset + length) is in the index (false when length is 0).
  bool Overlaps(uint64_t offset, uint64_t length) const;

  // Pieces overlapping [offset, offset + length), clipped to it, in offset order; gaps between
  // them are bytes not in the index.
  std::vector<IndexPiece> Lookup(uint64_t offset, uint64_t length) const;

  // Copies the index's bytes over `buffer`, which holds [offset, offset + buffer.size()): data
  // pieces copied, zero pieces zeroed, gaps untouched. Returns the number of bytes written (equal
  // to buffer.size() when the OpLog alone can serve the read).
  uint64_t Overlay(uint64_t offset, std::span<std::byte> buffer) const;

  // Every piece whose seq <= max_seq, in offset order (what a drain up to max_seq must move).
  std::vector<IndexPiece> PiecesUpTo(uint64_t max_seq) const;
  // Removes every piece whose seq <= max_seq (drained), leaving newer ones intact.
  void EraseUpTo(uint64_t max_seq);
  // Removes everything in [offset, offset + length), splitting pieces at its edges (a vDisk
  // shrink, or bytes that must no longer be served from the OpLog).
  void EraseRange(uint64_t offset, uint64_t length);

  uint64_t live_bytes() const { return live_bytes_; }
  size_t piece_count() const { return by_offset_.size(); }
  // Smallest seq still present; 0 when empty.
  uint64_t min_seq() const { return by_seq_.empty() ? 0 : by_seq_.begin()->first; }
  // Largest seq ever inserted (0 before the first Insert); erasing does not lower it.
  uint64_t last_seq() const { return last_seq_; }
  bool empty() const { return by_offset_.empty(); }

  // Full scan of every invariant (non-overlap, lengths, byte accounting, the seq ordering matches
  // the offset ordering, data bounds). O(n): for tests and debug checks, not the I/O path.
  void CheckInvariants() const;

 private:
  struct Entry {
    uint64_t length_bytes = 0;
    uint64_t seq = 0;
    RangeKind kind = RangeKind::kData;
    std::shared_ptr<const RecordData> data;
    uint64_t data_offset = 0;
  };
  using OffsetMap = std::map<uint64_t, Entry>;  // Start offset -> entry.

  // The first entry that ends after `offset` (the first one a query at `offset` can touch).
  OffsetMap::const_iterator FirstEndingAfter(uint64_t offset) const;
  OffsetMap::iterator FirstEndingAfter(uint64_t offset);
  // Removes [start, end) from the index, clipping or splitting the entries at its edges. Returns
  // the first entry at or after `end` (a hint for inserting there).
  OffsetMap::iterator Punch(uint64_t start, uint64_t end);
  // Keeps [start, entry end) of the entry at `it` (start inside it): the start key moves in both
  // orderings. Returns the re-keyed entry.
  OffsetMap::iterator ClipFront(OffsetMap::iterator it, uint64_t start);
  static IndexPiece MakePiece(uint64_t entry_start, const Entry& entry, uint64_t start,
                              uint64_t end);

  OffsetMap by_offset_;
  std::set<std::pair<uint64_t, uint64_t>> by_seq_;  // (seq, start offset) of every entry.
  uint64_t live_bytes_ = 0;
  uint64_t last_seq_ = 0;
};

}  // namespace weft::oplog
