// FlowSizeCdf: published data-center flow-size distributions for background
// traffic, and sampling from them.
//
// Each table is the empirical CDF as (size in bytes, cumulative fraction)
// points; sampling interpolates linearly between points (as the ns-2/ns-3
// traffic generators of DCTCP, pFabric and HPCC do).
//   WebSearch():  the web-search workload measured by Alizadeh et al., "Data
//                 Center TCP (DCTCP)", SIGCOMM 2010 (also used by pFabric).
//   FbHadoop():   the Facebook Hadoop workload of Roy et al., "Inside the Social
//                 Network's (Datacenter) Network", SIGCOMM 2015.
// Both tables as tabulated in the HPCC simulator's traffic generator
// (github.com/alibaba-edu/High-Precision-Congestion-Control,
// traffic_gen/WebSearch_distribution.txt and FbHdp_distribution.txt).
//
// Example:
//   std::mt19937_64 rng(seed);
//   uint64_t bytes = FlowSizeCdf::WebSearch().Sample(rng);
#ifndef DCTK_MOM_SIM_FLOW_SIZE_H_
#define DCTK_MOM_SIM_FLOW_SIZE_H_

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dctk::mom {

class FlowSizeCdf {
 public:
  // `points`: (bytes, cumulative fraction), both non-decreasing, the fraction
  // going from 0 to 1.
  static absl::StatusOr<FlowSizeCdf> Create(std::vector<std::pair<double, double>> points);
  static const FlowSizeCdf& WebSearch();
  static const FlowSizeCdf& FbHadoop();
  // "web-search" or "fb-hadoop".
  static absl::StatusOr<const FlowSizeCdf*> ByName(absl::string_view name);

  // The size at cumulative fraction u in [0, 1], at least 1 byte.
  uint64_t Quantile(double u) const;
  uint64_t Sample(std::mt19937_64& rng) const {
    return Quantile(std::uniform_real_distribution<double>(0.0, 1.0)(rng));
  }
  // Mean of the interpolated distribution, in bytes.
  double MeanBytes() const;

 private:
  explicit FlowSizeCdf(std::vector<std::pair<double, double>> points)
      : points_(std::move(points)) {}
  std::vector<std::pair<double, double>> points_;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_SIM_FLOW_SIZE_H_
