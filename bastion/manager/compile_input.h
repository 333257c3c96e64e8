// CompileInput: the manager's containers as the policy compiler takes them, kept up to
// date one container at a time, so that a container event or a policy change does not
// copy the whole container list.
//
// The compiler (bastion/policy/compiler.h) takes a vector of ContainerInfo, each with
// an address of its own. Host-network containers have none: with host-network
// enforcement they go in under a placeholder address (host_network_policy.h), without
// it they are left out. CompileInput holds that vector keyed by the manager's container
// key. Upsert and Erase cost O(log n) (an erase moves the last container into the gap;
// the compiler's result does not depend on the order). The ContainerIndex over the
// vector (selector members, for incremental policy updates) is built on first use after
// a change and kept until the next one, so consecutive policy changes share it.
//
// Example:
//   CompileInput input(/*host_network=*/true);
//   RETURN_IF_ERROR(input.Upsert("podman/abc", info));
//   absl::StatusOr<DatapathState> slice =
//       CompileSlice(policy, input.containers(), {info.id});
//   if (slice.ok()) FinishHostNetworkState(input.host_network_ids(), *slice);
//   std::vector<uint32_t> members = input.Index().Members(service.select);
#ifndef DCTK_BASTION_MANAGER_COMPILE_INPUT_H_
#define DCTK_BASTION_MANAGER_COMPILE_INPUT_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "bastion/policy/container.h"
#include "bastion/policy/selector_index.h"

namespace dctk::bastion {

class CompileInput {
 public:
  // `host_network`: host-network containers are compiled (placeholder addresses) rather
  // than left out.
  explicit CompileInput(bool host_network) : host_network_(host_network) {}
  CompileInput(const CompileInput&) = delete;
  CompileInput& operator=(const CompileInput&) = delete;

  // Adds or replaces the container under `key`. Error (nothing changed): a host-network
  // container whose id does not fit a placeholder address.
  absl::Status Upsert(const std::string& key, const ContainerInfo& container);
  void Erase(const std::string& key);
  void Clear();

  const std::vector<ContainerInfo>& containers() const { return containers_; }
  // Ids of the host-network containers among containers() (for FinishHostNetworkState).
  const std::set<uint32_t>& host_network_ids() const { return host_network_ids_; }
  // An index over containers(), valid until the next Upsert, Erase or Clear.
  const ContainerIndex& Index() const;

 private:
  const bool host_network_;
  std::vector<ContainerInfo> containers_;
  std::vector<std::string> keys_;  // keys_[i] is containers_[i]'s
  absl::flat_hash_map<std::string, size_t> positions_;
  std::set<uint32_t> host_network_ids_;
  mutable std::unique_ptr<ContainerIndex> index_;
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_MANAGER_COMPILE_INPUT_H_
