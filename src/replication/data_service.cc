#include "replication/data_service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "base/aligned_buffer.h"
#include "base/assert.h"
#include "base/crc32c.h"
#include "extent_store/extent_store.h"
#include "replication/data_rpc.h"
#include "replication/data_rpc.pb.h"

namespace weft::replication {

struct DataService::ReplicaLog {
  std::unique_ptr<oplog::OpLog> log;
  bool open = false;
  // Requests that arrived while the log was opening.
  std::deque<std::function<void()>> waiting;
  uint32_t inflight = 0;  // Appends and trims submitted and not completed.
  bool marking = false;   // A MarkDrained is running.
  // Appends that arrived while a MarkDrained ran: they run after it, in arrival order (seq
  // order), so a record is never written before older records the owner drained are dropped.
  std::deque<std::function<void()>> after_mark;
  bool releasing = false;
  std::vector<std::function<void(Status)>> release_waiters;
  // The log holds records of an older owner at or beyond the current owner's seqs: it is
  // discarded before the next append (they were never acknowledged: the owner that took over
  // drained every acknowledged record before choosing peers).
  bool reset_needed = false;
  bool resetting = false;
  std::deque<std::function<void()>> after_reset;
};

namespace {

template <typename Proto>
Result<Proto> ParseRequest(const rpc::Message& request, std::string_view what) {
  Proto parsed;
  if (!parsed.ParseFromString(request.body)) {
    return Status::InvalidArgument(fmt::format("data rpc: malformed {} request", what));
  }
  return parsed;
}

rpc::Message Reply(const google::protobuf::MessageLite& body, std::string bulk = {}) {
  rpc::Message message;
  message.type = kDataReplyType;
  message.body = body.SerializeAsString();
  message.bulk = std::move(bulk);
  return message;
}

// Egroup I/O ranges as the extent store takes them (it checks them again).
Status CheckEgroupRange(uint64_t egroup_id, uint64_t offset_bytes, uint64_t length_bytes) {
  const bool aligned = offset_bytes % extent_store::kChecksumBlockBytes == 0 &&
                       length_bytes % extent_store::kChecksumBlockBytes == 0;
  if (egroup_id == 0 || !aligned || length_bytes == 0 || length_bytes > kDataBytesMax ||
      offset_bytes > extent_store::kEgroupMaxBytes ||
      length_bytes > extent_store::kEgroupMaxBytes - offset_bytes) {
    return Status::InvalidArgument(
        fmt::format("data rpc: egroup {} range [{}, +{}) is not 4 KiB-aligned within 4 MiB "
                    "and at most 1 MiB long",
                    egroup_id, offset_bytes, length_bytes));
  }
  return Status::Ok();
}

}  // namespace

DataService::DataService(DataServiceOptions options) : options_(std::move(options)) {
  WEFT_ASSERT(options_.disks != nullptr);
  WEFT_ASSERT(options_.executor != nullptr);
}

DataService::~DataService() {
  *alive_ = false;
  for (const auto& [vdisk_id, log] : logs_) {
    // Close() must have quiesced them: destroying an OpLog with I/O in flight is a bug.
    WEFT_ASSERT(log->log == nullptr || log->log->quiescent());
  }
}

void DataService::Handle(const rpc::Message& request, rpc::ReplyFn reply) {
  switch (request.type) {
    case kOplogAppendType:
      return HandleOplogAppend(request, std::move(reply));
    case kOplogTrimType:
      return HandleOplogTrim(request, std::move(reply));
    case kEgroupCreateType:
      return HandleEgroupCreate(request, std::move(reply));
    case kEgroupWriteType:
      return HandleEgroupWrite(request, std::move(reply), /*trim=*/false);
    case kEgroupTrimType:
      return HandleEgroupWrite(request, std::move(reply), /*trim=*/true);
    case kEgroupReadType:
      return HandleEgroupRead(request, std::move(reply));
    case kEgroupDeleteType:
      return HandleEgroupDelete(request, std::move(reply));
    case kFenceType: {
      proto::Fence fence;
      if (!fence.ParseFromString(request.body) || fence.owner_epoch() == 0) {
        ++stats_.bad_requests;
        return reply(Status::InvalidArgument("data rpc: malformed fence request"));
      }
      if (Status fenced = CheckEpoch(fence.vdisk_id(), fence.owner_epoch()); !fenced.ok()) {
        return reply(fenced);
      }
      return reply(Reply(proto::EgroupWriteReply()));
    }
    default:
      ++stats_.bad_requests;
      reply(Status::InvalidArgument(
          fmt::format("data rpc: unknown message type {:#x}", request.type)));
  }
}

Status DataService::CheckEpoch(uint64_t vdisk_id, uint64_t epoch) {
  if (epoch == 0) return Status::InvalidArgument("data rpc: owner epoch 0");
  uint64_t& highest = epochs_[vdisk_id];
  if (epoch < highest) {
    ++stats_.stale_epoch_refusals;
    return Status::Aborted(
        fmt::format("stale epoch: vdisk {} is owned at epoch {} (request from epoch {})", vdisk_id,
                    highest, epoch));
  }
  highest = epoch;
  return Status::Ok();
}

void DataService::Fence(uint64_t vdisk_id, uint64_t epoch) {
  uint64_t& highest = epochs_[vdisk_id];
  highest = std::max(highest, epoch);
}

// ---- OpLog replicas ----

void DataService::WithReplicaLog(uint64_t vdisk_id, rpc::ReplyFn reply,
                                 std::function<void(oplog::OpLog&, rpc::ReplyFn)> task) {
  if (options_.oplog_files == nullptr) {
    return reply(Status::NotSupported("data rpc: this node keeps no oplogs (--no-oplog)"));
  }
  if (options_.owns_vdisk && options_.owns_vdisk(vdisk_id)) {
    return reply(Status::Aborted(fmt::format(
        "stale epoch: vdisk {} is served by this node, not replicated to it", vdisk_id)));
  }
  if (auto discarding = discards_.find(vdisk_id); discarding != discards_.end()) {
    discarding->second->push_back(
        [this, vdisk_id, reply = std::move(reply), task = std::move(task)] {
          WithReplicaLog(vdisk_id, reply, task);
        });
    return;
  }
  auto [found, inserted] = logs_.try_emplace(vdisk_id);
  if (inserted) {
    found->second = std::make_unique<ReplicaLog>();
    ReplicaLog& entry = *found->second;
    entry.log = std::make_unique<oplog::OpLog>(*options_.oplog_files, vdisk_id, options_.oplog,
                                               options_.executor);
    ++stats_.replica_oplogs;
    entry.log->Open([this, alive = alive_, vdisk_id](Status status) {
      if (!*alive) return;
      auto it = logs_.find(vdisk_id);
      WEFT_ASSERT(it != logs_.end());
      ReplicaLog& opened = *it->second;
      std::deque<std::function<void()>> waiting = std::move(opened.waiting);
      std::vector<std::function<void(Status)>> release_waiters;
      if (!status.ok()) {
        spdlog::error("vdisk {}: opening its replica oplog: {}", vdisk_id, status.ToString());
        release_waiters = std::move(opened.release_waiters);
        opened.log.reset();
        logs_.erase(it);
        --stats_.replica_oplogs;
      } else {
        opened.open = true;
      }
      for (auto& run : waiting) run();  // Each looks the log up again (and may reopen it).
      // A release that arrived while the log was opening: nothing is open any more, or it
      // finishes now that the log is open (it waited for that).
      for (auto& waiter : release_waiters) waiter(Status::Ok());
      MaybeFinishRelease(vdisk_id);
    });
  }
  ReplicaLog& entry = *found->second;
  if (entry.reset_needed && !entry.releasing) {
    entry.after_reset.push_back([this, vdisk_id, reply = std::move(reply), task = std::move(task)] {
      WithReplicaLog(vdisk_id, reply, task);
    });
    if (entry.resetting) return;
    entry.resetting = true;
    spdlog::warn("vdisk {}: discarding this node's replica oplog (records of an earlier owner)",
                 vdisk_id);
    // Moved out first: DiscardOplog erases the entry (at once when nothing is in flight).
    // Requests arriving until the old files are gone wait with them (discards_), so that no
    // fresh log opens those files while they are being deleted.
    auto resumed =
        std::make_shared<std::deque<std::function<void()>>>(std::move(entry.after_reset));
    entry.after_reset.clear();
    DiscardOplog(vdisk_id, [this, alive = alive_, vdisk_id, resumed](Status status) {
      if (!*alive) return;
      if (!status.ok()) {
        spdlog::error("vdisk {}: discarding the replica oplog: {}", vdisk_id, status.ToString());
      }
      discards_.erase(vdisk_id);
      for (auto& run : *resumed) run();
    });
    discards_[vdisk_id] = resumed;  // After the call: its release must not wait for itself.
    return;
  }
  if (entry.releasing) {
    return reply(Status::Unavailable(
        fmt::format("data rpc: vdisk {}'s replica oplog is being handed over", vdisk_id)));
  }
  if (!entry.open) {
    entry.waiting.push_back([this, vdisk_id, reply = std::move(reply), task = std::move(task)] {
      WithReplicaLog(vdisk_id, reply, task);
    });
    return;
  }
  ++entry.inflight;
  task(*entry.log,
       [this, alive = alive_, vdisk_id, reply = std::move(reply)](Result<rpc::Message> answer) {
         reply(std::move(answer));
         if (!*alive) return;
         auto it = logs_.find(vdisk_id);
         if (it == logs_.end()) return;
         WEFT_ASSERT(it->second->inflight > 0);
         --it->second->inflight;
         MaybeFinishRelease(vdisk_id);
       });
}

void DataService::HandleOplogAppend(const rpc::Message& request, rpc::ReplyFn reply) {
  Result<proto::OplogAppend> parsed = ParseRequest<proto::OplogAppend>(request, "oplog append");
  if (!parsed.ok()) {
    ++stats_.bad_requests;
    return reply(parsed.status());
  }
  const proto::OplogAppend append = *parsed;
  const auto kind = static_cast<oplog::format::RecordKind>(append.kind());
  const bool data_kind = kind == oplog::format::RecordKind::kData;
  const bool kind_ok = data_kind || kind == oplog::format::RecordKind::kZeroUnmap ||
                       kind == oplog::format::RecordKind::kZeroFill;
  if (!kind_ok || append.seq() == 0 || append.length_bytes() == 0 ||
      append.length_bytes() > oplog::kRecordBytesMax ||
      request.bulk.size() != (data_kind ? append.length_bytes() : 0)) {
    ++stats_.bad_requests;
    return reply(Status::InvalidArgument(
        fmt::format("data rpc: oplog record vdisk {} seq {} kind {} length {} with {} data bytes",
                    append.vdisk_id(), append.seq(), append.kind(), append.length_bytes(),
                    request.bulk.size())));
  }
  if (Status fenced = CheckEpoch(append.vdisk_id(), append.owner_epoch()); !fenced.ok()) {
    return reply(fenced);
  }
  ++stats_.oplog_appends;
  auto data = std::make_shared<std::string>(request.bulk);
  WithReplicaLog(
      append.vdisk_id(), std::move(reply),
      [this, append, data, kind](oplog::OpLog& log, rpc::ReplyFn answer) {
        const uint64_t vdisk_id = append.vdisk_id();
        ReplicaLog& entry = *logs_.at(vdisk_id);
        auto run_append = [this, alive = alive_, &log, append, data, kind,
                           answer = std::move(answer)]() {
          if (!*alive) return;
          const auto bytes = std::as_bytes(std::span(data->data(), data->size()));
          log.AppendReplica(
              append.seq(), kind, append.offset_bytes(), append.length_bytes(), bytes,
              append.data_crc32c(),
              [this, alive, vdisk_id = append.vdisk_id(), answer](Status status) {
                if (status.code() == StatusCode::kInvalidArgument && *alive) {
                  // Seqs at or beyond this one are already here: an earlier owner's records.
                  auto it = logs_.find(vdisk_id);
                  if (it != logs_.end()) it->second->reset_needed = true;
                  return answer(Status::Unavailable(
                      status.WithContext("replica oplog reset for a new owner; retry").message()));
                }
                if (!status.ok()) return answer(status);
                answer(Reply(proto::OplogAppendReply()));
              });
        };
        if (append.drained_seq() > log.drained_seq() && !entry.marking) {
          // Trim first: a peer chosen anew may hold old records the owner drained long ago.
          entry.marking = true;
          ++entry.inflight;
          log.MarkDrained(append.drained_seq(), [this, alive = alive_, vdisk_id](Status status) {
            if (!*alive) return;
            if (!status.ok()) {
              spdlog::warn("vdisk {}: trimming its replica oplog: {}", vdisk_id, status.ToString());
            }
            auto it = logs_.find(vdisk_id);
            if (it == logs_.end()) return;
            --it->second->inflight;
            FinishMark(vdisk_id);
          });
        }
        if (entry.marking) {
          entry.after_mark.push_back(std::move(run_append));
        } else {
          run_append();
        }
      });
}

void DataService::HandleOplogTrim(const rpc::Message& request, rpc::ReplyFn reply) {
  Result<proto::OplogTrim> parsed = ParseRequest<proto::OplogTrim>(request, "oplog trim");
  if (!parsed.ok()) {
    ++stats_.bad_requests;
    return reply(parsed.status());
  }
  const proto::OplogTrim trim = *parsed;
  if (Status fenced = CheckEpoch(trim.vdisk_id(), trim.owner_epoch()); !fenced.ok()) {
    return reply(fenced);
  }
  ++stats_.oplog_trims;
  WithReplicaLog(
      trim.vdisk_id(), std::move(reply), [this, trim](oplog::OpLog& log, rpc::ReplyFn answer) {
        if (trim.drained_seq() <= log.drained_seq()) {
          options_.executor(
              [answer = std::move(answer)] { answer(Reply(proto::OplogAppendReply())); });
          return;
        }
        // The OpLog orders stacked watermarks itself; the answer means "durably trimmed to at
        // least this" (the owner then lets writes bypass the OpLog).
        log.MarkDrained(trim.drained_seq(), [answer = std::move(answer)](Status status) {
          if (!status.ok()) return answer(status);
          answer(Reply(proto::OplogAppendReply()));
        });
      });
}

void DataService::FinishMark(uint64_t vdisk_id) {
  auto it = logs_.find(vdisk_id);
  if (it == logs_.end()) return;
  ReplicaLog& marked = *it->second;
  marked.marking = false;
  std::deque<std::function<void()>> queued = std::move(marked.after_mark);
  marked.after_mark.clear();
  for (auto& run : queued) run();
  MaybeFinishRelease(vdisk_id);
}

void DataService::ReleaseOplog(uint64_t vdisk_id, std::function<void(Status)> done) {
  if (auto discarding = discards_.find(vdisk_id); discarding != discards_.end()) {
    // The files are being deleted: released once that is done.
    discarding->second->push_back(
        [this, vdisk_id, done = std::move(done)] { ReleaseOplog(vdisk_id, done); });
    return;
  }
  auto found = logs_.find(vdisk_id);
  if (found == logs_.end()) {
    options_.executor([done = std::move(done)] { done(Status::Ok()); });
    return;
  }
  found->second->releasing = true;
  found->second->release_waiters.push_back(std::move(done));
  MaybeFinishRelease(vdisk_id);
}

void DataService::MaybeFinishRelease(uint64_t vdisk_id) {
  auto found = logs_.find(vdisk_id);
  if (found == logs_.end()) return;
  ReplicaLog& entry = *found->second;
  if (!entry.releasing || !entry.open || entry.inflight > 0 || entry.marking) return;
  if (entry.log != nullptr && !entry.log->quiescent()) {
    // A batch is still being written: look again shortly.
    options_.executor([this, alive = alive_, vdisk_id] {
      if (*alive) MaybeFinishRelease(vdisk_id);
    });
    return;
  }
  std::vector<std::function<void(Status)>> waiters = std::move(entry.release_waiters);
  logs_.erase(found);
  --stats_.replica_oplogs;
  for (auto& waiter : waiters) {
    options_.executor([waiter = std::move(waiter)] { waiter(Status::Ok()); });
  }
}

void DataService::DiscardOplog(uint64_t vdisk_id, std::function<void(Status)> done) {
  ReleaseOplog(vdisk_id, [this, alive = alive_, vdisk_id, done = std::move(done)](Status status) {
    if (!*alive || !status.ok()) return done(status);
    // A fresh instance only to find and delete the files (nothing is replayed into memory for
    // long: it is dropped right after).
    auto log = std::make_shared<oplog::OpLog>(*options_.oplog_files, vdisk_id, options_.oplog,
                                              options_.executor);
    log->Open([log, done](Status opened) {
      if (!opened.ok()) return done(opened);
      done(log->DestroyFiles());
    });
  });
}

std::vector<uint64_t> DataService::ReplicaOplogs() const {
  std::vector<uint64_t> ids;
  for (const auto& [vdisk_id, log] : logs_) ids.push_back(vdisk_id);
  return ids;
}

void DataService::Close(std::function<void()> done) {
  auto remaining = std::make_shared<size_t>(logs_.size() + 1);
  auto one_done = [remaining, done = std::move(done)](Status) {
    if (--*remaining == 0) done();
  };
  std::vector<uint64_t> ids = ReplicaOplogs();
  for (uint64_t vdisk_id : ids) ReleaseOplog(vdisk_id, one_done);
  options_.executor([one_done] { one_done(Status::Ok()); });
}

// ---- Egroup replicas ----

Result<vdisk::NodeDisk*> DataService::DiskOf(uint64_t egroup_id) {
  if (auto cached = egroup_disks_.find(egroup_id); cached != egroup_disks_.end()) {
    return cached->second;
  }
  for (vdisk::NodeDisk& disk : *options_.disks) {
    if (disk.store->GetEgroup(egroup_id).ok()) {
      egroup_disks_[egroup_id] = &disk;
      return &disk;
    }
  }
  return Status::NotFound(
      fmt::format("data rpc: egroup {} has no replica on this node", egroup_id));
}

void DataService::HandleEgroupCreate(const rpc::Message& request, rpc::ReplyFn reply) {
  Result<proto::EgroupCreate> parsed = ParseRequest<proto::EgroupCreate>(request, "egroup create");
  if (!parsed.ok() || parsed->egroup_id() == 0) {
    ++stats_.bad_requests;
    return reply(parsed.ok() ? Status::InvalidArgument("data rpc: egroup id 0") : parsed.status());
  }
  if (Status fenced = CheckEpoch(parsed->vdisk_id(), parsed->owner_epoch()); !fenced.ok()) {
    return reply(fenced);
  }
  ++stats_.egroup_creates;
  proto::EgroupCreateReply created;
  // An existing replica here is an old copy (a create always starts a new replica): deleted
  // first, so the copy that follows cannot leave its stale bytes where the source has holes.
  if (Result<vdisk::NodeDisk*> existing = DiskOf(parsed->egroup_id()); existing.ok()) {
    Status removed = (*existing)->store->DeleteEgroup(parsed->egroup_id());
    if (!removed.ok()) return reply(removed.WithContext("replacing an old replica"));
    egroup_disks_.erase(parsed->egroup_id());
  }
  vdisk::NodeDisk* disk = vdisk::ChooseDiskForNewEgroup(*options_.disks);
  if (disk == nullptr) return reply(Status::NoSpace("data rpc: this node has no disks"));
  Status made = disk->store->CreateEgroup(parsed->egroup_id(), parsed->replica_version());
  if (!made.ok()) return reply(made);
  egroup_disks_[parsed->egroup_id()] = disk;
  created.set_disk_uuid(disk->uuid);
  options_.executor([reply = std::move(reply), created] { reply(Reply(created)); });
}

void DataService::HandleEgroupWrite(const rpc::Message& request, rpc::ReplyFn reply, bool trim) {
  Result<proto::EgroupWrite> parsed = ParseRequest<proto::EgroupWrite>(request, "egroup write");
  if (!parsed.ok()) {
    ++stats_.bad_requests;
    return reply(parsed.status());
  }
  const proto::EgroupWrite& write = *parsed;
  Status range = CheckEgroupRange(write.egroup_id(), write.offset_bytes(), write.length_bytes());
  if (range.ok() && request.bulk.size() != (trim ? 0 : write.length_bytes())) {
    range = Status::InvalidArgument(fmt::format("data rpc: egroup {} write of {} bytes with {}",
                                                write.egroup_id(), write.length_bytes(),
                                                request.bulk.size()));
  }
  if (range.ok() && !trim &&
      Crc32c(request.bulk.data(), request.bulk.size()) != write.data_crc32c()) {
    range = Status::Corruption(
        fmt::format("data rpc: egroup {} write at {}: data crc mismatch in transit",
                    write.egroup_id(), write.offset_bytes()));
  }
  if (!range.ok()) {
    ++stats_.bad_requests;
    return reply(range);
  }
  if (Status fenced = CheckEpoch(write.vdisk_id(), write.owner_epoch()); !fenced.ok()) {
    return reply(fenced);
  }
  Result<vdisk::NodeDisk*> disk = DiskOf(write.egroup_id());
  if (!disk.ok()) return reply(disk.status());
  ++stats_.egroup_writes;
  auto done = [reply = std::move(reply)](Status status) {
    if (!status.ok()) return reply(status);
    reply(Reply(proto::EgroupWriteReply()));
  };
  if (trim) {
    (*disk)->store->Trim(write.egroup_id(), write.offset_bytes(), write.length_bytes(),
                         std::move(done), write.replica_version());
    return;
  }
  // O_DIRECT wants an aligned buffer; the transport's bulk is a std::string.
  auto buffer = std::make_shared<AlignedBuffer>(request.bulk.size());
  std::memcpy(buffer->data(), request.bulk.data(), request.bulk.size());
  (*disk)->store->Write(
      write.egroup_id(), write.offset_bytes(), buffer->span().first(request.bulk.size()),
      [buffer, done = std::move(done)](Status status) { done(std::move(status)); },
      write.replica_version());
}

void DataService::HandleEgroupRead(const rpc::Message& request, rpc::ReplyFn reply) {
  Result<proto::EgroupRead> parsed = ParseRequest<proto::EgroupRead>(request, "egroup read");
  if (!parsed.ok()) {
    ++stats_.bad_requests;
    return reply(parsed.status());
  }
  const proto::EgroupRead read = *parsed;
  if (Status range = CheckEgroupRange(read.egroup_id(), read.offset_bytes(), read.length_bytes());
      !range.ok()) {
    ++stats_.bad_requests;
    return reply(range);
  }
  Result<vdisk::NodeDisk*> disk = DiskOf(read.egroup_id());
  if (!disk.ok()) return reply(disk.status());
  Result<uint64_t> version = (*disk)->store->ReplicaVersion(read.egroup_id());
  if (!version.ok()) return reply(version.status());
  ++stats_.egroup_reads;
  auto buffer = std::make_shared<AlignedBuffer>(read.length_bytes());
  (*disk)->store->Read(
      read.egroup_id(), read.offset_bytes(), buffer->span().first(read.length_bytes()),
      [buffer, length = read.length_bytes(), version = *version,
       reply = std::move(reply)](Status status) {
        if (!status.ok()) return reply(status);
        proto::EgroupReadReply answer;
        answer.set_replica_version(version);
        answer.set_data_crc32c(Crc32c(buffer->data(), length));
        reply(Reply(answer, std::string(reinterpret_cast<const char*>(buffer->data()), length)));
      });
}

void DataService::HandleEgroupDelete(const rpc::Message& request, rpc::ReplyFn reply) {
  Result<proto::EgroupDelete> parsed = ParseRequest<proto::EgroupDelete>(request, "egroup delete");
  if (!parsed.ok()) {
    ++stats_.bad_requests;
    return reply(parsed.status());
  }
  Result<vdisk::NodeDisk*> disk = DiskOf(parsed->egroup_id());
  Status status = disk.ok() ? (*disk)->store->DeleteEgroup(parsed->egroup_id()) : Status::Ok();
  if (status.ok()) egroup_disks_.erase(parsed->egroup_id());
  ++stats_.egroup_deletes;
  options_.executor([reply = std::move(reply), status] {
    if (!status.ok()) return reply(status);
    reply(Reply(proto::EgroupWriteReply()));
  });
}

DataServiceStats DataService::stats() const { return stats_; }

}  // namespace weft::replication
