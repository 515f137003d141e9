// RingService: the metadata ring on a real node — the MetadataStore of a cluster (the seeds'
// Medusa). It drives one RingNode (ring_node.h) with real I/O: peers over rpc/ (RpcClient, and
// the node's RpcServer handing ring frames to HandleRpc), durability in a RingStore (a synced
// RocksDB write batch per group of persistence requests, on its own thread), and ticks from an
// asio timer.
//
// Reads are linearizable by quorum reads with repair (docs/protocol/ring.md): no leases, so a
// read costs one Paxos round (two when replicas disagree) and no clock assumptions.
//
// Threading: everything runs on the asio::io_context given to Open, which exactly one thread
// runs (the node's RPC thread). The MetadataStore methods, UpdateRing, StartStream, SetFenced and
// snapshot() are thread-safe (they post to that thread); completions go to the Executor. Close()
// may be called from any thread but the io thread; destroy the service only after Close().
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "metadata/metadata_store.h"
#include "metadata/ring/ring_node.h"
#include "metadata/ring/ring_store.h"
#include "rpc/endpoint.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_message.h"

namespace asio {
class io_context;
}

namespace weft::metadata::ring {

struct RingServiceOptions {
  NodeId self = 0;
  std::string db_path;  // The RingStore's RocksDB directory.
  uint32_t tick_ms = 10;
  RingNodeOptions node;  // Ticks per attempt and timeout; `self` is filled in.
  rpc::RpcClientOptions rpc;
  Executor executor;  // Runs client completions.
  // Called on the io thread when a peer knows a newer ring (re-read the cluster configuration)
  // and when this node's stream finished the change of `epoch`.
  std::function<void()> on_ring_refresh_wanted;
  std::function<void(uint64_t epoch)> on_stream_done;
};

struct RingServiceSnapshot {
  uint64_t epoch = 0;
  RingConfig ring;
  RingNodeStats stats;
  bool fenced = false;
  uint64_t persist_batches = 0;
  uint64_t persist_records = 0;
  uint64_t rpc_errors = 0;
};

class RingService final : public MetadataStore {
 public:
  static Result<std::unique_ptr<RingService>> Open(asio::io_context& io_context,
                                                   RingServiceOptions options, RingConfig ring,
                                                   std::map<NodeId, rpc::Endpoint> peers);
  ~RingService() override;

  void Get(std::string key, GetCompletion done) override;
  void CompareAndSet(std::string key, uint64_t expected_version, std::string value,
                     SetCompletion done) override;
  void CompareAndDelete(std::string key, uint64_t expected_version, DeleteCompletion done) override;
  void Scan(std::string prefix, std::string start_after, uint32_t limit,
            ScanCompletion done) override;

  // The node's RpcServer hands every frame of these types to HandleRpc (on the io thread).
  static bool HandlesType(uint16_t message_type);
  void HandleRpc(const rpc::Message& request, rpc::IncomingContext context, rpc::ReplyFn reply);

  void UpdateRing(RingConfig ring, std::map<NodeId, rpc::Endpoint> peers);
  void StartStream();
  // While fenced, updates submitted through this node fail with Unavailable (reads and the
  // acceptor role go on: they need no ownership).
  void SetFenced(bool fenced);
  RingServiceSnapshot snapshot() const;

  // Stops ticks, fails queued client operations with Aborted, and waits for the persistence
  // thread. Idempotent.
  void Close();

 private:
  using Completion = std::variant<GetCompletion, SetCompletion, DeleteCompletion, ScanCompletion>;
  struct PendingReply {
    std::optional<rpc::ReplyFn> rpc;  // Empty: the request came from this node itself.
    uint64_t started_tick = 0;
  };
  struct PersistGroup {
    std::vector<PersistRow> rows;
    std::vector<PersistRoundFloor> floors;
    std::vector<uint64_t> ids;  // In request order.
  };

  RingService(asio::io_context& io_context, RingServiceOptions options,
              std::unique_ptr<RingStore> store, RecoveredState recovered, RingConfig ring,
              std::map<NodeId, rpc::Endpoint> peers);

  // All on the io thread.
  void Submit(Completion done, std::function<RingNodeOutput(RingNode&, uint64_t)> start,
              bool is_update);
  void Process(RingNodeOutput out);
  void Deliver(const ClientResult& result);
  void SendRequest(OutgoingRequest request);
  void OnTimer();
  void ArmTimer();
  void PersistLoop();
  void Post(std::function<void()> task);

  asio::io_context& io_context_;
  const RingServiceOptions options_;
  std::unique_ptr<RingStore> store_;
  std::unique_ptr<RingNode> node_;  // io thread only.
  std::map<NodeId, rpc::Endpoint> peers_;
  std::unique_ptr<rpc::RpcClient> client_;
  struct Timer;
  std::unique_ptr<Timer> timer_;
  uint64_t ticks_ = 0;
  uint64_t next_client_op_ = 0;
  uint64_t next_reply_token_ = 0;
  std::map<uint64_t, Completion> completions_;
  std::map<uint64_t, PendingReply> pending_replies_;
  bool fenced_ = false;  // io thread.
  bool closed_ = false;  // io thread.

  // Snapshot for other threads.
  mutable std::mutex snapshot_mutex_;
  RingServiceSnapshot snapshot_;

  // Persistence: groups in order, written by persist_thread_.
  std::mutex persist_mutex_;
  std::condition_variable persist_wakeup_;
  std::deque<PersistGroup> persist_queue_;
  bool persist_stop_ = false;
  std::thread persist_thread_;
  // Keeps posted handlers from touching a closed service.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace weft::metadata::ring
