#include "mom/design.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dctk::mom {

absl::string_view DesignName(Design design) {
  switch (design) {
    case Design::kNaive:
      return "naive";
    case Design::kTopologyAware:
      return "topology-aware";
    case Design::kTopologyAwareQos:
      return "topology-aware-qos";
    case Design::kSerialized:
      return "serialized";
  }
  return "unknown";
}

absl::StatusOr<Design> ParseDesign(absl::string_view name) {
  for (Design d : kAllDesigns) {
    if (DesignName(d) == name) return d;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown MOM design '", name,
      "' (expected naive, topology-aware, topology-aware-qos or serialized)"));
}

}  // namespace dctk::mom
