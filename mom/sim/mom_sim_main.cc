// mom_sim: sweeps MOM designs x background load x seeds in ns-3 and writes the
// reorder rate of each run (CSV), the mean per (design, load) (CSV), and, if
// gnuplot is installed, a plot of reorder rate vs load per design.
//
//   bazel run //mom/sim:mom_sim -- --k=8 --loads=0.1,0.3,0.5,0.7 --seeds=3
//       --out=/tmp/mom_k8   (one command line)
//   -> /tmp/mom_k8.csv, /tmp/mom_k8_summary.csv, /tmp/mom_k8.png
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "mom/sim/mom_sim.h"

ABSL_FLAG(int, k, 4, "fat tree parameter (even)");
ABSL_FLAG(std::string, designs, "naive,topology-aware,topology-aware-qos,serialized",
          "comma-separated MOM designs");
ABSL_FLAG(std::string, loads, "0.1,0.3,0.5", "comma-separated background loads in [0, 1)");
ABSL_FLAG(int, seeds, 2, "runs per (design, load), seeds first_seed..first_seed+N-1");
ABSL_FLAG(int, first_seed, 1, "first seed (to add seeds to an earlier sweep)");
ABSL_FLAG(int, senders, 4, "MOM sender hosts");
ABSL_FLAG(int, receivers, 5, "MOM group members");
ABSL_FLAG(double, rate, 20000, "messages per second per sender");
ABSL_FLAG(int, duration_ms, 25, "simulated MOM traffic time after warmup");
ABSL_FLAG(int, warmup_ms, 5, "simulated background-only time before MOM traffic");
ABSL_FLAG(std::string, flows, "web-search", "background flow sizes: web-search, fb-hadoop");
ABSL_FLAG(double, link_gbps, 1.0, "link speed");
ABSL_FLAG(int, failed_core_links, 0,
          "core-aggregation links to fail per run (from the seed); exercises root blacklisting");
ABSL_FLAG(std::string, out, "/tmp/mom_sim", "output prefix: PREFIX.csv, PREFIX_summary.csv, PREFIX.png");

namespace dctk::mom {
namespace {

int Main() {
  std::vector<Design> designs;
  for (absl::string_view name : absl::StrSplit(absl::GetFlag(FLAGS_designs), ',')) {
    absl::StatusOr<Design> d = ParseDesign(name);
    if (!d.ok()) {
      std::cerr << "--designs: " << d.status() << "\n";
      return 2;
    }
    designs.push_back(*d);
  }
  std::vector<double> loads;
  for (absl::string_view text : absl::StrSplit(absl::GetFlag(FLAGS_loads), ',')) {
    double load;
    if (!absl::SimpleAtod(text, &load)) {
      std::cerr << "--loads: '" << text << "' is not a number\n";
      return 2;
    }
    loads.push_back(load);
  }
  absl::StatusOr<const FlowSizeCdf*> flows = FlowSizeCdf::ByName(absl::GetFlag(FLAGS_flows));
  if (!flows.ok()) {
    std::cerr << "--flows: " << flows.status() << "\n";
    return 2;
  }

  const std::string prefix = absl::GetFlag(FLAGS_out);
  std::ofstream csv(prefix + ".csv");
  csv << "k,design,load,seed,senders,receivers,messages,reordered,reorder_rate,"
         "pair_inversion_rate,incomplete,latency_mean_us,latency_p99_us,latency_max_us,roots,bg_flows,bg_offered_bytes,bg_received_bytes,"
         "wall_seconds,failed_core_links,eligible_roots\n";
  std::map<std::pair<double, Design>, std::vector<double>> rates;
  for (double load : loads) {
    for (Design design : designs) {
      const int first_seed = absl::GetFlag(FLAGS_first_seed);
      for (int seed = first_seed; seed < first_seed + absl::GetFlag(FLAGS_seeds); ++seed) {
        MomSimConfig c;
        c.k = absl::GetFlag(FLAGS_k);
        c.design = design;
        c.load = load;
        c.seed = seed;
        c.senders = absl::GetFlag(FLAGS_senders);
        c.receivers = absl::GetFlag(FLAGS_receivers);
        c.messages_per_second = absl::GetFlag(FLAGS_rate);
        c.duration = absl::Milliseconds(absl::GetFlag(FLAGS_duration_ms));
        c.warmup = absl::Milliseconds(absl::GetFlag(FLAGS_warmup_ms));
        c.flow_sizes = *flows;
        c.link_bps = static_cast<uint64_t>(absl::GetFlag(FLAGS_link_gbps) * 1e9);
        c.failed_core_links = absl::GetFlag(FLAGS_failed_core_links);
        const absl::Time start = absl::Now();
        absl::StatusOr<MomSimResult> r = RunMomSimulation(c);
        const double wall = absl::ToDoubleSeconds(absl::Now() - start);
        if (!r.ok()) {
          std::cerr << DesignName(design) << " load " << load << " seed " << seed << ": "
                    << r.status() << "\n";
          return 1;
        }
        const ReorderReport& rep = r->reorder;
        csv << absl::StrFormat("%d,%s,%.3f,%d,%d,%d,%d,%d,%.6f,%.6g,%d,%.2f,%.2f,%.2f,%d,%d,%d,%d,%.2f,%d,%d\n",
                               c.k, DesignName(design), load, seed, c.senders, c.receivers,
                               rep.messages, rep.reordered, rep.reorder_rate(),
                               rep.pair_inversion_rate(), rep.incomplete, r->latency_mean_us,
                               r->latency_p99_us, r->latency_max_us, r->roots,
                               r->background_flows, r->background_bytes_offered,
                               r->background_bytes_received, wall, c.failed_core_links,
                               r->eligible_roots);
        csv.flush();
        std::cout << absl::StrFormat(
            "%-19s load %.2f seed %d: reorder rate %.4f%% latency mean/p99/max %.1f/%.1f/%.1f us "
            "(%s) %.1fs\n",
            DesignName(design), load, seed, 100 * rep.reorder_rate(), r->latency_mean_us,
            r->latency_p99_us, r->latency_max_us, rep.ToString(), wall);
        rates[{load, design}].push_back(rep.reorder_rate());
      }
    }
  }

  std::ofstream summary(prefix + "_summary.csv");
  summary << "load";
  for (Design d : designs) summary << "," << DesignName(d);
  summary << "\n";
  for (double load : loads) {
    summary << absl::StrFormat("%.3f", load);
    for (Design d : designs) {
      double sum = 0;
      for (double x : rates[{load, d}]) sum += x;
      summary << absl::StrFormat(",%.6f", 100 * sum / rates[{load, d}].size());
    }
    summary << "\n";
  }
  summary.close();
  std::cout << "wrote " << prefix << ".csv and " << prefix << "_summary.csv (percent)\n";

  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::cout << "gnuplot not installed: no plot (apt-get install gnuplot-nox)\n";
    return 0;
  }
  std::ofstream gp(prefix + ".gp");
  gp << "set terminal pngcairo size 800,500\nset output '" << prefix << ".png'\n"
     << "set datafile separator ','\nset key top left autotitle columnhead\n"
     << "set xlabel 'background load'\nset ylabel 'reorder rate (%)'\n"
     << "set title 'MOM reorder rate, fat tree k=" << absl::GetFlag(FLAGS_k) << "'\n"
     << "plot for [i=2:" << designs.size() + 1 << "] '" << prefix
     << "_summary.csv' using 1:i with linespoints lw 2\n";
  gp.close();
  if (std::system(absl::StrCat("gnuplot '", prefix, ".gp'").c_str()) != 0) {
    std::cerr << "gnuplot failed on " << prefix << ".gp\n";
    return 1;
  }
  std::cout << "wrote " << prefix << ".png\n";
  return 0;
}

}  // namespace
}  // namespace dctk::mom

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dctk::mom::Main();
}
