// RingStore: a node's durable ring state in its own RocksDB (docs/ondisk/ring.md): one record per
// row this node is a replica of (its Paxos acceptor state, ring_wire.h's encoding), the ballot
// round floor, and a header naming the node so that a database is never opened as another node's.
//
// Writes are grouped: Write() takes the RingNode's persistence requests in order and makes each
// group durable with one synced WriteBatch, so every write completes in request order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "metadata/ring/ring_node.h"

namespace rocksdb {
class DB;
}

namespace weft::metadata::ring {

class RingStore {
 public:
  // Creates the database when `path` holds none. Corruption when the header names another node
  // or a record does not decode; IOError when RocksDB fails.
  static Result<std::unique_ptr<RingStore>> Open(const std::string& path, NodeId self);
  ~RingStore();
  RingStore(const RingStore&) = delete;
  RingStore& operator=(const RingStore&) = delete;

  // Everything the completed writes left: every row record and the round floor.
  Result<RecoveredState> Load();

  // One batch of rows and floors (a floor only ever grows), synced unless every row says it need
  // not be (PersistRow::sync). Blocking: call it from the driver's persistence thread, never from
  // a reactor.
  Status Write(const std::vector<PersistRow>& rows, const std::vector<PersistRoundFloor>& floors);

  const std::string& path() const { return path_; }

 private:
  RingStore(std::string path, std::unique_ptr<rocksdb::DB> db);

  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace weft::metadata::ring
