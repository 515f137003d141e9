// ZooKeeperClusterBackend: handles, the event thread and the session states. The calls are in
// zookeeper_operations.cc, the elections in zookeeper_election.cc.
#include "cluster/zookeeper_cluster_backend.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

namespace weft::cluster {
namespace {

// How long the event thread waits before retrying work that failed on a lost connection.
constexpr auto kRetryDelay = std::chrono::milliseconds(300);

void LogFromLibrary(const char* message) { spdlog::debug("zookeeper client: {}", message); }

}  // namespace

Result<std::unique_ptr<ZooKeeperClusterBackend>> ZooKeeperClusterBackend::Open(
    ZooKeeperClusterOptions options) {
  if (options.root.size() < 2 || options.root.front() != '/' || options.root.back() == '/') {
    return Status::InvalidArgument(
        fmt::format("zookeeper root \"{}\" is not an absolute znode path", options.root));
  }
  WEFT_ASSERT(options.session_timeout_ms > 0);
  WEFT_ASSERT(options.operation_timeout_ms > 0);
  // The library logs to stderr by default; warnings and errors go to spdlog (debug: a lost
  // connection logs on every attempt, and the backend reports its own state changes).
  zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
  std::unique_ptr<ZooKeeperClusterBackend> backend(new ZooKeeperClusterBackend(options));
  WEFT_RETURN_IF_ERROR(backend->NewHandle());
  {
    std::unique_lock lock(backend->mutex_);
    const bool connected =
        backend->wake_.wait_for(lock, std::chrono::milliseconds(options.connect_timeout_ms),
                                [&] { return backend->ever_connected_; });
    if (!connected) {
      return Status::Unavailable(fmt::format("zookeeper {}: no session within {} ms",
                                             options.connect_string, options.connect_timeout_ms));
    }
  }
  for (const std::string& path :
       {backend->options_.root, backend->members_path_, backend->elections_path_}) {
    WEFT_RETURN_IF_ERROR(backend->EnsurePath(path));
  }
  spdlog::info("cluster: zookeeper {} root {} session {:#x}", options.connect_string, options.root,
               backend->session_id());
  return backend;
}

ZooKeeperClusterBackend::ZooKeeperClusterBackend(ZooKeeperClusterOptions options)
    : options_(std::move(options)),
      config_path_(options_.root + "/config"),
      members_path_(options_.root + "/members"),
      elections_path_(options_.root + "/election"),
      event_thread_([this] { RunEvents(); }) {}

ZooKeeperClusterBackend::~ZooKeeperClusterBackend() { Close(); }

Status ZooKeeperClusterBackend::NewHandle() {
  // The new generation counts from before zookeeper_init: the new handle may report its session
  // before zookeeper_init returns, and the old handle's late events are stale from here on.
  const uint64_t generation = generation_.fetch_add(1) + 1;
  auto context = std::make_unique<HandleContext>(HandleContext{this, generation});
  zhandle_t* handle =
      zookeeper_init2(options_.connect_string.c_str(), &SessionWatcher, options_.session_timeout_ms,
                      nullptr, context.get(), 0, &LogFromLibrary);
  if (handle == nullptr) {
    // The library checks and resolves the connect string here; that is what fails.
    const int error = errno;
    return Status::InvalidArgument(fmt::format("zookeeper connect string \"{}\": {}",
                                               options_.connect_string, std::strerror(error)));
  }
  zhandle_t* old_handle = nullptr;
  std::unique_ptr<HandleContext> old_context;
  {
    std::unique_lock lock(handle_mutex_);
    if (handle_ != nullptr) {
      const clientid_t* id = zoo_client_id(handle_);
      std::lock_guard events_lock(mutex_);
      previous_sessions_.insert(id->client_id);
    }
    old_handle = std::exchange(handle_, handle);
    old_context = std::exchange(handle_context_, std::move(context));
  }
  // After zookeeper_close returns, the old handle's watchers never run again, so its context
  // may go.
  if (old_handle != nullptr) zookeeper_close(old_handle);
  return Status::Ok();
}

void ZooKeeperClusterBackend::SessionWatcher(zhandle_t*, int type, int state, const char*,
                                             void* context) {
  if (type != ZOO_SESSION_EVENT) return;
  auto* handle_context = static_cast<HandleContext*>(context);
  handle_context->backend->Post(
      Event{Event::Kind::kSession, handle_context->generation, state, std::string()});
}

void ZooKeeperClusterBackend::NodeWatcher(zhandle_t*, int type, int, const char* path,
                                          void* context) {
  // Watches also see every session event; the session watcher handles those.
  if (type == ZOO_SESSION_EVENT || path == nullptr) return;
  auto* handle_context = static_cast<HandleContext*>(context);
  ZooKeeperClusterBackend* backend = handle_context->backend;
  const std::string_view changed(path);
  Event event{Event::Kind::kWakeUp, handle_context->generation, 0, std::string()};
  if (changed == backend->config_path_) {
    event.kind = Event::Kind::kConfig;
  } else if (changed == backend->members_path_) {
    event.kind = Event::Kind::kMembers;
  } else if (changed.starts_with(backend->elections_path_ + "/")) {
    // <root>/election/<name>/n_...: the watched predecessor went away.
    std::string_view rest = changed.substr(backend->elections_path_.size() + 1);
    event.kind = Event::Kind::kElection;
    event.election = std::string(rest.substr(0, rest.find('/')));
  }
  backend->Post(std::move(event));
}

void ZooKeeperClusterBackend::Post(Event event) {
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  events_.push_back(std::move(event));
  wake_.notify_all();
}

std::optional<ZooKeeperClusterBackend::Clock::time_point> ZooKeeperClusterBackend::NextWakeUp() {
  std::optional<Clock::time_point> next = retry_at_;
  if (disconnected_since_ && !fenced_.load()) {
    const auto fence_at = *disconnected_since_ + std::chrono::milliseconds(session_timeout_ms_ / 3);
    if (!next || fence_at < *next) next = fence_at;
  }
  return next;
}

void ZooKeeperClusterBackend::RunEvents() {
  for (;;) {
    std::optional<Event> event;
    {
      std::unique_lock lock(mutex_);
      const auto ready = [this] { return stopping_ || !events_.empty(); };
      const std::optional<Clock::time_point> wake_up = NextWakeUp();
      if (wake_up) {
        wake_.wait_until(lock, *wake_up, ready);
      } else {
        wake_.wait(lock, ready);
      }
      if (stopping_) return;
      if (!events_.empty()) {
        event = std::move(events_.front());
        events_.pop_front();
      }
    }
    if (disconnected_since_ && !fenced_.load() &&
        Clock::now() - *disconnected_since_ >= std::chrono::milliseconds(session_timeout_ms_ / 3)) {
      Fence("disconnected for a third of the session timeout");
    }
    if (event && event->kind == Event::Kind::kTask) {
      event->task();
    } else if (event && event->generation == generation_.load()) {
      switch (event->kind) {
        case Event::Kind::kSession:
          HandleSessionEvent(event->state);
          break;
        case Event::Kind::kConfig:
          config_pending_ = true;
          break;
        case Event::Kind::kMembers:
          members_pending_ = true;
          break;
        case Event::Kind::kElection:
          elections_pending_.insert(event->election);
          break;
        case Event::Kind::kWakeUp:
        case Event::Kind::kTask:
          break;
      }
    }
    HandleRetries();
  }
}

void ZooKeeperClusterBackend::HandleSessionEvent(int state) {
  if (state == ZOO_CONNECTED_STATE) {
    disconnected_since_.reset();
    {
      // The servers may have clamped the timeout to their bounds; fencing must use theirs.
      std::shared_lock lock(handle_mutex_);
      if (handle_ != nullptr && zoo_recv_timeout(handle_) > 0) {
        session_timeout_ms_ = zoo_recv_timeout(handle_);
      }
    }
    bool first = false;
    {
      std::lock_guard lock(mutex_);
      first = !ever_connected_;
      ever_connected_ = true;
      wake_.notify_all();  // Open waits for the first session.
    }
    if (fenced_.load()) {
      rejoin_pending_ = true;
    } else if (!first) {
      Publish(SessionState::kConnected);
    }
    // The library re-registers watches on a reconnect; re-reading catches up with anything a
    // new handle missed, and is deduplicated by version.
    config_pending_ = members_pending_ = true;
  } else if (state == ZOO_CONNECTING_STATE) {
    if (!disconnected_since_) disconnected_since_ = Clock::now();
    if (!fenced_.load()) Publish(SessionState::kDisconnected);
  } else if (state == ZOO_EXPIRED_SESSION_STATE) {
    Fence("the zookeeper session expired");
    disconnected_since_.reset();
    spdlog::warn("cluster: zookeeper session expired; opening a new session");
    Status status = NewHandle();
    // zookeeper_init fails only for a bad connect string or no memory, which Open ruled out.
    WEFT_ASSERT(status.ok());
  } else {
    spdlog::error("cluster: zookeeper session state {}; fenced until a new session", state);
    Fence("zookeeper session state " + std::to_string(state));
  }
}

void ZooKeeperClusterBackend::Fence(std::string_view why) {
  if (fenced_.exchange(true)) return;
  spdlog::warn("cluster: fenced: {}", why);
  std::vector<std::shared_ptr<Candidate>> candidates;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, candidate] : candidates_) candidates.push_back(candidate);
  }
  Publish(SessionState::kExpired);
  for (const auto& candidate : candidates) SetLeader(*candidate, false);
}

void ZooKeeperClusterBackend::HandleRetries() {
  retry_at_.reset();
  bool failed = false;
  if (rejoin_pending_) {
    if (Rejoin()) {
      rejoin_pending_ = false;
    } else {
      failed = true;
    }
  }
  if (!fenced_.load()) {
    if (config_pending_) config_pending_ = !DeliverConfig();
    if (members_pending_) members_pending_ = !DeliverMembers();
    for (auto it = elections_pending_.begin(); it != elections_pending_.end();) {
      it = Evaluate(*it) ? elections_pending_.erase(it) : std::next(it);
    }
  }
  failed = failed || config_pending_ || members_pending_ || !elections_pending_.empty();
  if (failed) retry_at_ = Clock::now() + kRetryDelay;
}

bool ZooKeeperClusterBackend::Rejoin() {
  const int64_t session = session_id();
  std::optional<Member> member;
  std::vector<std::shared_ptr<Candidate>> candidates;
  {
    std::lock_guard lock(mutex_);
    member = member_;
    for (const auto& [name, candidate] : candidates_) candidates.push_back(candidate);
  }
  if (member) {
    Status status = JoinWithSession(*member, session);
    if (!status.ok()) {
      spdlog::warn("cluster: rejoin: {}", status.ToString());
      return false;
    }
  }
  for (const auto& candidate : candidates) {
    const std::string znode = Znode(*candidate);
    if (znode.empty()) continue;  // Campaign is still creating it.
    // Keep our entry if the session survived; otherwise delete the old session's entry (it
    // would lead until that session times out on the servers) and stand again.
    Stat stat{};
    const Outcome exists =
        Run([&](zhandle_t* zh, HandleContext*) { return zoo_exists(zh, znode.c_str(), 0, &stat); });
    if (exists.rc == ZOK && stat.ephemeralOwner == session) {
      elections_pending_.insert(candidate->election);
      continue;
    }
    if (exists.rc == ZOK) {
      const Outcome deleted = Run([&](zhandle_t* zh, HandleContext*) {
        return zoo_delete(zh, znode.c_str(), stat.version);
      });
      if (deleted.rc != ZOK && deleted.rc != ZNONODE) return false;
    } else if (exists.rc != ZNONODE) {
      return false;
    }
    Result<std::string> created = CreateCandidateZnode(candidate->election, candidate->node_id);
    if (!created.ok()) {
      spdlog::warn("cluster: rejoin: {}", created.status().ToString());
      return false;
    }
    SetZnode(*candidate, *created);
    elections_pending_.insert(candidate->election);
  }
  fenced_.store(false);
  spdlog::info("cluster: rejoined with session {:#x}", session);
  // The member ids may be the same as before the expiry, but watchers must hear of them again:
  // what they did while this node was away (a takeover of its vDisks) needs a fresh look.
  members_delivered_.reset();
  config_pending_ = members_pending_ = true;
  Publish(SessionState::kRejoined);
  return true;
}

void ZooKeeperClusterBackend::Publish(SessionState state) {
  std::vector<std::function<void(SessionState)>> watchers;
  {
    std::lock_guard lock(mutex_);
    if (state == state_ && state != SessionState::kRejoined) return;
    state_ = state;
    watchers = session_watchers_;
  }
  spdlog::info("cluster: zookeeper session {}", SessionStateName(state));
  for (const auto& watcher : watchers) watcher(state);
}

void ZooKeeperClusterBackend::WatchSession(std::function<void(SessionState)> on_change) {
  // Registered on the event thread, which also publishes transitions: the watcher gets the
  // current state first and then each transition, without a duplicate.
  Post(Event{Event::Kind::kTask, 0, 0, std::string(), [this, on_change] {
               SessionState state;
               {
                 std::lock_guard lock(mutex_);
                 session_watchers_.push_back(on_change);
                 state = state_;
               }
               on_change(state);
             }});
}

int64_t ZooKeeperClusterBackend::session_id() {
  std::shared_lock lock(handle_mutex_);
  if (handle_ == nullptr) return 0;
  return zoo_client_id(handle_)->client_id;
}

std::string ZooKeeperClusterBackend::current_server() {
  std::shared_lock lock(handle_mutex_);
  if (handle_ == nullptr) return "";
  // A static buffer inside the library: copied at once.
  const char* server = zoo_get_current_server(handle_);
  return server == nullptr ? "" : std::string(server);
}

Status ZooKeeperClusterBackend::ExpireSessionForTest() {
  clientid_t id{};
  {
    std::shared_lock lock(handle_mutex_);
    if (handle_ == nullptr) return Status::Aborted("the cluster backend is closed");
    id = *zoo_client_id(handle_);
  }
  zhandle_t* other = zookeeper_init2(options_.connect_string.c_str(), nullptr,
                                     options_.session_timeout_ms, &id, nullptr, 0, &LogFromLibrary);
  if (other == nullptr) return Status::FromErrno(errno, "zookeeper_init for expiry");
  const auto deadline = Clock::now() + std::chrono::milliseconds(options_.connect_timeout_ms);
  while (zoo_state(other) != ZOO_CONNECTED_STATE && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const bool connected = zoo_state(other) == ZOO_CONNECTED_STATE;
  zookeeper_close(other);  // Closing the session ends it for the first handle too.
  if (!connected) return Status::Unavailable("expiry: the second connection did not connect");
  return Status::Ok();
}

void ZooKeeperClusterBackend::Close() {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = stopping_ = true;
    wake_.notify_all();
  }
  WEFT_ASSERT(std::this_thread::get_id() != event_thread_.get_id());
  if (event_thread_.joinable()) event_thread_.join();
  std::vector<std::shared_ptr<Candidate>> candidates;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, candidate] : candidates_) candidates.push_back(candidate);
  }
  // Leaders hear they lost the lead before their entries go, so a successor cannot lead while
  // they still believe they do.
  for (const auto& candidate : candidates) SetLeader(*candidate, false);
  std::unique_lock lock(handle_mutex_);
  if (handle_ != nullptr) zookeeper_close(handle_);  // Deletes our ephemeral entries now.
  handle_ = nullptr;
  handle_context_.reset();
}

}  // namespace weft::cluster
