// Discovery and policy-apply time of the manager at 10, 100, 1000 containers (issue 9).
//
// For each N: a source with N containers in groups of 10 (label group=gK), a policy with
// one service per group depending on the next group on tcp/7000 and udp/7100 (so each
// container has 10 dependencies and the map entries grow linearly with N), and
//   discover N      first Reconcile from nothing: compile + install every entry
//   +1 container    Reconcile after one more container appears (the per-event cost)
//   policy apply    SetPolicy of a changed policy (one port range more) at N containers
//   no-op round     Reconcile with nothing changed (the poll fallback's cost)
// against the FakeDatapath (in-memory; the compiler and diff alone) and, as root, the
// real BPF maps (BpfDatapath, no veths attached: host_ifindex 0 keeps the programs off),
// also with a state file (bastiond's default: snapshot + journal). rss_mb: the process's
// resident memory after the row. Then churn (root, real maps, state file): 1000
// containers, 10 rounds of 500 removed and 500 new ones, RSS and ids kept after each
// (bounded memory).
// Baseline in the same run: the fake datapath row shows what the kernel writes add.
//
//   bazel run -c opt //bastion/manager:manager_bench
#include <unistd.h>

#include <cstdio>
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
  const int groups = (n + 9) / 10 + 1;
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

void Run(const char* label, Datapath* dp, int n, bool state_file) {
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
  src->Add(n);
  t0 = absl::Now();
  m.Reconcile();
  const absl::Duration one = absl::Now() - t0;
  const std::string changed = PolicyText(n, true);
  t0 = absl::Now();
  absl::Status s = m.SetPolicy(*ParsePolicy(changed, "p"), changed);
  const absl::Duration apply = absl::Now() - t0;
  t0 = absl::Now();
  m.Reconcile();
  const absl::Duration noop = absl::Now() - t0;
  DatapathState st = m.Running();
  std::printf("%-6s %5d %7zu %6zu %11.2f %11.2f %11.2f %11.2f %7.1f%s\n", label, n,
              st.dependencies.size(), st.rules.size(), Ms(discover), Ms(one), Ms(apply), Ms(noop),
              RssMb(), r.errors.empty() && s.ok() ? "" : "  (errors)");
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

int main() {
  using namespace dctk::bastion;
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("%-6s %5s %7s %6s %11s %11s %11s %11s %7s\n", "maps", "N", "deps", "rules",
              "discover_ms", "plus1_ms", "apply_ms", "noop_ms", "rss_mb");
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
