// Transaction recovery after a configuration change (FaRM SOSP'15, section 5,
// simplified to a blocking recovery): when a machine fails, or a coordinator
// dies mid-commit, the surviving participants stop accepting protocol
// requests, report every transaction they hold records for (LOCK at a
// primary, COMMIT-BACKUP at a backup), and each transaction is decided:
//
//   commit  iff some participant already applied or decided it committed
//           (COMMIT-PRIMARY happened, so every backup had logged it), or
//           some COMMIT-BACKUP record survives (validation passed) AND for
//           every region the transaction writes some surviving record holds
//           that region's entries;
//   abort   otherwise (no backup logged it, so it was never reported).
//
// A coordinator reports success only after every backup logged its entries,
// so with at most f failures per region every reported commit is decided
// commit. Committed entries are installed at every surviving replica (new
// primaries included) at their exact versions (idempotent; a backup installs
// them behind the records it logged earlier with another size class in the
// same heap blocks, so a promoted backup's heap sees frees before the
// allocations that reused their blocks, participant.h), aborted ones
// release their locks; outcomes are remembered so that a coordinator cut off
// mid-commit learns what happened (OUTCOME). Then the participants resume in
// the new configuration.
//
// Lock recovery (FaRM's section 5.3) comes before the new configuration is
// installed, so before a promoted backup can serve a one-sided read: each
// backup locks what the COMMIT-BACKUP records it has not applied write
// (when recovery begins), and every participant then gets the decided
// commits and locks what it holds no record of (Participant::RecoverLocks;
// with f >= 2 a promoted backup may lack a record another backup has). So
// while the decisions are applied participant by participant, an object a
// committed transaction writes is either at its new state or locked.
//
// Per region (FaRM's parallel recovery keeps serving what a failure did not
// touch): RecoverRegions moves every live participant to the new
// configuration at once but stops only the regions whose replicas changed
// (ChangedRegions); transactions of the new configuration on every other
// region commit while those recover. The transactions of older
// configurations are decided exactly as above and resolved, then the
// recovering regions serve again. RecoverTransactions is the blocking form
// (every region stops), used by a whole-cluster restart.
//
// Example:
//   RecoveryReport r = RecoverTransactions(live_participants, new_config_id,
//                                          [&] { table.Upsert(...promoted regions...); });
//   RecoveryReport s = RecoverRegions(live_participants, new_config_id, ChangedRegions(before, after),
//                                     [&] { ...install... });
#ifndef DCTK_FARM_TX_RECOVERY_H_
#define DCTK_FARM_TX_RECOVERY_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "farm/cm/cm.pb.h"
#include "farm/tx/participant.h"

namespace dctk::farm::tx {

struct RecoveryReport {
  int in_flight = 0;   // transactions with surviving records
  int committed = 0;
  int aborted = 0;
  absl::Duration duration;
};

// The decision rule above; `committed` are the transactions some participant
// already knows as committed.
std::vector<Resolution> DecideInFlight(const std::vector<InFlightRecord>& records,
                                       const absl::flat_hash_set<TxId>& committed);

// Blocks `live`, collects and decides, recovers the locks, calls `install_config` (the new
// configuration takes effect: promoted primaries in the region table),
// runs `while_recovering` (tests, benchmarks: every participant still
// blocked), resolves every transaction at every live participant and
// resumes them at `new_config`.
RecoveryReport RecoverTransactions(const std::vector<Participant*>& live, uint64_t new_config,
                                   const std::function<void()>& install_config,
                                   const std::function<void()>& while_recovering = nullptr);

// Regions whose replica list (machines and their order) differs
// between the two configurations, or that exist in only one: what a
// reconfiguration from `before` to `after` must recover.
std::vector<RegionId> ChangedRegions(const cm::Configuration& before, const cm::Configuration& after);

// Recovery of the `recovering` regions only: every live participant
// follows `new_config` at once (BeginRecovery), the records of older
// configurations are collected and decided, the locks recovered,
// `install_config` runs (the coordinators may start transactions in the new
// configuration: on the other regions they commit at once),
// `while_recovering` runs (a test's window: the
// recovering regions still refuse requests), each decision is resolved at
// every live participant, their older reservations are dropped, and the
// regions serve again.
RecoveryReport RecoverRegions(const std::vector<Participant*>& live, uint64_t new_config,
                              const std::vector<RegionId>& recovering, const std::function<void()>& install_config,
                              const std::function<void()>& while_recovering = nullptr);

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_RECOVERY_H_
