#include "common/metrics/table.h"

#include "gtest/gtest.h"

namespace dctk::metrics {
namespace {

TEST(TableTest, FormatsNanos) {
  EXPECT_EQ(Table::FormatNanos(850), "850ns");
  EXPECT_EQ(Table::FormatNanos(12'345), "12.3us");
  EXPECT_EQ(Table::FormatNanos(4'560'000), "4.56ms");
  EXPECT_EQ(Table::FormatNanos(1'200'000'000), "1.2s");
}

TEST(TableTest, AlignsHistogramAndCounterRows) {
  Histogram h;
  for (int i = 1; i <= 100; ++i) h.Record(i * 1000);
  Table t(absl::Seconds(2));
  t.AddHistogram("commit", h);
  t.AddCounter("retries_total", 17);
  EXPECT_EQ(t.ToString(),
            "name           count   p50     p99  p99.9    max  rate/s\n"
            "commit           100  50us  99.1us  100us  100us    50.0\n"
            "retries_total     17     -       -      -      -     8.5\n");
}

TEST(TableTest, FormatsLatencyBuckets) {
  Histogram h;
  EXPECT_EQ(FormatLatencyBuckets(h), "");
  for (int i = 0; i < 98; ++i) h.Record(70'000);  // (50, 100] us
  h.Record(100'000);                              // (50, 100]: a bound is inclusive
  h.Record(3'000'000);                            // (2000, 5000]
  h.Record(500);                                  // <= 1 us
  h.Record(30'000'000'000);                       // beyond 10 s
  EXPECT_EQ(FormatLatencyBuckets(h), "<=1us:1 <=100us:99 <=5000us:1 >10000000us:1");
}

TEST(TableTest, AddsEveryHistogramAndCounterOfARegistry) {
  Registry registry;
  Scope scope(registry, "bench", {{"client", "0"}});
  scope.AddCounter("ops_total", "ops").Increment(10);
  scope.AddLatencyHistogram("op", "op latency").Record(2000);
  Table t(absl::Seconds(1));
  t.AddRegistry(registry);
  const std::string s = t.ToString();
  EXPECT_NE(s.find("bench_op_seconds{client=0}"), std::string::npos) << s;
  EXPECT_NE(s.find("bench_ops_total{client=0}"), std::string::npos) << s;
}

}  // namespace
}  // namespace dctk::metrics
