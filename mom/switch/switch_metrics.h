// SwitchMetrics: a MOM switch's data-plane counters in Prometheus, through
// common/metrics (served by a MetricsServer at /metrics).
//
// The data plane keeps plain counters (switch_counters.h); now and then (the
// mom_switch loop: every 100 ms, between bursts) it takes a SwitchCounters
// snapshot and Publish() adds what changed since the last one, so the
// per-packet path has no atomics and a scrape costs it nothing. Exported:
//   mom_switch_forwarded_total{switch}
//   mom_switch_drops_total{switch,reason}            every DropReason
//   mom_switch_group_sequence{switch,group}          last stamped group_seq (sequencer)
//   mom_switch_port_rx_packets_total{switch,port}    and tx_packets_total,
//   mom_switch_port_rx_missed_total{switch,port}     rx_missed_total, tx_full_drops_total,
//                                                    fragmented_total (datagrams cut to the MTU),
//                                                    probes_sent_total, probes_received_total,
//                                                    stale_voided_total
//   mom_switch_queue_enqueued_total{switch,port,band} and drops_total (queue full),
//   mom_switch_queue_depth{switch,port,band}         band 0 = high priority
//
// Example:
//   auto registry = std::make_shared<metrics::Registry>();
//   SwitchMetrics m(*registry, "leaf0", sw->num_ports());
//   auto server = metrics::MetricsServer::Start(registry, "127.0.0.1:0");
//   m.Publish(sw->Counters());
#ifndef DCTK_MOM_SWITCH_SWITCH_METRICS_H_
#define DCTK_MOM_SWITCH_SWITCH_METRICS_H_

#include <map>
#include <string>
#include <vector>

#include "common/metrics/component_metrics.h"
#include "common/metrics/registry.h"
#include "mom/switch/switch_counters.h"

namespace dctk::mom {

#define MOM_SWITCH_PORT_METRICS(COUNTER, GAUGE, HISTOGRAM)                                  \
  COUNTER(rx_packets_total, "Frames received on the port")                                  \
  COUNTER(tx_packets_total, "Frames transmitted on the port")                               \
  COUNTER(rx_missed_total, "Frames the port's receive ring dropped before the switch read") \
  COUNTER(tx_full_drops_total, "Frames dropped: the port's device took fewer than offered") \
  COUNTER(fragmented_total, "Datagrams longer than the port's MTU, sent as IPv4 fragments") \
  COUNTER(probes_sent_total, "Link probes sent on the port")                                \
  COUNTER(probes_received_total, "Link probes received on the port")                        \
  COUNTER(stale_voided_total, "Transmit ring frames voided while the port's link was down")
DCTK_METRICS_STRUCT(SwitchPortMetrics, MOM_SWITCH_PORT_METRICS);

#define MOM_SWITCH_QUEUE_METRICS(COUNTER, GAUGE, HISTOGRAM)               \
  COUNTER(enqueued_total, "Frames queued in the band for transmission") \
  COUNTER(drops_total, "Frames dropped: the band's queue was full")     \
  GAUGE(depth, "Frames waiting in the band")
DCTK_METRICS_STRUCT(SwitchQueueMetrics, MOM_SWITCH_QUEUE_METRICS);

class SwitchMetrics {
 public:
  SwitchMetrics(metrics::Registry& registry, std::string switch_name, int num_ports);

  // Brings the exported values to `now` (counters only ever grow).
  void Publish(const SwitchCounters& now);

 private:
  metrics::Registry& registry_;
  const std::string switch_name_;
  prometheus::Counter& forwarded_;
  std::vector<prometheus::Counter*> drops_;  // by DropReason
  std::vector<SwitchPortMetrics> ports_;
  std::vector<std::vector<SwitchQueueMetrics>> queues_;  // [port][band]
  std::map<uint32_t, prometheus::Gauge*> group_seqs_;
  SwitchCounters last_;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_SWITCH_SWITCH_METRICS_H_
