#include "bastion/policy/selector_index.h"

#include <algorithm>

#include "absl/strings/match.h"
namespace dctk::bastion {

bool Selects(const Selector& selector, const ContainerInfo& container) {
  if (!selector.names.empty()) {
    bool any = false;
    for (const std::string& n : selector.names) {
      any |= n.back() == '*' ? absl::StartsWith(container.name, n.substr(0, n.size() - 1))
                             : container.name == n;
      if (any) break;
    }
    if (!any) return false;
  }
  for (const auto& [key, value] : selector.labels) {
    auto it = container.labels.find(key);
    if (it == container.labels.end() || it->second != value) return false;
  }
  return true;
}

ContainerIndex::ContainerIndex(const std::vector<ContainerInfo>& containers)
    : containers_(containers) {
  by_id_.reserve(containers.size());
  for (const ContainerInfo& c : containers) {
    if (!by_id_.try_emplace(c.id, &c).second) continue;  // the first of a duplicate id wins
    by_name_[c.name].push_back(c.id);
    for (const auto& [key, value] : c.labels) by_label_[key][value].push_back(c.id);
  }
}

const ContainerInfo* ContainerIndex::Find(uint32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::vector<uint32_t> ContainerIndex::Members(const Selector& selector) const {
  std::vector<uint32_t> candidates;
  if (!selector.names.empty()) {
    for (const std::string& n : selector.names) {
      if (!n.empty() && n.back() == '*') {
        const std::string prefix = n.substr(0, n.size() - 1);
        for (auto it = by_name_.lower_bound(prefix);
             it != by_name_.end() && absl::StartsWith(it->first, prefix); ++it) {
          candidates.insert(candidates.end(), it->second.begin(), it->second.end());
        }
      } else if (auto it = by_name_.find(n); it != by_name_.end()) {
        candidates.insert(candidates.end(), it->second.begin(), it->second.end());
      }
    }
  } else if (!selector.labels.empty()) {
    const std::vector<uint32_t>* rarest = nullptr;
    for (const auto& [key, value] : selector.labels) {
      auto k = by_label_.find(key);
      if (k == by_label_.end()) return {};
      auto v = k->second.find(value);
      if (v == k->second.end()) return {};
      if (!rarest || v->second.size() < rarest->size()) rarest = &v->second;
    }
    candidates = *rarest;
  } else {
    for (const auto& [id, c] : by_id_) candidates.push_back(id);
  }
  std::vector<uint32_t> out;
  out.reserve(candidates.size());
  for (uint32_t id : candidates) {
    if (Selects(selector, *by_id_.at(id))) out.push_back(id);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace dctk::bastion
