// Declaring a component's metrics once, as a list (Envoy's stats macros).
//
// A component writes one X-macro list of its counters, gauges and latency
// histograms, then DCTK_METRICS_STRUCT turns it into a struct with one member
// per metric and a Create(Scope&) that registers them all under the scope's
// prefix and labels. Adding a metric is one line; the names in code and in
// Prometheus cannot drift apart.
//
// Example:
//   #define SEQUENCER_METRICS(COUNTER, GAUGE, HISTOGRAM)                    \
//     COUNTER(stamped_total, "Packets given a sequence number")           \
//     COUNTER(dropped_total, "Packets dropped: not from a known sender")  \
//     GAUGE(epoch, "Current sequencer epoch")                             \
//     HISTOGRAM(stamp_latency, "Receive-to-send time of a stamped packet")
//   DCTK_METRICS_STRUCT(SequencerMetrics, SEQUENCER_METRICS);
//
//   Scope scope(registry, "mom_sequencer", {{"node", "s0"}});
//   SequencerMetrics m = SequencerMetrics::Create(scope);
//   m.stamped_total.Increment();         // mom_sequencer_stamped_total{node="s0"}
//   m.stamp_latency.Record(ns);          // mom_sequencer_stamp_latency_seconds{node="s0"}
#ifndef DCTK_COMMON_METRICS_COMPONENT_METRICS_H_
#define DCTK_COMMON_METRICS_COMPONENT_METRICS_H_

#include "common/metrics/histogram.h"
#include "common/metrics/registry.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"

#define DCTK_METRICS_COUNTER_FIELD_(name, help) ::prometheus::Counter& name;
#define DCTK_METRICS_GAUGE_FIELD_(name, help) ::prometheus::Gauge& name;
#define DCTK_METRICS_HISTOGRAM_FIELD_(name, help) ::dctk::metrics::ConcurrentHistogram& name;
// These expand inside Create(), whose parameter is `scope`.
#define DCTK_METRICS_COUNTER_MAKE_(name, help) scope.AddCounter(#name, help),
#define DCTK_METRICS_GAUGE_MAKE_(name, help) scope.AddGauge(#name, help),
#define DCTK_METRICS_HISTOGRAM_MAKE_(name, help) scope.AddLatencyHistogram(#name, help),

#define DCTK_METRICS_STRUCT(Type, LIST)                                               \
  struct Type {                                                                       \
    LIST(DCTK_METRICS_COUNTER_FIELD_, DCTK_METRICS_GAUGE_FIELD_,                      \
         DCTK_METRICS_HISTOGRAM_FIELD_)                                               \
    static Type Create(::dctk::metrics::Scope& scope) {                               \
      return Type{LIST(DCTK_METRICS_COUNTER_MAKE_, DCTK_METRICS_GAUGE_MAKE_,          \
                       DCTK_METRICS_HISTOGRAM_MAKE_)};                                \
    }                                                                                 \
  }

#endif  // DCTK_COMMON_METRICS_COMPONENT_METRICS_H_
