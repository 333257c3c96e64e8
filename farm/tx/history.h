// A checker for histories of committed transactions over versioned objects
// (tests): are they strictly serializable, as FaRM's transactions promise?
// Each committed transaction lists the version it read of each object, the
// objects it wrote (a write of an object read at version v creates v + 1) and
// its real-time bounds: ticks of one clock shared by every coordinator, taken
// before Begin and after Commit returned (HistoryClock). The checker finds
//   - lost updates: two committed writers of the same version of an object;
//   - dirty reads: a version read that no committed transaction produced
//     (and that is not the object's initial version);
//   - non-serializable schedules (write skew, ...): a cycle in the
//     serialization graph (write-read, and read-write anti-dependency edges;
//     write-write order follows from write-read, since writers read first);
//   - real-time violations (a stale read, a read from the future): a cycle once
//     the real-time order is added, T1 -> T2 when T1's Commit returned before
//     T2 began; strict serializability needs a serial order that extends it.
// A cycle is reported with its transactions, the object and version of each
// conflict edge and the ticks of each real-time edge. The real-time order is
// added through a chain of n auxiliary nodes (one per transaction, in the
// order their Commits returned), so the check takes O(n log n + reads), not the
// O(n^2) edges of the order itself.
//
// Example:
//   HistoryClock clock;
//   CommittedTx rec{.begin = clock.Tick()};
//   auto tx = client.Begin(); ... tx.Commit();
//   rec.end = clock.Tick();  // then reads (VersionRead), writes, id
//   std::vector<std::string> problems = CheckStrictlySerializable(history, initial);
#ifndef DCTK_FARM_TX_HISTORY_H_
#define DCTK_FARM_TX_HISTORY_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace dctk::farm::tx {

struct CommittedTx {
  uint64_t id = 0;
  absl::flat_hash_map<uint64_t, uint64_t> reads;  // object -> version read
  std::vector<uint64_t> writes;                   // objects written (each also in reads)
  uint64_t begin = 0;                             // a tick before Begin
  uint64_t end = 0;                               // a tick after Commit returned; begin < end
};

// A real-time clock for histories: one atomic sequence, so ticks of different
// threads are totally ordered, and a tick taken after a Commit returned is
// below every tick taken later by any thread (sequentially consistent).
class HistoryClock {
 public:
  uint64_t Tick() { return next_.fetch_add(1) + 1; }

 private:
  std::atomic<uint64_t> next_{0};
};

// `initial`: object -> its version before the history. Returns the problems
// found (empty if strictly serializable).
std::vector<std::string> CheckStrictlySerializable(
    const std::vector<CommittedTx>& history,
    const absl::flat_hash_map<uint64_t, uint64_t>& initial);

// For tests of the checker on a real history: turns one read into a stale read
// the checker must flag. Picks a transaction T that read object o at a version
// v written by a transaction W that returned before T began, T not writing o,
// and makes T read v - 1 instead. Returns how the reported cycle describes
// T's changed read ("tx T read object o at version v-1"), or nullopt if no
// read qualifies.
std::optional<std::string> InjectStaleRead(std::vector<CommittedTx>* history);

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_HISTORY_H_
