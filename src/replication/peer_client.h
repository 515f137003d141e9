// PeerClient: vdisk::PeerIo over the data RPC (data_rpc.proto): the owner side of the
// replicated data path. Peers are the live cluster members, each reached at the data address it
// published in its membership entry; the daemon keeps the list current with SetMembers.
//
// Threading: the reactor thread; the RpcClient runs on the reactor's io_context, so replies
// complete there without a hand-off.
#pragma once

#include <asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "rpc/endpoint.h"
#include "rpc/rpc_client.h"
#include "vdisk/peer_io.h"

namespace weft::replication {

struct PeerClientOptions {
  uint32_t local_node_id = 0;
  std::string local_fault_domain;
  // A call not answered within this is TimedOut (the node is then treated as failed for that
  // write: a new replica set is chosen).
  uint32_t call_timeout_ms = 3000;
  std::function<bool()> may_acknowledge;  // False while the node is fenced.
  rpc::FaultShim* fault_shim = nullptr;   // Tests: partitions and delays.
};

struct PeerMember {
  rpc::Endpoint data_endpoint;
  uint64_t free_bytes = 0;
  std::string fault_domain;
};

class PeerClient final : public vdisk::PeerIo {
 public:
  PeerClient(asio::io_context& io_context, PeerClientOptions options);
  ~PeerClient() override;

  // The live members (this node included or not: it is skipped) and their data endpoints.
  void SetMembers(std::map<uint32_t, PeerMember> members);
  void Close();

  uint32_t local_node_id() const override { return options_.local_node_id; }
  std::string local_fault_domain() const override { return options_.local_fault_domain; }
  std::vector<vdisk::PeerNode> LivePeers() const override;
  bool may_acknowledge() const override;

  void OplogAppend(uint32_t node, const vdisk::OplogRecordHeader& header,
                   std::span<const std::byte> data, vdisk::PeerCompletion done) override;
  void OplogTrim(uint32_t node, uint64_t vdisk_id, uint64_t owner_epoch, uint64_t drained_seq,
                 vdisk::PeerCompletion done) override;
  void EgroupCreate(uint32_t node, const vdisk::EgroupTarget& target, uint64_t replica_version,
                    std::function<void(Result<std::string>)> done) override;
  void EgroupWrite(uint32_t node, const vdisk::EgroupTarget& target, uint64_t replica_version,
                   uint64_t offset_bytes, std::span<const std::byte> data,
                   vdisk::PeerCompletion done) override;
  void EgroupTrim(uint32_t node, const vdisk::EgroupTarget& target, uint64_t replica_version,
                  uint64_t offset_bytes, uint64_t length_bytes,
                  vdisk::PeerCompletion done) override;
  void EgroupRead(uint32_t node, uint64_t egroup_id, uint64_t offset_bytes,
                  std::span<std::byte> buffer,
                  std::function<void(Result<vdisk::EgroupReadReply>)> done) override;
  void EgroupDelete(uint32_t node, uint64_t egroup_id, vdisk::PeerCompletion done) override;
  void Fence(uint32_t node, uint64_t vdisk_id, uint64_t owner_epoch,
             vdisk::PeerCompletion done) override;

 private:
  // Sends to `node`'s data endpoint; Unavailable at once (through the io_context) when the node
  // is not a live member.
  void Send(uint32_t node, rpc::Message request, rpc::ReplyFn done);

  asio::io_context& io_context_;
  PeerClientOptions options_;
  std::unique_ptr<rpc::RpcClient> client_;
  std::map<uint32_t, PeerMember> members_;
};

}  // namespace weft::replication
