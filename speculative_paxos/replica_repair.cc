// Order repair (f = 1): a cheaper fix than state transfer or reconciliation
// for the most common divergence, two requests delivered in different orders
// to different replicas. The leader's SyncPrepare lists its order of the
// uncommitted prepared slots as (client id, request id) pairs; a follower
// whose log holds the same requests in another order rolls back to the first
// slot that differs, re-executes them in the leader's order followed by its
// remaining entries, acknowledges the prepare and re-answers the clients of
// every re-executed entry (so they can still complete on a superquorum).
//
// Why only f = 1: a follower that adopts the leader's order gives up its own,
// which is safe only if no request can have completed on a superquorum that
// this order contradicts. With n = 3 the superquorum is all three replicas, so
// it includes the leader and any completed request sits in the leader's log at
// its slot. With f >= 2 a superquorum can exclude the leader, and only the
// full protocol (transfer of committed state, reconciliation) is safe.
#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "glog/logging.h"
#include "speculative_paxos/replica.h"

namespace dctk::spaxos {
namespace {
// Longest order a prepare carries (about 18 bytes per entry on the wire).
constexpr uint64_t kMaxOrder = 1024;
}  // namespace

void Replica::AddOrder(SyncPrepare* m) const {
  if (config_.f() != 1 || m->slot() <= m->commit() || m->slot() - m->commit() > kMaxOrder) {
    return;
  }
  for (uint64_t slot = m->commit() + 1; slot <= m->slot(); ++slot) {
    const LogEntry& e = *log_.At(slot);
    m->add_order_clients(e.client_id);
    m->add_order_requests(e.request_id);
  }
}

bool Replica::AdoptLeaderOrder(const SyncPrepare& m, bool* lacking) {
  const uint64_t base = m.commit();
  const int count = m.order_clients_size();
  if (config_.f() != 1 || count == 0 || count != m.order_requests_size() ||
      m.slot() != base + count || base > log_.end() || log_.HashAt(base) != m.commit_hash()) {
    return false;
  }
  auto order = [&](uint64_t slot) {
    return std::make_pair(m.order_clients(slot - base - 1), m.order_requests(slot - base - 1));
  };
  // First slot where our log differs from the leader's order.
  uint64_t first = base + 1;
  while (first <= std::min(m.slot(), log_.end()) &&
         std::make_pair(log_.At(first)->client_id, log_.At(first)->request_id) == order(first)) {
    ++first;
  }
  if (first > m.slot() || first <= log_.committed()) return false;
  // Every request of the leader's order from `first` must be in our log after it.
  absl::flat_hash_set<std::pair<uint64_t, uint64_t>> leaders;
  for (uint64_t slot = first; slot <= m.slot(); ++slot) {
    const auto [client, request] = order(slot);
    const LogEntry* e = log_.Find(client, request);
    if (e == nullptr || e->slot < first) {
      *lacking = true;
      return false;
    }
    leaders.insert(order(slot));
  }
  // The new order from `first`: the leader's, then our other entries in our
  // order. One client's request ids must still rise along the log.
  std::vector<const LogEntry*> next;
  for (uint64_t slot = first; slot <= m.slot(); ++slot) {
    next.push_back(log_.Find(order(slot).first, order(slot).second));
  }
  for (uint64_t slot = first; slot <= log_.end(); ++slot) {
    const LogEntry* e = log_.At(slot);
    if (!leaders.contains(std::make_pair(e->client_id, e->request_id))) next.push_back(e);
  }
  absl::flat_hash_map<uint64_t, uint64_t> latest;
  for (const LogEntry* e : next) {
    uint64_t& last = latest.try_emplace(e->client_id, log_.LatestRequest(e->client_id, first - 1))
                         .first->second;
    if (e->request_id <= last) return false;
    last = e->request_id;
  }
  struct Copy {
    uint64_t client_id, request_id;
    std::string op;
    transport::Address client;
  };
  std::vector<Copy> copies;
  copies.reserve(next.size());
  for (const LogEntry* e : next) copies.push_back({e->client_id, e->request_id, e->op, e->client});
  TruncateTo(first - 1);
  for (Copy& c : copies) {
    ExecuteAndAppend(c.client_id, c.request_id, std::move(c.op), c.client);
    --stats_.requests;  // re-executed, not new
  }
  ++stats_.order_repairs;
  if (log_.HashAt(m.slot()) != m.hash()) {
    // Same ids, different ops: a client reused a request id. Our log is still
    // a valid log; the usual transfer path sorts it out.
    LOG(WARNING) << "replica " << index_ << ": leader's order of slots " << first << ".."
                 << m.slot() << " gives another hash (request id reused with another op?)";
    return false;
  }
  sync_point_ = std::max(sync_point_, m.slot());
  for (uint64_t slot = first; slot <= log_.end(); ++slot) ReplyTo(*log_.At(slot));
  return true;
}

}  // namespace dctk::spaxos
