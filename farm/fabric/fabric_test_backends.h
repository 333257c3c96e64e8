// Test-only: how the conformance suite makes and connects machines of each
// backend, and why a backend is skipped on this machine.
//
// Example:
//   TYPED_TEST_SUITE(MyFabricTest, AllBackends);
//   auto fabric = TestBackend<TypeParam>::Make(/*machine=*/1);
#ifndef DCTK_FARM_FABRIC_FABRIC_TEST_BACKENDS_H_
#define DCTK_FARM_FABRIC_FABRIC_TEST_BACKENDS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/fabric/verbs_fabric.h"
#include "gtest/gtest.h"

namespace dctk::farm::fabric {

template <typename F>
struct TestBackend;

template <>
struct TestBackend<ShmFabric> {
  static std::string SkipReason() { return ""; }
  static absl::StatusOr<std::unique_ptr<ShmFabric>> Make(MachineId id) {
    ShmFabric::Options o;
    o.machine_id = id;
    return ShmFabric::Create(o);
  }
};

template <>
struct TestBackend<VerbsFabric> {
  static std::string SkipReason() {
    if (VerbsDeviceCount() > 0) return "";
    return "no RDMA device (ibv_get_device_list is empty): verbs backend not exercised here";
  }
  static absl::StatusOr<std::unique_ptr<VerbsFabric>> Make(MachineId id) {
    VerbsFabric::Options o;
    o.machine_id = id;
    return VerbsFabric::Create(o);
  }
};

template <>
struct TestBackend<NetFabric> {
  static std::string SkipReason() { return ""; }
  static absl::StatusOr<std::unique_ptr<NetFabric>> Make(MachineId id) {
    NetFabric::Options o;
    o.machine_id = id;
    return NetFabric::Create(o);
  }
};

using AllBackends = ::testing::Types<ShmFabric, NetFabric, VerbsFabric>;

}  // namespace dctk::farm::fabric

#endif  // DCTK_FARM_FABRIC_FABRIC_TEST_BACKENDS_H_
