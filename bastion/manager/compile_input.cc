#include "bastion/manager/compile_input.h"

#include <utility>

#include "bastion/manager/host_network_policy.h"

namespace dctk::bastion {

absl::Status CompileInput::Upsert(const std::string& key, const ContainerInfo& container) {
  ContainerInfo c = container;
  const bool host_network = IsHostNetwork(container);
  if (host_network && host_network_) {
    absl::StatusOr<std::vector<ContainerInfo>> placed = WithPlaceholderAddresses({container});
    if (!placed.ok()) return placed.status();
    c = std::move(placed->front());
  }
  Erase(key);
  if (c.ip == 0) return absl::OkStatus();  // host-network, not enforced: left out
  index_.reset();
  positions_[key] = containers_.size();
  containers_.push_back(std::move(c));
  keys_.push_back(key);
  if (host_network) host_network_ids_.insert(container.id);
  return absl::OkStatus();
}

void CompileInput::Erase(const std::string& key) {
  auto it = positions_.find(key);
  if (it == positions_.end()) return;
  index_.reset();
  const size_t pos = it->second;
  positions_.erase(it);
  if (host_network_) host_network_ids_.erase(containers_[pos].id);
  if (pos + 1 != containers_.size()) {
    containers_[pos] = std::move(containers_.back());
    keys_[pos] = std::move(keys_.back());
    positions_[keys_[pos]] = pos;
  }
  containers_.pop_back();
  keys_.pop_back();
}

void CompileInput::Clear() {
  index_.reset();
  containers_.clear();
  keys_.clear();
  positions_.clear();
  host_network_ids_.clear();
}

const ContainerIndex& CompileInput::Index() const {
  if (!index_) index_ = std::make_unique<ContainerIndex>(containers_);
  return *index_;
}

}  // namespace dctk::bastion
