// Lock recovery at a promoted backup (FaRM SOSP'15, section 5.3): while
// recovery applies a commit it decided, participant by participant, the
// backup promoted to primary of a region the transaction writes never serves
// that region's objects at their state from before the commit. With f = 1
// the promoted backup holds the transaction's COMMIT-BACKUP record; with
// f = 2 the coordinator may have reached another backup only, and the
// promoted one learns the decided entries from recovery. An object the
// transaction allocates reads as locked there too (readers retry), not as
// "no object allocated".
#include <tuple>

#include "absl/strings/str_cat.h"
#include "farm/core/object.h"
#include "farm/tx/recovery.h"
#include "farm/tx/test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

using Client = TxClient<fabric::ShmFabric>;

struct Promotion {
  uint32_t replicas;  // f + 1
  const char* name;
};

class PromotedBackupTest : public ::testing::TestWithParam<Promotion> {};

uint64_t HeaderAt(ShmCluster& c, fabric::MachineId m, GlobalAddress addr) {
  absl::StatusOr<uint8_t*> obj = c.machine(m).participant().ObjectAt(addr);
  EXPECT_TRUE(obj.ok()) << "at machine " << m << ": " << obj.status();
  return obj.ok() ? __atomic_load_n(reinterpret_cast<uint64_t*>(*obj), __ATOMIC_ACQUIRE) : 0;
}

// A transaction increments a (in region A) and b (in region B, another
// primary) and allocates n in A; its coordinator stops mid-commit and A's
// primary fails. f = 1: the coordinator stops before A's COMMIT-PRIMARY,
// after B's primary applied its own (readers see b's new value). f = 2: it
// stops before the COMMIT-BACKUP to the backup that will be promoted, after
// A's other backup logged it (recovery commits: a COMMIT-BACKUP survives
// and B's primary holds B's entries).
TEST_P(PromotedBackupTest, ServesNoStateFromBeforeTheCommitRecoveryDecided) {
  LocalClusterOptions o;
  o.machines = 4;
  o.regions = 8;
  o.replicas = GetParam().replicas;
  o.client.rpc_timeout = absl::Milliseconds(500);
  o.client.outcome_timeout = absl::Seconds(20);
  auto c = MakeShmCluster(o);
  // Messages of one step go out in machine order.
  const auto pair = RegionPair(*c, [&](const RegionInfo& x, const RegionInfo& y) {
    return o.replicas == 2 ? y.primary().machine < x.primary().machine
                           : x.replicas[2].machine < x.replicas[1].machine &&
                                 y.primary().machine != x.primary().machine;
  });
  ASSERT_TRUE(pair.has_value()) << "the placement gives no pair of regions this test needs";
  const RegionInfo* ra = &pair->first;
  const RegionInfo* rb = &pair->second;
  const fabric::MachineId victim = ra->primary().machine;
  const fabric::MachineId promoted = ra->replicas[1].machine;
  fabric::MachineId coordinator = 1;
  while (coordinator == victim) ++coordinator;
  Client& client = c->client(coordinator);
  GlobalAddress a, b;
  std::tie(a, b) = CountersIn(client, ra->id, rb->id);
  client.options().crash_before = [&](CommitStep step, fabric::MachineId target) {
    return o.replicas == 2 ? step == CommitStep::kCommitPrimary && target == victim
                           : step == CommitStep::kCommitBackup && target == promoted;
  };
  GlobalAddress n;
  {
    auto tx = client.Begin();
    absl::StatusOr<std::string> va = tx.Read(a, 8), vb = tx.Read(b, 8);
    ASSERT_TRUE(va.ok() && vb.ok());
    absl::StatusOr<GlobalAddress> fresh = tx.Alloc(8, GlobalAddress(ra->id, 0));
    ASSERT_TRUE(fresh.ok()) << fresh.status();
    n = *fresh;
    ASSERT_TRUE(tx.Write(n, U64(7)).ok());
    ASSERT_TRUE(tx.Write(a, U64(1)).ok());
    ASSERT_TRUE(tx.Write(b, U64(1)).ok());
    absl::Status s = tx.Commit();
    ASSERT_TRUE(absl::IsCancelled(s)) << s;
  }
  client.options().crash_before = nullptr;
  c->Kill(victim);
  client.options().max_locked_reads = 4;
  absl::StatusOr<RecoveryReport> r = c->Recover({victim}, [&] {
    ASSERT_EQ(c->table().Lookup(ra->id)->primary().machine, promoted);
    for (GlobalAddress x : {a, n}) {
      EXPECT_TRUE(IsLocked(HeaderAt(*c, promoted, x)))
          << x.ToString() << " at machine " << promoted;
      auto tx = client.Begin();
      absl::StatusOr<std::string> v = tx.Read(x, 8);
      EXPECT_TRUE(absl::IsAborted(v.status()))
          << x.ToString() << ": "
          << (v.ok() ? absl::StrCat("read ", AsU64(*v)) : v.status().ToString());
    }
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->committed, 1);
  client.options().max_locked_reads = 256;
  EXPECT_EQ(Values(client, a, b), std::make_pair(uint64_t{1}, uint64_t{1}));
  {
    auto tx = client.Begin();
    absl::StatusOr<std::string> v = tx.Read(n, 8);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(AsU64(*v), 7u);
  }
  const RegionInfo after = *c->table().Lookup(ra->id);
  for (const Replica& rep : after.replicas) {
    for (GlobalAddress x : {a, n}) {
      const uint64_t header = HeaderAt(*c, rep.machine, x);
      EXPECT_FALSE(IsLocked(header)) << x.ToString() << " at machine " << rep.machine;
      EXPECT_TRUE(IsAllocated(header)) << x.ToString() << " at machine " << rep.machine;
    }
  }
  ASSERT_TRUE(Increment(client, a, b).ok());
  EXPECT_EQ(Values(client, a, b), std::make_pair(uint64_t{2}, uint64_t{2}));
}

INSTANTIATE_TEST_SUITE_P(F, PromotedBackupTest,
                         ::testing::Values(Promotion{2, "OneBackupWithTheRecord"},
                                           Promotion{3, "TwoBackupsThePromotedOneWithout"}),
                         [](const auto& info) { return std::string(info.param.name); });

// RecoverLocks refuses what no recovery decides, naming the transaction and
// the entry, and keeps nothing of the request.
TEST(RecoverLocksTest, BadDecisionsAreRefusedWhole) {
  auto c = MakeShmCluster();
  const RegionInfo region = c->table().All().front();
  Participant& p = c->machine(region.replicas[1].machine).participant();
  const WriteEntry fine{GlobalAddress(region.id, 0), 1, EntryKind::kWrite, 64, "x"};
  struct Case {
    WriteEntry bad;
    bool commit;
    std::string says;
  } cases[] = {
      {fine, false, "transaction 9: not a decided commit"},
      {{GlobalAddress(region.id, 1 << 20), 0, EntryKind::kBlockMark, 64, ""}, true, "block mark"},
      {{GlobalAddress(region.id, 64), 0, EntryKind::kAlloc, 100, "y"},
       true,
       "100-byte slots: not a slot size"},
      {{GlobalAddress(region.id, static_cast<uint32_t>(region.size - 64)), 0, EntryKind::kAlloc,
        128, "y"},
       true,
       "no object of region"},
  };
  for (const Case& k : cases) {
    absl::Status s = p.RecoverLocks({{9, k.commit, {fine, k.bad}}});
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_NE(s.message().find(k.says), std::string::npos) << s;
    EXPECT_NE(s.message().find(absl::StrCat("machine ", region.replicas[1].machine)),
              std::string::npos)
        << s;
    EXPECT_TRUE(p.InFlight().empty()) << "a refused request left a record";
  }
}

}  // namespace
}  // namespace dctk::farm::tx
