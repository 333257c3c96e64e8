// A policy change takes effect in one instant (root: the real programs and maps).
//
// Two policies that disagree on every probe (container a's flows to b, c and the
// gateway, and its ARP for b), plus a block of filler rules that changes too, so an
// apply is a few thousand map writes. Each probe is one frame run through the real
// bastion_from_container program (BPF_PROG_TEST_RUN) against the maps being changed;
// its verdict is the action plus the drop reason from the ring buffer.
//  - Step by step: a Datapath wrapper runs every probe after every single write of
//    ApplyState; the probe results, taken together, always equal those of exactly one
//    policy, and switch from the old to the new policy exactly once per apply.
//  - Under traffic: a thread sends probes without pause while the policy flips back
//    and forth; every probe's verdict is one policy's, and the sequence of policies the
//    probes saw changes at most once per flip (a write-by-write change would make it
//    flap between the two while the apply runs).
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bastion/bpf/testing/packets.h"
#include "bastion/datapath/bpf_datapath.h"
#include "bastion/policy/apply.h"
#include "bastion/policy/compiler.h"
#include "gtest/gtest.h"

namespace dctk::bastion {
namespace {

using testing::ArpFrame;
using testing::Frame;
using testing::Ipv4Frame;
using testing::Mac;
using testing::RunProgram;

constexpr int kFillers = 20;
const uint32_t kGatewayIp = Ipv4(10, 77, 0, 1);

ContainerInfo Container(uint32_t id, const std::string& name, int ifindex,
                        const std::string& role = "") {
  ContainerInfo c;
  c.id = id;
  c.name = name;
  if (!role.empty()) c.labels["role"] = role;
  c.ip = Ipv4(10, 77, id / 250, static_cast<uint8_t>(2 + id % 250));
  c.mac = Mac(static_cast<uint8_t>(id));
  c.host_ifindex = ifindex;
  c.gateway = kGatewayIp;
  return c;
}

// a -> b tcp/1000 and the gateway's udp/53 (P1), or a -> c tcp/2000 (P2); the fillers
// depend on each other on tcp/3000 (P1) or tcp/3001 and udp/3002 (P2): exact ports,
// hash entries (port-range tries are map-in-map, whose every update waits for RCU).
std::string PolicyText(bool second) {
  return absl::StrCat(
      "version: 1\nservices:\n"
      "  - name: a\n    select: {names: [a]}\n    depends_on: [",
      second ? "{service: c, ports: [tcp/2000]}"
             : "{service: b, ports: [tcp/1000]}, {host: gateway, ports: [udp/53]}",
      "]\n  - {name: b, select: {names: [b]}}\n  - {name: c, select: {names: [c]}}\n"
      "  - name: fill\n    select: {labels: {role: fill}}\n"
      "    depends_on: [{service: fill, ports: [",
      second ? "tcp/3001, udp/3002" : "tcp/3000", "]}]\n");
}

class GenerationSwitchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to load BPF programs";
    auto dp = BpfDatapath::Create({});
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    // a is bound to ifindex 1, where RunProgram's frames arrive.
    containers_ = {Container(1, "a", 1), Container(2, "b", 1002), Container(3, "c", 1003)};
    for (int i = 0; i < kFillers; ++i) {
      containers_.push_back(Container(10 + i, absl::StrCat("f", i), 2000 + i, "fill"));
    }
    for (bool second : {false, true}) {
      absl::StatusOr<Policy> p = ParsePolicy(PolicyText(second), second ? "p2.yaml" : "p1.yaml");
      ASSERT_TRUE(p.ok()) << p.status();
      absl::StatusOr<DatapathState> s = CompilePolicy(*p, containers_);
      ASSERT_TRUE(s.ok()) << s.status();
      states_[second] = *s;
    }
    ASSERT_GT(states_[0].rules.size() + states_[1].rules.size(), 1000u);
    const MacAddress a = containers_[0].mac, b = containers_[1].mac;
    auto tcp = [&](uint32_t daddr, uint16_t dport) {
      return Ipv4Frame({.src_mac = a, .dst_mac = b, .saddr = containers_[0].ip, .daddr = daddr,
                        .proto = kTcp, .sport = 40000, .dport = dport});
    };
    probes_ = {
        tcp(containers_[1].ip, 1000),  // P1 forwarded, P2 no_dependency
        tcp(containers_[1].ip, 1001),  // P1 policy_denied, P2 no_dependency
        tcp(containers_[2].ip, 2000),  // P1 no_dependency, P2 forwarded
        Ipv4Frame({.src_mac = a, .dst_mac = b, .saddr = containers_[0].ip, .daddr = kGatewayIp,
                   .proto = kUdp, .sport = 40000, .dport = 53}),  // P1 passed, P2 host_denied
        ArpFrame({.op = 1, .eth_src = a, .eth_dst = MacAddress{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
                  .sha = a, .spa = containers_[0].ip, .tha = {},
                  .tpa = containers_[1].ip}),  // P1 answered, P2 arp_no_dependency
    };
    // Each policy's verdicts, from the policy installed alone.
    ASSERT_TRUE(ApplyState(*dp_, {}, states_[0]).ok());
    for (const Frame& f : probes_) expected_[0].push_back(Probe(f));
    ASSERT_TRUE(ApplyState(*dp_, states_[0], states_[1]).ok());
    for (const Frame& f : probes_) expected_[1].push_back(Probe(f));
    for (size_t i = 0; i < probes_.size(); ++i) {
      ASSERT_NE(expected_[0][i], expected_[1][i]) << "probe " << i << " tells nothing apart";
    }
    ASSERT_TRUE(ApplyState(*dp_, states_[1], states_[0]).ok());
    running_ = 0;
  }

  // "action N" for passes, the drop reason's name for drops (from the ring buffer).
  std::string Probe(const Frame& f) {
    absl::StatusOr<testing::TestRun> r = RunProgram(dp_->from_container_fd(), f);
    if (!r.ok()) return "error: " + std::string(r.status().message());
    std::string reason;
    absl::StatusOr<int> n = dp_->PollEvents(absl::ZeroDuration(), [&](const VerdictEvent& e) {
      reason += std::string(VerdictName(e.reason));
    });
    if (!n.ok()) return "error: " + std::string(n.status().message());
    return r->action == TC_ACT_SHOT ? reason : absl::StrCat("action ", r->action, reason);
  }

  // Which policy's verdict `verdict` is for probe i: 0, 1, or -1 (neither).
  int Match(size_t i, const std::string& verdict) const {
    if (verdict == expected_[0][i]) return 0;
    if (verdict == expected_[1][i]) return 1;
    return -1;
  }

  std::unique_ptr<BpfDatapath> dp_;
  std::vector<ContainerInfo> containers_;
  DatapathState states_[2];
  std::vector<Frame> probes_;
  std::vector<std::string> expected_[2];
  int running_ = 0;
};

// Forwards to the real datapath and runs every probe after every write.
class ProbingDatapath : public Datapath {
 public:
  ProbingDatapath(BpfDatapath* dp, std::function<void(const std::string&)> after)
      : dp_(dp), after_(std::move(after)) {}
  absl::Status UpsertEndpoint(uint32_t ip, const ContainerEndpoint& e) override {
    return Then(dp_->UpsertEndpoint(ip, e), "endpoint");
  }
  absl::Status RemoveEndpoint(uint32_t ip) override { return Then(dp_->RemoveEndpoint(ip), "-endpoint"); }
  absl::Status BindInterface(int i, const Binding& b) override {
    return Then(dp_->BindInterface(i, b), "binding");
  }
  absl::Status UnbindInterface(int i) override { return Then(dp_->UnbindInterface(i), "-binding"); }
  absl::Status UpsertHost(uint32_t ip, uint32_t id) override {
    return Then(dp_->UpsertHost(ip, id), "host");
  }
  absl::Status RemoveHost(uint32_t ip) override { return Then(dp_->RemoveHost(ip), "-host"); }
  absl::Status UpsertGroup(uint32_t ip, const Group& g) override {
    return Then(dp_->UpsertGroup(ip, g), "group");
  }
  absl::Status RemoveGroup(uint32_t ip) override { return Then(dp_->RemoveGroup(ip), "-group"); }
  absl::Status AddDependency(uint32_t s, uint32_t d, uint32_t g) override {
    return Then(dp_->AddDependency(s, d, g), "dependency");
  }
  absl::Status RemoveDependency(uint32_t s, uint32_t d) override {
    return Then(dp_->RemoveDependency(s, d), "-dependency");
  }
  absl::Status UpsertPolicy(const PolicyRule& r) override { return Then(dp_->UpsertPolicy(r), "rule"); }
  absl::Status RemovePolicy(const PolicyRule& r) override {
    return Then(dp_->RemovePolicy(r), "-rule");
  }
  absl::Status SetAuditMode(bool audit) override { return Then(dp_->SetAuditMode(audit), "audit"); }
  uint32_t ActiveGeneration() const override { return dp_->ActiveGeneration(); }
  absl::Status ActivateGeneration(uint32_t g) override {
    return Then(dp_->ActivateGeneration(g), "activate");
  }
  void SetWriteGeneration(uint32_t g) override { dp_->SetWriteGeneration(g); }
  absl::Status FlushConnections() override { return dp_->FlushConnections(); }
  absl::Status Attach(int i) override { return dp_->Attach(i); }
  absl::Status Detach(int i) override { return dp_->Detach(i); }
  absl::StatusOr<VerdictCounters> ReadCounters() override { return dp_->ReadCounters(); }
  absl::StatusOr<int> PollEvents(absl::Duration t,
                                 const std::function<void(const VerdictEvent&)>& fn) override {
    return dp_->PollEvents(t, fn);
  }

 private:
  absl::Status Then(absl::Status s, const std::string& what) {
    after_(what);
    return s;
  }
  BpfDatapath* dp_;
  std::function<void(const std::string&)> after_;
};

TEST_F(GenerationSwitchTest, EveryIntermediateStateIsExactlyOnePolicy) {
  for (int flip = 0; flip < 2; ++flip) {
    const int from = running_, to = 1 - running_;
    int seen = from, switches = 0, writes = 0;
    std::string switched_at;
    ProbingDatapath probing(dp_.get(), [&](const std::string& what) {
      ++writes;
      int policy = -2;
      for (size_t i = 0; i < probes_.size(); ++i) {
        const int m = Match(i, Probe(probes_[i]));
        if (policy == -2) policy = m;
        ASSERT_TRUE(m != -1 && m == policy)
            << "after write " << writes << " (" << what << "): probe " << i
            << " matches policy " << m << ", probe 0 matched policy " << policy;
      }
      if (policy != seen) {
        ++switches;
        switched_at = what;
        seen = policy;
      }
    });
    ASSERT_TRUE(ApplyState(probing, states_[from], states_[to]).ok());
    EXPECT_GT(writes, 2000);
    EXPECT_EQ(switches, 1) << "flip " << flip;
    EXPECT_EQ(switched_at, "activate");
    EXPECT_EQ(seen, to);
    running_ = to;
  }
}

TEST_F(GenerationSwitchTest, ProbesUnderFlipsSeeOnePolicyAtATime) {
  constexpr int kFlips = 20;
  std::atomic<bool> stop{false};
  std::vector<std::pair<size_t, std::string>> seen;
  std::thread prober([&] {
    for (size_t n = 0; !stop; ++n) {
      const size_t i = n % probes_.size();
      seen.push_back({i, Probe(probes_[i])});
    }
  });
  for (int flip = 0; flip < kFlips; ++flip) {
    ASSERT_TRUE(ApplyState(*dp_, states_[running_], states_[1 - running_]).ok());
    running_ = 1 - running_;
  }
  stop = true;
  prober.join();
  ASSERT_GT(seen.size(), 100u);
  int policy = 0, changes = 0;
  for (size_t k = 0; k < seen.size(); ++k) {
    const auto& [i, verdict] = seen[k];
    const int m = Match(i, verdict);
    ASSERT_NE(m, -1) << "probe #" << k << " (" << i << "): '" << verdict << "' is neither policy's";
    if (m != policy) {
      ++changes;
      policy = m;
    }
  }
  EXPECT_LE(changes, kFlips) << "the probes saw the policies alternate more often than they flipped";
  std::cout << seen.size() << " probes during " << kFlips << " flips saw " << changes
            << " policy changes\n";
}

}  // namespace
}  // namespace dctk::bastion
