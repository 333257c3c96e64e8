// ContainerIndex: the discovered containers indexed by id, name and label, so that the
// members of a service's selector are found without testing every container.
//
// A selector picks containers by name (exact, or a prefix with a trailing '*') and/or by
// labels (all must match). Members() starts from the smallest candidate list the index
// holds for the selector (the named containers, or the containers carrying its rarest
// label) and checks each candidate with Selects(), so it costs
// O(candidates x selector size), not O(all containers). Building the index costs one
// pass over the containers. The index points into the containers it was built from: they
// must outlive it and not move.
//
// Example:
//   ContainerIndex index(containers);
//   std::vector<uint32_t> ids = index.Members(service.select);  // sorted container ids
//   const ContainerInfo* c = index.Find(ids.front());
#ifndef DCTK_BASTION_POLICY_SELECTOR_INDEX_H_
#define DCTK_BASTION_POLICY_SELECTOR_INDEX_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "bastion/policy/container.h"
#include "bastion/policy/policy.h"

namespace dctk::bastion {

// Whether `selector` picks `container`.
bool Selects(const Selector& selector, const ContainerInfo& container);

class ContainerIndex {
 public:
  explicit ContainerIndex(const std::vector<ContainerInfo>& containers);
  ContainerIndex(const ContainerIndex&) = delete;
  ContainerIndex& operator=(const ContainerIndex&) = delete;

  // The container with this id, or nullptr.
  const ContainerInfo* Find(uint32_t id) const;
  // Sorted ids of the containers `selector` picks (Selects() semantics).
  std::vector<uint32_t> Members(const Selector& selector) const;
  const std::vector<ContainerInfo>& containers() const { return containers_; }

 private:
  const std::vector<ContainerInfo>& containers_;
  absl::flat_hash_map<uint32_t, const ContainerInfo*> by_id_;
  std::map<std::string, std::vector<uint32_t>> by_name_;  // sorted: prefixes are ranges
  // label key -> value -> ids
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, std::vector<uint32_t>>>
      by_label_;
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_POLICY_SELECTOR_INDEX_H_
