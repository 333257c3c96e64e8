#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/metrics/component_metrics.h"
#include "common/metrics/metrics_server.h"
#include "common/metrics/registry.h"
#include "common/process/run_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

#define TEST_COMPONENT_METRICS(COUNTER, GAUGE, HISTOGRAM)      \
  COUNTER(requests_total, "Requests received")                 \
  COUNTER(dropped_total, "Requests dropped: unknown sender")   \
  GAUGE(view, "Current view number")                           \
  HISTOGRAM(commit_latency, "Request receive to commit time")

namespace dctk::metrics {
namespace {

DCTK_METRICS_STRUCT(TestComponentMetrics, TEST_COMPONENT_METRICS);

using ::testing::HasSubstr;

std::string Text(const Registry& r) {
  return prometheus::TextSerializer().Serialize(r.Collect());
}

TEST(ComponentMetricsTest, DeclaredListIsRegisteredWithPrefixAndLabels) {
  Registry registry;
  Scope scope(registry, "vr_replica", {{"replica", "r1"}});
  TestComponentMetrics m = TestComponentMetrics::Create(scope);
  m.requests_total.Increment(3);
  m.view.Set(7);
  m.commit_latency.Record(1'500);    // 1.5 us
  m.commit_latency.Record(300'000);  // 300 us

  const std::string text = Text(registry);
  EXPECT_THAT(text, HasSubstr("vr_replica_requests_total{replica=\"r1\"} 3"));
  EXPECT_THAT(text, HasSubstr("vr_replica_dropped_total{replica=\"r1\"} 0"));
  EXPECT_THAT(text, HasSubstr("vr_replica_view{replica=\"r1\"} 7"));
  EXPECT_THAT(text, HasSubstr("# TYPE vr_replica_commit_latency_seconds histogram"));
  EXPECT_THAT(text, HasSubstr("vr_replica_commit_latency_seconds_count{replica=\"r1\"} 2"));
  EXPECT_THAT(text, HasSubstr("vr_replica_commit_latency_seconds_bucket{replica=\"r1\",le=\"1e-06\"} 0"));
  EXPECT_THAT(text, HasSubstr("vr_replica_commit_latency_seconds_bucket{replica=\"r1\",le=\"2e-06\"} 1"));
  EXPECT_THAT(text, HasSubstr("vr_replica_commit_latency_seconds_bucket{replica=\"r1\",le=\"0.0005\"} 2"));
  EXPECT_THAT(text, HasSubstr("vr_replica_commit_latency_seconds_bucket{replica=\"r1\",le=\"+Inf\"} 2"));
}

TEST(ComponentMetricsTest, TwoInstancesDifferByLabel) {
  Registry registry;
  Scope a(registry, "vr_replica", {{"replica", "r0"}});
  Scope b(registry, "vr_replica", {{"replica", "r1"}});
  TestComponentMetrics ma = TestComponentMetrics::Create(a);
  TestComponentMetrics mb = TestComponentMetrics::Create(b);
  ma.requests_total.Increment();
  mb.commit_latency.Record(10);
  EXPECT_NE(&ma.requests_total, &mb.requests_total);

  std::vector<Registry::CounterSample> counters = registry.SnapshotCounters();
  ASSERT_EQ(counters.size(), 4u);
  EXPECT_EQ(counters[2].name, "vr_replica_requests_total");
  EXPECT_EQ(counters[2].labels.at("replica"), "r0");
  EXPECT_EQ(counters[2].value, 1);
  std::vector<Registry::HistogramSample> hs = registry.SnapshotHistograms();
  ASSERT_EQ(hs.size(), 2u);
  EXPECT_EQ(hs[0].histogram.count(), 0u);
  EXPECT_EQ(hs[1].histogram.count(), 1u);
}

TEST(RegistryTest, AddingTheSameMetricAgainReturnsIt) {
  Registry registry;
  EXPECT_EQ(&registry.AddCounter("x_total", "x"), &registry.AddCounter("x_total", "x"));
  EXPECT_EQ(&registry.AddLatencyHistogram("y_seconds", "y", {{"a", "1"}}),
            &registry.AddLatencyHistogram("y_seconds", "y", {{"a", "1"}}));
  EXPECT_NE(&registry.AddLatencyHistogram("y_seconds", "y", {{"a", "1"}}),
            &registry.AddLatencyHistogram("y_seconds", "y", {{"a", "2"}}));
}

TEST(RegistryDeathTest, BadNameIsAProgrammingError) {
  Registry registry;
  EXPECT_DEATH(registry.AddLatencyHistogram("has space", "h"), "bad metric name");
}

TEST(MetricsServerTest, CurlScrapesCountersAndHistograms) {
  auto registry = std::make_shared<Registry>();
  Scope scope(*registry, "mom_sequencer", {{"node", "s0"}});
  TestComponentMetrics m = TestComponentMetrics::Create(scope);
  m.requests_total.Increment(42);
  for (int i = 1; i <= 100; ++i) m.commit_latency.Record(i * 1000);

  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start(registry, "127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);

  absl::StatusOr<std::string> body =
      RunCommand(absl::StrCat("curl -s http://127.0.0.1:", port, "/metrics"));
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, HasSubstr("mom_sequencer_requests_total{node=\"s0\"} 42"));
  EXPECT_THAT(*body, HasSubstr("# TYPE mom_sequencer_commit_latency_seconds histogram"));
  EXPECT_THAT(*body, HasSubstr("mom_sequencer_commit_latency_seconds_count{node=\"s0\"} 100"));
  EXPECT_THAT(*body, HasSubstr("mom_sequencer_commit_latency_seconds_sum{node=\"s0\"} 0.00505"));
  EXPECT_THAT(
      *body, HasSubstr("mom_sequencer_commit_latency_seconds_bucket{node=\"s0\",le=\"5e-05\"} 50"));
}

TEST(MetricsServerTest, PortInUseIsAnError) {
  auto registry = std::make_shared<Registry>();
  absl::StatusOr<std::unique_ptr<MetricsServer>> first =
      MetricsServer::Start(registry, "127.0.0.1:0");
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<MetricsServer>> second =
      MetricsServer::Start(registry, absl::StrCat("127.0.0.1:", (*first)->port()));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace dctk::metrics
