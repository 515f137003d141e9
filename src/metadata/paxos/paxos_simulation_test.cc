// A seeded randomized simulation of one row's Paxos: 3 or 5 acceptors, several concurrent
// clients doing reads, compare-and-sets and compare-and-deletes, on virtual time, with message
// drop, duplication and reordering (random delays), slow writes, and acceptor crashes that lose
// unfinished writes and restart from the persisted state. It checks safety:
// - agreement: every state learned as chosen (a majority durably accepted it at one ballot, a
//   Commit, a client's answer) is the same state for its change;
// - the history, rebuilt from the final state through the state each new state was derived from,
//   advances by exactly one change per step with valid versions, and holds every learned state
//   (so every successful compare-and-set).
// A failure names its seed; PAXOS_SIM_SEED=<seed> PAXOS_SIM_REPLICAS=<3|5> replays one run and
// PAXOS_SIM_SEEDS=<count> runs more seeds.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "metadata/paxos/acceptor.h"
#include "metadata/paxos/proposer.h"

namespace weft::metadata::paxos {
namespace {

constexpr int kClients = 4;
constexpr int kOperationsPerClient = 10;
constexpr uint64_t kTicksMax = 40000;
constexpr NodeId kFirstClientNode = 100;

struct Pending {
  uint64_t tick = 0;
  uint64_t sequence = 0;
  Envelope envelope;
  bool operator>(const Pending& other) const {
    return tick != other.tick ? tick > other.tick : sequence > other.sequence;
  }
};

struct PendingWrite {
  uint64_t done_tick = 0;
  AcceptorState state;
  std::optional<Envelope> reply;
  std::optional<Ballot> accepted_at;  // Set for a write that accepts a state.
};

struct Replica {
  AcceptorState durable;
  std::optional<Acceptor> acceptor;  // Empty while crashed.
  std::vector<PendingWrite> writes;  // In completion order.
  uint64_t restart_tick = 0;
};

struct Client {
  std::optional<Proposer> proposer;
  OperationKind kind = OperationKind::kRead;
  int operations_done = 0;
  uint64_t known_version = 0;
  uint64_t next_round = 1;
};

class Simulation {
 public:
  Simulation(uint64_t seed, int replica_count) : seed_(seed), random_(seed) {
    for (int i = 1; i <= replica_count; i++) replica_ids_.push_back(static_cast<NodeId>(i));
    for (NodeId id : replica_ids_) replicas_[id].acceptor.emplace(AcceptorState{});
    drop_per_mille_ = Uniform(0, 200);
    duplicate_per_mille_ = Uniform(0, 150);
    crash_per_mille_ = Uniform(0, 8);
    delay_ticks_max_ = Uniform(1, 6);
    clients_.resize(kClients);
  }

  // Runs the workload, heals the network, reads the final state; false if a check failed.
  void Run() {
    for (tick_ = 0; tick_ < kTicksMax && !AllClientsFinished(); tick_++) Step(true);
    ASSERT_TRUE(AllClientsFinished()) << Describe() << "clients did not finish";
    // Heal: no more faults; every crashed replica comes back.
    drop_per_mille_ = 0;
    duplicate_per_mille_ = 0;
    crash_per_mille_ = 0;
    ProposerConfig config = MakeConfig(kFirstClientNode + kClients);
    config.timeout_ticks = 2000;
    final_reader_.emplace(config, Operation{});
    Route(kFirstClientNode + kClients, final_reader_->Start());
    const uint64_t heal_end = tick_ + 4000;
    while (!final_state_ && tick_ < heal_end) {
      Step(false);
      tick_++;
    }
    ASSERT_TRUE(final_state_.has_value()) << Describe() << "the final read did not finish";
    counts_.changes = final_state_->change;
    CheckHistory();
  }

  std::string Describe() const {
    return fmt::format("seed {} replicas {} (replay: PAXOS_SIM_SEED={} PAXOS_SIM_REPLICAS={}): ",
                       seed_, replica_ids_.size(), seed_, replica_ids_.size());
  }

  struct Counts {
    uint64_t successes = 0;  // Compare-and-sets and -deletes that took effect.
    uint64_t conflicts = 0;
    uint64_t unknown = 0;  // Timeouts and moved-past outcomes.
    uint64_t crashes = 0;
    uint64_t changes = 0;  // The final state's change.
  };
  const Counts& counts() const { return counts_; }

 private:
  uint64_t Uniform(uint64_t low, uint64_t high) {
    return std::uniform_int_distribution<uint64_t>(low, high)(random_);
  }
  bool Chance(uint64_t per_mille) { return Uniform(0, 999) < per_mille; }
  size_t quorum() const { return replica_ids_.size() / 2 + 1; }

  ProposerConfig MakeConfig(NodeId self) {
    return ProposerConfig{.self = self,
                          .replicas = replica_ids_,
                          .first_round = 1,
                          .attempt_ticks = 20,
                          .timeout_ticks = 300,
                          .backoff_ticks_max = 8,
                          .backoff_seed = random_()};
  }

  bool AllClientsFinished() const {
    for (const Client& client : clients_) {
      if (client.operations_done < kOperationsPerClient) return false;
    }
    return true;
  }

  void Step(bool faults) {
    if (faults) CrashAndRestart();
    CompleteWrites();
    DeliverMessages();
    if (faults) StartOperations();
    for (int i = 0; i < kClients; i++) {
      if (clients_[i].proposer) Route(kFirstClientNode + i, clients_[i].proposer->OnTick());
    }
    if (final_reader_ && !final_state_) Route(kFirstClientNode + kClients, final_reader_->OnTick());
    for (NodeId id : replica_ids_) {
      Replica& replica = replicas_[id];
      if (!replica.acceptor && tick_ >= replica.restart_tick && (!faults || Chance(500))) {
        replica.acceptor.emplace(replica.durable);  // Recovery from the persisted state only.
      }
    }
  }

  void CrashAndRestart() {
    for (NodeId id : replica_ids_) {
      Replica& replica = replicas_[id];
      if (replica.acceptor && Chance(crash_per_mille_)) {
        replica.acceptor.reset();
        counts_.crashes++;
        replica.writes.clear();  // Unfinished writes and their replies are lost.
        replica.restart_tick = tick_ + Uniform(1, 60);
      }
    }
  }

  void CompleteWrites() {
    for (NodeId id : replica_ids_) {
      Replica& replica = replicas_[id];
      size_t done = 0;
      while (done < replica.writes.size() && replica.writes[done].done_tick <= tick_) {
        PendingWrite& write = replica.writes[done];
        replica.durable = write.state;
        if (write.accepted_at)
          RecordDurableAccept(id, *write.accepted_at, write.state.accepted_state);
        if (write.reply) Send(*write.reply);
        done++;
      }
      replica.writes.erase(replica.writes.begin(), replica.writes.begin() + done);
    }
  }

  void DeliverMessages() {
    while (!network_.empty() && network_.top().tick <= tick_) {
      Envelope envelope = network_.top().envelope;
      network_.pop();
      if (envelope.to >= kFirstClientNode) {
        const int index = static_cast<int>(envelope.to - kFirstClientNode);
        if (index == kClients) {
          if (final_reader_ && !final_state_) {
            Route(envelope.to, final_reader_->OnMessage(envelope.from, envelope.message));
          }
        } else if (clients_[index].proposer) {
          Route(envelope.to, clients_[index].proposer->OnMessage(envelope.from, envelope.message));
        }
      } else {
        DeliverToReplica(envelope);
      }
    }
  }

  void DeliverToReplica(const Envelope& envelope) {
    Replica& replica = replicas_[envelope.to];
    if (!replica.acceptor) return;  // Crashed: the message is lost.
    AcceptorOutput output;
    std::optional<Ballot> accepted_at;
    if (const auto* prepare = std::get_if<Prepare>(&envelope.message)) {
      output = replica.acceptor->OnPrepare(*prepare);
    } else if (const auto* accept = std::get_if<Accept>(&envelope.message)) {
      output = replica.acceptor->OnAccept(*accept);
      if (output.persist) accepted_at = accept->ballot;
    } else if (const auto* commit = std::get_if<Commit>(&envelope.message)) {
      output = replica.acceptor->OnCommit(*commit);
    } else {
      FAIL() << Describe() << "a replica received a reply";
    }
    std::optional<Envelope> reply;
    if (output.reply) {
      reply = Envelope{.from = envelope.to, .to = envelope.from, .message = *output.reply};
    }
    if (!output.persist) {
      if (reply) Send(*reply);  // A nack needs no write.
      return;
    }
    const uint64_t previous_done = replica.writes.empty() ? tick_ : replica.writes.back().done_tick;
    replica.writes.push_back(
        PendingWrite{.done_tick = std::max(previous_done, tick_ + Uniform(0, 3)),
                     .state = *output.persist,
                     .reply = reply,
                     .accepted_at = accepted_at});
  }

  void Send(const Envelope& envelope) {
    if (Chance(drop_per_mille_)) return;
    const int copies = Chance(duplicate_per_mille_) ? 2 : 1;
    for (int copy = 0; copy < copies; copy++) {
      network_.push(Pending{.tick = tick_ + Uniform(1, delay_ticks_max_),
                            .sequence = sequence_++,
                            .envelope = envelope});
    }
  }

  // Sends a proposer's messages and records what the checker needs.
  void Route(NodeId self, ProposerOutput output) {
    for (const Envelope& envelope : output.messages) {
      if (const auto* accept = std::get_if<Accept>(&envelope.message)) {
        if (accept->state.created_by == accept->ballot && !parents_.contains(accept->ballot)) {
          const Proposer& proposer = self == kFirstClientNode + kClients
                                         ? *final_reader_
                                         : *clients_[self - kFirstClientNode].proposer;
          parents_[accept->ballot] = proposer.adopted();
        }
      } else if (const auto* commit = std::get_if<Commit>(&envelope.message)) {
        Learn(commit->state, "commit");
      }
      Send(envelope);
    }
    if (output.outcome) OnOutcome(self, *output.outcome);
  }

  void OnOutcome(NodeId self, const Outcome& outcome) {
    if (self == kFirstClientNode + kClients) {
      ASSERT_TRUE(outcome.status.ok()) << Describe() << outcome.status.ToString();
      Learn(outcome.row, "final read");
      final_state_ = outcome.row;
      return;
    }
    Client& client = clients_[self - kFirstClientNode];
    next_round_ = std::max(next_round_, client.proposer->highest_round_seen() + 1);
    client.next_round = client.proposer->highest_round_seen() + 1;
    client.proposer.reset();
    client.operations_done++;
    if (outcome.status.ok()) {
      Learn(outcome.row, "client answer");
      client.known_version = outcome.row.version;
      if (client.kind != OperationKind::kRead) {
        counts_.successes++;
        successful_.push_back(outcome.row);
      }
    } else if (outcome.status.IsAborted()) {
      counts_.conflicts++;
      Learn(outcome.row, "version conflict answer");
      client.known_version = outcome.row.version;
    } else {
      ASSERT_TRUE(outcome.status.IsBusy()) << Describe() << outcome.status.ToString();
      counts_.unknown++;
    }
  }

  void StartOperations() {
    for (int i = 0; i < kClients; i++) {
      Client& client = clients_[i];
      if (client.proposer || client.operations_done >= kOperationsPerClient) continue;
      if (!Chance(300)) continue;
      Operation operation;
      const uint64_t pick = Uniform(0, 99);
      // Mostly the version last seen (which may be stale), sometimes a wrong one.
      const uint64_t expected = Chance(850) ? client.known_version : Uniform(0, 5);
      if (pick < 25) {
        operation.kind = OperationKind::kRead;
      } else if (pick < 40 && expected != 0) {
        operation.kind = OperationKind::kCompareAndDelete;
        operation.expected_version = expected;
      } else {
        operation.kind = OperationKind::kCompareAndSet;
        operation.expected_version = expected;
        operation.value = fmt::format("client {} operation {}", i, client.operations_done);
      }
      client.kind = operation.kind;
      ProposerConfig config = MakeConfig(kFirstClientNode + i);
      config.first_round = client.next_round;
      client.proposer.emplace(config, std::move(operation));
      Route(kFirstClientNode + i, client.proposer->Start());
    }
  }

  // An omniscient learner: a state is chosen once a majority durably accepted it at one ballot.
  void RecordDurableAccept(NodeId id, Ballot ballot, const RowState& state) {
    std::set<NodeId>& acceptors = durable_accepts_[ballot];
    acceptors.insert(id);
    if (acceptors.size() == quorum()) Learn(state, "majority of durable accepts");
  }

  void Learn(const RowState& state, const char* source) {
    auto [it, inserted] = learned_.emplace(state.change, state);
    ASSERT_TRUE(inserted || it->second == state)
        << Describe() << "two states learned for change " << state.change << ": version "
        << it->second.version << " '" << it->second.value << "' and version " << state.version
        << " '" << state.value << "' (from " << source << ")";
  }

  // Rebuilds the history from the final state and checks it against everything learned.
  void CheckHistory() {
    std::map<uint64_t, RowState> history;
    RowState current = *final_state_;
    while (current.change > 0) {
      history[current.change] = current;
      auto parent = parents_.find(current.created_by);
      ASSERT_NE(parent, parents_.end()) << Describe() << "no parent for change " << current.change;
      const RowState& previous = parent->second;
      ASSERT_EQ(previous.change + 1, current.change) << Describe() << "changes skip";
      if (current.exists()) {
        ASSERT_EQ(current.version, previous.version + 1)
            << Describe() << "change " << current.change;
      } else {
        ASSERT_TRUE(previous.exists()) << Describe() << "delete of an absent row";
      }
      current = previous;
    }
    ASSERT_EQ(current, RowState{}) << Describe() << "the history does not start empty";
    history[0] = current;
    for (const auto& [change, state] : learned_) {
      auto entry = history.find(change);
      ASSERT_NE(entry, history.end())
          << Describe() << "learned change " << change << " is past the final state";
      ASSERT_EQ(entry->second, state)
          << Describe() << "learned change " << change << " is not in the history";
    }
    // Each operation writes its own value: one appearing twice was applied twice.
    std::set<std::string> values;
    for (const auto& [change, state] : history) {
      if (!state.exists()) continue;
      ASSERT_TRUE(values.insert(state.value).second)
          << Describe() << "'" << state.value << "' applied twice";
    }
    for (const RowState& state : successful_) {
      ASSERT_EQ(history.at(state.change), state) << Describe() << "a successful CAS is lost";
    }
    for (NodeId id : replica_ids_) {
      const RowState& committed = replicas_[id].durable.committed;
      ASSERT_EQ(history.at(committed.change), committed) << Describe() << "replica " << id;
    }
  }

  uint64_t seed_;
  std::mt19937_64 random_;
  std::vector<NodeId> replica_ids_;
  std::map<NodeId, Replica> replicas_;
  std::vector<Client> clients_;
  std::priority_queue<Pending, std::vector<Pending>, std::greater<>> network_;
  uint64_t sequence_ = 0;
  uint64_t tick_ = 0;
  uint64_t next_round_ = 1;
  uint64_t drop_per_mille_ = 0;
  uint64_t duplicate_per_mille_ = 0;
  uint64_t crash_per_mille_ = 0;
  uint64_t delay_ticks_max_ = 1;

  std::optional<Proposer> final_reader_;
  std::optional<RowState> final_state_;
  std::map<Ballot, RowState> parents_;  // Created state's ballot -> the state it came from.
  std::map<Ballot, std::set<NodeId>> durable_accepts_;
  std::map<uint64_t, RowState> learned_;
  std::vector<RowState> successful_;
  Counts counts_;
};

uint64_t EnvironmentNumber(const char* name, uint64_t fallback) {
  const char* text = std::getenv(name);
  return text == nullptr ? fallback : std::strtoull(text, nullptr, 10);
}

void RunSeeds(int replica_count) {
  if (const char* replay = std::getenv("PAXOS_SIM_SEED")) {
    if (EnvironmentNumber("PAXOS_SIM_REPLICAS", 3) != static_cast<uint64_t>(replica_count)) {
      GTEST_SKIP() << "replaying a run with another replica count";
    }
    Simulation simulation(std::strtoull(replay, nullptr, 10), replica_count);
    simulation.Run();
    return;
  }
  const uint64_t seeds = EnvironmentNumber("PAXOS_SIM_SEEDS", 500);
  Simulation::Counts total;
  for (uint64_t seed = 1; seed <= seeds; seed++) {
    Simulation simulation(seed * 1000 + static_cast<uint64_t>(replica_count), replica_count);
    simulation.Run();
    if (::testing::Test::HasFatalFailure() || ::testing::Test::HasNonfatalFailure()) return;
    const Simulation::Counts& counts = simulation.counts();
    total.successes += counts.successes;
    total.conflicts += counts.conflicts;
    total.unknown += counts.unknown;
    total.crashes += counts.crashes;
    total.changes += counts.changes;
  }
  std::printf(
      "%d replicas, %llu seeds: %llu successful writes, %llu conflicts, %llu unknown "
      "outcomes, %llu acceptor crashes, %llu chosen changes\n",
      replica_count, static_cast<unsigned long long>(seeds),
      static_cast<unsigned long long>(total.successes),
      static_cast<unsigned long long>(total.conflicts),
      static_cast<unsigned long long>(total.unknown),
      static_cast<unsigned long long>(total.crashes),
      static_cast<unsigned long long>(total.changes));
  // The workload must exercise the protocol, not time out everywhere.
  EXPECT_GT(total.successes, seeds * 5);
  EXPECT_GT(total.conflicts, seeds);
  EXPECT_GT(total.crashes, seeds / 2);
}

TEST(PaxosSimulationTest, ThreeReplicasStaySafeUnderFaults) { RunSeeds(3); }

TEST(PaxosSimulationTest, FiveReplicasStaySafeUnderFaults) { RunSeeds(5); }

}  // namespace
}  // namespace weft::metadata::paxos
