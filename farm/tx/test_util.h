// Helpers for farm/tx tests: an in-process shm cluster and small object codecs.
#ifndef DCTK_FARM_TX_TEST_UTIL_H_
#define DCTK_FARM_TX_TEST_UTIL_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "farm/core/address.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/tx/local_cluster.h"
#include "gtest/gtest.h"

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

// Both 8-byte counters at `a` and `b` + 1 in one transaction.
inline absl::Status Increment(TxClient<fabric::ShmFabric>& client, GlobalAddress a,
                              GlobalAddress b) {
  auto tx = client.Begin();
  absl::StatusOr<std::string> va = tx.Read(a, 8);
  if (!va.ok()) return va.status();
  absl::StatusOr<std::string> vb = tx.Read(b, 8);
  if (!vb.ok()) return vb.status();
  absl::Status s = tx.Write(a, U64(AsU64(*va) + 1));
  if (s.ok()) s = tx.Write(b, U64(AsU64(*vb) + 1));
  if (s.ok()) s = tx.Commit();
  return s;
}

// The counters at `a` and `b`, read in one transaction (99 for a failed read).
inline std::pair<uint64_t, uint64_t> Values(TxClient<fabric::ShmFabric>& client, GlobalAddress a,
                                            GlobalAddress b) {
  auto tx = client.Begin();
  absl::StatusOr<std::string> va = tx.Read(a, 8), vb = tx.Read(b, 8);
  EXPECT_TRUE(va.ok() && vb.ok()) << va.status() << " " << vb.status();
  return {va.ok() ? AsU64(*va) : 99, vb.ok() ? AsU64(*vb) : 99};
}

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_TEST_UTIL_H_
