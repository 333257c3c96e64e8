// Test and benchmark helpers for the hashtable: keys and self-describing
// values, and a cluster of shm machines each holding one table shard, with
// a client machine connected to all of them.
//
// Example:
//   ShardedTables t(3, {.buckets = 256});
//   t.writer(ShardOf(k, 3)).Put(k, MakeValue(7, 0));
//   auto client = t.Client();
//   auto got = client->MultiLookup(keys);
#ifndef DCTK_FARM_KV_HASHTABLE_TEST_UTIL_H_
#define DCTK_FARM_KV_HASHTABLE_TEST_UTIL_H_

#include <sched.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/hash/hash.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/kv/hashtable_client.h"
#include "farm/kv/hashtable_rpc.h"
#include "farm/kv/hashtable_writer.h"
#include "farm/msg/rpc.h"
#include "glog/logging.h"

namespace dctk::farm::kv::testing {

inline Key MakeKey(uint64_t i) {
  Key k{};
  std::memcpy(k.data(), &i, 8);
  k[15] = 0x5a;
  return k;
}
inline uint64_t KeyIndex(const Key& k) {
  uint64_t i;
  std::memcpy(&i, k.data(), 8);
  return i;
}
// Every word of a value names its key and the write that made it.
inline Value MakeValue(uint64_t i, uint64_t round) {
  Value v;
  const uint64_t w = (i << 32) | (round & 0xffffffff);
  for (size_t j = 0; j < v.size(); j += 8) std::memcpy(v.data() + j, &w, 8);
  return v;
}
// True iff every word of `v` is the same and names key `i`.
inline bool ValueIsWhole(const uint8_t* v, size_t len, uint64_t i) {
  if (len % 8 != 0 || len == 0) return false;
  uint64_t first;
  std::memcpy(&first, v, 8);
  if (first >> 32 != i) return false;
  for (size_t j = 8; j < len; j += 8) {
    uint64_t w;
    std::memcpy(&w, v + j, 8);
    if (w != first) return false;
  }
  return true;
}
// A value of `words` 8-byte words made as MakeValue does.
inline std::string MakeBytes(uint64_t i, uint64_t round, size_t words) {
  std::string s(words * 8, '\0');
  const uint64_t w = (i << 32) | (round & 0xffffffff);
  for (size_t j = 0; j < words; ++j) std::memcpy(s.data() + j * 8, &w, 8);
  return s;
}

struct KeyHash {
  size_t operator()(const Key& k) const { return absl::HashOf(std::string(k.begin(), k.end())); }
};

// `shards` machines (ids 2..shards+1) each holding one table; machine 1 is
// the client, connected to all of them.
class ShardedTables {
 public:
  ShardedTables(uint32_t shards, const TableConfig& config) : config_(config) {
    fabric::ShmFabric::Options o;
    o.machine_id = 1;
    client_machine_ = std::move(*fabric::ShmFabric::Create(o));
    for (uint32_t s = 0; s < shards; ++s) {
      o.machine_id = 2 + s;
      owners_.push_back(std::move(*fabric::ShmFabric::Create(o)));
      auto region = owners_.back()->Register(TableBytes(config));
      CHECK(region.ok()) << region.status();
      auto w = HashTableWriter::Create(static_cast<uint8_t*>(region->base), config);
      CHECK(w.ok()) << w.status();
      writers_.push_back(std::make_unique<HashTableWriter>(*std::move(w)));
      tables_.push_back({o.machine_id, region->key, 0});
      CHECK(client_machine_->Connect(o.machine_id, owners_.back()->endpoint()).ok());
    }
  }

  uint32_t shards() const { return static_cast<uint32_t>(writers_.size()); }
  HashTableWriter& writer(uint32_t shard) { return *writers_[shard]; }
  HashTableWriter& writer_for(const Key& k) { return *writers_[ShardOf(k, shards())]; }
  fabric::ShmFabric& client_machine() { return *client_machine_; }
  fabric::ShmFabric& owner(uint32_t shard) { return *owners_[shard]; }
  const std::vector<fabric::RemoteAddress>& tables() const { return tables_; }

  // A client on a new queue of the client machine (the queue lives in *this).
  std::unique_ptr<HashTableClient<fabric::ShmFabric>> Client() {
    queues_.push_back(std::move(*client_machine_->CreateQueue()));
    auto c = HashTableClient<fabric::ShmFabric>::Create(*client_machine_, queues_.back().get(), tables_, config_);
    CHECK(c.ok()) << c.status();
    return std::move(*c);
  }
  fabric::ShmFabric::Queue& last_queue() { return *queues_.back(); }

 private:
  TableConfig config_;
  std::unique_ptr<fabric::ShmFabric> client_machine_;
  std::vector<std::unique_ptr<fabric::ShmFabric>> owners_;
  std::vector<std::unique_ptr<HashTableWriter>> writers_;
  std::vector<fabric::RemoteAddress> tables_;
  std::vector<std::unique_ptr<fabric::ShmFabric::Queue>> queues_;
};

// RPC multi-get over a ShardedTables (which must outlive it): the client
// machine gets one endpoint wired to one endpoint per holder, and each
// holder serves lookups from a reader of its own table. ServeUntil() runs
// every holder's endpoint from the calling thread (one server thread stands
// for all holders' CPUs).
class RpcShards {
 public:
  using Endpoint = msg::RpcEndpoint<fabric::ShmFabric>;

  RpcShards(ShardedTables& t, const TableConfig& config) {
    fabric::ShmFabric& client = t.client_machine();
    queues_.push_back(std::move(*client.CreateQueue()));
    client_ = std::make_unique<Endpoint>(client, queues_.back().get(), client.machine_id());
    for (uint32_t s = 0; s < t.shards(); ++s) {
      fabric::ShmFabric& owner = t.owner(s);
      CHECK(owner.Connect(client.machine_id(), client.endpoint()).ok());
      queues_.push_back(std::move(*owner.CreateQueue()));
      servers_.push_back(std::make_unique<Endpoint>(owner, queues_.back().get(), owner.machine_id()));
      CHECK(msg::WireRpc(*client_, client, *servers_.back(), owner, 256 << 10).ok());
      queues_.push_back(std::move(*owner.CreateQueue()));
      auto r = HashTableReader<fabric::ShmFabric>::Create(owner, queues_.back().get(), t.tables()[s], config);
      CHECK(r.ok()) << r.status();
      readers_.push_back(std::move(*r));
      ServeLookups(*servers_.back(), *readers_.back());
      machines_.push_back(owner.machine_id());
    }
  }

  // Yields when a pass over all holders found nothing, so that on a busy
  // machine the client's thread gets the CPU it waits on.
  void ServeUntil(const std::atomic<bool>& stop) {
    while (!stop.load(std::memory_order_relaxed)) {
      int handled = 0;
      for (auto& e : servers_) {
        absl::StatusOr<int> n = e->Poll();
        CHECK(n.ok()) << n.status();
        handled += *n;
      }
      if (handled == 0) sched_yield();
    }
  }
  std::unique_ptr<RpcMultiGetClient<fabric::ShmFabric>> Client() { return Client(machines_); }
  // A client that takes `machines` for the holders (a test names one with no ring).
  std::unique_ptr<RpcMultiGetClient<fabric::ShmFabric>> Client(
      std::vector<fabric::MachineId> machines) {
    return std::make_unique<RpcMultiGetClient<fabric::ShmFabric>>(*client_, std::move(machines),
                                                                  absl::Seconds(10));
  }
  const std::vector<fabric::MachineId>& machines() const { return machines_; }

 private:
  // Declaration order = reverse destruction order: queues outlive endpoints and readers.
  std::vector<std::unique_ptr<fabric::ShmFabric::Queue>> queues_;
  std::unique_ptr<Endpoint> client_;
  std::vector<std::unique_ptr<Endpoint>> servers_;
  std::vector<std::unique_ptr<HashTableReader<fabric::ShmFabric>>> readers_;
  std::vector<fabric::MachineId> machines_;
};

}  // namespace dctk::farm::kv::testing

#endif  // DCTK_FARM_KV_HASHTABLE_TEST_UTIL_H_
