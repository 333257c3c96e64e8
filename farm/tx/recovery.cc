#include "farm/tx/recovery.h"

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"

namespace dctk::farm::tx {

std::vector<Resolution> DecideInFlight(const std::vector<InFlightRecord>& records,
                                       const absl::flat_hash_set<TxId>& committed) {
  struct Seen {
    bool commit_known = false;
    bool commit_backup = false;
    std::vector<uint32_t> regions;
    absl::flat_hash_set<uint32_t> held;
    absl::btree_map<uint64_t, WriteEntry> entries;  // by address
  };
  absl::btree_map<TxId, Seen> txs;
  for (const InFlightRecord& r : records) {
    Seen& s = txs[r.tx];
    s.commit_known |= r.primary_committed || committed.contains(r.tx);
    s.commit_backup |= r.type == LogType::kCommitBackup;
    if (s.regions.empty()) s.regions = r.request.regions;
    for (const WriteEntry& e : r.request.entries) {
      s.held.insert(e.addr.region());
      WriteEntry& have = s.entries[e.addr.raw()];
      if (have.addr.is_null() || have.slot_bytes == 0) have = e;
    }
  }
  std::vector<Resolution> out;
  for (auto& [tx, s] : txs) {
    bool all_held = true;
    for (uint32_t region : s.regions) all_held &= s.held.contains(region);
    Resolution r{tx, s.commit_known || (s.commit_backup && all_held), {}};
    if (r.commit) {
      for (auto& [addr, e] : s.entries) r.entries.push_back(std::move(e));
    }
    out.push_back(std::move(r));
  }
  return out;
}

namespace {

// Gathers the in-flight records `in_flight` returns at every live participant and
// decides each transaction: committed wherever some participant knows it committed.
std::vector<Resolution> DecideAt(
    const std::vector<Participant*>& live,
    const std::function<std::vector<InFlightRecord>(Participant*)>& in_flight) {
  std::vector<InFlightRecord> records;
  for (Participant* p : live) {
    std::vector<InFlightRecord> mine = in_flight(p);
    records.insert(records.end(), std::make_move_iterator(mine.begin()), std::make_move_iterator(mine.end()));
  }
  absl::flat_hash_set<TxId> committed;
  for (const InFlightRecord& r : records) {
    for (Participant* p : live) {
      if (p->Known(r.tx) == Outcome::kCommitted) committed.insert(r.tx);
    }
  }
  return DecideInFlight(records, committed);
}

// Lock recovery of the decided commits at every live participant, before
// the new configuration is installed (so before any promoted backup serves):
// a backup that holds no record of one takes the decided entries as its own
// and locks them (Participant::RecoverLocks).
void RecoverLocksAt(const std::vector<Participant*>& live,
                    const std::vector<Resolution>& decisions) {
  std::vector<Resolution> commits;
  for (const Resolution& d : decisions) {
    if (d.commit) commits.push_back(d);
  }
  if (commits.empty()) return;
  for (Participant* p : live) {
    absl::Status s = p->RecoverLocks(commits);
    CHECK(s.ok()) << s;  // the decisions come from these participants' own records
  }
}

// Applies every decision at every live participant and counts them.
RecoveryReport ResolveAt(const std::vector<Participant*>& live,
                         const std::vector<Resolution>& decisions) {
  RecoveryReport report;
  for (const Resolution& d : decisions) {
    for (Participant* p : live) p->Resolve(d);
    ++(d.commit ? report.committed : report.aborted);
  }
  report.in_flight = static_cast<int>(decisions.size());
  return report;
}

}  // namespace

RecoveryReport RecoverTransactions(const std::vector<Participant*>& live, uint64_t new_config,
                                   const std::function<void()>& install_config,
                                   const std::function<void()>& while_recovering) {
  const absl::Time start = absl::Now();
  for (Participant* p : live) p->Block();
  std::vector<Resolution> decisions = DecideAt(live, [](Participant* p) { return p->InFlight(); });
  RecoverLocksAt(live, decisions);
  install_config();
  if (while_recovering) while_recovering();
  RecoveryReport report = ResolveAt(live, decisions);
  for (Participant* p : live) {
    p->ReleaseAllReservations();
    p->Resume(new_config);
  }
  report.duration = absl::Now() - start;
  return report;
}

std::vector<RegionId> ChangedRegions(const cm::Configuration& before, const cm::Configuration& after) {
  auto key = [](const cm::Region& r) {
    std::string k = r.lost() ? "lost" : "";
    // Copying -> caught up changes nothing a coordinator does.
    for (const cm::Replica& rep : r.replicas()) absl::StrAppend(&k, rep.machine(), ",");
    return k;
  };
  absl::btree_map<RegionId, std::string> was;
  for (const cm::Region& r : before.regions()) was[r.id()] = key(r);
  absl::btree_set<RegionId> changed;
  for (const cm::Region& r : after.regions()) {
    auto it = was.find(r.id());
    if (it == was.end() || it->second != key(r)) changed.insert(r.id());
    if (it != was.end()) was.erase(it);
  }
  for (const auto& [id, k] : was) changed.insert(id);
  return {changed.begin(), changed.end()};
}

RecoveryReport RecoverRegions(const std::vector<Participant*>& live, uint64_t new_config,
                              const std::vector<RegionId>& recovering, const std::function<void()>& install_config,
                              const std::function<void()>& while_recovering) {
  const absl::Time start = absl::Now();
  // From here on no participant admits a request of an older configuration,
  // so the records collected below are all there will be of those.
  for (Participant* p : live) p->BeginRecovery(new_config, recovering);
  std::vector<Resolution> decisions =
      DecideAt(live, [new_config](Participant* p) { return p->InFlight(new_config); });
  RecoverLocksAt(live, decisions);
  install_config();
  if (while_recovering) while_recovering();
  RecoveryReport report = ResolveAt(live, decisions);
  for (Participant* p : live) {
    p->ReleaseReservationsBefore(new_config);
    p->FinishRecovery(recovering);
  }
  report.duration = absl::Now() - start;
  return report;
}

}  // namespace dctk::farm::tx
