// Randomized equivalence: for thousands of seeded random container sets, policies and
// changes (rules, selectors, services added/removed/renamed, host groups, multicast
// groups and dependencies on them, audit, whole new policies, with container events in
// between), the incremental update gives exactly
// what a full CompilePolicy gives, applies to the datapath as a full apply would, and
// CompileSlice gives exactly the slice of the full compile.
#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bastion/datapath/testing/fake_datapath.h"
#include "bastion/policy/apply.h"
#include "bastion/policy/compiler.h"
#include "bastion/policy/incremental.h"
#include "gtest/gtest.h"

namespace dctk::bastion {
namespace {

using testing::FakeDatapath;

class Gen {
 public:
  explicit Gen(uint32_t seed) : rng_(seed) {}
  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(int percent) { return Int(1, 100) <= percent; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) { return v[Int(0, static_cast<int>(v.size()) - 1)]; }

  ContainerInfo Container(uint32_t id) {
    static const std::vector<std::string> kNames = {"web-1", "web-2", "web-10", "db",
                                                    "db-1",  "cache", "client", "client-2"};
    ContainerInfo c;
    c.id = id;
    c.name = Chance(70) ? Pick(kNames) : absl::StrCat("x", id);
    if (Chance(70)) c.labels["role"] = Pick<std::string>({"web", "db", "client"});
    if (Chance(50)) c.labels["zone"] = Pick<std::string>({"a", "b"});
    c.ip = Ipv4(10, 0, 1, static_cast<uint8_t>(id));
    c.mac.bytes = {2, 0, 0, 0, 1, static_cast<uint8_t>(id)};
    c.host_ifindex = Chance(80) ? static_cast<int>(100 + id) : 0;
    c.gateway = Pick<uint32_t>({0, Ipv4(10, 0, 0, 1), Ipv4(10, 0, 0, 2)});
    return c;
  }

  std::vector<ContainerInfo> Containers() {
    std::vector<uint32_t> ids(60);
    for (uint32_t i = 0; i < ids.size(); ++i) ids[i] = i + 1;
    std::shuffle(ids.begin(), ids.end(), rng_);
    std::vector<ContainerInfo> out;
    for (int i = Int(0, 24); i > 0; --i) out.push_back(Container(ids[i]));
    return out;
  }

  Selector Select() {
    static const std::vector<std::string> kNames = {"web-1", "web-*", "db", "db*", "client*",
                                                    "cache", "x1*", "nothing"};
    Selector s;
    if (Chance(50)) {
      for (int i = Int(1, 2); i > 0; --i) s.names.push_back(Pick(kNames));
    }
    if (s.names.empty() || Chance(30)) {
      s.labels["role"] = Pick<std::string>({"web", "db", "client"});
      if (Chance(30)) s.labels["zone"] = Pick<std::string>({"a", "b"});
    }
    return s;
  }

  std::vector<PortRange> Ports() {
    static const std::vector<PortRange> kPorts = {
        {6, 80, 80}, {6, 8000, 8010}, {17, 53, 53}, {6, 0, 65535},
        {1, 0, 65535}, {0, 0, 65535}, {17, 1000, 2000}, {6, 79, 81}};
    std::vector<PortRange> out;
    for (int i = Int(1, 3); i > 0; --i) out.push_back(Pick(kPorts));
    return out;
  }

  Peer RandomPeer(const Policy& p, bool inbound) {
    Peer peer;
    const int kind = Int(inbound ? 1 : 0, inbound ? 2 : 3);
    if (kind == 3 && !p.groups.empty()) {
      peer.kind = Peer::Kind::kGroup;
      peer.name = Pick(p.groups).name;
      return peer;
    }
    if (kind == 0 && !p.services.empty()) {
      peer.kind = Peer::Kind::kService;
      peer.name = Pick(p.services).name;
    } else if (kind <= 1) {
      peer.kind = Peer::Kind::kHost;
      peer.name = p.hosts.empty() || Chance(40) ? kGatewayHost : Pick(p.hosts).name;
    } else {
      peer.kind = Peer::Kind::kWorld;
    }
    peer.ports = Ports();
    if (Chance(25)) peer.except = {Pick<PortRange>({{6, 8005, 8005}, {17, 1500, 1600}, {6, 80, 80}})};
    return peer;
  }

  std::vector<uint32_t> Addresses() {
    std::vector<uint32_t> out;
    for (int i = Int(1, 2); i > 0; --i) {
      if (Chance(8)) {
        out.push_back(Pick<uint32_t>({Ipv4(10, 0, 0, 1), Ipv4(10, 0, 1, 5)}));  // conflicts
      } else {
        out.push_back(Ipv4(192, 0, 2, static_cast<uint8_t>(Int(1, 200))));
      }
    }
    return out;
  }

  GroupDef NewGroup() {
    return {.name = absl::StrCat("g", next_name_++),
            .address = Ipv4(239, 7, 0, static_cast<uint8_t>(Int(1, 250))),
            .port = static_cast<uint16_t>(Int(7000, 7003)),
            .sequenced = Chance(70),
            .members = Select()};
  }

  // Distinct addresses (the parser rejects a shared one).
  static void DedupGroupAddresses(Policy& p) {
    std::set<uint32_t> seen;
    for (GroupDef& g : p.groups) {
      while (!seen.insert(g.address).second) g.address = Ipv4(239, 8, 0, seen.size() & 0xff);
    }
  }

  Policy NewPolicy() {
    Policy p;
    p.file = "random.yaml";
    p.audit = Chance(20);
    for (int i = Int(0, 3); i > 0; --i) {
      p.hosts.push_back({.name = absl::StrCat("h", next_name_++), .addresses = Addresses()});
    }
    for (int i = Int(0, 2); i > 0; --i) p.groups.push_back(NewGroup());
    DedupGroupAddresses(p);
    for (int i = Int(1, 6); i > 0; --i) {
      p.services.push_back({.name = absl::StrCat("s", next_name_++), .select = Select()});
    }
    for (Service& s : p.services) FillPeers(p, s);
    return p;
  }

  void FillPeers(const Policy& p, Service& s) {
    s.depends_on.clear();
    s.accepts.clear();
    for (int i = Int(0, 3); i > 0; --i) s.depends_on.push_back(RandomPeer(p, false));
    for (int i = Int(0, 1); i > 0; --i) s.accepts.push_back(RandomPeer(p, true));
  }

  // Drops peers naming a service or host that is gone; renames references.
  static void FixReferences(Policy& p, const std::string& from, const std::string& to) {
    for (Service& s : p.services) {
      for (auto* peers : {&s.depends_on, &s.accepts}) {
        for (Peer& peer : *peers) {
          if (peer.kind != Peer::Kind::kWorld && peer.name == from) peer.name = to;
        }
        std::erase_if(*peers, [](const Peer& peer) { return peer.name == "<gone>"; });
      }
    }
  }

  Policy Mutate(Policy p) {
    for (int n = Int(1, 3); n > 0; --n) {
      Service* s = p.services.empty() ? nullptr : &p.services[Int(0, p.services.size() - 1)];
      switch (Int(0, 11)) {
        case 0:  // one rule's ports
          if (s && !s->depends_on.empty()) {
            s->depends_on[Int(0, s->depends_on.size() - 1)].ports = Ports();
          }
          break;
        case 1:
          if (s) s->depends_on.push_back(RandomPeer(p, false));
          break;
        case 2:
          if (s && !s->depends_on.empty()) s->depends_on.erase(s->depends_on.begin());
          if (s && !s->accepts.empty() && Chance(50)) s->accepts.clear();
          break;
        case 3:
          if (s) s->select = Select();
          break;
        case 4:
          p.services.push_back({.name = absl::StrCat("s", next_name_++), .select = Select()});
          FillPeers(p, p.services.back());
          break;
        case 5:
          if (s && p.services.size() > 1) {
            std::string gone = s->name;
            p.services.erase(p.services.begin() + (s - p.services.data()));
            FixReferences(p, gone, "<gone>");
          }
          break;
        case 6:
          if (s) {
            std::string old = s->name;
            s->name = absl::StrCat("s", next_name_++);
            FixReferences(p, old, s->name);
          }
          break;
        case 7:  // host groups: addresses, order, one added or removed
          if (!p.hosts.empty() && Chance(50)) {
            p.hosts[Int(0, p.hosts.size() - 1)].addresses = Addresses();
          } else if (p.hosts.size() > 1 && Chance(50)) {
            std::swap(p.hosts.front(), p.hosts.back());
          } else if (!p.hosts.empty() && Chance(50)) {
            std::string gone = p.hosts.front().name;
            p.hosts.erase(p.hosts.begin());
            FixReferences(p, gone, "<gone>");
          } else {
            p.hosts.insert(p.hosts.begin(),
                           {.name = absl::StrCat("h", next_name_++), .addresses = Addresses()});
          }
          break;
        case 8:
          p.audit = !p.audit;
          break;
        case 9:
          if (p.services.size() > 1) std::swap(p.services.front(), p.services.back());
          break;
        case 10:
          if (Chance(30)) return NewPolicy();
          if (s) FillPeers(p, *s);
          break;
        case 11:  // multicast groups: members, port, order, one added or removed
          if (!p.groups.empty() && Chance(40)) {
            GroupDef& g = p.groups[Int(0, p.groups.size() - 1)];
            if (Chance(70)) {
              g.members = Select();
            } else {
              g.port = static_cast<uint16_t>(Int(7000, 7003));
              g.sequenced = !g.sequenced;
            }
          } else if (p.groups.size() > 1 && Chance(50)) {
            std::swap(p.groups.front(), p.groups.back());
          } else if (!p.groups.empty() && Chance(50)) {
            std::string gone = p.groups.front().name;
            p.groups.erase(p.groups.begin());
            FixReferences(p, gone, "<gone>");
          } else {
            p.groups.insert(p.groups.begin(), NewGroup());
            DedupGroupAddresses(p);
          }
          break;
      }
    }
    return p;
  }

  // A container event: one relabelled, renamed, readdressed, removed or added.
  std::set<uint32_t> ContainerEvent(std::vector<ContainerInfo>& cs) {
    if (cs.empty() || Chance(25)) {
      const uint32_t id = Int(61, 90);
      for (const ContainerInfo& c : cs) {
        if (c.id == id) return {};
      }
      cs.push_back(Container(id));
      return {id};
    }
    ContainerInfo& c = cs[Int(0, cs.size() - 1)];
    const uint32_t id = c.id;
    switch (Int(0, 2)) {
      case 0: c.labels = Container(id).labels; break;
      case 1: c.name = Container(id).name; break;
      case 2: cs.erase(cs.begin() + (&c - cs.data())); break;
    }
    return {id};
  }

 private:
  std::mt19937 rng_;
  int next_name_ = 0;
};

// Same entries; endpoints and bindings compared by the fields the maps hold.
void ExpectSameState(const DatapathState& got, const DatapathState& want, const std::string& where) {
  EXPECT_EQ(got.audit, want.audit) << where;
  EXPECT_EQ(got.hosts, want.hosts) << where;
  EXPECT_EQ(got.groups, want.groups) << where;
  EXPECT_EQ(got.dependencies, want.dependencies) << where;
  EXPECT_EQ(got.rules, want.rules) << where;
  StateDiff d = DiffStates(got, want);
  EXPECT_EQ(d.added + d.changed + d.removed, 0) << where << ": " << d.lines.front();
}

struct FakeContent {
  std::map<uint32_t, uint32_t> endpoints, hosts;
  std::map<int, uint32_t> bindings;
  std::set<std::pair<uint32_t, uint32_t>> dependencies;
  std::set<FakeDatapath::RuleKey> rules;
  bool audit;
  std::map<uint32_t, Group> groups;
  bool operator==(const FakeContent&) const = default;
};

FakeContent Content(const FakeDatapath& dp) {
  EXPECT_EQ(dp.rules(0), dp.rules(1));  // both generations equal again after an apply
  EXPECT_EQ(dp.groups(0), dp.groups(1));
  return {dp.endpoints(), dp.hosts(),  dp.bindings(), dp.dependencies(),
          dp.rules(),     dp.audit(), dp.groups()};
}

TEST(IncrementalRandomTest, UpdateEqualsFullCompile) {
  int compared = 0, rejected = 0, incremental = 0, with_groups = 0;
  for (uint32_t seed = 1; seed <= 2500; ++seed) {
    Gen gen(seed);
    std::vector<ContainerInfo> cs = gen.Containers();
    Policy old_policy = gen.NewPolicy();
    absl::StatusOr<DatapathState> running = CompilePolicy(old_policy, cs);
    if (!running.ok()) continue;  // a generated conflict: nothing runs to change
    if (gen.Chance(30)) {
      // A container event first, patched in by its slice as the manager does.
      std::set<uint32_t> ids = gen.ContainerEvent(cs);
      absl::StatusOr<DatapathState> slice = CompileSlice(old_policy, cs, ids);
      absl::StatusOr<DatapathState> full = CompilePolicy(old_policy, cs);
      ASSERT_EQ(slice.ok(), full.ok()) << "seed " << seed;
      if (!full.ok()) continue;
      *running = Union(Minus(*running, SliceOf(*running, ids)), *slice);
      running->hosts = slice->hosts;  // a slice carries all hosts (gateways may go)
      ExpectSameState(*running, *full, absl::StrCat("seed ", seed, " container event"));
    }
    const std::string where = absl::StrCat("seed ", seed);
    Policy next_policy = gen.Mutate(old_policy);
    ContainerIndex index(cs);
    absl::StatusOr<DatapathState> want = CompilePolicy(next_policy, cs);
    // Slices always (whole_above 1: never compiled whole), or by size (the default).
    const double whole_above = seed % 4 == 0 ? 0.5 : 1.0;
    absl::StatusOr<PolicyUpdate> update =
        CompilePolicyUpdate(old_policy, *running, next_policy, index, whole_above);
    if (!want.ok()) {
      ASSERT_FALSE(update.ok()) << where;
      EXPECT_EQ(update.status(), want.status()) << where;
      ++rejected;
      continue;
    }
    ASSERT_TRUE(update.ok()) << where << ": " << update.status();
    if (whole_above == 1.0) EXPECT_FALSE(update->whole) << where;
    incremental += !update->whole && update->touched.size() < cs.size();
    DatapathState got = *running;
    update->ApplyTo(got);
    ExpectSameState(got, *want, where);
    // Exactly the difference: what goes and what comes, nothing that stays.
    const DatapathState gone = Minus(*running, *want), come = Minus(*want, *running);
    EXPECT_EQ(update->remove.rules, gone.rules) << where;
    EXPECT_EQ(update->remove.dependencies, gone.dependencies) << where;
    EXPECT_EQ(update->add.rules, come.rules) << where;
    EXPECT_EQ(update->add.dependencies, come.dependencies) << where;
    EXPECT_EQ(DiffStates(update->remove, update->add).lines, DiffStates(*running, *want).lines)
        << where;
    // On the datapath: the slice apply leaves what a fresh install of the new state does.
    FakeDatapath dp, fresh;
    ASSERT_TRUE(ApplyState(dp, {}, *running).ok()) << where;
    ASSERT_TRUE(ApplyState(dp, update->remove, update->add).ok()) << where;
    ASSERT_TRUE(ApplyState(fresh, {}, *want).ok()) << where;
    EXPECT_TRUE(Content(dp) == Content(fresh)) << where;
    // CompileSlice (index path) of any ids, present or not, is the full compile's slice.
    std::set<uint32_t> ids;
    for (int i = gen.Int(0, 4); i > 0; --i) ids.insert(gen.Int(1, 70));
    absl::StatusOr<DatapathState> slice = CompileSlice(next_policy, cs, ids);
    ASSERT_TRUE(slice.ok()) << where;
    DatapathState expect = SliceOf(*want, ids);
    expect.hosts = want->hosts;
    expect.groups = want->groups;
    ExpectSameState(*slice, expect, where + " slice");
    ++compared;
    with_groups += !want->groups.empty();
    if (HasFailure()) return;
  }
  std::printf("compared %d (%d with groups), rejected %d, incremental (not all touched) %d\n",
              compared, with_groups, rejected, incremental);
  // The generator must exercise all three outcomes.
  EXPECT_GT(compared, 1500);
  EXPECT_GT(rejected, 20);
  EXPECT_GT(incremental, 500);
  EXPECT_GT(with_groups, 800);
}

}  // namespace
}  // namespace dctk::bastion
