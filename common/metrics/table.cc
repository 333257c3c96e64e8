#include "common/metrics/table.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace dctk::metrics {
namespace {

const std::vector<std::string> kHeader = {"name", "count", "p50", "p99", "p99.9", "max",
                                          "rate/s"};

std::string Labelled(const std::string& name, const prometheus::Labels& labels) {
  if (labels.empty()) return name;
  return absl::StrCat(name, "{",
                      absl::StrJoin(labels, ",", absl::PairFormatter("=")), "}");
}

}  // namespace

Table::Table(absl::Duration elapsed) : elapsed_(elapsed) {}

std::string FormatLatencyBuckets(const Histogram& nanoseconds) {
  const std::vector<uint64_t> at_or_below = LatencyBucketCounts(nanoseconds);
  std::string out;
  auto append = [&out](absl::string_view op, double bound_seconds, uint64_t count) {
    if (count == 0) return;
    absl::StrAppend(&out, out.empty() ? "" : " ", op, std::llround(bound_seconds * 1e6),
                    "us:", count);
  };
  uint64_t below = 0;
  for (size_t i = 0; i < at_or_below.size(); ++i) {
    append("<=", kLatencyBoundsSeconds[i], at_or_below[i] - below);
    below = at_or_below[i];
  }
  append(">", kLatencyBoundsSeconds.back(), nanoseconds.count() - below);
  return out;
}

std::string Table::FormatNanos(double ns) {
  if (ns < 1e3) return absl::StrFormat("%.0fns", ns);
  if (ns < 1e6) return absl::StrFormat("%.3gus", ns / 1e3);
  if (ns < 1e9) return absl::StrFormat("%.3gms", ns / 1e6);
  return absl::StrFormat("%.3gs", ns / 1e9);
}

double Table::Rate(double count) const {
  const double s = absl::ToDoubleSeconds(elapsed_);
  return s > 0 ? count / s : 0;
}

void Table::AddHistogram(absl::string_view name, const Histogram& h) {
  rows_.push_back({std::string(name), absl::StrCat(h.count()),
                   FormatNanos(h.ValueAtQuantile(0.5)), FormatNanos(h.ValueAtQuantile(0.99)),
                   FormatNanos(h.ValueAtQuantile(0.999)), FormatNanos(h.max()),
                   absl::StrFormat("%.1f", Rate(h.count()))});
}

void Table::AddCounter(absl::string_view name, double value) {
  rows_.push_back({std::string(name), absl::StrFormat("%.0f", value), "-", "-", "-", "-",
                   absl::StrFormat("%.1f", Rate(value))});
}

void Table::AddRegistry(const Registry& registry) {
  for (const Registry::HistogramSample& s : registry.SnapshotHistograms()) {
    AddHistogram(Labelled(s.name, s.labels), s.histogram);
  }
  for (const Registry::CounterSample& s : registry.SnapshotCounters()) {
    AddCounter(Labelled(s.name, s.labels), s.value);
  }
}

std::string Table::ToString() const {
  std::vector<size_t> width(kHeader.size());
  for (size_t c = 0; c < kHeader.size(); ++c) width[c] = kHeader[c].size();
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  auto append_row = [&](const std::vector<std::string>& row) {
    // The name column is left-aligned, numbers right-aligned.
    absl::StrAppend(&out, row[0], std::string(width[0] - row[0].size(), ' '));
    for (size_t c = 1; c < row.size(); ++c) {
      absl::StrAppend(&out, "  ", std::string(width[c] - row[c].size(), ' '), row[c]);
    }
    out += '\n';
  };
  append_row(kHeader);
  for (const auto& row : rows_) append_row(row);
  return out;
}

}  // namespace dctk::metrics
