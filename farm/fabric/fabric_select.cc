#include "farm/fabric/fabric_select.h"

#include "absl/strings/str_cat.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/fabric/verbs_fabric.h"

namespace dctk::farm::fabric {

static_assert(Fabric<ShmFabric>);
static_assert(Fabric<VerbsFabric>);
static_assert(Fabric<NetFabric>);

FabricKind ChooseFabricKind() {
  return VerbsDeviceCount() > 0 ? FabricKind::kVerbs : FabricKind::kShm;
}

absl::StatusOr<FabricKind> ParseFabricKind(absl::string_view name) {
  if (name == "auto") return ChooseFabricKind();
  if (name == "shm") return FabricKind::kShm;
  if (name == "verbs") {
    if (VerbsDeviceCount() == 0) {
      return absl::FailedPreconditionError("fabric 'verbs' requested but this host has no RDMA device");
    }
    return FabricKind::kVerbs;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown fabric '", name, "' (expected auto, shm or verbs)"));
}

const char* FabricKindName(FabricKind kind) {
  return kind == FabricKind::kVerbs ? "verbs" : "shm";
}

}  // namespace dctk::farm::fabric
