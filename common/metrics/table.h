// Table: benchmark results as an aligned text table.
//
// One row per latency histogram (count, p50, p99, p99.9, max, rate) or counter
// (count, rate); latencies are nanoseconds printed with a unit ("12.3us"),
// rates are per second of the given elapsed time.
//
// Example:
//   Table t(absl::Seconds(10));
//   t.AddHistogram("commit", commit_ns);
//   t.AddCounter("retries", retries);
//   std::cout << t.ToString();
//   // name     count     p50      p99    p99.9      max     rate/s
//   // commit  812345  11.2us   40.1us   95.0us   1.20ms    81234.5
//   // retries     17       -        -        -        -        1.7
//
//   FormatLatencyBuckets(commit_ns);  // "<=20us:700000 <=50us:112000 ..."
#ifndef DCTK_COMMON_METRICS_TABLE_H_
#define DCTK_COMMON_METRICS_TABLE_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/metrics/histogram.h"
#include "common/metrics/registry.h"

namespace dctk::metrics {

class Table {
 public:
  // `elapsed`: the time the counts were gathered over, for the rate column.
  explicit Table(absl::Duration elapsed);

  void AddHistogram(absl::string_view name, const Histogram& nanoseconds);
  void AddCounter(absl::string_view name, double value);
  // A row per latency histogram and counter in `registry`, named
  // "name{label=value,...}".
  void AddRegistry(const Registry& registry);

  std::string ToString() const;

  // "850ns", "12.3us", "4.56ms", "1.20s".
  static std::string FormatNanos(double ns);

 private:
  double Rate(double count) const;

  absl::Duration elapsed_;
  std::vector<std::vector<std::string>> rows_;
};

// A latency histogram (nanoseconds) on one line, in /metrics' buckets
// (kLatencyBoundsSeconds: 1-2-5 steps, 1 us .. 10 s; like there, a bound may
// count samples up to 0.8% above it), non-empty buckets only:
// "<=50us:3 <=100us:120 <=5000us:1 >10000000us:2"; "" if empty.
std::string FormatLatencyBuckets(const Histogram& nanoseconds);

}  // namespace dctk::metrics

#endif  // DCTK_COMMON_METRICS_TABLE_H_
