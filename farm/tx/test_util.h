// Helpers for farm/tx tests: an in-process shm cluster and small object codecs.
#ifndef DCTK_FARM_TX_TEST_UTIL_H_
#define DCTK_FARM_TX_TEST_UTIL_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "farm/fabric/shm_fabric.h"
#include "farm/tx/local_cluster.h"

namespace dctk::farm::tx {

using ShmCluster = LocalCluster<fabric::ShmFabric>;

inline std::unique_ptr<ShmCluster> MakeShmCluster(LocalClusterOptions o = {}) {
  auto c = ShmCluster::Create(o, [](fabric::MachineId id) {
    return fabric::ShmFabric::Create({.machine_id = id});
  });
  if (!c.ok()) {
    fprintf(stderr, "cluster: %s\n", c.status().ToString().c_str());
    abort();
  }
  return std::move(*c);
}

inline std::string U64(uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }
inline uint64_t AsU64(const std::string& s) {
  uint64_t v = 0;
  std::memcpy(&v, s.data(), std::min<size_t>(8, s.size()));
  return v;
}

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_TEST_UTIL_H_
