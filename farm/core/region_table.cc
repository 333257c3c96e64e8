#include "farm/core/region_table.h"

#include "absl/strings/str_cat.h"

namespace dctk::farm {

absl::Status RegionTable::Upsert(RegionInfo info) {
  if (info.id == 0) return absl::InvalidArgumentError("region table: region id 0 is reserved (null address)");
  if (info.replicas.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("region table: region ", info.id, " has no replicas"));
  }
  if (info.size == 0 || info.size > (uint64_t{1} << 32)) {
    return absl::InvalidArgumentError(
        absl::StrCat("region table: region ", info.id, " size ", info.size, " not in (0, 4 GB]"));
  }
  absl::MutexLock l(&mu_);
  regions_[info.id] = std::move(info);
  version_.fetch_add(1, std::memory_order_release);
  return absl::OkStatus();
}

absl::Status RegionTable::Remove(RegionId id) {
  absl::MutexLock l(&mu_);
  if (regions_.erase(id) == 0) return absl::NotFoundError(absl::StrCat("region table: no region ", id));
  version_.fetch_add(1, std::memory_order_release);
  return absl::OkStatus();
}

absl::StatusOr<RegionInfo> RegionTable::Lookup(RegionId id) const {
  absl::MutexLock l(&mu_);
  auto it = regions_.find(id);
  if (it == regions_.end()) return absl::NotFoundError(absl::StrCat("region table: no region ", id));
  return it->second;
}

std::vector<RegionInfo> RegionTable::All() const {
  absl::MutexLock l(&mu_);
  std::vector<RegionInfo> out;
  out.reserve(regions_.size());
  for (const auto& [id, info] : regions_) out.push_back(info);
  return out;
}

absl::StatusOr<const RegionInfo*> RegionTable::Cache::Lookup(RegionId id) {
  const uint64_t v = table_->version();
  if (v != version_) {
    entries_.clear();
    version_ = v;
  }
  auto it = entries_.find(id);
  if (it != entries_.end()) return &it->second;
  ++misses_;
  absl::StatusOr<RegionInfo> info = table_->Lookup(id);
  if (!info.ok()) return info.status();
  return &entries_.emplace(id, *std::move(info)).first->second;
}

absl::StatusOr<fabric::RemoteAddress> RegionTable::Cache::ResolvePrimary(GlobalAddress addr,
                                                                         uint32_t length) {
  absl::StatusOr<const RegionInfo*> info = Lookup(addr.region());
  if (!info.ok()) return info.status();
  if (uint64_t{addr.offset()} + length > (*info)->size) {
    return absl::OutOfRangeError(absl::StrCat("address ", addr.ToString(), " + ", length,
                                              " bytes leaves region ", addr.region(), " of ",
                                              (*info)->size, " bytes"));
  }
  const Replica& p = (*info)->primary();
  return fabric::RemoteAddress{p.machine, p.key, addr.offset()};
}

}  // namespace dctk::farm
