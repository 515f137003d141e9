#include "metadata/paxos/acceptor.h"

#include <gtest/gtest.h>

namespace weft::metadata::paxos {
namespace {

RowState MakeState(uint64_t change, uint64_t version, std::string value, Ballot created_by) {
  return RowState{
      .change = change, .version = version, .value = std::move(value), .created_by = created_by};
}

TEST(AcceptorTest, FreshAcceptorPromisesAndPersistsThePromise) {
  Acceptor acceptor{AcceptorState{}};
  AcceptorOutput output = acceptor.OnPrepare(Prepare{.ballot = {3, 1}});
  ASSERT_TRUE(output.persist.has_value());
  EXPECT_EQ(output.persist->promised, (Ballot{3, 1}));
  ASSERT_TRUE(output.reply.has_value());
  const auto* promise = std::get_if<Promise>(&*output.reply);
  ASSERT_NE(promise, nullptr);
  EXPECT_EQ(promise->ballot, (Ballot{3, 1}));
  EXPECT_TRUE(promise->accepted.IsZero());
  EXPECT_EQ(promise->accepted_state, RowState{});
}

TEST(AcceptorTest, LowerPrepareIsNackedWithoutPersisting) {
  Acceptor acceptor{AcceptorState{}};
  (void)acceptor.OnPrepare(Prepare{.ballot = {5, 2}});
  AcceptorOutput output = acceptor.OnPrepare(Prepare{.ballot = {5, 1}});
  EXPECT_FALSE(output.persist.has_value());
  const auto* nack = std::get_if<Nack>(&*output.reply);
  ASSERT_NE(nack, nullptr);
  EXPECT_EQ(nack->ballot, (Ballot{5, 1}));
  EXPECT_EQ(nack->promised, (Ballot{5, 2}));
  EXPECT_EQ(acceptor.state().promised, (Ballot{5, 2}));
}

TEST(AcceptorTest, DuplicatePrepareIsPromisedAgainAndPersistedAgain) {
  // The first write may still be in flight; the second reply must wait for a write too.
  Acceptor acceptor{AcceptorState{}};
  (void)acceptor.OnPrepare(Prepare{.ballot = {4, 1}});
  AcceptorOutput output = acceptor.OnPrepare(Prepare{.ballot = {4, 1}});
  ASSERT_TRUE(output.persist.has_value());
  EXPECT_NE(std::get_if<Promise>(&*output.reply), nullptr);
}

TEST(AcceptorTest, AcceptAtOrAbovePromiseIsAcceptedAndReportedByLaterPromises) {
  Acceptor acceptor{AcceptorState{}};
  (void)acceptor.OnPrepare(Prepare{.ballot = {2, 1}});
  const RowState state = MakeState(1, 1, "a", {2, 1});
  AcceptorOutput output = acceptor.OnAccept(Accept{.ballot = {2, 1}, .state = state});
  ASSERT_TRUE(output.persist.has_value());
  EXPECT_EQ(output.persist->accepted, (Ballot{2, 1}));
  EXPECT_EQ(output.persist->accepted_state, state);
  const auto* accepted = std::get_if<Accepted>(&*output.reply);
  ASSERT_NE(accepted, nullptr);
  EXPECT_EQ(accepted->ballot, (Ballot{2, 1}));

  output = acceptor.OnPrepare(Prepare{.ballot = {3, 2}});
  const auto* promise = std::get_if<Promise>(&*output.reply);
  ASSERT_NE(promise, nullptr);
  EXPECT_EQ(promise->accepted, (Ballot{2, 1}));
  EXPECT_EQ(promise->accepted_state, state);
}

TEST(AcceptorTest, AcceptAbovePromiseRaisesThePromise) {
  Acceptor acceptor{AcceptorState{}};
  (void)acceptor.OnAccept(Accept{.ballot = {7, 3}, .state = MakeState(1, 1, "x", {7, 3})});
  EXPECT_EQ(acceptor.state().promised, (Ballot{7, 3}));
  AcceptorOutput output = acceptor.OnPrepare(Prepare{.ballot = {6, 9}});
  EXPECT_NE(std::get_if<Nack>(&*output.reply), nullptr);
}

TEST(AcceptorTest, AcceptBelowPromiseIsNacked) {
  Acceptor acceptor{AcceptorState{}};
  (void)acceptor.OnPrepare(Prepare{.ballot = {9, 1}});
  AcceptorOutput output =
      acceptor.OnAccept(Accept{.ballot = {8, 2}, .state = MakeState(1, 1, "b", {8, 2})});
  EXPECT_FALSE(output.persist.has_value());
  const auto* nack = std::get_if<Nack>(&*output.reply);
  ASSERT_NE(nack, nullptr);
  EXPECT_EQ(nack->promised, (Ballot{9, 1}));
  EXPECT_TRUE(acceptor.state().accepted.IsZero());
}

TEST(AcceptorTest, CommitRecordsOnlyNewerChanges) {
  Acceptor acceptor{AcceptorState{}};
  const RowState second = MakeState(2, 2, "two", {4, 1});
  AcceptorOutput output = acceptor.OnCommit(Commit{.ballot = {4, 1}, .state = second});
  ASSERT_TRUE(output.persist.has_value());
  EXPECT_EQ(output.persist->committed, second);
  EXPECT_FALSE(output.reply.has_value());
  output = acceptor.OnCommit(Commit{.ballot = {3, 1}, .state = MakeState(1, 1, "one", {3, 1})});
  EXPECT_FALSE(output.persist.has_value());
  EXPECT_EQ(acceptor.state().committed, second);
}

TEST(AcceptorTest, RecoversFromPersistedState) {
  Acceptor first{AcceptorState{}};
  (void)first.OnPrepare(Prepare{.ballot = {2, 1}});
  const RowState state = MakeState(1, 1, "a", {2, 1});
  AcceptorState durable = *first.OnAccept(Accept{.ballot = {2, 1}, .state = state}).persist;
  // A later promise whose write never completed is lost with the crash.
  (void)first.OnPrepare(Prepare{.ballot = {9, 9}});

  Acceptor restarted{durable};
  EXPECT_EQ(restarted.state(), durable);
  AcceptorOutput output = restarted.OnPrepare(Prepare{.ballot = {1, 5}});
  EXPECT_NE(std::get_if<Nack>(&*output.reply), nullptr);
  output = restarted.OnPrepare(Prepare{.ballot = {3, 5}});
  const auto* promise = std::get_if<Promise>(&*output.reply);
  ASSERT_NE(promise, nullptr);
  EXPECT_EQ(promise->accepted_state, state);
}

}  // namespace
}  // namespace weft::metadata::paxos
