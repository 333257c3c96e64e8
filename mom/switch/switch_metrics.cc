#include "mom/switch/switch_metrics.h"

#include "absl/strings/str_cat.h"

namespace dctk::mom {
namespace {

void Add(prometheus::Counter& counter, uint64_t now, uint64_t before) {
  if (now > before) counter.Increment(static_cast<double>(now - before));
}

}  // namespace

SwitchMetrics::SwitchMetrics(metrics::Registry& registry, std::string switch_name,
                             int num_ports)
    : registry_(registry),
      switch_name_(std::move(switch_name)),
      forwarded_(registry.AddCounter("mom_switch_forwarded_total",
                                     "Frames the switch forwarded (before replication)",
                                     {{"switch", switch_name_}})) {
  for (int r = 0; r < kNumDropReasons; ++r) {
    drops_.push_back(&registry.AddCounter(
        "mom_switch_drops_total", "Frames dropped, by reason",
        {{"switch", switch_name_},
         {"reason", std::string(DropReasonName(static_cast<DropReason>(r)))}}));
  }
  for (int p = 0; p < num_ports; ++p) {
    const std::string port = absl::StrCat(p);
    metrics::Scope port_scope(registry, "mom_switch_port", {{"switch", switch_name_}, {"port", port}});
    ports_.push_back(SwitchPortMetrics::Create(port_scope));
    queues_.emplace_back();
    for (int band = 0; band < kPortBands; ++band) {
      metrics::Scope queue_scope(
          registry, "mom_switch_queue",
          {{"switch", switch_name_}, {"port", port}, {"band", absl::StrCat(band)}});
      queues_.back().push_back(SwitchQueueMetrics::Create(queue_scope));
    }
  }
  last_.ports.resize(num_ports);
}

void SwitchMetrics::Publish(const SwitchCounters& now) {
  Add(forwarded_, now.forwarded, last_.forwarded);
  for (int r = 0; r < kNumDropReasons; ++r) Add(*drops_[r], now.drops[r], last_.drops[r]);
  for (const auto& [group, seq] : now.group_seqs) {
    prometheus::Gauge*& gauge = group_seqs_[group];
    if (gauge == nullptr) {
      gauge = &registry_.AddGauge("mom_switch_group_sequence",
                                  "Last group sequence number this switch stamped",
                                  {{"switch", switch_name_}, {"group", absl::StrCat(group)}});
    }
    gauge->Set(static_cast<double>(seq));
  }
  for (size_t p = 0; p < ports_.size() && p < now.ports.size(); ++p) {
    const PortCounters& c = now.ports[p];
    const PortCounters& was = last_.ports[p];
    Add(ports_[p].rx_packets_total, c.rx_packets, was.rx_packets);
    Add(ports_[p].tx_packets_total, c.tx_packets, was.tx_packets);
    Add(ports_[p].rx_missed_total, c.rx_missed, was.rx_missed);
    Add(ports_[p].tx_full_drops_total, c.tx_full, was.tx_full);
    Add(ports_[p].fragmented_total, c.fragmented, was.fragmented);
    Add(ports_[p].probes_sent_total, c.probes_sent, was.probes_sent);
    Add(ports_[p].probes_received_total, c.probes_received, was.probes_received);
    Add(ports_[p].stale_voided_total, c.stale_voided, was.stale_voided);
    for (int band = 0; band < kPortBands; ++band) {
      SwitchQueueMetrics& q = queues_[p][band];
      Add(q.enqueued_total, c.enqueued[band], was.enqueued[band]);
      Add(q.drops_total, c.queue_full[band], was.queue_full[band]);
      q.depth.Set(static_cast<double>(c.depth[band]));
    }
  }
  last_ = now;
  last_.ports.resize(ports_.size());
}

}  // namespace dctk::mom
