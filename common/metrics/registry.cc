#include "common/metrics/registry.h"

#include <cmath>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "prometheus/check_names.h"

namespace dctk::metrics {
namespace {

void CheckNames(const std::string& name, const prometheus::Labels& labels) {
  CHECK(prometheus::CheckMetricName(name)) << "bad metric name '" << name << "'";
  for (const auto& [label, value] : labels) {
    CHECK(prometheus::CheckLabelName(label)) << "bad label name '" << label << "' on " << name;
  }
}

std::vector<double> OneTwoFive(double from, double to) {
  std::vector<double> bounds;
  for (double decade = from; decade <= to * 1.0001; decade *= 10) {
    for (double m : {1.0, 2.0, 5.0}) {
      if (decade * m <= to * 1.0001) bounds.push_back(decade * m);
    }
  }
  return bounds;
}

prometheus::ClientMetric ToClientMetric(const prometheus::Labels& labels, const Histogram& h) {
  prometheus::ClientMetric m;
  for (const auto& [name, value] : labels) m.label.push_back({name, value});
  m.histogram.sample_count = h.count();
  m.histogram.sample_sum = static_cast<double>(h.sum()) * 1e-9;
  const std::vector<uint64_t> counts = LatencyBucketCounts(h);
  for (size_t i = 0; i < counts.size(); ++i) {
    m.histogram.bucket.push_back({counts[i], kLatencyBoundsSeconds[i]});
  }
  m.histogram.bucket.push_back({h.count(), std::numeric_limits<double>::infinity()});
  return m;
}

}  // namespace

const std::vector<double> kLatencyBoundsSeconds = OneTwoFive(1e-6, 10);

std::vector<uint64_t> LatencyBucketCounts(const Histogram& ns) {
  std::vector<uint64_t> counts;
  for (double bound : kLatencyBoundsSeconds) {
    counts.push_back(ns.CountAtOrBelow(static_cast<uint64_t>(std::llround(bound * 1e9))));
  }
  return counts;
}

Registry::Registry() = default;
Registry::~Registry() = default;

prometheus::Counter& Registry::AddCounter(const std::string& name, const std::string& help,
                                          const prometheus::Labels& labels) {
  CheckNames(name, labels);
  return prometheus::BuildCounter().Name(name).Help(help).Register(prometheus_).Add(labels);
}

prometheus::Gauge& Registry::AddGauge(const std::string& name, const std::string& help,
                                      const prometheus::Labels& labels) {
  CheckNames(name, labels);
  return prometheus::BuildGauge().Name(name).Help(help).Register(prometheus_).Add(labels);
}

ConcurrentHistogram& Registry::AddLatencyHistogram(const std::string& name,
                                                   const std::string& help,
                                                   const prometheus::Labels& labels) {
  CheckNames(name, labels);
  absl::MutexLock lock(&mu_);
  HistogramFamily& family = histograms_[name];
  if (family.help.empty()) family.help = help;
  std::unique_ptr<ConcurrentHistogram>& h = family.members[labels];
  if (h == nullptr) h = std::make_unique<ConcurrentHistogram>();
  return *h;
}

std::vector<prometheus::MetricFamily> Registry::Collect() const {
  std::vector<prometheus::MetricFamily> families = prometheus_.Collect();
  for (HistogramSample& s : SnapshotHistograms()) {
    if (families.empty() || families.back().name != s.name ||
        families.back().type != prometheus::MetricType::Histogram) {
      families.push_back({s.name, s.help, prometheus::MetricType::Histogram, {}});
    }
    families.back().metric.push_back(ToClientMetric(s.labels, s.histogram));
  }
  return families;
}

std::vector<Registry::HistogramSample> Registry::SnapshotHistograms() const {
  std::vector<HistogramSample> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [name, family] : histograms_) {
    for (const auto& [labels, h] : family.members) out.push_back({name, family.help, labels, h->Snapshot()});
  }
  return out;
}

std::vector<Registry::CounterSample> Registry::SnapshotCounters() const {
  std::vector<CounterSample> out;
  for (const prometheus::MetricFamily& f : prometheus_.Collect()) {
    if (f.type != prometheus::MetricType::Counter) continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      prometheus::Labels labels;
      for (const auto& l : m.label) labels.emplace(l.name, l.value);
      out.push_back({f.name, std::move(labels), m.counter.value});
    }
  }
  std::sort(out.begin(), out.end(), [](const CounterSample& a, const CounterSample& b) {
    return std::tie(a.name, a.labels) < std::tie(b.name, b.labels);
  });
  return out;
}

Scope::Scope(Registry& registry, std::string prefix, prometheus::Labels labels)
    : registry_(registry), prefix_(std::move(prefix)), labels_(std::move(labels)) {}

std::string Scope::Name(absl::string_view name) const {
  return prefix_.empty() ? std::string(name) : absl::StrCat(prefix_, "_", name);
}

prometheus::Counter& Scope::AddCounter(absl::string_view name, absl::string_view help) {
  return registry_.AddCounter(Name(name), std::string(help), labels_);
}

prometheus::Gauge& Scope::AddGauge(absl::string_view name, absl::string_view help) {
  return registry_.AddGauge(Name(name), std::string(help), labels_);
}

ConcurrentHistogram& Scope::AddLatencyHistogram(absl::string_view name, absl::string_view help) {
  return registry_.AddLatencyHistogram(absl::StrCat(Name(name), "_seconds"), std::string(help),
                                       labels_);
}

}  // namespace dctk::metrics
