// Prometheus metrics of bastiond, declared once (common/metrics/component_metrics.h).
// Per-verdict packet counts are exported separately, one gauge per reason
// (bastiond_verdict_packets{verdict="spoofed_ip"}), from the datapath's counters.
#ifndef DCTK_BASTION_MANAGER_MANAGER_METRICS_H_
#define DCTK_BASTION_MANAGER_MANAGER_METRICS_H_

#include "common/metrics/component_metrics.h"

#define BASTIOND_METRICS(COUNTER, GAUGE, HISTOGRAM)                                  \
  GAUGE(containers, "Containers discovered and enforced")                            \
  GAUGE(map_rules, "Port-policy map entries (aligned port blocks) installed")       \
  GAUGE(map_dependencies, "Dependency map entries installed")                       \
  COUNTER(reconciles_total, "Discovery rounds")                                      \
  COUNTER(containers_added_total, "Containers whose stack was installed")            \
  COUNTER(containers_removed_total, "Containers whose stack was removed")            \
  COUNTER(policy_applies_total, "Policy or container changes applied to the maps")   \
  COUNTER(policy_rejected_total, "Policies rejected (parse, compile or apply error)") \
  COUNTER(verdict_events_total, "Verdict events read from the datapath")             \
  HISTOGRAM(reconcile_latency, "Time of a discovery round, including the apply")     \
  HISTOGRAM(apply_latency, "Time to compile and apply a change to the maps")
DCTK_METRICS_STRUCT(ManagerMetrics, BASTIOND_METRICS);

#endif  // DCTK_BASTION_MANAGER_MANAGER_METRICS_H_
