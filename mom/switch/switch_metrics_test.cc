// SwitchMetrics scraped over HTTP as Prometheus would: every counter kind,
// labels per switch / port / band / reason / group, and deltas across
// snapshots (counters grow by what changed, gauges follow).
#include "mom/switch/switch_metrics.h"

#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/metrics/metrics_server.h"
#include "common/process/run_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::mom {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Scrape(int port) {
  return RunCommand(absl::StrCat("curl -s http://127.0.0.1:", port, "/metrics")).value_or("");
}

SwitchCounters Snapshot(uint64_t scale) {
  SwitchCounters c;
  c.forwarded = 10 * scale;
  c.drops[static_cast<int>(DropReason::kQueueFull)] = 3 * scale;
  c.drops[static_cast<int>(DropReason::kNoRoute)] = scale;
  c.group_seqs[7] = 100 * scale;
  c.ports.resize(2);
  c.ports[0].rx_packets = 10 * scale;
  c.ports[1].tx_packets = 7 * scale;
  c.ports[1].rx_missed = scale;
  c.ports[1].tx_full = 2 * scale;
  c.ports[1].fragmented = 5 * scale;
  c.ports[0].probes_sent = 6 * scale;
  c.ports[0].probes_received = 8 * scale;
  c.ports[1].stale_voided = 9 * scale;
  c.ports[1].enqueued = {5 * scale, 4 * scale};
  c.ports[1].queue_full = {0, 3 * scale};
  c.ports[1].depth = {0, 17 * scale};
  return c;
}

TEST(SwitchMetricsTest, ScrapeShowsEveryCounterWithLabels) {
  auto registry = std::make_shared<metrics::Registry>();
  SwitchMetrics m(*registry, "leaf0", 2);
  absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> server =
      metrics::MetricsServer::Start(registry, "127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();

  m.Publish(Snapshot(1));
  m.Publish(Snapshot(2));  // counters add the difference, gauges are set
  const std::string body = Scrape((*server)->port());
  EXPECT_THAT(body, HasSubstr("mom_switch_forwarded_total{switch=\"leaf0\"} 20"));
  EXPECT_THAT(body, HasSubstr("mom_switch_drops_total{reason=\"queue_full\",switch=\"leaf0\"} 6"));
  EXPECT_THAT(body, HasSubstr("mom_switch_drops_total{reason=\"no_route\",switch=\"leaf0\"} 2"));
  EXPECT_THAT(body, HasSubstr("mom_switch_drops_total{reason=\"tx_full\",switch=\"leaf0\"} 0"));
  EXPECT_THAT(body, HasSubstr("mom_switch_group_sequence{group=\"7\",switch=\"leaf0\"} 200"));
  EXPECT_THAT(body, HasSubstr("mom_switch_port_rx_packets_total{port=\"0\",switch=\"leaf0\"} 20"));
  EXPECT_THAT(body, HasSubstr("mom_switch_port_tx_packets_total{port=\"1\",switch=\"leaf0\"} 14"));
  EXPECT_THAT(body, HasSubstr("mom_switch_port_rx_missed_total{port=\"1\",switch=\"leaf0\"} 2"));
  EXPECT_THAT(body,
              HasSubstr("mom_switch_port_tx_full_drops_total{port=\"1\",switch=\"leaf0\"} 4"));
  EXPECT_THAT(body,
              HasSubstr("mom_switch_port_fragmented_total{port=\"1\",switch=\"leaf0\"} 10"));
  EXPECT_THAT(body, HasSubstr("mom_switch_port_probes_sent_total{port=\"0\",switch=\"leaf0\"} 12"));
  EXPECT_THAT(body,
              HasSubstr("mom_switch_port_probes_received_total{port=\"0\",switch=\"leaf0\"} 16"));
  EXPECT_THAT(body,
              HasSubstr("mom_switch_port_stale_voided_total{port=\"1\",switch=\"leaf0\"} 18"));
  EXPECT_THAT(body, HasSubstr("mom_switch_drops_total{reason=\"too_big\",switch=\"leaf0\"} 0"));
  EXPECT_THAT(body, HasSubstr(
                        "mom_switch_queue_enqueued_total{band=\"0\",port=\"1\",switch=\"leaf0\"} 10"));
  EXPECT_THAT(body, HasSubstr(
                        "mom_switch_queue_enqueued_total{band=\"1\",port=\"1\",switch=\"leaf0\"} 8"));
  EXPECT_THAT(body,
              HasSubstr("mom_switch_queue_drops_total{band=\"1\",port=\"1\",switch=\"leaf0\"} 6"));
  EXPECT_THAT(body, HasSubstr("mom_switch_queue_depth{band=\"1\",port=\"1\",switch=\"leaf0\"} 34"));
  EXPECT_THAT(body, Not(HasSubstr("port=\"2\"")));
}

}  // namespace
}  // namespace dctk::mom
