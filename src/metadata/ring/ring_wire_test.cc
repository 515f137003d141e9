#include "metadata/ring/ring_wire.h"

#include <gtest/gtest.h>

#include <random>

#include "metadata/metadata_store.h"
#include "metadata/ring/ring.pb.h"

namespace weft::metadata::ring {
namespace {

paxos::RowState State(uint64_t change, std::string value) {
  return paxos::RowState{.change = change,
                         .version = change,
                         .value = std::move(value),
                         .created_by = {.round = 3, .node = 2}};
}

TEST(RingWireTest, RequestsAndRepliesRoundTrip) {
  std::vector<Request> requests = {
      RowRequest{.op_id = 7, .epoch = 3, .key = "k", .message = paxos::Prepare{{5, 1}}},
      RowRequest{.op_id = 8,
                 .epoch = 3,
                 .key = "k",
                 .message = paxos::Accept{{5, 1}, State(2, std::string("v\0x", 3))}},
      RowRequest{
          .op_id = 9, .epoch = 4, .key = "k", .message = paxos::Commit{{5, 1}, State(2, "v")}},
      RowRequest{.op_id = 10,
                 .epoch = 4,
                 .key = "k",
                 .message = paxos::Accept{{5, 1}, State(3, "w"), {6, 1}}},
      KeyListRequest{.op_id = 1,
                     .epoch = 2,
                     .prefix = "p/",
                     .start_after = "p/a",
                     .limit = 10,
                     .ranges = {{1, 2}, {UINT64_MAX, 5}},
                     .include_deleted = true},
  };
  for (const Request& request : requests) {
    Result<std::pair<NodeId, Request>> decoded = DecodeRequest(EncodeRequest(4, request));
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(decoded->first, 4u);
    EXPECT_EQ(EncodeRequest(4, decoded->second), EncodeRequest(4, request));
  }
  std::vector<Reply> replies = {
      RowReply{.op_id = 1, .key = "k", .message = paxos::Promise{{5, 1}, {4, 2}, State(1, "a")}},
      RowReply{.op_id = 1, .key = "k", .message = paxos::Accepted{{5, 1}}},
      RowReply{.op_id = 1, .key = "k", .message = paxos::Nack{{5, 1}, {6, 3}}},
      KeyListReply{.op_id = 3, .keys = {"a", "b"}, .truncated = true},
      EpochMismatch{.op_id = 2, .epoch = 9},
  };
  for (const Reply& reply : replies) {
    Result<std::pair<NodeId, Reply>> decoded = DecodeReply(EncodeReply(2, reply));
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(EncodeReply(2, decoded->second), EncodeReply(2, reply));
  }
}

TEST(RingWireTest, RefusesMalformedMessages) {
  EXPECT_FALSE(DecodeRequest("\xff\xff\xff garbage").ok());
  // A reply kind inside a request.
  EXPECT_FALSE(
      DecodeRequest(EncodeReply(1, RowReply{.key = "k", .message = paxos::Accepted{{1, 1}}})).ok());
  // Zero ballot, empty key, oversized key, zero sender, bad limit.
  EXPECT_FALSE(
      DecodeRequest(EncodeRequest(1, RowRequest{.key = "k", .message = paxos::Prepare{}})).ok());
  EXPECT_FALSE(
      DecodeRequest(EncodeRequest(1, RowRequest{.key = "", .message = paxos::Prepare{{1, 1}}}))
          .ok());
  EXPECT_FALSE(DecodeRequest(EncodeRequest(1, RowRequest{.key = std::string(kMaxKeyBytes + 1, 'k'),
                                                         .message = paxos::Prepare{{1, 1}}}))
                   .ok());
  EXPECT_FALSE(
      DecodeRequest(EncodeRequest(0, RowRequest{.key = "k", .message = paxos::Prepare{{1, 1}}}))
          .ok());
  EXPECT_FALSE(DecodeRequest(EncodeRequest(1, KeyListRequest{.limit = 0})).ok());
  EXPECT_FALSE(DecodeRequest(EncodeRequest(1, KeyListRequest{.limit = kMaxScanRows + 1})).ok());
  EXPECT_FALSE(DecodeReply(EncodeReply(1, KeyListReply{.keys = {"b", "a"}})).ok());
  pb::RingRequest empty;
  empty.set_from_node(1);
  EXPECT_FALSE(DecodeRequest(empty.SerializeAsString()).ok());
  // Random bytes never crash the decoder.
  std::mt19937_64 random(1);
  for (int i = 0; i < 20000; i++) {
    std::string bytes(random() % 64, '\0');
    for (char& c : bytes) c = static_cast<char>(random());
    (void)DecodeRequest(bytes);
    (void)DecodeReply(bytes);
  }
}

TEST(RingWireTest, AcceptorStateRecordChecksEveryField) {
  paxos::AcceptorState state{.promised = {9, 2},
                             .accepted = {8, 1},
                             .accepted_state = State(4, "value"),
                             .committed = State(3, "old")};
  const std::string bytes = EncodeAcceptorState(state);
  Result<paxos::AcceptorState> decoded = DecodeAcceptorState(bytes);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, state);
  for (size_t i = 0; i < bytes.size(); i++) {
    std::string flipped = bytes;
    flipped[i] ^= 0x10;
    Result<paxos::AcceptorState> bad = DecodeAcceptorState(flipped);
    if (i == 6 || i == 7) continue;  // The reserved field.
    EXPECT_EQ(bad.status().code(), StatusCode::kCorruption) << "byte " << i;
  }
  EXPECT_EQ(DecodeAcceptorState(bytes.substr(0, 10)).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(DecodeAcceptorState(bytes + "x").status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace weft::metadata::ring
