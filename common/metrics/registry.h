// Registry: one process's metrics, exported in Prometheus text format.
//
// Counters and gauges are prometheus-cpp's own (lock-free Increment/Set);
// latency histograms are ConcurrentHistogram (recorded in nanoseconds,
// lock-free), exported as Prometheus histograms in seconds with the fixed
// 1-2-5 bounds of kLatencyBoundsSeconds. The Registry is a
// prometheus::Collectable, so MetricsServer (or any Exposer) can serve it.
//
// Components do not call Add* one by one: they declare their metrics once in a
// list and create them through a Scope (see component_metrics.h), which puts
// a name prefix and labels on each.
//
// Example:
//   auto registry = std::make_shared<Registry>();
//   Scope scope(*registry, "mom_sequencer", {{"node", "s0"}});
//   prometheus::Counter& stamped = scope.AddCounter("stamped_total", "Packets stamped");
//   ConcurrentHistogram& lat = scope.AddLatencyHistogram("stamp", "Stamp latency");
//   stamped.Increment();  lat.Record(ns);   // exported as mom_sequencer_stamp_seconds
#ifndef DCTK_COMMON_METRICS_REGISTRY_H_
#define DCTK_COMMON_METRICS_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/metrics/histogram.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/labels.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace dctk::metrics {

// Prometheus bucket bounds for latency histograms: 1us, 2us, 5us ... 10s.
// A bound's cumulative count includes the whole internal bucket holding the
// bound, so it may count samples up to 0.8% above it.
extern const std::vector<double> kLatencyBoundsSeconds;

// The cumulative count of `ns` (recorded in nanoseconds) at each bound of
// kLatencyBoundsSeconds: the Prometheus buckets /metrics exports.
std::vector<uint64_t> LatencyBucketCounts(const Histogram& ns);

class Registry : public prometheus::Collectable {
 public:
  Registry();
  ~Registry() override;

  // Adding a metric whose name and labels already exist returns the existing
  // one. Names and labels must be valid Prometheus names (CHECKed: they are
  // fixed in code), and a name is of one kind only.
  prometheus::Counter& AddCounter(const std::string& name, const std::string& help,
                                  const prometheus::Labels& labels = {});
  prometheus::Gauge& AddGauge(const std::string& name, const std::string& help,
                              const prometheus::Labels& labels = {});
  // Record nanoseconds; `name` should end in "_seconds", the exported unit.
  ConcurrentHistogram& AddLatencyHistogram(const std::string& name, const std::string& help,
                                           const prometheus::Labels& labels = {});

  std::vector<prometheus::MetricFamily> Collect() const override;

  struct HistogramSample {
    std::string name;
    std::string help;
    prometheus::Labels labels;
    Histogram histogram;  // In nanoseconds.
  };
  struct CounterSample {
    std::string name;
    prometheus::Labels labels;
    double value;
  };
  // Current values, sorted by name then labels (for tables and tests).
  std::vector<HistogramSample> SnapshotHistograms() const;
  std::vector<CounterSample> SnapshotCounters() const;

 private:
  struct HistogramFamily {
    std::string help;
    std::map<prometheus::Labels, std::unique_ptr<ConcurrentHistogram>> members;
  };

  prometheus::Registry prometheus_;
  mutable absl::Mutex mu_;
  std::map<std::string, HistogramFamily> histograms_ ABSL_GUARDED_BY(mu_);
};

// A name prefix and labels applied to every metric added through it.
class Scope {
 public:
  Scope(Registry& registry, std::string prefix, prometheus::Labels labels = {});

  // Adds "<prefix>_<name>".
  prometheus::Counter& AddCounter(absl::string_view name, absl::string_view help);
  prometheus::Gauge& AddGauge(absl::string_view name, absl::string_view help);
  // Adds "<prefix>_<name>_seconds", recorded in nanoseconds.
  ConcurrentHistogram& AddLatencyHistogram(absl::string_view name, absl::string_view help);

 private:
  std::string Name(absl::string_view name) const;

  Registry& registry_;
  std::string prefix_;
  prometheus::Labels labels_;
};

}  // namespace dctk::metrics

#endif  // DCTK_COMMON_METRICS_REGISTRY_H_
