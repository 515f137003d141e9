#include "metadata/ring/ring_wire.h"

#include <fmt/format.h>

#include <cstring>

#include "base/assert.h"
#include "base/crc32c.h"
#include "metadata/metadata_store.h"
#include "metadata/ring/ring.pb.h"

namespace weft::metadata::ring {

namespace {

constexpr uint32_t kStateMagic = 0x474e5257;  // "WRNG" in a little-endian dump.
constexpr uint16_t kStateVersion = 1;

struct StateHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t reserved;
  uint32_t payload_bytes;
  uint32_t payload_crc32c;
};
static_assert(sizeof(StateHeader) == 16);

void ToPb(const paxos::Ballot& ballot, pb::Ballot* out) {
  out->set_round(ballot.round);
  out->set_node(ballot.node);
}

paxos::Ballot FromPb(const pb::Ballot& ballot) {
  return paxos::Ballot{.round = ballot.round(), .node = ballot.node()};
}

void ToPb(const paxos::RowState& state, pb::RowState* out) {
  out->set_change(state.change);
  out->set_version(state.version);
  out->set_value(state.value);
  ToPb(state.created_by, out->mutable_created_by());
}

Result<paxos::RowState> FromPb(const pb::RowState& state) {
  if (state.value().size() > kMaxValueBytes) {
    return Status::InvalidArgument(
        fmt::format("row value of {} bytes is over the limit", state.value().size()));
  }
  if (state.version() != 0 && state.change() == 0) {
    return Status::InvalidArgument("row state with a version but change 0");
  }
  return paxos::RowState{.change = state.change(),
                         .version = state.version(),
                         .value = state.value(),
                         .created_by = FromPb(state.created_by())};
}

void ToPb(const paxos::Message& message, pb::PaxosMessage* out) {
  std::visit(
      [out](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, paxos::Prepare>) {
          ToPb(m.ballot, out->mutable_prepare());
        } else if constexpr (std::is_same_v<T, paxos::Promise>) {
          ToPb(m.ballot, out->mutable_promise()->mutable_ballot());
          ToPb(m.accepted, out->mutable_promise()->mutable_accepted());
          ToPb(m.accepted_state, out->mutable_promise()->mutable_accepted_state());
        } else if constexpr (std::is_same_v<T, paxos::Accept>) {
          ToPb(m.ballot, out->mutable_accept()->mutable_ballot());
          ToPb(m.state, out->mutable_accept()->mutable_state());
          if (!m.next_promise.IsZero()) {
            ToPb(m.next_promise, out->mutable_accept()->mutable_next_promise());
          }
        } else if constexpr (std::is_same_v<T, paxos::Accepted>) {
          ToPb(m.ballot, out->mutable_accepted());
        } else if constexpr (std::is_same_v<T, paxos::Nack>) {
          ToPb(m.ballot, out->mutable_nack()->mutable_ballot());
          ToPb(m.promised, out->mutable_nack()->mutable_promised());
        } else {
          static_assert(std::is_same_v<T, paxos::Commit>);
          ToPb(m.ballot, out->mutable_commit()->mutable_ballot());
          ToPb(m.state, out->mutable_commit()->mutable_state());
        }
      },
      message);
}

Result<paxos::Message> FromPb(const pb::PaxosMessage& message, bool request) {
  paxos::Message result;
  switch (message.kind_case()) {
    case pb::PaxosMessage::kPrepare:
      result = paxos::Prepare{.ballot = FromPb(message.prepare())};
      break;
    case pb::PaxosMessage::kAccept:
    case pb::PaxosMessage::kCommit: {
      const pb::Accept& accept = message.has_accept() ? message.accept() : message.commit();
      Result<paxos::RowState> state = FromPb(accept.state());
      if (!state.ok()) return state.status();
      if (message.has_accept()) {
        result = paxos::Accept{.ballot = FromPb(accept.ballot()),
                               .state = std::move(*state),
                               .next_promise = FromPb(accept.next_promise())};
      } else {
        result = paxos::Commit{.ballot = FromPb(accept.ballot()), .state = std::move(*state)};
      }
      break;
    }
    case pb::PaxosMessage::kPromise: {
      Result<paxos::RowState> state = FromPb(message.promise().accepted_state());
      if (!state.ok()) return state.status();
      result = paxos::Promise{.ballot = FromPb(message.promise().ballot()),
                              .accepted = FromPb(message.promise().accepted()),
                              .accepted_state = std::move(*state)};
      break;
    }
    case pb::PaxosMessage::kAccepted:
      result = paxos::Accepted{.ballot = FromPb(message.accepted())};
      break;
    case pb::PaxosMessage::kNack:
      result = paxos::Nack{.ballot = FromPb(message.nack().ballot()),
                           .promised = FromPb(message.nack().promised())};
      break;
    default:
      return Status::InvalidArgument("paxos message without a kind");
  }
  const bool is_request = std::holds_alternative<paxos::Prepare>(result) ||
                          std::holds_alternative<paxos::Accept>(result) ||
                          std::holds_alternative<paxos::Commit>(result);
  if (is_request != request) {
    return Status::InvalidArgument(request ? "a paxos reply where a request belongs"
                                           : "a paxos request where a reply belongs");
  }
  const paxos::Ballot ballot = std::visit([](const auto& m) { return m.ballot; }, result);
  if (ballot.IsZero()) return Status::InvalidArgument("paxos message with a zero ballot");
  return result;
}

Status CheckKey(std::string_view key, std::string_view what) {
  if (key.size() > kMaxKeyBytes) {
    return Status::InvalidArgument(
        fmt::format("{} of {} bytes is over the key limit", what, key.size()));
  }
  return Status::Ok();
}

}  // namespace

std::string EncodeRequest(NodeId from, const Request& request) {
  pb::RingRequest out;
  out.set_from_node(from);
  if (const auto* row = std::get_if<RowRequest>(&request)) {
    pb::RowRequest* pb_row = out.mutable_row();
    pb_row->set_op_id(row->op_id);
    pb_row->set_epoch(row->epoch);
    pb_row->set_key(row->key);
    ToPb(row->message, pb_row->mutable_message());
  } else {
    const auto& list = std::get<KeyListRequest>(request);
    pb::KeyListRequest* pb_list = out.mutable_key_list();
    pb_list->set_op_id(list.op_id);
    pb_list->set_epoch(list.epoch);
    pb_list->set_prefix(list.prefix);
    pb_list->set_start_after(list.start_after);
    pb_list->set_limit(list.limit);
    for (const TokenRange& range : list.ranges) {
      pb::TokenRange* pb_range = pb_list->add_ranges();
      pb_range->set_begin(range.begin);
      pb_range->set_end(range.end);
    }
    pb_list->set_include_deleted(list.include_deleted);
  }
  return out.SerializeAsString();
}

Result<std::pair<NodeId, Request>> DecodeRequest(std::string_view bytes) {
  pb::RingRequest in;
  if (!in.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::InvalidArgument("ring request does not parse");
  }
  if (in.from_node() == 0) return Status::InvalidArgument("ring request from node 0");
  if (in.has_row()) {
    const pb::RowRequest& row = in.row();
    if (row.key().empty()) return Status::InvalidArgument("ring row request with an empty key");
    if (Status status = CheckKey(row.key(), "row key"); !status.ok()) return status;
    Result<paxos::Message> message = FromPb(row.message(), /*request=*/true);
    if (!message.ok()) return message.status();
    return std::make_pair(in.from_node(), Request{RowRequest{.op_id = row.op_id(),
                                                             .epoch = row.epoch(),
                                                             .key = row.key(),
                                                             .message = std::move(*message)}});
  }
  if (in.has_key_list()) {
    const pb::KeyListRequest& list = in.key_list();
    if (list.limit() == 0 || list.limit() > kMaxScanRows) {
      return Status::InvalidArgument(
          fmt::format("key list limit {} not in 1..{}", list.limit(), kMaxScanRows));
    }
    if (Status status = CheckKey(list.prefix(), "key list prefix"); !status.ok()) return status;
    if (Status status = CheckKey(list.start_after(), "key list start"); !status.ok()) {
      return status;
    }
    if (list.ranges_size() > 4096) return Status::InvalidArgument("key list with too many ranges");
    KeyListRequest request{.op_id = list.op_id(),
                           .epoch = list.epoch(),
                           .prefix = list.prefix(),
                           .start_after = list.start_after(),
                           .limit = list.limit(),
                           .include_deleted = list.include_deleted()};
    for (const pb::TokenRange& range : list.ranges()) {
      request.ranges.push_back(TokenRange{.begin = range.begin(), .end = range.end()});
    }
    return std::make_pair(in.from_node(), Request{std::move(request)});
  }
  return Status::InvalidArgument("ring request without a kind");
}

std::string EncodeReply(NodeId from, const Reply& reply) {
  pb::RingReply out;
  out.set_from_node(from);
  if (const auto* row = std::get_if<RowReply>(&reply)) {
    out.mutable_row()->set_op_id(row->op_id);
    out.mutable_row()->set_key(row->key);
    ToPb(row->message, out.mutable_row()->mutable_message());
  } else if (const auto* list = std::get_if<KeyListReply>(&reply)) {
    out.mutable_key_list()->set_op_id(list->op_id);
    for (const std::string& key : list->keys) out.mutable_key_list()->add_keys(key);
    out.mutable_key_list()->set_truncated(list->truncated);
  } else {
    const auto& mismatch = std::get<EpochMismatch>(reply);
    out.mutable_epoch_mismatch()->set_op_id(mismatch.op_id);
    out.mutable_epoch_mismatch()->set_epoch(mismatch.epoch);
  }
  return out.SerializeAsString();
}

Result<std::pair<NodeId, Reply>> DecodeReply(std::string_view bytes) {
  pb::RingReply in;
  if (!in.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::InvalidArgument("ring reply does not parse");
  }
  if (in.from_node() == 0) return Status::InvalidArgument("ring reply from node 0");
  if (in.has_row()) {
    if (Status status = CheckKey(in.row().key(), "row key"); !status.ok()) return status;
    Result<paxos::Message> message = FromPb(in.row().message(), /*request=*/false);
    if (!message.ok()) return message.status();
    return std::make_pair(in.from_node(), Reply{RowReply{.op_id = in.row().op_id(),
                                                         .key = in.row().key(),
                                                         .message = std::move(*message)}});
  }
  if (in.has_key_list()) {
    if (in.key_list().keys_size() > static_cast<int>(kMaxScanRows)) {
      return Status::InvalidArgument("key list reply with too many keys");
    }
    KeyListReply reply{.op_id = in.key_list().op_id(), .truncated = in.key_list().truncated()};
    for (const std::string& key : in.key_list().keys()) {
      if (Status status = CheckKey(key, "listed key"); !status.ok()) return status;
      reply.keys.push_back(key);
    }
    if (!std::is_sorted(reply.keys.begin(), reply.keys.end())) {
      return Status::InvalidArgument("key list reply not sorted");
    }
    return std::make_pair(in.from_node(), Reply{std::move(reply)});
  }
  if (in.has_epoch_mismatch()) {
    return std::make_pair(in.from_node(),
                          Reply{EpochMismatch{.op_id = in.epoch_mismatch().op_id(),
                                              .epoch = in.epoch_mismatch().epoch()}});
  }
  return Status::InvalidArgument("ring reply without a kind");
}

std::string EncodeAcceptorState(const paxos::AcceptorState& state) {
  WEFT_ASSERT(state.accepted <= state.promised);
  pb::AcceptorState out;
  ToPb(state.promised, out.mutable_promised());
  ToPb(state.accepted, out.mutable_accepted());
  ToPb(state.accepted_state, out.mutable_accepted_state());
  ToPb(state.committed, out.mutable_committed());
  const std::string payload = out.SerializeAsString();
  StateHeader header{.magic = kStateMagic,
                     .version = kStateVersion,
                     .reserved = 0,
                     .payload_bytes = static_cast<uint32_t>(payload.size()),
                     .payload_crc32c = Crc32c(payload.data(), payload.size())};
  std::string bytes(sizeof(header), '\0');
  std::memcpy(bytes.data(), &header, sizeof(header));
  bytes += payload;
  return bytes;
}

Result<paxos::AcceptorState> DecodeAcceptorState(std::string_view bytes) {
  StateHeader header;
  if (bytes.size() < sizeof(header)) {
    return Status::Corruption(
        fmt::format("acceptor state of {} bytes is shorter than its header", bytes.size()));
  }
  std::memcpy(&header, bytes.data(), sizeof(header));
  if (header.magic != kStateMagic) return Status::Corruption("acceptor state: bad magic");
  if (header.version != kStateVersion) {
    return Status::Corruption(fmt::format("acceptor state: unknown version {}", header.version));
  }
  const std::string_view payload = bytes.substr(sizeof(header));
  if (payload.size() != header.payload_bytes) {
    return Status::Corruption(fmt::format("acceptor state: payload is {} bytes, header says {}",
                                          payload.size(), header.payload_bytes));
  }
  if (Crc32c(payload.data(), payload.size()) != header.payload_crc32c) {
    return Status::Corruption("acceptor state: payload crc mismatch");
  }
  pb::AcceptorState in;
  if (!in.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return Status::Corruption("acceptor state: payload does not parse");
  }
  Result<paxos::RowState> accepted_state = FromPb(in.accepted_state());
  Result<paxos::RowState> committed = FromPb(in.committed());
  if (!accepted_state.ok() || !committed.ok()) {
    return Status::Corruption("acceptor state: invalid row state");
  }
  paxos::AcceptorState state{.promised = FromPb(in.promised()),
                             .accepted = FromPb(in.accepted()),
                             .accepted_state = std::move(*accepted_state),
                             .committed = std::move(*committed)};
  if (!(state.accepted <= state.promised)) {
    return Status::Corruption("acceptor state: accepted ballot above the promise");
  }
  return state;
}

}  // namespace weft::metadata::ring
