#include "metadata/paxos/proposer.h"

#include <gtest/gtest.h>

namespace weft::metadata::paxos {
namespace {

constexpr NodeId kSelf = 7;

ProposerConfig ThreeReplicas() {
  return ProposerConfig{.self = kSelf,
                        .replicas = {1, 2, 3},
                        .first_round = 1,
                        .attempt_ticks = 8,
                        .timeout_ticks = 100,
                        .backoff_ticks_max = 1,
                        .backoff_seed = 0};
}

Operation Cas(uint64_t expected, std::string value) {
  return Operation{
      .kind = OperationKind::kCompareAndSet, .expected_version = expected, .value = value};
}

Promise PromiseOf(Ballot ballot, Ballot accepted = {}, RowState state = {}) {
  return Promise{.ballot = ballot, .accepted = accepted, .accepted_state = std::move(state)};
}

// The single message type sent to all replicas; fails the test if the messages differ in kind.
template <typename T>
std::vector<T> SentToAll(const ProposerOutput& output) {
  std::vector<T> sent;
  for (const Envelope& envelope : output.messages) {
    EXPECT_EQ(envelope.from, kSelf);
    const T* message = std::get_if<T>(&envelope.message);
    EXPECT_NE(message, nullptr);
    if (message != nullptr) sent.push_back(*message);
  }
  return sent;
}

TEST(ProposerTest, CompareAndSetOnAnAbsentRowCreatesVersionOne) {
  Proposer proposer(ThreeReplicas(), Cas(0, "v1"));
  ProposerOutput output = proposer.Start();
  std::vector<Prepare> prepares = SentToAll<Prepare>(output);
  ASSERT_EQ(prepares.size(), 3u);
  const Ballot ballot = prepares[0].ballot;
  EXPECT_EQ(ballot, (Ballot{1, kSelf}));

  EXPECT_TRUE(proposer.OnMessage(1, PromiseOf(ballot)).messages.empty());
  output = proposer.OnMessage(2, PromiseOf(ballot));
  std::vector<Accept> accepts = SentToAll<Accept>(output);
  ASSERT_EQ(accepts.size(), 3u);
  const RowState expected{.change = 1, .version = 1, .value = "v1", .created_by = ballot};
  EXPECT_EQ(accepts[0].state, expected);

  EXPECT_FALSE(proposer.OnMessage(3, Accepted{.ballot = ballot}).outcome.has_value());
  output = proposer.OnMessage(1, Accepted{.ballot = ballot});
  EXPECT_EQ(SentToAll<Commit>(output).size(), 3u);
  ASSERT_TRUE(output.outcome.has_value());
  EXPECT_TRUE(output.outcome->status.ok());
  EXPECT_EQ(output.outcome->row, expected);
  EXPECT_TRUE(proposer.done());
}

TEST(ProposerTest, DuplicateAndStaleRepliesDoNotCountTowardsAQuorum) {
  Proposer proposer(ThreeReplicas(), Cas(0, "v"));
  const Ballot ballot = SentToAll<Prepare>(proposer.Start())[0].ballot;
  EXPECT_TRUE(proposer.OnMessage(1, PromiseOf(ballot)).messages.empty());
  EXPECT_TRUE(proposer.OnMessage(1, PromiseOf(ballot)).messages.empty());
  EXPECT_TRUE(proposer.OnMessage(2, PromiseOf(Ballot{0, kSelf})).messages.empty());
  EXPECT_TRUE(proposer.OnMessage(9, PromiseOf(ballot)).messages.empty());  // Not a replica.
  EXPECT_EQ(proposer.OnMessage(2, PromiseOf(ballot)).messages.size(), 3u);

  EXPECT_FALSE(proposer.OnMessage(1, Accepted{.ballot = ballot}).outcome.has_value());
  EXPECT_FALSE(proposer.OnMessage(1, Accepted{.ballot = ballot}).outcome.has_value());
  EXPECT_TRUE(proposer.OnMessage(3, Accepted{.ballot = ballot}).outcome.has_value());
}

TEST(ProposerTest, AdoptsTheHighestAcceptedStateAndEvaluatesTheCasAgainstIt) {
  Proposer proposer(ThreeReplicas(), Cas(2, "new"));
  const Ballot ballot = SentToAll<Prepare>(proposer.Start())[0].ballot;
  const RowState older{.change = 1, .version = 1, .value = "old", .created_by = {1, 2}};
  const RowState newer{.change = 2, .version = 2, .value = "partly", .created_by = {1, 3}};
  (void)proposer.OnMessage(1, PromiseOf(ballot, {1, 2}, older));
  // A replica in the quorum accepted `newer` at a higher ballot: it may be chosen, so it is the
  // state the CAS is evaluated against, and completed by the new state's acceptance.
  std::vector<Accept> accepts =
      SentToAll<Accept>(proposer.OnMessage(2, PromiseOf(ballot, {1, 3}, newer)));
  ASSERT_EQ(accepts.size(), 3u);
  EXPECT_EQ(accepts[0].state,
            (RowState{.change = 3, .version = 3, .value = "new", .created_by = ballot}));
  EXPECT_EQ(proposer.adopted(), newer);
}

TEST(ProposerTest, ConflictAgainstAChosenStateAbortsWithoutPhaseTwo) {
  Proposer proposer(ThreeReplicas(), Cas(1, "x"));
  const Ballot ballot = SentToAll<Prepare>(proposer.Start())[0].ballot;
  const RowState chosen{.change = 2, .version = 2, .value = "c", .created_by = {1, 2}};
  (void)proposer.OnMessage(1, PromiseOf(ballot, {1, 2}, chosen));
  ProposerOutput output = proposer.OnMessage(3, PromiseOf(ballot, {1, 2}, chosen));
  EXPECT_TRUE(output.messages.empty());
  ASSERT_TRUE(output.outcome.has_value());
  EXPECT_TRUE(output.outcome->status.IsAborted());
  EXPECT_EQ(output.outcome->status.message(), "version conflict: expected 1, found 2");
  EXPECT_EQ(output.outcome->row, chosen);
}

TEST(ProposerTest, ConflictAgainstAPossiblyUnchosenStateCompletesItBeforeAborting) {
  Proposer proposer(ThreeReplicas(), Cas(1, "x"));
  const Ballot ballot = SentToAll<Prepare>(proposer.Start())[0].ballot;
  const RowState partly{.change = 2, .version = 2, .value = "p", .created_by = {1, 2}};
  (void)proposer.OnMessage(1, PromiseOf(ballot));
  ProposerOutput output = proposer.OnMessage(2, PromiseOf(ballot, {1, 2}, partly));
  std::vector<Accept> accepts = SentToAll<Accept>(output);
  ASSERT_EQ(accepts.size(), 3u);
  EXPECT_EQ(accepts[0].state, partly);  // Re-proposed as is, keeping its created_by.
  EXPECT_FALSE(output.outcome.has_value());
  (void)proposer.OnMessage(1, Accepted{.ballot = ballot});
  output = proposer.OnMessage(2, Accepted{.ballot = ballot});
  ASSERT_TRUE(output.outcome.has_value());
  EXPECT_TRUE(output.outcome->status.IsAborted());
  EXPECT_EQ(output.outcome->row, partly);
}

TEST(ProposerTest, ReadOfAChosenStateAnswersAfterPhaseOne) {
  Proposer proposer(ThreeReplicas(), Operation{});
  const Ballot ballot = SentToAll<Prepare>(proposer.Start())[0].ballot;
  (void)proposer.OnMessage(2, PromiseOf(ballot));
  ProposerOutput output = proposer.OnMessage(3, PromiseOf(ballot));
  EXPECT_TRUE(output.messages.empty());
  ASSERT_TRUE(output.outcome.has_value());
  EXPECT_TRUE(output.outcome->status.ok());
  EXPECT_FALSE(output.outcome->row.exists());
}

TEST(ProposerTest, ReadRepairsAPartlyAcceptedStateBeforeAnswering) {
  Proposer proposer(ThreeReplicas(), Operation{});
  const Ballot ballot = SentToAll<Prepare>(proposer.Start())[0].ballot;
  const RowState partly{.change = 1, .version = 1, .value = "p", .created_by = {1, 2}};
  (void)proposer.OnMessage(2, PromiseOf(ballot, {1, 2}, partly));
  ProposerOutput output = proposer.OnMessage(3, PromiseOf(ballot));
  EXPECT_FALSE(output.outcome.has_value());
  ASSERT_EQ(SentToAll<Accept>(output).size(), 3u);
  (void)proposer.OnMessage(2, Accepted{.ballot = ballot});
  output = proposer.OnMessage(1, Accepted{.ballot = ballot});
  ASSERT_TRUE(output.outcome.has_value());
  EXPECT_TRUE(output.outcome->status.ok());
  EXPECT_EQ(output.outcome->row, partly);
}

TEST(ProposerTest, NackBacksOffAndRetriesAboveThePromisedBallot) {
  Proposer proposer(ThreeReplicas(), Cas(0, "v"));
  const Ballot ballot = SentToAll<Prepare>(proposer.Start())[0].ballot;
  EXPECT_TRUE(proposer.OnMessage(1, Nack{.ballot = ballot, .promised = {41, 2}}).messages.empty());
  // A second nack of the same attempt changes nothing.
  EXPECT_TRUE(proposer.OnMessage(2, Nack{.ballot = ballot, .promised = {50, 2}}).messages.empty());
  std::vector<Prepare> retry = SentToAll<Prepare>(proposer.OnTick());  // backoff_ticks_max = 1.
  ASSERT_EQ(retry.size(), 3u);
  EXPECT_EQ(retry[0].ballot, (Ballot{42, kSelf}));
  EXPECT_EQ(proposer.attempts(), 2u);
  EXPECT_EQ(proposer.highest_round_seen(), 42u);
  // Replies to the first attempt are stale now.
  EXPECT_TRUE(proposer.OnMessage(1, PromiseOf(ballot)).messages.empty());
  EXPECT_TRUE(proposer.OnMessage(2, PromiseOf(ballot)).messages.empty());
}

TEST(ProposerTest, AttemptWithoutQuorumRetriesWithAHigherBallot) {
  Proposer proposer(ThreeReplicas(), Operation{});
  const Ballot ballot = SentToAll<Prepare>(proposer.Start())[0].ballot;
  for (int tick = 0; tick < 8; tick++) EXPECT_TRUE(proposer.OnTick().messages.empty());
  std::vector<Prepare> retry = SentToAll<Prepare>(proposer.OnTick());
  ASSERT_EQ(retry.size(), 3u);
  EXPECT_GT(retry[0].ballot, ballot);
}

TEST(ProposerTest, GivesUpWithBusyAfterTheTimeout) {
  Proposer proposer(ThreeReplicas(), Cas(0, "v"));
  (void)proposer.Start();
  std::optional<Outcome> outcome;
  int ticks = 0;
  while (!outcome) {
    outcome = proposer.OnTick().outcome;
    ticks++;
    ASSERT_LE(ticks, 100);
  }
  EXPECT_EQ(ticks, 100);
  EXPECT_TRUE(outcome->status.IsBusy());
  EXPECT_TRUE(proposer.done());
  EXPECT_TRUE(proposer.OnTick().messages.empty());
}

TEST(ProposerTest, OwnStateFoundInALaterAttemptIsCompletedAsSuccess) {
  Proposer proposer(ThreeReplicas(), Cas(0, "mine"));
  const Ballot first = SentToAll<Prepare>(proposer.Start())[0].ballot;
  (void)proposer.OnMessage(1, PromiseOf(first));
  const RowState mine = SentToAll<Accept>(proposer.OnMessage(2, PromiseOf(first)))[0].state;
  (void)proposer.OnMessage(1, Accepted{.ballot = first});
  // Replica 2 has promised a competitor meanwhile.
  (void)proposer.OnMessage(2, Nack{.ballot = first, .promised = {5, 1}});
  const Ballot second = SentToAll<Prepare>(proposer.OnTick())[0].ballot;
  (void)proposer.OnMessage(1, PromiseOf(second, first, mine));
  ProposerOutput output = proposer.OnMessage(3, PromiseOf(second));
  std::vector<Accept> accepts = SentToAll<Accept>(output);
  ASSERT_EQ(accepts.size(), 3u);
  EXPECT_EQ(accepts[0].state, mine);  // Completed, not applied a second time.
  (void)proposer.OnMessage(1, Accepted{.ballot = second});
  output = proposer.OnMessage(3, Accepted{.ballot = second});
  ASSERT_TRUE(output.outcome.has_value());
  EXPECT_TRUE(output.outcome->status.ok());
  EXPECT_EQ(output.outcome->row, mine);
}

TEST(ProposerTest, RowPastOwnProposalGivesAnUnknownOutcome) {
  Proposer proposer(ThreeReplicas(), Cas(0, "mine"));
  const Ballot first = SentToAll<Prepare>(proposer.Start())[0].ballot;
  (void)proposer.OnMessage(1, PromiseOf(first));
  (void)proposer.OnMessage(2, PromiseOf(first));
  (void)proposer.OnMessage(3, Nack{.ballot = first, .promised = {5, 1}});
  const Ballot second = SentToAll<Prepare>(proposer.OnTick())[0].ballot;
  // Someone else's state at change 1: this CAS may or may not be in the history under it (if
  // its own state had been chosen and then overwritten), so it must not retry.
  const RowState other{.change = 1, .version = 1, .value = "other", .created_by = {5, 1}};
  (void)proposer.OnMessage(1, PromiseOf(second, {5, 1}, other));
  ProposerOutput output = proposer.OnMessage(2, PromiseOf(second, {5, 1}, other));
  ASSERT_TRUE(output.outcome.has_value());
  EXPECT_TRUE(output.outcome->status.IsBusy());
  EXPECT_TRUE(output.messages.empty());
}

TEST(ProposerTest, CompareAndDeleteLeavesAnAbsentRowAtTheNextChange) {
  Proposer proposer(ThreeReplicas(),
                    Operation{.kind = OperationKind::kCompareAndDelete, .expected_version = 4});
  const Ballot ballot = SentToAll<Prepare>(proposer.Start())[0].ballot;
  const RowState row{.change = 6, .version = 4, .value = "v", .created_by = {1, 1}};
  (void)proposer.OnMessage(1, PromiseOf(ballot, {1, 1}, row));
  std::vector<Accept> accepts =
      SentToAll<Accept>(proposer.OnMessage(2, PromiseOf(ballot, {1, 1}, row)));
  ASSERT_EQ(accepts.size(), 3u);
  EXPECT_EQ(accepts[0].state,
            (RowState{.change = 7, .version = 0, .value = "", .created_by = ballot}));
}

TEST(ProposerTest, CompareAndDeleteOfVersionZeroIsInvalid) {
  Proposer proposer(ThreeReplicas(),
                    Operation{.kind = OperationKind::kCompareAndDelete, .expected_version = 0});
  ProposerOutput output = proposer.Start();
  EXPECT_TRUE(output.messages.empty());
  ASSERT_TRUE(output.outcome.has_value());
  EXPECT_TRUE(output.outcome->status.IsInvalidArgument());
}

TEST(ProposerTest, FiveReplicasNeedThreeVotes) {
  ProposerConfig config = ThreeReplicas();
  config.replicas = {1, 2, 3, 4, 5};
  Proposer proposer(config, Operation{});
  const Ballot ballot = SentToAll<Prepare>(proposer.Start())[0].ballot;
  EXPECT_FALSE(proposer.OnMessage(1, PromiseOf(ballot)).outcome.has_value());
  EXPECT_FALSE(proposer.OnMessage(4, PromiseOf(ballot)).outcome.has_value());
  EXPECT_TRUE(proposer.OnMessage(5, PromiseOf(ballot)).outcome.has_value());
}

TEST(ProposerTest, PipelinedChangeSkipsPhaseOneAndHandsOnTheNextBallot) {
  // A first change with pipelining: its Accepts ask for the next round's promise.
  ProposerConfig config = ThreeReplicas();
  config.pipeline = true;
  Proposer first(config, Cas(0, "v1"));
  const Ballot ballot = SentToAll<Prepare>(first.Start())[0].ballot;
  (void)first.OnMessage(1, PromiseOf(ballot));
  std::vector<Accept> accepts = SentToAll<Accept>(first.OnMessage(2, PromiseOf(ballot)));
  ASSERT_EQ(accepts.size(), 3u);
  const Ballot next{.round = ballot.round + 1, .node = kSelf};
  EXPECT_EQ(accepts[0].next_promise, next);
  (void)first.OnMessage(1, Accepted{.ballot = ballot});
  ASSERT_TRUE(first.OnMessage(2, Accepted{.ballot = ballot}).outcome->status.ok());
  ASSERT_TRUE(first.next_prepared().has_value());
  EXPECT_EQ(first.next_prepared()->ballot, next);
  EXPECT_EQ(first.next_prepared()->chosen.version, 1u);

  // The next change starts in phase 2 at the prepared ballot.
  config.prepared = first.next_prepared();
  config.first_round = first.highest_round_seen() + 1;
  Proposer second(config, Cas(1, "v2"));
  accepts = SentToAll<Accept>(second.Start());
  ASSERT_EQ(accepts.size(), 3u);
  EXPECT_EQ(accepts[0].ballot, next);
  EXPECT_EQ(accepts[0].state.version, 2u);
  EXPECT_EQ(accepts[0].state.change, 2u);
  // Another node promised higher meanwhile: a Nack sends it through a full attempt above.
  EXPECT_TRUE(
      second.OnMessage(1, Nack{.ballot = next, .promised = {next.round + 5, 2}}).messages.empty());
  ProposerOutput retry;
  for (int tick = 0; tick < 4 && retry.messages.empty(); tick++) retry = second.OnTick();
  std::vector<Prepare> prepares = SentToAll<Prepare>(retry);
  ASSERT_EQ(prepares.size(), 3u);
  EXPECT_GT(prepares[0].ballot.round, next.round + 5);

  // A conflict against the prepared state is not answered from it (the row may have moved on
  // elsewhere): the operation runs phase 1.
  Proposer conflicting(config, Cas(7, "v?"));
  EXPECT_EQ(SentToAll<Prepare>(conflicting.Start()).size(), 3u);
  EXPECT_FALSE(conflicting.done());
}

}  // namespace
}  // namespace weft::metadata::paxos
