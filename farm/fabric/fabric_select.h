// Choosing a fabric backend at startup. Code using a fabric is a template on
// the backend type, so the choice is made once (e.g. in main) and the chosen
// instantiation runs without per-operation dispatch.
//
// Example:
//   absl::StatusOr<FabricKind> kind = ParseFabricKind(flag);   // "auto", "shm", "verbs"
//   if (*kind == FabricKind::kVerbs) return Run<VerbsFabric>(...);
//   return Run<ShmFabric>(...);
#ifndef DCTK_FARM_FABRIC_FABRIC_SELECT_H_
#define DCTK_FARM_FABRIC_FABRIC_SELECT_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dctk::farm::fabric {

enum class FabricKind { kShm, kVerbs };

// kVerbs when libibverbs lists at least one device, else kShm.
FabricKind ChooseFabricKind();

// "auto" -> ChooseFabricKind(); "shm"; "verbs" (an error if no device exists).
absl::StatusOr<FabricKind> ParseFabricKind(absl::string_view name);

const char* FabricKindName(FabricKind kind);

}  // namespace dctk::farm::fabric

#endif  // DCTK_FARM_FABRIC_FABRIC_SELECT_H_
