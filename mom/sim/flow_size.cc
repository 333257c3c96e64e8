#include "mom/sim/flow_size.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dctk::mom {
namespace {

FlowSizeCdf MustCreate(std::vector<std::pair<double, double>> points) {
  absl::StatusOr<FlowSizeCdf> cdf = FlowSizeCdf::Create(std::move(points));
  CHECK(cdf.ok()) << cdf.status();
  return *std::move(cdf);
}

}  // namespace

absl::StatusOr<FlowSizeCdf> FlowSizeCdf::Create(std::vector<std::pair<double, double>> points) {
  if (points.size() < 2 || points.front().second != 0.0 || points.back().second != 1.0) {
    return absl::InvalidArgumentError(
        "flow-size CDF needs >= 2 points, the first at fraction 0 and the last at 1");
  }
  for (size_t i = 1; i < points.size(); ++i) {
    if (points[i].first < points[i - 1].first || points[i].second < points[i - 1].second) {
      return absl::InvalidArgumentError(
          absl::StrCat("flow-size CDF point ", i, " (", points[i].first, " bytes, ",
                       points[i].second, ") decreases"));
    }
  }
  return FlowSizeCdf(std::move(points));
}

const FlowSizeCdf& FlowSizeCdf::WebSearch() {
  static const FlowSizeCdf* cdf = new FlowSizeCdf(MustCreate({
      {0, 0.0},          {10000, 0.15},   {20000, 0.20},    {30000, 0.30},
      {50000, 0.40},     {80000, 0.53},   {200000, 0.60},   {1000000, 0.70},
      {2000000, 0.80},   {5000000, 0.90}, {10000000, 0.97}, {30000000, 1.0},
  }));
  return *cdf;
}

const FlowSizeCdf& FlowSizeCdf::FbHadoop() {
  static const FlowSizeCdf* cdf = new FlowSizeCdf(MustCreate({
      {0, 0.0},        {100, 0.01},     {200, 0.02},     {300, 0.05},    {350, 0.15},
      {400, 0.20},     {500, 0.30},     {600, 0.40},     {700, 0.50},    {1000, 0.60},
      {2000, 0.67},    {7000, 0.70},    {30000, 0.72},   {50000, 0.82},  {80000, 0.87},
      {120000, 0.90},  {300000, 0.95},  {1000000, 0.975}, {2000000, 0.99},
      {10000000, 1.0},
  }));
  return *cdf;
}

absl::StatusOr<const FlowSizeCdf*> FlowSizeCdf::ByName(absl::string_view name) {
  if (name == "web-search") return &WebSearch();
  if (name == "fb-hadoop") return &FbHadoop();
  return absl::InvalidArgumentError(
      absl::StrCat("unknown flow-size distribution '", name, "' (web-search, fb-hadoop)"));
}

uint64_t FlowSizeCdf::Quantile(double u) const {
  u = std::clamp(u, 0.0, 1.0);
  auto it = std::lower_bound(points_.begin(), points_.end(), u,
                             [](const std::pair<double, double>& p, double v) {
                               return p.second < v;
                             });
  double bytes;
  if (it == points_.begin()) {
    bytes = it->first;
  } else {
    const auto& [x1, y1] = *it;
    const auto& [x0, y0] = *(it - 1);
    bytes = y1 == y0 ? x1 : x0 + (x1 - x0) * (u - y0) / (y1 - y0);
  }
  return std::max<uint64_t>(1, static_cast<uint64_t>(bytes + 0.5));
}

double FlowSizeCdf::MeanBytes() const {
  double mean = 0;
  for (size_t i = 1; i < points_.size(); ++i) {
    mean += (points_[i].second - points_[i - 1].second) *
            (points_[i].first + points_[i - 1].first) / 2;
  }
  return mean;
}

}  // namespace dctk::mom
