// A single-rule policy change at 10, 100 and 1,000 containers: the incremental update
// (incremental.h) against the full recompile the manager did before, in the same run;
// and a container event's slice compile (CompileSlice, members through ContainerIndex)
// against the selector scan it replaced (every service against every container).
//
// Containers in groups of 10 (label group=gK); one service per group, depending on the
// next group (a ring) on tcp/7000 and udp/7100 (each container has 10 dependencies;
// entries grow linearly with N) and on the dns host group on udp/53. The change: service g0 also
// allows tcp/8000 (alternately added and removed, so every iteration is a real change).
// Both sides end with the datapath moved by ApplyState, on a datapath whose writes cost
// nothing (so the numbers are the compile and the diff, not the kernel).
//
//   bazel run -c opt //bastion/policy:incremental_benchmark
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bastion/policy/apply.h"
#include "bastion/policy/compiler.h"
#include "bastion/policy/incremental.h"
#include "benchmark/benchmark.h"

namespace dctk::bastion {
namespace {

// Counts writes; keeps nothing.
class NullDatapath : public Datapath {
 public:
  absl::Status UpsertEndpoint(uint32_t, const ContainerEndpoint&) override { return Write(); }
  absl::Status RemoveEndpoint(uint32_t) override { return Write(); }
  absl::Status BindInterface(int, const Binding&) override { return Write(); }
  absl::Status UnbindInterface(int) override { return Write(); }
  absl::Status UpsertHost(uint32_t, uint32_t) override { return Write(); }
  absl::Status RemoveHost(uint32_t) override { return Write(); }
  absl::Status UpsertGroup(uint32_t, const Group&) override { return Write(); }
  absl::Status RemoveGroup(uint32_t) override { return Write(); }
  absl::Status AddDependency(uint32_t, uint32_t, uint32_t) override { return Write(); }
  absl::Status RemoveDependency(uint32_t, uint32_t) override { return Write(); }
  absl::Status UpsertPolicy(const PolicyRule&) override { return Write(); }
  absl::Status RemovePolicy(const PolicyRule&) override { return Write(); }
  absl::Status SetAuditMode(bool) override { return Write(); }
  uint32_t ActiveGeneration() const override { return active_; }
  absl::Status ActivateGeneration(uint32_t g) override {
    active_ = g;
    return Write();
  }
  void SetWriteGeneration(uint32_t) override {}
  absl::Status FlushConnections() override { return absl::OkStatus(); }
  absl::Status Attach(int) override { return absl::OkStatus(); }
  absl::Status Detach(int) override { return absl::OkStatus(); }
  absl::StatusOr<VerdictCounters> ReadCounters() override { return VerdictCounters{}; }
  absl::StatusOr<int> PollEvents(absl::Duration,
                                 const std::function<void(const VerdictEvent&)>&) override {
    return 0;
  }
  uint64_t writes = 0;

 private:
  absl::Status Write() {
    ++writes;
    return absl::OkStatus();
  }
  uint32_t active_ = 0;
};

std::vector<ContainerInfo> Containers(int n) {
  std::vector<ContainerInfo> out;
  for (int i = 0; i < n; ++i) {
    ContainerInfo c;
    c.id = i + 1;
    c.name = absl::StrCat("c", i);
    c.labels = {{"group", absl::StrCat("g", i / 10)}};
    c.ip = Ipv4(10, 100 + i / 65536, (i / 256) % 256, i % 256);
    c.mac.bytes = {2, 0, 0, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8),
                   static_cast<uint8_t>(i)};
    c.host_ifindex = 1000 + i;
    c.gateway = Ipv4(10, 99, 0, 1);
    out.push_back(c);
  }
  return out;
}

Policy MakePolicy(int n, bool extra) {
  std::string s = "version: 1\nhosts: [{name: dns, addresses: [192.0.2.53]}]\nservices:\n";
  const int groups = (n + 9) / 10;  // a ring; one group alone depends on itself
  for (int g = 0; g < groups; ++g) {
    absl::StrAppend(&s, "  - name: g", g, "\n    select: {labels: {group: g", g, "}}\n",
                    "    depends_on: [{service: g", (g + 1) % groups, ", ports: [tcp/7000, udp/7100",
                    extra && g == 0 ? ", tcp/8000" : "", "]}, {host: dns, ports: [udp/53]}]\n");
  }
  return *ParsePolicy(s, "bench.yaml");
}

struct Setup {
  explicit Setup(int n)
      : containers(Containers(n)), policies{MakePolicy(n, false), MakePolicy(n, true)},
        running(*CompilePolicy(policies[0], containers)) {}
  std::vector<ContainerInfo> containers;
  Policy policies[2];
  DatapathState running;
  int current = 0;
};

void BM_SingleRuleChange_FullRecompile(benchmark::State& state) {
  Setup s(state.range(0));
  NullDatapath dp;
  for (auto _ : state) {
    const int next = 1 - s.current;
    absl::StatusOr<DatapathState> compiled = CompilePolicy(s.policies[next], s.containers);
    if (!ApplyState(dp, s.running, *compiled).ok()) state.SkipWithError("apply");
    s.running = *std::move(compiled);
    s.current = next;
  }
  state.counters["rules"] = s.running.rules.size();
  state.counters["writes/change"] = static_cast<double>(dp.writes) / state.iterations();
}

void BM_SingleRuleChange_Incremental(benchmark::State& state) {
  Setup s(state.range(0));
  NullDatapath dp;
  size_t touched = 0;
  bool whole = false;
  for (auto _ : state) {
    const int next = 1 - s.current;
    ContainerIndex index(s.containers);
    absl::StatusOr<PolicyUpdate> u =
        CompilePolicyUpdate(s.policies[s.current], s.running, s.policies[next], index);
    if (!u.ok() ||  !ApplyState(dp, u->remove, u->add).ok()) {
      state.SkipWithError("update");
    }
    u->ApplyTo(s.running);
    touched = u->touched.size();
    whole = u->whole;
    s.current = next;
  }
  state.counters["rules"] = s.running.rules.size();
  state.counters["touched"] = touched;
  state.counters["whole"] = whole;
  state.counters["writes/change"] = static_cast<double>(dp.writes) / state.iterations();
}

// A container event (one container relabelled into group g0): its slice.
void BM_ContainerEvent_CompileSlice(benchmark::State& state) {
  Setup s(state.range(0));
  s.containers[5].labels = {{"group", "g1"}};
  for (auto _ : state) {
    benchmark::DoNotOptimize(CompileSlice(s.policies[0], s.containers, {6}));
  }
}

// What CompileSlice's selector matching cost before the index: every service's selector
// against every container (the rest of the slice compile is the same).
void BM_ContainerEvent_SelectorScanBaseline(benchmark::State& state) {
  Setup s(state.range(0));
  for (auto _ : state) {
    size_t members = 0;
    for (const Service& svc : s.policies[0].services) {
      for (const ContainerInfo& c : s.containers) members += Selects(svc.select, c);
    }
    benchmark::DoNotOptimize(members);
  }
}

BENCHMARK(BM_SingleRuleChange_FullRecompile)->Arg(10)->Arg(100)->Arg(1000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SingleRuleChange_Incremental)->Arg(10)->Arg(100)->Arg(1000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ContainerEvent_CompileSlice)->Arg(10)->Arg(100)->Arg(1000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ContainerEvent_SelectorScanBaseline)->Arg(10)->Arg(100)->Arg(1000)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace dctk::bastion
