// RegionTable: which machines hold each region, and under which fabric key.
//
// The configuration manager owns the authoritative table (FaRM's CM); every
// machine keeps a copy that changes only when the configuration does. Lookups
// are on the path of every remote access, so each thread reads through a
// RegionTable::Cache: a private hash map checked against the table's version
// with one atomic load, refilled from the table (under its lock) only after a
// miss or a configuration change.
//
// Example:
//   RegionTable table;
//   table.Upsert({.id = 7, .replicas = {{.machine = 2, .key = 11}, {.machine = 3, .key = 4}}});
//   RegionTable::Cache cache(&table);                 // one per thread
//   absl::StatusOr<fabric::RemoteAddress> at = cache.ResolvePrimary(GlobalAddress(7, 128));
#ifndef DCTK_FARM_CORE_REGION_TABLE_H_
#define DCTK_FARM_CORE_REGION_TABLE_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "farm/core/address.h"
#include "farm/fabric/fabric.h"

namespace dctk::farm {

struct Replica {
  fabric::MachineId machine = 0;
  fabric::RegionKey key = 0;  // the region's key in that machine's fabric
};

struct RegionInfo {
  RegionId id = 0;
  uint64_t size = 0;
  std::vector<Replica> replicas;  // [0] is the primary, the rest are backups

  const Replica& primary() const { return replicas.front(); }
};

class RegionTable {
 public:
  // Adds or replaces a region's entry; bumps the version.
  absl::Status Upsert(RegionInfo info);
  absl::Status Remove(RegionId id);
  absl::StatusOr<RegionInfo> Lookup(RegionId id) const;
  std::vector<RegionInfo> All() const;
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

  class Cache {
   public:
    explicit Cache(const RegionTable* table) : table_(table) {}
    // Valid until the next call on this cache.
    absl::StatusOr<const RegionInfo*> Lookup(RegionId id);
    // The primary's fabric address of `addr`, bounds-checked against the region.
    absl::StatusOr<fabric::RemoteAddress> ResolvePrimary(GlobalAddress addr, uint32_t length = 1);
    uint64_t misses() const { return misses_; }

   private:
    const RegionTable* table_;
    uint64_t version_ = ~uint64_t{0};
    uint64_t misses_ = 0;
    absl::flat_hash_map<RegionId, RegionInfo> entries_;
  };

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<RegionId, RegionInfo> regions_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> version_{0};
};

}  // namespace dctk::farm

#endif  // DCTK_FARM_CORE_REGION_TABLE_H_
