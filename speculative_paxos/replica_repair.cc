// Order repair (f = 1): a cheaper fix than state transfer or reconciliation
// for the most common divergence, two requests delivered in different orders
// to different replicas. The leader's SyncPrepare lists its order of the
// uncommitted prepared slots as (client id, request id) pairs (of the first
// ones, as many as fit in the datagram budget: a prefix of the leader's log
// serves like a shorter prepare); a follower
// whose log holds the same requests in another order rolls back to the first
// slot that differs, re-executes them in the leader's order followed by its
// remaining entries, acknowledges and re-answers the client of each
// re-executed entry that is its client's newest (so it can still complete on
// a superquorum; older ones completed already).
//
// Partial acknowledgements (any f): under load a follower rarely holds the
// leader's whole log when a prepare arrives (the newest requests are in
// flight), so it acknowledges the longest prefix of the leader's order it
// holds, with its hash; the leader counts it once the hash matches its own.
// That prefix commits without waiting for a tick at which some follower
// holds everything.
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
#include "google/protobuf/io/coded_stream.h"
#include "speculative_paxos/replica.h"

namespace dctk::spaxos {
namespace {
// Longest order a prepare carries (2-20 bytes per entry on the wire).
constexpr uint64_t kMaxOrder = 1024;
}  // namespace

void Replica::AddOrder(SyncPrepare* m) const {
  if (m->slot() <= m->commit()) return;
  using google::protobuf::io::CodedOutputStream;
  // The other fields, and the two packed fields' tags and lengths.
  size_t bytes = m->ByteSizeLong() + 2 * (1 + 3);
  const uint64_t last = std::min(m->slot(), m->commit() + kMaxOrder);
  for (uint64_t slot = m->commit() + 1; slot <= last; ++slot) {
    const LogEntry& e = *log_.At(slot);
    bytes += CodedOutputStream::VarintSize64(e.client_id) +
             CodedOutputStream::VarintSize64(e.request_id);
    if (bytes > budget()) break;
    m->add_order_clients(e.client_id);
    m->add_order_requests(e.request_id);
  }
}

uint64_t Replica::AdoptLeaderOrder(const SyncPrepare& m, bool* lacking) {
  const uint64_t base = m.commit();
  const int count = m.order_clients_size();
  // The order covers base+1 .. order_end (<= the prepared slot).
  const uint64_t order_end = base + count;
  if (count == 0 || count != m.order_requests_size() || order_end > m.slot() ||
      base > log_.end() || base < log_.committed() || log_.HashAt(base) != m.commit_hash()) {
    return 0;
  }
  auto order = [&](uint64_t slot) {
    return std::make_pair(m.order_clients(slot - base - 1), m.order_requests(slot - base - 1));
  };
  // Our log equals the leader's order up to first - 1.
  uint64_t first = base + 1;
  while (first <= std::min(order_end, log_.end()) &&
         std::make_pair(log_.At(first)->client_id, log_.At(first)->request_id) == order(first)) {
    ++first;
  }
  // Same ids: the whole order held (with another hash at the prepared slot,
  // transfer sorts it out).
  if (first > order_end) return order_end;
  // The leader's entries from `first` on that we hold (after first - 1), up to
  // the first one we lack (it may still be in flight).
  uint64_t last = first - 1;
  absl::flat_hash_set<std::pair<uint64_t, uint64_t>> leaders;
  for (uint64_t slot = first; slot <= order_end; ++slot) {
    const LogEntry* e = log_.Find(order(slot).first, order(slot).second);
    if (e == nullptr || e->slot < first) {
      *lacking = true;
      break;
    }
    leaders.insert(order(slot));
    last = slot;
  }
  if (config_.f() != 1 || last < first) return first - 1;
  // The new order from `first`: the leader's up to `last`, then our other
  // entries in our order. One client's request ids must still rise.
  std::vector<const LogEntry*> next;
  for (uint64_t slot = first; slot <= last; ++slot) {
    next.push_back(log_.Find(order(slot).first, order(slot).second));
  }
  for (uint64_t slot = first; slot <= log_.end(); ++slot) {
    const LogEntry* e = log_.At(slot);
    if (!leaders.contains(std::make_pair(e->client_id, e->request_id))) next.push_back(e);
  }
  absl::flat_hash_map<uint64_t, uint64_t> latest;
  for (const LogEntry* e : next) {
    uint64_t& prev = latest.try_emplace(e->client_id, log_.LatestRequest(e->client_id, first - 1))
                         .first->second;
    if (e->request_id <= prev) return first - 1;
    prev = e->request_id;
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
  // Answer again only each client's newest re-executed request: a client has
  // one request outstanding, so its older ones completed already and a reply
  // to them would only wake its process.
  for (uint64_t slot = first; slot <= log_.end(); ++slot) {
    const LogEntry& e = *log_.At(slot);
    if (log_.LatestRequest(e.client_id) == e.request_id) ReplyTo(e);
  }
  return last;
}

}  // namespace dctk::spaxos
