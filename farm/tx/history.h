// A checker for histories of committed transactions over versioned objects
// (tests). Each committed transaction lists the version it read of each
// object and the objects it wrote (a write of an object read at version v
// creates v + 1). The checker finds
//   - lost updates: two committed writers of the same version of an object;
//   - dirty reads: a version read that no committed transaction produced
//     (and that is not the object's initial version);
//   - any other anomaly (write skew, ...): a cycle in the serialization graph
//     (write-read, write-write and read-write anti-dependency edges).
// No finding means the history is conflict-serializable.
#ifndef DCTK_FARM_TX_HISTORY_H_
#define DCTK_FARM_TX_HISTORY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace dctk::farm::tx {

struct CommittedTx {
  uint64_t id = 0;
  absl::flat_hash_map<uint64_t, uint64_t> reads;  // object -> version read
  std::vector<uint64_t> writes;                   // objects written (each also in reads)
};

// `initial`: object -> its version before the history. Returns the problems
// found (empty if serializable).
std::vector<std::string> CheckSerializable(const std::vector<CommittedTx>& history,
                                           const absl::flat_hash_map<uint64_t, uint64_t>& initial);

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_HISTORY_H_
