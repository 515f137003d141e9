// RingNode through a small in-process driver: a FIFO network that can take nodes down, disks
// that complete every write at once, and ticks on demand. The seeded fault simulation is sim/.
#include "metadata/ring/ring_node.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <random>
#include <set>

namespace weft::metadata::ring {
namespace {

RingConfig MakeRing(uint32_t nodes, uint32_t replicas, uint64_t seed = 7) {
  std::mt19937_64 random(seed);
  RingConfig config{.epoch = 1, .replicas = replicas};
  for (NodeId node = 1; node <= nodes; node++) {
    RingMember member{.node = node};
    for (int i = 0; i < 8; i++) member.tokens.push_back(random());
    config.members.push_back(member);
  }
  return config;
}

class Cluster {
 public:
  explicit Cluster(RingConfig ring) : ring_(std::move(ring)) {
    for (const RingMember& member : ring_.members) Start(member.node);
  }

  void Start(NodeId node) {
    nodes_[node] = std::make_unique<RingNode>(
        RingNodeOptions{.self = node, .attempt_ticks = 4, .timeout_ticks = 60, .seed = node},
        disks_[node], ring_);
    down_.erase(node);
  }
  void Crash(NodeId node) {
    nodes_.erase(node);
    down_.insert(node);
  }
  void SetRing(RingConfig ring) {
    ring_ = std::move(ring);
    for (auto& [id, node] : nodes_) Handle(id, node->SetRing(ring_));
  }
  RingNode& node(NodeId id) { return *nodes_.at(id); }

  uint64_t Get(NodeId at, std::string key) {
    const uint64_t op = ++next_op_;
    Handle(at, node(at).Get(op, std::move(key)));
    return op;
  }
  uint64_t Cas(NodeId at, std::string key, uint64_t expected, std::string value) {
    const uint64_t op = ++next_op_;
    Handle(at, node(at).CompareAndSet(op, std::move(key), expected, std::move(value)));
    return op;
  }
  uint64_t Cad(NodeId at, std::string key, uint64_t expected) {
    const uint64_t op = ++next_op_;
    Handle(at, node(at).CompareAndDelete(op, std::move(key), expected));
    return op;
  }
  uint64_t Scan(NodeId at, std::string prefix, std::string start_after, uint32_t limit) {
    const uint64_t op = ++next_op_;
    Handle(at, node(at).Scan(op, std::move(prefix), std::move(start_after), limit));
    return op;
  }

  // Delivers messages, ticking when the network is quiet, until `op` has a result.
  ClientResult Wait(uint64_t op) {
    for (int step = 0; step < 100000; step++) {
      if (auto it = results_.find(op); it != results_.end()) return it->second;
      Step();
    }
    ADD_FAILURE() << "op " << op << " never finished";
    return {};
  }
  void Step() {
    if (queue_.empty()) {
      for (auto& [id, node] : nodes_) Handle(id, node->OnTick());
      return;
    }
    Event event = std::move(queue_.front());
    queue_.pop_front();
    if (!nodes_.contains(event.to)) return;  // Down: lost.
    if (event.request) {
      Handle(event.to, node(event.to).OnRequest(event.from, event.token, *event.request));
    } else {
      Handle(event.to, node(event.to).OnReply(event.from, *event.reply));
    }
  }
  void RunTicks(int ticks) {
    for (int i = 0; i < ticks; i++) {
      while (!queue_.empty()) Step();
      Step();
    }
  }

  std::optional<uint64_t> stream_done;
  int refreshes = 0;
  std::map<NodeId, RecoveredState> disks_;

  struct Event {  // A request or a reply in flight.
    NodeId from = 0;
    NodeId to = 0;
    uint64_t token = 0;
    std::optional<Request> request;
    std::optional<Reply> reply;
  };

  // Carries out what node `at` returned.
  void Handle(NodeId at, RingNodeOutput out) {
    for (OutgoingRequest& request : out.requests) {
      const uint64_t token = ++next_token_;
      routes_[token] = {at, request.to};
      queue_.push_back(Event{
          .from = at, .to = request.to, .token = token, .request = std::move(request.request)});
    }
    for (OutgoingReply& reply : out.replies) {
      auto route = routes_.find(reply.reply_token);
      ASSERT_NE(route, routes_.end());
      ASSERT_EQ(route->second.second, at);
      queue_.push_back(
          Event{.from = at, .to = route->second.first, .reply = std::move(reply.reply)});
    }
    for (ClientResult& result : out.results) results_[result.client_op] = std::move(result);
    if (out.ring_refresh_wanted) refreshes++;
    if (out.stream_done) stream_done = out.stream_done;
    // The disk completes every write at once, in order.
    for (PersistRoundFloor& floor : out.persist_round_floors) {
      disks_[at].round_floor = floor.round_floor;
      Handle(at, node(at).OnPersisted(floor.persist_id, Status::Ok()));
    }
    for (PersistRow& row : out.persist_rows) {
      disks_[at].rows[row.key] = row.state;
      Handle(at, node(at).OnPersisted(row.persist_id, Status::Ok()));
    }
  }

 private:
  RingConfig ring_;
  std::map<NodeId, std::unique_ptr<RingNode>> nodes_;
  std::set<NodeId> down_;
  std::deque<Event> queue_;
  std::map<uint64_t, std::pair<NodeId, NodeId>> routes_;
  std::map<uint64_t, ClientResult> results_;
  uint64_t next_token_ = 0;
  uint64_t next_op_ = 0;
};

TEST(RingNodeTest, CompareAndSetGetDeleteFromAnyNode) {
  Cluster cluster(MakeRing(3, 3));
  ClientResult missing = cluster.Wait(cluster.Get(1, "vdisk/a"));
  EXPECT_EQ(missing.status.code(), StatusCode::kNotFound);
  ClientResult created = cluster.Wait(cluster.Cas(1, "vdisk/a", 0, "one"));
  ASSERT_TRUE(created.status.ok()) << created.status.ToString();
  EXPECT_EQ(created.version, 1u);
  ClientResult read = cluster.Wait(cluster.Get(2, "vdisk/a"));
  ASSERT_TRUE(read.status.ok());
  ASSERT_EQ(read.rows.size(), 1u);
  EXPECT_EQ(read.rows[0].value, "one");
  EXPECT_EQ(read.rows[0].version, 1u);
  ClientResult conflict = cluster.Wait(cluster.Cas(3, "vdisk/a", 0, "again"));
  EXPECT_EQ(conflict.status.code(), StatusCode::kAborted);
  EXPECT_NE(conflict.status.message().find("expected 0, found 1"), std::string::npos);
  ClientResult updated = cluster.Wait(cluster.Cas(3, "vdisk/a", 1, "two"));
  EXPECT_EQ(updated.version, 2u);
  EXPECT_EQ(cluster.Wait(cluster.Cad(2, "vdisk/a", 1)).status.code(), StatusCode::kAborted);
  EXPECT_TRUE(cluster.Wait(cluster.Cad(2, "vdisk/a", 2)).status.ok());
  EXPECT_EQ(cluster.Wait(cluster.Get(1, "vdisk/a")).status.code(), StatusCode::kNotFound);
  // Versions restart at 1 after a delete.
  EXPECT_EQ(cluster.Wait(cluster.Cas(1, "vdisk/a", 0, "three")).version, 1u);
  EXPECT_EQ(cluster.Wait(cluster.Cas(1, "", 0, "x")).status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(
      cluster.Wait(cluster.Cas(1, "k", 0, std::string(kMaxValueBytes + 1, 'x'))).status.code(),
      StatusCode::kInvalidArgument);
}

TEST(RingNodeTest, QuorumSurvivesOneNodeDownAndRefusesWithTwoDown) {
  Cluster cluster(MakeRing(3, 3));
  ASSERT_TRUE(cluster.Wait(cluster.Cas(1, "row", 0, "a")).status.ok());
  cluster.Crash(3);
  ClientResult with_two = cluster.Wait(cluster.Cas(1, "row", 1, "b"));
  ASSERT_TRUE(with_two.status.ok()) << with_two.status.ToString();
  cluster.Crash(2);
  ClientResult with_one = cluster.Wait(cluster.Cas(1, "row", 2, "c"));
  EXPECT_EQ(with_one.status.code(), StatusCode::kUnavailable);
  EXPECT_NE(with_one.status.message().find("no quorum"), std::string::npos)
      << with_one.status.ToString();
  EXPECT_EQ(cluster.Wait(cluster.Get(1, "row")).status.code(), StatusCode::kUnavailable);
  // Both come back from their disks; the unknown-outcome write either happened or not, and the
  // row is consistent from every node.
  cluster.Start(2);
  cluster.Start(3);
  ClientResult after = cluster.Wait(cluster.Get(3, "row"));
  ASSERT_TRUE(after.status.ok()) << after.status.ToString();
  EXPECT_TRUE(after.rows[0].value == "b" || after.rows[0].value == "c") << after.rows[0].value;
  ClientResult again = cluster.Wait(cluster.Get(2, "row"));
  EXPECT_EQ(again.rows[0].version, after.rows[0].version);
}

TEST(RingNodeTest, RestartKeepsRowsAndNeverReusesABallotRound) {
  Cluster cluster(MakeRing(3, 3));
  ASSERT_TRUE(cluster.Wait(cluster.Cas(1, "row", 0, "a")).status.ok());
  const uint64_t floor_before = cluster.disks_[1].round_floor;
  EXPECT_GT(floor_before, 0u);  // Proposing reserved rounds durably first.
  const uint64_t round_used = cluster.node(2).RowState("row")->promised.round;
  EXPECT_LT(round_used, floor_before);
  for (NodeId node : {1u, 2u, 3u}) cluster.Crash(node);
  for (NodeId node : {1u, 2u, 3u}) cluster.Start(node);
  ClientResult read = cluster.Wait(cluster.Get(1, "row"));
  ASSERT_TRUE(read.status.ok());
  EXPECT_EQ(read.rows[0].value, "a");
  ASSERT_TRUE(cluster.Wait(cluster.Cas(1, "row", 1, "b")).status.ok());
  EXPECT_GE(cluster.node(2).RowState("row")->promised.round, floor_before);
}

TEST(RingNodeTest, ScanPagesThroughPrefixInKeyOrder) {
  Cluster cluster(MakeRing(5, 3));
  for (int i = 0; i < 30; i++) {
    const std::string key = fmt::format("vdisk/{:02}", i);
    ASSERT_TRUE(cluster.Wait(cluster.Cas(1 + i % 5, key, 0, "v" + std::to_string(i))).status.ok());
  }
  ASSERT_TRUE(cluster.Wait(cluster.Cas(2, "other/1", 0, "x")).status.ok());
  ASSERT_TRUE(cluster.Wait(cluster.Cad(3, "vdisk/07", 1)).status.ok());
  std::vector<std::string> seen;
  std::string start_after;
  for (int page = 0; page < 20; page++) {
    ClientResult result = cluster.Wait(cluster.Scan(1 + page % 5, "vdisk/", start_after, 4));
    ASSERT_TRUE(result.status.ok()) << result.status.ToString();
    for (const Row& row : result.rows) seen.push_back(row.key);
    if (result.rows.size() < 4) break;
    start_after = result.rows.back().key;
  }
  ASSERT_EQ(seen.size(), 29u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::count(seen.begin(), seen.end(), "vdisk/07"), 0);
  // With one of five nodes down every replica set (3 of them) still has a majority.
  cluster.Crash(5);
  ClientResult partial = cluster.Wait(cluster.Scan(1, "vdisk/", "", 100));
  ASSERT_TRUE(partial.status.ok()) << partial.status.ToString();
  EXPECT_EQ(partial.rows.size(), 29u);
  EXPECT_EQ(cluster.Wait(cluster.Scan(1, "vdisk/", "", 0)).status.code(),
            StatusCode::kInvalidArgument);
}

// After a change completes, a majority of every row's new replicas must hold its newest state.
void ExpectRowsOnNewReplicas(Cluster& cluster, const RingConfig& ring,
                             const std::map<std::string, std::string>& rows) {
  Ring final_ring(ring);
  for (const auto& [key, value] : rows) {
    const Placement placement = final_ring.PlacementForKey(key);
    int holders = 0;
    for (NodeId node : placement.current) {
      const paxos::AcceptorState* state = cluster.node(node).RowState(key);
      if (state == nullptr) continue;
      if (state->accepted_state.value == value || state->committed.value == value) holders++;
    }
    EXPECT_GE(holders, 2) << key;
  }
}

TEST(RingNodeTest, JoinStreamsChangedRangesThenServes) {
  RingConfig ring = MakeRing(4, 3);
  RingMember joiner = ring.members.back();
  ring.members.pop_back();
  Cluster cluster(ring);
  std::map<std::string, std::string> rows;
  for (int i = 0; i < 60; i++) {
    const std::string key = "row/" + std::to_string(i);
    rows[key] = "v" + std::to_string(i);
    ASSERT_TRUE(cluster.Wait(cluster.Cas(1 + i % 3, key, 0, rows[key])).status.ok());
  }
  // Epoch 2: node 4 joins.
  ring.epoch = 2;
  joiner.state = MemberState::kJoining;
  ring.members.push_back(joiner);
  cluster.SetRing(ring);
  cluster.Start(4);
  // Writes during the change go to both replica sets.
  ASSERT_TRUE(cluster.Wait(cluster.Cas(2, "row/0", 1, "changed")).status.ok());
  rows["row/0"] = "changed";
  cluster.stream_done.reset();
  cluster.Handle(4, cluster.node(4).StartStream());
  EXPECT_TRUE(cluster.node(4).streaming());
  for (int i = 0; i < 2000 && !cluster.stream_done; i++) cluster.Step();
  ASSERT_EQ(cluster.stream_done, std::optional<uint64_t>(2));
  EXPECT_GT(cluster.node(4).stats().stream_keys_repaired, 0u);
  // Epoch 3: the change completes; the joiner serves.
  ring.epoch = 3;
  ring.members.back().state = MemberState::kNormal;
  cluster.SetRing(ring);
  ExpectRowsOnNewReplicas(cluster, ring, rows);
  for (const auto& [key, value] : rows) {
    ClientResult read = cluster.Wait(cluster.Get(4, key));
    ASSERT_TRUE(read.status.ok()) << key << " " << read.status.ToString();
    EXPECT_EQ(read.rows[0].value, value);
  }
}

TEST(RingNodeTest, LeaveMovesRowsOffTheLeavingNode) {
  RingConfig ring = MakeRing(4, 3, 11);
  Cluster cluster(ring);
  std::map<std::string, std::string> rows;
  for (int i = 0; i < 60; i++) {
    const std::string key = "row/" + std::to_string(i);
    rows[key] = "v" + std::to_string(i);
    ASSERT_TRUE(cluster.Wait(cluster.Cas(1 + i % 4, key, 0, rows[key])).status.ok());
  }
  ring.epoch = 2;
  ring.members[3].state = MemberState::kLeaving;
  cluster.SetRing(ring);
  cluster.stream_done.reset();
  cluster.Handle(1, cluster.node(1).StartStream());
  for (int i = 0; i < 2000 && !cluster.stream_done; i++) cluster.Step();
  ASSERT_EQ(cluster.stream_done, std::optional<uint64_t>(2));
  ring.epoch = 3;
  ring.members.pop_back();
  cluster.SetRing(ring);
  cluster.Crash(4);
  ExpectRowsOnNewReplicas(cluster, ring, rows);
  for (const auto& [key, value] : rows) {
    ClientResult read = cluster.Wait(cluster.Get(2, key));
    ASSERT_TRUE(read.status.ok()) << key;
    EXPECT_EQ(read.rows[0].value, value);
  }
}

TEST(RingNodeTest, AnOlderRingIsRefusedAndAskedToRefresh) {
  RingConfig ring = MakeRing(3, 3);
  Cluster cluster(ring);
  RingConfig newer = ring;
  newer.epoch = 5;
  // Only nodes 2 and 3 learn epoch 5: node 1's proposals are refused until it refreshes.
  (void)cluster.node(2).SetRing(newer);
  (void)cluster.node(3).SetRing(newer);
  const uint64_t op = cluster.Cas(1, "row", 0, "a");
  cluster.RunTicks(8);
  EXPECT_GT(cluster.refreshes, 0);
  (void)cluster.node(1).SetRing(newer);
  ClientResult result = cluster.Wait(op);
  EXPECT_TRUE(result.status.ok()) << result.status.ToString();
}

TEST(RingNodeTest, ScanListsRowsWhoseNewestAcceptIsAnUnchosenDelete) {
  // v1 of the row was chosen by nodes 1 and 3; then a delete was accepted by node 3 alone and
  // never chosen. A scan whose key lists come from nodes 2 and 3 must still consider the row:
  // if it reported it absent, a later read through nodes 1 and 2 would bring v1 back
  // (found by sim/: weft-sim --nodes 3 --faults heavy, with other retry timings).
  Cluster cluster(MakeRing(3, 3));
  for (NodeId node : {1u, 2u, 3u}) cluster.Crash(node);
  const paxos::Ballot b1{.round = 5, .node = 1};
  const paxos::Ballot b2{.round = 6, .node = 1};
  const paxos::RowState v1{.change = 1, .version = 1, .value = "v1", .created_by = b1};
  const paxos::RowState deleted{.change = 2, .version = 0, .value = "", .created_by = b2};
  cluster.disks_[1].rows["kv/row"] =
      paxos::AcceptorState{.promised = b1, .accepted = b1, .accepted_state = v1};
  cluster.disks_[3].rows["kv/row"] =
      paxos::AcceptorState{.promised = b2, .accepted = b2, .accepted_state = deleted};
  cluster.Start(2);
  cluster.Start(3);
  ClientResult scan = cluster.Wait(cluster.Scan(2, "kv/", "", 10));
  ASSERT_TRUE(scan.status.ok()) << scan.status.ToString();
  // Node 1 returns, node 3 goes: the quorum is {1, 2}.
  cluster.Start(1);
  cluster.Crash(3);
  ClientResult read = cluster.Wait(cluster.Get(2, "kv/row"));
  if (scan.rows.empty()) {
    EXPECT_EQ(read.status.code(), StatusCode::kNotFound)
        << "the scan said the row was absent, a later read found " << read.status.ToString();
  } else {
    ASSERT_TRUE(read.status.ok());
    EXPECT_EQ(read.rows[0].value, scan.rows[0].value);
  }
}

}  // namespace
}  // namespace weft::metadata::ring
