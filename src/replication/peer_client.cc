#include "replication/peer_client.h"

#include <fmt/format.h>

#include <asio/post.hpp>
#include <cstring>

#include "base/assert.h"
#include "base/crc32c.h"
#include "replication/data_rpc.h"
#include "replication/data_rpc.pb.h"

namespace weft::replication {

namespace {

rpc::Message Request(uint16_t type, const google::protobuf::MessageLite& body,
                     std::span<const std::byte> bulk = {}) {
  rpc::Message message;
  message.type = type;
  message.body = body.SerializeAsString();
  message.bulk.assign(reinterpret_cast<const char*>(bulk.data()), bulk.size());
  return message;
}

// A reply's body as `Proto`, or the call's error (with the node named).
template <typename Proto>
Result<Proto> ParseReply(uint32_t node, Result<rpc::Message> reply) {
  if (!reply.ok()) return reply.status().WithContext(fmt::format("node {}", node));
  Proto parsed;
  if (reply->type != kDataReplyType || !parsed.ParseFromString(reply->body)) {
    return Status::Corruption(
        fmt::format("node {}: malformed data rpc reply (type {:#x})", node, reply->type));
  }
  return parsed;
}

}  // namespace

PeerClient::PeerClient(asio::io_context& io_context, PeerClientOptions options)
    : io_context_(io_context), options_(std::move(options)) {
  WEFT_ASSERT(options_.local_node_id != 0);
  rpc::RpcClientOptions client_options;
  client_options.fault_shim = options_.fault_shim;
  client_options.local_node = std::to_string(options_.local_node_id);
  client_options.connect_timeout_ms = std::min<uint32_t>(1000, options_.call_timeout_ms);
  client_ = std::make_unique<rpc::RpcClient>(io_context_, client_options);
}

PeerClient::~PeerClient() { Close(); }

void PeerClient::Close() {
  if (client_ != nullptr) client_->Close();
}

void PeerClient::SetMembers(std::map<uint32_t, PeerMember> members) {
  members.erase(options_.local_node_id);
  members_ = std::move(members);
}

std::vector<vdisk::PeerNode> PeerClient::LivePeers() const {
  std::vector<vdisk::PeerNode> peers;
  for (const auto& [node_id, member] : members_) {
    peers.push_back({node_id, member.free_bytes, member.fault_domain});
  }
  return peers;
}

bool PeerClient::may_acknowledge() const {
  return options_.may_acknowledge == nullptr || options_.may_acknowledge();
}

void PeerClient::Send(uint32_t node, rpc::Message request, rpc::ReplyFn done) {
  WEFT_ASSERT(node != options_.local_node_id);
  const auto member = members_.find(node);
  if (member == members_.end()) {
    asio::post(io_context_, [node, done = std::move(done)] {
      done(Status::Unavailable(fmt::format("node {} is not a live member", node)));
    });
    return;
  }
  client_->Call(member->second.data_endpoint, std::move(request), options_.call_timeout_ms,
                std::move(done));
}

void PeerClient::OplogAppend(uint32_t node, const vdisk::OplogRecordHeader& header,
                             std::span<const std::byte> data, vdisk::PeerCompletion done) {
  WEFT_ASSERT(header.seq != 0 && header.owner_epoch != 0);
  proto::OplogAppend append;
  append.set_vdisk_id(header.vdisk_id);
  append.set_owner_epoch(header.owner_epoch);
  append.set_seq(header.seq);
  append.set_kind(header.kind);
  append.set_offset_bytes(header.offset_bytes);
  append.set_length_bytes(header.length_bytes);
  append.set_data_crc32c(header.data_crc32c);
  append.set_drained_seq(header.drained_seq);
  Send(node, Request(kOplogAppendType, append, data),
       [node, done = std::move(done)](Result<rpc::Message> reply) {
         done(ParseReply<proto::OplogAppendReply>(node, std::move(reply)).status());
       });
}

void PeerClient::OplogTrim(uint32_t node, uint64_t vdisk_id, uint64_t owner_epoch,
                           uint64_t drained_seq, vdisk::PeerCompletion done) {
  proto::OplogTrim trim;
  trim.set_vdisk_id(vdisk_id);
  trim.set_owner_epoch(owner_epoch);
  trim.set_drained_seq(drained_seq);
  Send(node, Request(kOplogTrimType, trim),
       [node, done = std::move(done)](Result<rpc::Message> reply) {
         done(ParseReply<proto::OplogAppendReply>(node, std::move(reply)).status());
       });
}

void PeerClient::EgroupCreate(uint32_t node, const vdisk::EgroupTarget& target,
                              uint64_t replica_version,
                              std::function<void(Result<std::string>)> done) {
  proto::EgroupCreate create;
  create.set_egroup_id(target.egroup_id);
  create.set_vdisk_id(target.vdisk_id);
  create.set_owner_epoch(target.owner_epoch);
  create.set_replica_version(replica_version);
  Send(node, Request(kEgroupCreateType, create),
       [node, done = std::move(done)](Result<rpc::Message> reply) {
         Result<proto::EgroupCreateReply> created =
             ParseReply<proto::EgroupCreateReply>(node, std::move(reply));
         if (!created.ok()) return done(created.status());
         done(created->disk_uuid());
       });
}

void PeerClient::EgroupWrite(uint32_t node, const vdisk::EgroupTarget& target,
                             uint64_t replica_version, uint64_t offset_bytes,
                             std::span<const std::byte> data, vdisk::PeerCompletion done) {
  WEFT_ASSERT(!data.empty() && data.size() <= kDataBytesMax);
  proto::EgroupWrite write;
  write.set_egroup_id(target.egroup_id);
  write.set_vdisk_id(target.vdisk_id);
  write.set_owner_epoch(target.owner_epoch);
  write.set_replica_version(replica_version);
  write.set_offset_bytes(offset_bytes);
  write.set_length_bytes(data.size());
  write.set_data_crc32c(Crc32c(data));
  Send(node, Request(kEgroupWriteType, write, data),
       [node, done = std::move(done)](Result<rpc::Message> reply) {
         done(ParseReply<proto::EgroupWriteReply>(node, std::move(reply)).status());
       });
}

void PeerClient::EgroupTrim(uint32_t node, const vdisk::EgroupTarget& target,
                            uint64_t replica_version, uint64_t offset_bytes, uint64_t length_bytes,
                            vdisk::PeerCompletion done) {
  proto::EgroupWrite trim;
  trim.set_egroup_id(target.egroup_id);
  trim.set_vdisk_id(target.vdisk_id);
  trim.set_owner_epoch(target.owner_epoch);
  trim.set_replica_version(replica_version);
  trim.set_offset_bytes(offset_bytes);
  trim.set_length_bytes(length_bytes);
  Send(node, Request(kEgroupTrimType, trim),
       [node, done = std::move(done)](Result<rpc::Message> reply) {
         done(ParseReply<proto::EgroupWriteReply>(node, std::move(reply)).status());
       });
}

void PeerClient::EgroupRead(uint32_t node, uint64_t egroup_id, uint64_t offset_bytes,
                            std::span<std::byte> buffer,
                            std::function<void(Result<vdisk::EgroupReadReply>)> done) {
  proto::EgroupRead read;
  read.set_egroup_id(egroup_id);
  read.set_offset_bytes(offset_bytes);
  read.set_length_bytes(buffer.size());
  Send(node, Request(kEgroupReadType, read),
       [node, egroup_id, offset_bytes, buffer, done = std::move(done)](Result<rpc::Message> reply) {
         std::string bulk = reply.ok() ? std::move(reply->bulk) : std::string();
         Result<proto::EgroupReadReply> answer =
             ParseReply<proto::EgroupReadReply>(node, std::move(reply));
         if (!answer.ok()) return done(answer.status());
         if (bulk.size() != buffer.size() ||
             Crc32c(bulk.data(), bulk.size()) != answer->data_crc32c()) {
           return done(Status::Corruption(
               fmt::format("node {}: egroup {} read at {}: {} bytes with a bad crc (asked {})",
                           node, egroup_id, offset_bytes, bulk.size(), buffer.size())));
         }
         std::memcpy(buffer.data(), bulk.data(), bulk.size());
         done(vdisk::EgroupReadReply{answer->replica_version()});
       });
}

void PeerClient::EgroupDelete(uint32_t node, uint64_t egroup_id, vdisk::PeerCompletion done) {
  proto::EgroupDelete remove;
  remove.set_egroup_id(egroup_id);
  Send(node, Request(kEgroupDeleteType, remove),
       [node, done = std::move(done)](Result<rpc::Message> reply) {
         done(ParseReply<proto::EgroupWriteReply>(node, std::move(reply)).status());
       });
}

void PeerClient::Fence(uint32_t node, uint64_t vdisk_id, uint64_t owner_epoch,
                       vdisk::PeerCompletion done) {
  proto::Fence fence;
  fence.set_vdisk_id(vdisk_id);
  fence.set_owner_epoch(owner_epoch);
  Send(node, Request(kFenceType, fence),
       [node, done = std::move(done)](Result<rpc::Message> reply) {
         done(ParseReply<proto::EgroupWriteReply>(node, std::move(reply)).status());
       });
}

}  // namespace weft::replication
