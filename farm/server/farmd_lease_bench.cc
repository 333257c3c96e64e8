// farmd_lease_bench: false suspicions under CPU load. Per lease in --leases:
// the CM service and --machines farmd machines (shm, 2 copies of each
// region) and --clients FarmClients in this process, each incrementing a
// counter in a closed loop; once the cluster is ready, --hogs busy-loop
// processes (nice 0: a build's compilers) run for --seconds, and nothing is
// killed. Every member the CM removes is a false removal (its lease ran out
// while it was alive). Prints one line per lease: members removed before the
// hog started (others' load only), storage machines and clients removed
// while it ran, reconfigurations, the first removal (ms after the hog
// started), commits, and the load average.
//
//   bazel build -c opt //farm/server:farmd_lease_bench
//   (cd bazel-bin/farm/server/farmd_lease_bench.runfiles/dctk &&
//    ../../farmd_lease_bench --leases=10,20,50,100,200 --seconds=10 --hogs=4)
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "farm/client/farm_client.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/server/counters.h"
#include "farm/server/farmd_process.h"

ABSL_FLAG(std::string, leases, "10,20,50,100,200", "lease lengths to measure, ms");
ABSL_FLAG(int, seconds, 10, "how long the hog runs at each lease");
ABSL_FLAG(int, hogs, 4, "busy-loop processes (the CPU load)");
ABSL_FLAG(int, machines, 3, "farmd storage machines");
ABSL_FLAG(int, clients, 1, "FarmClients (leased members too), each running transactions");

namespace dctk::farm::server {
namespace {

using ShmClient = client::FarmClient<fabric::ShmFabric>;

struct Result {
  int removed_at_start = 0;  // members gone before the hog started (others' load only)
  int removed_machines = 0, removed_clients = 0;  // while the hog ran
  uint64_t reconfigurations = 0;
  double first_removal_ms = -1;
  uint64_t commits = 0;
  std::string loadavg;
};

// Busy-loop children, forked while this process is small and has no
// threads (a fork of the running bench would copy its page tables with its
// memory map locked, stalling its own lease threads: not the load measured),
// stopped until Run() lets them spin; SIGKILLed (and reaped) on destruction,
// and each dies with this process.
class Hogs {
 public:
  explicit Hogs(int n) {
    for (int i = 0; i < n; ++i) {
      const pid_t pid = fork();
      if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        raise(SIGSTOP);
        for (volatile uint64_t x = 0;; x = x + 1) {
        }
      }
      if (pid < 0) continue;
      pids_.push_back(pid);
      int status = 0;
      waitpid(pid, &status, WUNTRACED);  // stopped
    }
  }
  ~Hogs() {
    for (pid_t pid : pids_) kill(pid, SIGKILL);
    for (pid_t pid : pids_) waitpid(pid, nullptr, 0);
  }
  void Spin(bool on) {
    for (pid_t pid : pids_) kill(pid, on ? SIGCONT : SIGSTOP);
  }

 private:
  std::vector<pid_t> pids_;
};

std::string LoadAverage() {
  std::ifstream f("/proc/loadavg");
  std::string one, five;
  f >> one >> five;
  return absl::StrCat(one, " ", five);
}

absl::flat_hash_set<uint32_t> Members(const cm::Configuration& c) {
  absl::flat_hash_set<uint32_t> out;
  for (const cm::Machine& m : c.machines()) out.insert(m.id());
  return out;
}

absl::StatusOr<Result> Run(int lease_ms, Hogs& hogs) {
  char tmpl[] = "/tmp/farmd-lease-bench.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp");
  const std::string dir = tmpl;
  absl::Cleanup remove_dir = [&dir] { (void)system(absl::StrCat("rm -rf '", dir, "'").c_str()); };
  FarmdCluster cluster(WriteFarmConfig(dir, absl::GetFlag(FLAGS_machines), lease_ms), dir, "shm");
  if (absl::Status s = cluster.Start(absl::GetFlag(FLAGS_machines)); !s.ok()) return s;
  std::vector<std::unique_ptr<ShmClient>> clients;
  for (int i = 0; i < absl::GetFlag(FLAGS_clients); ++i) {
    client::FarmClientOptions o;
    o.machine = 100 + i;
    o.cm_address = cluster.cm_address();
    o.tx.rpc_timeout = absl::Milliseconds(std::max(50, 2 * lease_ms));
    absl::StatusOr<std::unique_ptr<fabric::ShmFabric>> f =
        fabric::ShmFabric::Create({.machine_id = o.machine});
    if (!f.ok()) return f.status();
    absl::StatusOr<std::unique_ptr<ShmClient>> c = ShmClient::Connect(o, std::move(*f));
    if (!c.ok()) return c.status();
    clients.push_back(std::move(*c));
  }
  absl::StatusOr<std::pair<bool, cm::Configuration>> before = cluster.CmState();
  if (!before.ok()) return before.status();
  const absl::flat_hash_set<uint32_t> members = Members(before->second);
  Result out;
  out.removed_at_start = absl::GetFlag(FLAGS_machines) + absl::GetFlag(FLAGS_clients) -
                         static_cast<int>(members.size());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> commits{0};
  std::vector<std::thread> threads;
  for (auto& c : clients) {
    threads.emplace_back([&stop, &commits, &c] {
      // A counter in the first region (none left: every storage machine is gone).
      auto make = [&c]() -> absl::StatusOr<GlobalAddress> {
        const std::vector<RegionInfo> regions = c->regions().All();
        if (regions.empty()) return absl::UnavailableError("no region left");
        return NewCounter(c->tx(), regions.front().id);
      };
      absl::StatusOr<GlobalAddress> a = make();
      while (!stop.load()) {
        absl::Status s = a.ok() ? IncrementCounter(c->tx(), *a) : a.status();
        if (s.ok()) {
          commits.fetch_add(1);
        } else if (!absl::IsAborted(s)) {
          absl::SleepFor(absl::Milliseconds(1));
          (void)c->Refresh();
          if (!a.ok()) a = make();
        }
      }
    });
  }
  {
    hogs.Spin(true);
    absl::Cleanup rest = [&hogs] { hogs.Spin(false); };
    const absl::Time start = absl::Now();
    const absl::Time end = start + absl::Seconds(absl::GetFlag(FLAGS_seconds));
    while (absl::Now() < end) {
      absl::SleepFor(absl::Milliseconds(20));
      absl::StatusOr<std::pair<bool, cm::Configuration>> now = cluster.CmState();
      if (out.first_removal_ms < 0 && now.ok() && Members(now->second) != members) {
        out.first_removal_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
      }
    }
    out.loadavg = LoadAverage();
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  out.commits = commits.load();
  absl::StatusOr<std::pair<bool, cm::Configuration>> after = cluster.CmState();
  if (!after.ok()) return after.status();
  const absl::flat_hash_set<uint32_t> left = Members(after->second);
  for (const cm::Machine& m : before->second.machines()) {
    if (left.contains(m.id())) continue;
    ++(m.client() ? out.removed_clients : out.removed_machines);
  }
  out.reconfigurations = after->second.id() - before->second.id();
  return out;
}

int Main() {
  Hogs hogs(absl::GetFlag(FLAGS_hogs));
  std::vector<int> leases;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_leases), ',')) {
    int ms = 0;
    if (!absl::SimpleAtoi(s, &ms) || ms < 3) {
      fprintf(stderr, "farmd_lease_bench: --leases: '%s' is not a lease of at least 3 ms\n",
              std::string(s).c_str());
      return 2;
    }
    leases.push_back(ms);
  }
  printf(
      "lease_ms  removed_at_start  removed_machines  removed_clients  reconfigurations  "
      "first_removal_ms  commits  loadavg(1,5)\n");
  for (int lease : leases) {
    absl::StatusOr<Result> r = Run(lease, hogs);
    if (!r.ok()) {
      printf("%8d  run failed: %s\n", lease, r.status().ToString().c_str());
      continue;
    }
    printf("%8d  %16d  %16d  %15d  %16lu  %16.0f  %7lu  %s\n", lease, r->removed_at_start,
           r->removed_machines, r->removed_clients, static_cast<unsigned long>(r->reconfigurations),
           r->first_removal_ms, static_cast<unsigned long>(r->commits), r->loadavg.c_str());
    fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace dctk::farm::server

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dctk::farm::server::Main();
}
