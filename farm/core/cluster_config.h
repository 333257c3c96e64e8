// Loading and checking a ClusterConfig (cluster_config.proto), with defaults
// applied. Errors name the file and field at fault.
//
// Example:
//   absl::StatusOr<ClusterConfig> c = LoadClusterConfig("farm.textproto");
//   absl::StatusOr<PlacementRing> ring = MakeRing(*c);
#ifndef DCTK_FARM_CORE_CLUSTER_CONFIG_H_
#define DCTK_FARM_CORE_CLUSTER_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "farm/core/cluster_config.pb.h"
#include "farm/core/placement_ring.h"

namespace dctk::farm {

inline constexpr uint64_t kDefaultRegionSize = uint64_t{2} << 30;
inline constexpr uint64_t kBlockSize = uint64_t{1} << 20;

// Parses text format; `origin` (a file name) prefixes error messages.
absl::StatusOr<ClusterConfig> ParseClusterConfig(absl::string_view text,
                                                 absl::string_view origin = "<config>");
absl::StatusOr<ClusterConfig> LoadClusterConfig(const std::string& path);
// Fills defaults and checks every field; returns the completed config.
absl::StatusOr<ClusterConfig> ValidateClusterConfig(ClusterConfig config,
                                                    absl::string_view origin = "<config>");
absl::StatusOr<PlacementRing> MakeRing(const ClusterConfig& config);

}  // namespace dctk::farm

#endif  // DCTK_FARM_CORE_CLUSTER_CONFIG_H_
