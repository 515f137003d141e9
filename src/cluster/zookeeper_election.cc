// ZooKeeperClusterBackend: leader election. Each candidate owns an ephemeral sequential znode
// <root>/election/<name>/n_<session id>_<sequence>; the lowest sequence leads, every other
// candidate watches only the znode just before its own (no herd when the leader goes).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "cluster/zookeeper_cluster_backend.h"
#include "cluster/zookeeper_errors.h"

namespace weft::cluster {
namespace {

// Bounds the rounds of one evaluation: a round ends with a watch set or a leader, unless the
// predecessor vanished in between (then the next round looks again).
constexpr int kEvaluateRoundsMax = 16;
// ZooKeeper appends a 10-digit sequence number to a sequential znode's name.
constexpr size_t kSequenceDigits = 10;

bool IsElectionName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

std::string_view Sequence(std::string_view name) {
  return name.size() < kSequenceDigits ? name : name.substr(name.size() - kSequenceDigits);
}

std::string SessionPrefix(int64_t session) {
  return fmt::format("n_{:016x}_", static_cast<uint64_t>(session));
}

std::string_view Basename(std::string_view path) { return path.substr(path.rfind('/') + 1); }

}  // namespace

std::string ZooKeeperClusterBackend::ElectionDir(const std::string& election) const {
  return elections_path_ + "/" + election;
}

Status ZooKeeperClusterBackend::Campaign(std::string election, uint32_t node_id,
                                         std::function<void(bool leader)> on_change) {
  WEFT_ASSERT(node_id != 0);
  if (!IsElectionName(election)) {
    return Status::InvalidArgument(
        fmt::format("election name \"{}\": use [A-Za-z0-9_.-]", election));
  }
  {
    std::lock_guard lock(mutex_);
    if (closed_) return Status::Aborted("the cluster backend is closed");
    if (candidates_.contains(election)) {
      return Status::AlreadyExists(fmt::format("already campaigning in election {}", election));
    }
    // Reserved now, so that neither a second Campaign nor a Rejoin creates another znode; the
    // event thread skips a candidate without a znode.
    auto candidate = std::make_shared<Candidate>();
    candidate->election = election;
    candidate->node_id = node_id;
    candidate->on_change = std::move(on_change);
    candidates_.emplace(election, std::move(candidate));
  }
  Status status = EnsurePath(ElectionDir(election));
  Result<std::string> znode = status.ok() ? CreateCandidateZnode(election, node_id) : status;
  std::lock_guard lock(mutex_);
  if (!znode.ok()) {
    candidates_.erase(election);
    return znode.status();
  }
  candidates_.at(election)->znode = *znode;
  events_.push_back(Event{Event::Kind::kElection, generation_.load(), 0, election});
  wake_.notify_all();
  return Status::Ok();
}

Result<std::string> ZooKeeperClusterBackend::CreateCandidateZnode(const std::string& election,
                                                                  uint32_t node_id) {
  const std::string dir = ElectionDir(election);
  const std::string prefix = SessionPrefix(session_id());
  const std::string path = dir + "/" + prefix;
  const std::string data = std::to_string(node_id);  // Who leads, for people reading the tree.
  char created[1024];
  const Outcome outcome = Run([&](zhandle_t* zh, HandleContext*) {
    return zoo_create(zh, path.c_str(), data.data(), static_cast<int>(data.size()),
                      &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, created, sizeof(created));
  });
  if (outcome.rc != ZOK) return ZooKeeperStatus(outcome.rc, "create", path);
  if (outcome.retried) {
    // A create answered by a lost connection may have happened too: drop any other znode of
    // this session, so that it cannot stand twice.
    String_vector children{};
    const Outcome listed = Run([&](zhandle_t* zh, HandleContext*) {
      return zoo_get_children(zh, dir.c_str(), 0, &children);
    });
    if (listed.rc != ZOK) return ZooKeeperStatus(listed.rc, "get_children", dir);
    std::vector<std::string> names(children.data, children.data + children.count);
    deallocate_String_vector(&children);
    for (const std::string& name : names) {
      if (!name.starts_with(prefix) || name == Basename(created)) continue;
      const std::string duplicate = dir + "/" + name;
      Run([&](zhandle_t* zh, HandleContext*) { return zoo_delete(zh, duplicate.c_str(), -1); });
    }
  }
  return std::string(created);
}

bool ZooKeeperClusterBackend::Evaluate(const std::string& election) {
  std::shared_ptr<Candidate> candidate;
  {
    std::lock_guard lock(mutex_);
    auto it = candidates_.find(election);
    if (it == candidates_.end()) return true;
    candidate = it->second;
  }
  std::string znode = Znode(*candidate);
  if (znode.empty()) return true;  // Campaign is still creating it; it posts again.
  const std::string dir = ElectionDir(election);
  for (int round = 0; round < kEvaluateRoundsMax; ++round) {
    String_vector children{};
    const Outcome listed = Run([&](zhandle_t* zh, HandleContext*) {
      return zoo_get_children(zh, dir.c_str(), 0, &children);
    });
    if (listed.rc != ZOK) return false;
    std::vector<std::string> names(children.data, children.data + children.count);
    deallocate_String_vector(&children);
    std::sort(names.begin(), names.end(),
              [](const std::string& a, const std::string& b) { return Sequence(a) < Sequence(b); });
    const auto mine = std::find(names.begin(), names.end(), Basename(znode));
    if (mine == names.end()) {
      // Our znode is gone while the session lives (someone deleted it): stand again.
      SetLeader(*candidate, false);
      Result<std::string> created = CreateCandidateZnode(election, candidate->node_id);
      if (!created.ok()) return false;
      znode = *created;
      SetZnode(*candidate, znode);
      continue;
    }
    if (mine == names.begin()) {
      SetLeader(*candidate, true);
      return true;
    }
    const std::string predecessor = dir + "/" + *std::prev(mine);
    Stat stat{};
    const Outcome watched = Run([&](zhandle_t* zh, HandleContext* context) {
      return zoo_wexists(zh, predecessor.c_str(), &NodeWatcher, context, &stat);
    });
    if (watched.rc == ZNONODE) continue;  // It went while we looked: look again.
    if (watched.rc != ZOK) return false;
    SetLeader(*candidate, false);
    return true;
  }
  return false;
}

std::string ZooKeeperClusterBackend::Znode(const Candidate& candidate) {
  std::lock_guard lock(mutex_);
  return candidate.znode;
}

void ZooKeeperClusterBackend::SetZnode(Candidate& candidate, std::string znode) {
  std::lock_guard lock(mutex_);
  candidate.znode = std::move(znode);
}

void ZooKeeperClusterBackend::SetLeader(Candidate& candidate, bool leader) {
  if (candidate.leader == leader) return;
  candidate.leader = leader;
  spdlog::info("cluster: node {} {} election {}", candidate.node_id,
               leader ? "leads" : "no longer leads", candidate.election);
  candidate.on_change(leader);
}

}  // namespace weft::cluster
