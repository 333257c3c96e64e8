// Fast Paxos coordinator change: the new coordinator's choice of values
// (Lamport, "Fast Paxos", 2006, section 3.3, for 3 acceptors, f = 1), over a
// log of independent slots.
//
// Ballots. Every accepted entry carries the ballot it was accepted in:
// FpBallot(view, round), fast rounds even, classic rounds odd (the
// coordinator of a view runs the installation of the view as round 1, then
// alternates fast and classic rounds), and kFpChosenBallot for an entry the
// reporter knows is chosen (its log). An acceptor accepts at most one value
// per slot and ballot, each request at one slot at most, and a classic round
// proposes one value per slot.
//
// The rule, per slot, over the reports of a classic quorum Q (the new
// coordinator and one other replica): let k be the highest ballot reported
// at the slot and V the values reported in k.
//  - k is the chosen ballot or a classic round: V has one value; it may have
//    been chosen (by the coordinator of k and one acceptor), so it is kept.
//  - k is a fast round: a value can have been chosen in k only if a fast
//    quorum (all three acceptors) voted for it, so every member of Q did
//    (Q and the fast quorum intersect in Q): it is kept if both members of Q
//    hold it. One vote, or two different ones, means nothing was chosen in
//    k; and nothing was chosen at the slot before k either, because fast
//    rounds only open at slots where nothing was (a coordinator votes fast
//    only past the slots its last classic round or installation covered).
//    So the slot is free.
// Free slots below the last kept one become no-ops; every other reported
// request that is neither chosen (in the coordinator's log) nor kept goes
// after the last kept slot, once, oldest slot first. The result is proposed
// as the new view's installation (a classic round).
//
// Example:
//   absl::StatusOr<FpMerge> m = MergeFastPaxos(base, {mine, theirs}, latest);
//   if (m.ok()) Install(m->entries);  // slots base+1 ..
#ifndef DCTK_SPECULATIVE_PAXOS_FAST_PAXOS_MERGE_H_
#define DCTK_SPECULATIVE_PAXOS_FAST_PAXOS_MERGE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "absl/status/statusor.h"
#include "speculative_paxos/spaxos.pb.h"

namespace dctk::spaxos {

inline constexpr uint64_t kFpChosenBallot = UINT64_MAX;
// A no-op entry (a free slot below a kept one): this client id, request id =
// slot, empty op; it executes nothing and answers nobody.
inline constexpr uint64_t kFpNoOpClient = 0;

inline uint64_t FpBallot(uint64_t view, uint64_t round) { return view << 32 | round; }
inline uint64_t FpBallotView(uint64_t ballot) { return ballot >> 32; }
inline bool FpIsFastBallot(uint64_t ballot) {
  return ballot != kFpChosenBallot && (ballot & 1) == 0;
}

struct FpMerge {
  std::vector<Entry> entries;  // slots base+1 .. in order (slot set)
  uint64_t kept = 0;           // slots whose value may have been chosen
  uint64_t noops = 0;          // free slots below a kept one
  // Kept values that repeat a request already placed (or an older request
  // of its client): the invariants above exclude it; made no-ops, counted.
  uint64_t conflicts = 0;
};

// `reports`: per member of Q (exactly two), its entries at slots > base by
// slot, each with its ballot. `latest_request(client)`: the client's newest
// request id in the chosen log up to base. Errors: not two reports, or two
// different values in one classic or chosen ballot at a slot.
absl::StatusOr<FpMerge> MergeFastPaxos(
    uint64_t base, const std::vector<std::map<uint64_t, Entry>>& reports,
    const std::function<uint64_t(uint64_t)>& latest_request);

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_FAST_PAXOS_MERGE_H_
