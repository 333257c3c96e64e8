// Discovery and policy-apply time of the manager at 10, 100, 1000 containers (issue 9).
//
// For each N: a source with N containers in groups of 10 (label group=gK), a policy with
// one service per group depending on the next group in a ring on tcp/7000 and udp/7100
// (at N=10 the one group depends on itself), so each container has 9-10 dependencies and
// the map entries grow linearly with N, and
//   discover N      first Reconcile from nothing: compile + install every entry
//                   (us/entry: per map entry installed)
//   event           Reconcile after one container came or went (group g0; the per-event
//                   cost), median of 20
//   policy apply    SetPolicy of a changed policy (one port range more or less for g0)
//                   at N containers, median of 20
//   no-op round     Reconcile with nothing changed (the poll fallback's cost), median of 20
// against the FakeDatapath (in-memory; the compiler and diff alone) and, as root, the
// real BPF maps (BpfDatapath, no veths attached: host_ifindex 0 keeps the programs off),
// also with a state file (bastiond's default: snapshot + journal). rss_mb: the process's
// resident memory after the row. Then churn (root, real maps, state file): 1000
// containers, 10 rounds of 500 removed and 500 new ones, RSS and ids kept after each
// (bounded memory).
// Baseline in the same run: the fake datapath row shows what the kernel writes add.
//
//   bazel run -c opt //bastion/manager:manager_bench
//   manager_bench profile N K     # fake datapath + state file, K events and policy changes
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bastion/datapath/bpf_datapath.h"
#include "bastion/datapath/testing/fake_datapath.h"
#include "bastion/manager/manager.h"

namespace dctk::bastion {
namespace {

class Source : public ContainerSource {
 public:
  std::string name() const override { return "bench"; }
  absl::StatusOr<std::vector<ContainerInfo>> List() override { return containers; }
  bool WaitForChange(absl::Duration) override { return false; }
  // Container i in group (slot / 10); slot defaults to i.
  void Add(int i, int slot = -1) {
    ContainerInfo c;
    c.name = absl::StrCat("c", i);
    c.runtime_id = c.name;
    c.labels = {{"group", absl::StrCat("g", (slot < 0 ? i : slot) / 10)}};
    c.ip = Ipv4(10, 100 + i / 65536, (i / 256) % 256, i % 256);
    c.mac.bytes = {2, 0, 0, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8),
                   static_cast<uint8_t>(i)};
    c.gateway = Ipv4(10, 99, 0, 1);
    containers.push_back(c);
  }
  std::vector<ContainerInfo> containers;
};

std::string PolicyText(int n, bool extra) {
  std::string s = "version: 1\nservices:\n";
  const int groups = (n + 9) / 10;
  for (int g = 0; g < groups; ++g) {
    absl::StrAppend(&s, "  - name: g", g, "\n    select: {labels: {group: g", g, "}}\n",
                    "    depends_on: [{service: g", (g + 1) % groups,
                    ", ports: [tcp/7000, udp/7100", extra && g == 0 ? ", tcp/8000" : "", "]}]\n");
  }
  return s;
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

double RssMb() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double kb = 0;
  while (std::fgets(line, sizeof(line), f)) {
    if (std::sscanf(line, "VmRSS: %lf kB", &kb) == 1) break;
  }
  std::fclose(f);
  return kb / 1024;
}

std::string StateFile() { return absl::StrCat("/tmp/bastion-bench-", getpid(), ".json"); }

void RemoveStateFile() {
  std::remove(StateFile().c_str());
  std::remove((StateFile() + ".log").c_str());
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Per-change times are medians of kRepeats changes: container events alternate one
// container coming and going, policy changes one port range more and less.
constexpr int kRepeats = 20;

void Run(const char* label, Datapath* dp, int n, bool state_file, int repeats = kRepeats) {
  auto source = std::make_unique<Source>();
  Source* src = source.get();
  for (int i = 0; i < n; ++i) src->Add(i);
  RemoveStateFile();
  Manager m(dp, {.state_file = state_file ? StateFile() : ""});
  m.AddSource(std::move(source));
  const std::string text = PolicyText(n, false);
  if (!m.SetPolicy(*ParsePolicy(text, "p"), text).ok()) return;
  absl::Time t0 = absl::Now();
  ReconcileReport r = m.Reconcile();
  const absl::Duration discover = absl::Now() - t0;
  const DatapathState installed = m.Running();
  const size_t entries = installed.endpoints.size() + installed.bindings.size() +
                         installed.hosts.size() + installed.dependencies.size() +
                         installed.rules.size();
  bool ok = r.errors.empty();
  std::vector<double> event, apply, noop;
  for (int k = 0; k < repeats; ++k) {
    if (k % 2 == 0) {
      src->Add(n, /*slot=*/0);
    } else {
      src->containers.pop_back();
    }
    t0 = absl::Now();
    ok &= m.Reconcile().errors.empty();
    event.push_back(Ms(absl::Now() - t0));
  }
  const Policy plain = *ParsePolicy(text, "p");
  const std::string changed = PolicyText(n, true);
  const Policy extra = *ParsePolicy(changed, "p");
  for (int k = 0; k < repeats; ++k) {
    t0 = absl::Now();
    ok &= (k % 2 == 0 ? m.SetPolicy(extra, changed) : m.SetPolicy(plain, text)).ok();
    apply.push_back(Ms(absl::Now() - t0));
  }
  for (int k = 0; k < repeats; ++k) {
    t0 = absl::Now();
    m.Reconcile();
    noop.push_back(Ms(absl::Now() - t0));
  }
  DatapathState st = m.Running();
  std::printf("%-6s %5d %7zu %6zu %11.2f %9.2f %11.2f %11.2f %11.3f %7.1f%s\n", label, n,
              st.dependencies.size(), st.rules.size(), Ms(discover),
              1000 * Ms(discover) / std::max<size_t>(entries, 1), Median(event), Median(apply),
              Median(noop), RssMb(), ok ? "" : "  (errors)");
  RemoveStateFile();
}

// 1000 containers, then rounds of 500 removed and 500 new (fresh names and ids).
void Churn(Datapath* dp) {
  auto source = std::make_unique<Source>();
  Source* src = source.get();
  for (int i = 0; i < 1000; ++i) src->Add(i);
  RemoveStateFile();
  Manager m(dp, {.state_file = StateFile()});
  m.AddSource(std::move(source));
  const std::string text = PolicyText(1000, false);
  if (!m.SetPolicy(*ParsePolicy(text, "p"), text).ok()) return;
  m.Reconcile();
  std::printf("churn: start rss_mb %.1f ids %zu\n", RssMb(), m.TrackedIds());
  int next = 1000;
  for (int round = 1; round <= 10; ++round) {
    src->containers.erase(src->containers.begin(), src->containers.begin() + 500);
    // New names and addresses in the groups of the removed ones.
    for (int i = 0; i < 500; ++i, ++next) src->Add(next % 60000, next % 1000);
    const absl::Time t0 = absl::Now();
    m.Reconcile();
    std::printf("churn: round %2d rss_mb %.1f ids %zu deps %zu reconcile_ms %.1f\n", round,
                RssMb(), m.TrackedIds(), m.Running().dependencies.size(),
                Ms(absl::Now() - t0));
  }
  RemoveStateFile();
}

}  // namespace
}  // namespace dctk::bastion

int main(int argc, char** argv) {
  using namespace dctk::bastion;
  setvbuf(stdout, nullptr, _IOLBF, 0);
  // `manager_bench profile N K`: the fake datapath with a state file at N containers, K
  // container events and K policy changes (for perf), nothing else.
  if (argc == 4 && std::string(argv[1]) == "profile") {
    testing::FakeDatapath fake;
    Run("fake+sf", &fake, std::atoi(argv[2]), true, std::atoi(argv[3]));
    return 0;
  }
  std::printf("%-6s %5s %7s %6s %11s %9s %11s %11s %11s %7s\n", "maps", "N", "deps", "rules",
              "discover_ms", "us/entry", "event_ms", "apply_ms", "noop_ms", "rss_mb");
  for (int n : {10, 100, 1000}) {
    testing::FakeDatapath fake;
    Run("fake", &fake, n, false);
    if (geteuid() == 0) {
      for (bool state_file : {false, true}) {
        absl::StatusOr<std::unique_ptr<BpfDatapath>> bpf = BpfDatapath::Create({});
        if (bpf.ok()) Run(state_file ? "bpf+sf" : "bpf", bpf->get(), n, state_file);
        else std::printf("bpf: %s\n", std::string(bpf.status().message()).c_str());
      }
    }
  }
  // Churn on the real maps: the fake keeps a log of every write, which would grow.
  if (geteuid() == 0) {
    absl::StatusOr<std::unique_ptr<BpfDatapath>> bpf = BpfDatapath::Create({});
    if (bpf.ok()) Churn(bpf->get());
  }
  return 0;
}
