// The Fast Paxos coordinator-change rule (fast_paxos_merge.h), case by case.
#include "speculative_paxos/fast_paxos_merge.h"

#include <string>

#include "gtest/gtest.h"

namespace dctk::spaxos {
namespace {

// A report entry: request (client, id) accepted at `slot` in `ballot`.
Entry E(uint64_t slot, uint64_t client, uint64_t id, uint64_t ballot) {
  Entry e;
  e.set_slot(slot);
  e.set_client_id(client);
  e.set_request_id(id);
  e.set_op("op");
  e.set_ballot(ballot);
  return e;
}

using Report = std::map<uint64_t, Entry>;
Report R(std::initializer_list<Entry> entries) {
  Report r;
  for (const Entry& e : entries) r[e.slot()] = e;
  return r;
}

uint64_t NoneChosen(uint64_t) { return 0; }

// "client.id" per slot, "-" for a no-op.
std::string Slots(const FpMerge& m) {
  std::string s;
  for (const Entry& e : m.entries) {
    if (!s.empty()) s += " ";
    s += e.client_id() == kFpNoOpClient
             ? "-"
             : std::to_string(e.client_id()) + "." + std::to_string(e.request_id());
  }
  return s;
}

const uint64_t kFast = FpBallot(0, 0), kClassic = FpBallot(0, 1), kFast2 = FpBallot(0, 2);

struct Case {
  const char* name;
  uint64_t base;
  Report a, b;
  const char* want;  // slots base+1 ..
  uint64_t kept, noops;
};

TEST(FastPaxosMergeTest, Cases) {
  const Case cases[] = {
      {"both voted the same: may be chosen, kept",
       0, R({E(1, 1, 1, kFast), E(2, 2, 1, kFast)}), R({E(1, 1, 1, kFast), E(2, 2, 1, kFast)}),
       "1.1 2.1", 2, 0},
      {"a collision in the fast round: free, requests after the kept ones",
       0, R({E(1, 1, 1, kFast), E(2, 2, 1, kFast)}), R({E(1, 2, 1, kFast), E(2, 1, 1, kFast)}),
       "1.1 2.1", 0, 0},
      {"one fast vote alone was not chosen (the fast quorum is all three)",
       0, R({E(1, 1, 1, kFast)}), R({}), "1.1", 0, 0},
      {"a classic value beats fast votes (the coordinator and one acceptor may have chosen it)",
       0, R({E(1, 3, 1, kClassic), E(2, 1, 1, kFast)}), R({E(1, 1, 1, kFast), E(2, 3, 5, kFast)}),
       "3.1 1.1 3.5", 1, 0},
      {"a free slot below a kept one becomes a no-op",
       0, R({E(1, 1, 1, kFast), E(2, 2, 1, kClassic)}), R({E(1, 3, 1, kFast)}),
       "- 2.1 1.1 3.1", 1, 1},
      {"a classic value kept; both voted alike in a newer fast ballot: kept",
       0, R({E(1, 1, 1, kClassic), E(2, 2, 1, kFast2)}), R({E(2, 2, 1, kFast2)}),
       "1.1 2.1", 2, 0},
      {"chosen entries (a reporter's log) are kept",
       4, R({E(5, 1, 1, kFpChosenBallot), E(6, 2, 1, kFast)}), R({E(6, 3, 1, kFast)}),
       "1.1 2.1 3.1", 1, 0},
      {"a request already chosen before the base is dropped",
       0, R({E(1, 9, 1, kFast)}), R({E(1, 9, 1, kFast)}), "-", 0, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<FpMerge> m = MergeFastPaxos(
        c.base, {c.a, c.b}, [](uint64_t client) { return client == 9 ? uint64_t{1} : 0; });
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(Slots(*m), c.want);
    EXPECT_EQ(m->kept, c.kept);
    EXPECT_EQ(m->noops, c.noops);
    for (size_t i = 0; i < m->entries.size(); ++i) {
      EXPECT_EQ(m->entries[i].slot(), c.base + 1 + i);
      EXPECT_EQ(m->entries[i].ballot(), 0u);
    }
  }
}

TEST(FastPaxosMergeTest, BrokenInvariantsAreErrors) {
  EXPECT_FALSE(MergeFastPaxos(0, {R({})}, NoneChosen).ok());
  EXPECT_FALSE(MergeFastPaxos(0, {R({E(1, 1, 1, kClassic)}), R({E(1, 2, 1, kClassic)})},
                              NoneChosen)
                   .ok());
  EXPECT_FALSE(MergeFastPaxos(0, {R({E(1, 1, 1, kFpChosenBallot)}),
                                  R({E(1, 2, 1, kFpChosenBallot)})},
                              NoneChosen)
                   .ok());
}

}  // namespace
}  // namespace dctk::spaxos
