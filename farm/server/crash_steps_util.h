// farmd_crash_steps_test's view of a cluster from its configuration: where
// the bank transfer's accounts go (a Placement of regions a, b and r fitting
// the crash matrix's roles), which commit steps message a machine, the
// OUTCOME the storage machines agree on, and every copy of a counter read
// one-sided from this process. For tests (see farm/tx/crash_cases.h for the
// matrix's rows).
//
// Example:
//   absl::optional<Placement> p = FindPlacement(client.configuration());
//   bool reached = StepReaches(*p, tx::CommitStep::kCommitBackup, p->a.replicas(1).machine());
//   tx::Outcome said = AskOutcome(client, id);
//   fabric::MachineId reader = 60;
//   auto copies = CopiesOf<ShmFabric>(client.configuration(), addr, &reader);
#ifndef DCTK_FARM_SERVER_CRASH_STEPS_UTIL_H_
#define DCTK_FARM_SERVER_CRASH_STEPS_UTIL_H_

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "farm/client/farm_client.h"
#include "farm/cm/cm.pb.h"
#include "farm/core/address.h"
#include "farm/core/object.h"
#include "farm/fabric/fabric.h"
#include "farm/server/copy_reader.h"
#include "farm/tx/crash_cases.h"
#include "farm/tx/test_util.h"
#include "farm/tx/wire.h"
#include "gtest/gtest.h"

namespace dctk::farm::server::crash_steps {

// Where the transfer's accounts live: `from` in a, `to` in b, `audit` in a or
// (when r's primary is the victim) in r. a's primary holds no copy of b, a's
// first backup is not b's primary, and r's primary holds no copy of a or b.
struct Placement {
  cm::Region a, b, r;
};

// Whether `m` holds a copy of `region`.
inline bool Holds(const cm::Region& region, fabric::MachineId m) {
  return std::any_of(region.replicas().begin(), region.replicas().end(),
                     [m](const cm::Replica& rep) { return rep.machine() == m; });
}

// Whether the crash matrix's `first` column applies (a's primary before b's,
// a's first backup before every other backup of a or b); otherwise its
// `last` one, never stricter (tx::LastNeverStricter).
inline bool VictimFirst(const Placement& p) {
  std::vector<fabric::MachineId> other_backups;
  for (const cm::Region* x : {&p.a, &p.b}) {
    for (int i = 1; i < x->replicas_size(); ++i) {
      if (x->replicas(i).machine() != p.a.replicas(1).machine()) {
        other_backups.push_back(x->replicas(i).machine());
      }
    }
  }
  return tx::VictimFirst(p.a.replicas(0).machine(), p.b.replicas(0).machine(),
                         p.a.replicas(1).machine(), other_backups);
}

// A placement, preferring one where a's messages come first (the crash
// matrix pins more outcomes then).
inline absl::optional<Placement> FindPlacement(const cm::Configuration& c) {
  absl::optional<Placement> found;
  for (const cm::Region& a : c.regions()) {
    for (const cm::Region& b : c.regions()) {
      const fabric::MachineId pa = a.replicas(0).machine(), ba = a.replicas(1).machine();
      if (a.id() == b.id() || Holds(b, pa) || b.replicas(0).machine() == ba) continue;
      for (const cm::Region& r : c.regions()) {
        const fabric::MachineId pr = r.replicas(0).machine();
        if (Holds(a, pr) || Holds(b, pr)) continue;
        const Placement p{a, b, r};
        if (VictimFirst(p)) return p;
        if (!found.has_value()) found = p;
      }
    }
  }
  return found;
}

// Whether `step` sends `victim` a message (VALIDATE sends none: one-sided reads).
inline bool StepReaches(const Placement& p, tx::CommitStep step, fabric::MachineId victim) {
  const fabric::MachineId pa = p.a.replicas(0).machine(), pb = p.b.replicas(0).machine();
  switch (step) {
    case tx::CommitStep::kLock:
    case tx::CommitStep::kCommitPrimary:
      return victim == pa || victim == pb;
    case tx::CommitStep::kCommitBackup:
      return victim != pa && victim != pb && (Holds(p.a, victim) || Holds(p.b, victim));
    case tx::CommitStep::kTruncate:
      return Holds(p.a, victim) || Holds(p.b, victim);
    case tx::CommitStep::kValidate:
      return false;
  }
  return false;
}

// OUTCOME of `id` at every storage machine of the client's configuration,
// over the client's rings.
template <typename F>
tx::Outcome AskOutcome(client::FarmClient<F>& c, tx::TxId id) {
  std::vector<fabric::MachineId> machines;
  for (const cm::Machine& m : c.configuration().machines()) {
    if (!m.client()) machines.push_back(m.id());
  }
  const std::string ask = tx::Encode(tx::TxRequest{c.config_id(), id});
  return tx::AgreedOutcome(machines, [&](fabric::MachineId m) {
    absl::StatusOr<std::string> r = c.tx().endpoint().Call(
        m, tx::kOutcome,
        absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(ask.data()), ask.size()),
        absl::Seconds(2));
    absl::StatusOr<tx::Reply> reply =
        r.ok() ? tx::DecodeReply(*r) : absl::StatusOr<tx::Reply>(r.status());
    return reply.ok() ? *reply : tx::ReplyFrom(reply.status());
  });
}

// Each complete copy (copying ones skipped) of the 8-byte counter at `addr`
// in configuration `c`, read one-sided from this process by fabric machine
// `*reader` (a fresh id per copy) over fabric F.
template <typename F>
std::map<fabric::MachineId, tx::CounterCopy> CopiesOf(const cm::Configuration& c,
                                                      GlobalAddress addr,
                                                      fabric::MachineId* reader) {
  std::map<fabric::MachineId, tx::CounterCopy> copies;
  for (const cm::Region& region : c.regions()) {
    if (region.id() != addr.region()) continue;
    for (int i = 0; i < region.replicas_size(); ++i) {
      if (region.replicas(i).copying() || region.replicas(i).key() == 0) continue;
      absl::StatusOr<std::unique_ptr<CopyReader<F>>> r =
          CopyReader<F>::Connect((*reader)++, c, region, i);
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) continue;
      alignas(64) uint8_t obj[ObjectBytes(8)];
      const absl::Status s = (*r)->Read(addr.offset(), obj, sizeof(obj));
      EXPECT_TRUE(s.ok()) << s;
      if (s.ok()) copies[region.replicas(i).machine()] = tx::CounterCopyAt(obj);
    }
  }
  return copies;
}

}  // namespace dctk::farm::server::crash_steps

#endif  // DCTK_FARM_SERVER_CRASH_STEPS_UTIL_H_
