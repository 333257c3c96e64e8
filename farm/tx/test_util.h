// Helpers for farm/tx tests: an in-process shm cluster and small object codecs.
#ifndef DCTK_FARM_TX_TEST_UTIL_H_
#define DCTK_FARM_TX_TEST_UTIL_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "farm/core/address.h"
#include "farm/core/object.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/tx/local_cluster.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {

using ShmCluster = LocalCluster<fabric::ShmFabric>;

inline std::unique_ptr<ShmCluster> MakeShmCluster(LocalClusterOptions o = {}) {
  auto c = ShmCluster::Create(o, [](fabric::MachineId id) {
    return fabric::ShmFabric::Create({.machine_id = id});
  });
  if (!c.ok()) {
    fprintf(stderr, "cluster: %s\n", c.status().ToString().c_str());
    abort();
  }
  return std::move(*c);
}

inline std::string U64(uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }
inline uint64_t AsU64(const std::string& s) {
  uint64_t v = 0;
  std::memcpy(&v, s.data(), std::min<size_t>(8, s.size()));
  return v;
}

// The first pair of regions (x, y) of the cluster's table for which `fits`
// holds, as copies; nullopt if none does.
inline absl::optional<std::pair<RegionInfo, RegionInfo>> RegionPair(
    const ShmCluster& c, const std::function<bool(const RegionInfo&, const RegionInfo&)>& fits) {
  const std::vector<RegionInfo> regions = c.table().All();
  for (const RegionInfo& x : regions) {
    for (const RegionInfo& y : regions) {
      if (fits(x, y)) return std::make_pair(x, y);
    }
  }
  return absl::nullopt;
}

// Two 8-byte counters at 0, allocated in one transaction near the starts of
// regions `ra` and `rb` (at their primaries).
inline std::pair<GlobalAddress, GlobalAddress> CountersIn(TxClient<fabric::ShmFabric>& client,
                                                          RegionId ra, RegionId rb) {
  auto tx = client.Begin();
  absl::StatusOr<GlobalAddress> a = tx.Alloc(8, GlobalAddress(ra, 0));
  absl::StatusOr<GlobalAddress> b = tx.Alloc(8, GlobalAddress(rb, 0));
  EXPECT_TRUE(a.ok() && b.ok()) << a.status() << " " << b.status();
  if (!a.ok() || !b.ok()) return {};
  EXPECT_TRUE(tx.Write(*a, U64(0)).ok());
  EXPECT_TRUE(tx.Write(*b, U64(0)).ok());
  EXPECT_TRUE(tx.Commit().ok());
  return {*a, *b};
}

// Both 8-byte counters at `a` and `b` + 1 in one transaction.
inline absl::Status Increment(TxClient<fabric::ShmFabric>& client, GlobalAddress a,
                              GlobalAddress b) {
  auto tx = client.Begin();
  absl::StatusOr<std::string> va = tx.Read(a, 8);
  if (!va.ok()) return va.status();
  absl::StatusOr<std::string> vb = tx.Read(b, 8);
  if (!vb.ok()) return vb.status();
  absl::Status s = tx.Write(a, U64(AsU64(*va) + 1));
  if (s.ok()) s = tx.Write(b, U64(AsU64(*vb) + 1));
  if (s.ok()) s = tx.Commit();
  return s;
}

// A bank transfer of 1 from `from` to `to` that also reads `audit`, an
// account it does not write, so its VALIDATE makes a one-sided read (Increment
// validates nothing: it writes all it reads). `id`, if set, gets its TxId.
template <typename F>
absl::Status Transfer(TxClient<F>& client, GlobalAddress from, GlobalAddress to,
                      GlobalAddress audit, TxId* id = nullptr) {
  auto tx = client.Begin();
  if (id != nullptr) *id = tx.id();
  absl::StatusOr<std::string> seen = tx.Read(audit, 8);
  if (!seen.ok()) return seen.status();
  absl::StatusOr<std::string> f = tx.Read(from, 8);
  if (!f.ok()) return f.status();
  absl::StatusOr<std::string> t = tx.Read(to, 8);
  if (!t.ok()) return t.status();
  absl::Status s = tx.Write(from, U64(AsU64(*f) - 1));
  if (s.ok()) s = tx.Write(to, U64(AsU64(*t) + 1));
  if (s.ok()) s = tx.Commit();
  return s;
}

struct Balances {
  uint64_t from = 0, to = 0, audit = 0;
};

// The three accounts of Transfer, read in one (read-only) transaction.
template <typename F>
absl::StatusOr<Balances> ReadBalances(TxClient<F>& client, GlobalAddress from, GlobalAddress to,
                                      GlobalAddress audit) {
  auto tx = client.Begin();
  absl::StatusOr<std::string> f = tx.Read(from, 8);
  if (!f.ok()) return f.status();
  absl::StatusOr<std::string> t = tx.Read(to, 8);
  if (!t.ok()) return t.status();
  absl::StatusOr<std::string> a = tx.Read(audit, 8);
  if (!a.ok()) return a.status();
  if (absl::Status s = tx.Commit(); !s.ok()) return s;
  return Balances{AsU64(*f), AsU64(*t), AsU64(*a)};
}

// A protocol step as a gtest parameter name ("COMMITBACKUP").
inline std::string StepTestName(CommitStep step) {
  std::string name = CommitStepName(step);
  name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
  return name;
}

// One replica's copy of an 8-byte counter object: its payload and whether
// its header's lock bit is set. `obj`: the copy's ObjectBytes(8) bytes (in
// place, or fetched with a one-sided read, as farmd tests do).
struct CounterCopy {
  uint64_t value = 0;
  bool locked = false;
};
inline CounterCopy CounterCopyAt(const uint8_t* obj) {
  CounterCopy c;
  c.locked = IsLocked(__atomic_load_n(reinterpret_cast<const uint64_t*>(obj), __ATOMIC_ACQUIRE));
  ExtractPayload(obj, &c.value, sizeof(c.value));
  return c;
}

// Each live replica's (current table) copy of the 8-byte counter at `addr`,
// by machine (read in place: only when no commit runs).
template <typename F>
std::map<fabric::MachineId, CounterCopy> CounterCopies(LocalCluster<F>& c, GlobalAddress addr) {
  std::map<fabric::MachineId, CounterCopy> copies;
  const RegionInfo region = *c.table().Lookup(addr.region());
  for (const Replica& r : region.replicas) {
    absl::StatusOr<uint8_t*> obj = c.machine(r.machine).participant().ObjectAt(addr);
    EXPECT_TRUE(obj.ok()) << obj.status();
    copies[r.machine] = obj.ok() ? CounterCopyAt(*obj) : CounterCopy{};
  }
  return copies;
}

// The live replicas whose copy of the object at `addr` is locked: after
// recovery and every commit done, none may be.
template <typename F>
std::vector<fabric::MachineId> LockedAt(LocalCluster<F>& c, GlobalAddress addr) {
  std::vector<fabric::MachineId> locked;
  for (auto [m, copy] : CounterCopies(c, addr)) {
    if (copy.locked) locked.push_back(m);
  }
  return locked;
}

// Each live replica's copy of the 8-byte counter at `addr`, by machine.
template <typename F>
std::map<fabric::MachineId, uint64_t> CopiesAt(LocalCluster<F>& c, GlobalAddress addr) {
  std::map<fabric::MachineId, uint64_t> copies;
  for (auto [m, copy] : CounterCopies(c, addr)) copies[m] = copy.value;
  return copies;
}

// What `machines` say of a transaction (OUTCOME, `ask(m)` their replies):
// committed if one applied or remembers it, aborted if one remembers that;
// unknown if none holds any trace of it (after recovery: no record survived,
// it cannot have committed). Two machines disagreeing is a test failure.
template <typename Ask>
Outcome AgreedOutcome(const std::vector<fabric::MachineId>& machines, Ask ask) {
  Outcome said = Outcome::kUnknown;
  for (fabric::MachineId m : machines) {
    const Reply r = ask(m);
    const auto o = static_cast<Outcome>(r.value);
    if (!StatusOf(r).ok() || o == Outcome::kUnknown) continue;
    EXPECT_TRUE(said == Outcome::kUnknown || said == o) << "machine " << m << " disagrees on the outcome";
    said = o;
  }
  return said;
}

// The counters at `a` and `b`, read in one transaction (99 for a failed read).
inline std::pair<uint64_t, uint64_t> Values(TxClient<fabric::ShmFabric>& client, GlobalAddress a,
                                            GlobalAddress b) {
  auto tx = client.Begin();
  absl::StatusOr<std::string> va = tx.Read(a, 8), vb = tx.Read(b, 8);
  EXPECT_TRUE(va.ok() && vb.ok()) << va.status() << " " << vb.status();
  return {va.ok() ? AsU64(*va) : 99, vb.ok() ? AsU64(*vb) : 99};
}

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_TEST_UTIL_H_
