// Fencing: a farmd machine that cannot renew its lease (here: the CM is
// gone, as in a partition) stops serving before the CM could remove it:
// one-sided reads of its regions fail and it reports itself evicted.
#include "farm/server/machine_service.h"

#include <memory>

#include "absl/time/clock.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/fabric/sync.h"
#include "farm/server/cm_service.h"
#include "gtest/gtest.h"

namespace dctk::farm::server {
namespace {

using fabric::ShmFabric;

TEST(MachineServiceTest, MachineWithoutALeaseFencesItself) {
  CmServiceOptions co;
  co.replicas = 2;
  co.region_size = 1 << 20;
  co.regions = 2;
  co.lease_ms = 300;
  co.expected_machines = {1, 2};
  auto cm = std::make_unique<CmService>(co);
  ASSERT_TRUE(cm->Start("127.0.0.1").ok());
  std::vector<std::unique_ptr<MachineService<ShmFabric>>> machines;
  for (fabric::MachineId id : {1u, 2u}) {
    auto m = MachineService<ShmFabric>::Start({.id = id, .cm_address = cm->address()}, [](fabric::MachineId id) {
      return ShmFabric::Create({.machine_id = id});
    });
    ASSERT_TRUE(m.ok()) << m.status();
    machines.push_back(std::move(*m));
  }
  // Wait for the CM to place both regions (it bootstraps asynchronously).
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  cm::Configuration c;
  while (true) {
    c = cm->config();
    bool placed = c.regions_size() == 2;
    for (const cm::Region& r : c.regions()) {
      for (const cm::Replica& rep : r.replicas()) placed &= rep.key() != 0;
    }
    if (placed) break;
    ASSERT_LT(absl::Now(), deadline) << "regions never placed: " << c.ShortDebugString();
    absl::SleepFor(absl::Milliseconds(5));
  }
  // A reader on another machine reads machine 1's copy of a region.
  auto reader = ShmFabric::Create({.machine_id = 50});
  ASSERT_TRUE(reader.ok());
  for (const cm::Machine& m : c.machines()) {
    if (m.id() == 1) ASSERT_TRUE((*reader)->Connect(1, m.endpoint()).ok());
  }
  fabric::RegionKey key = 0;
  for (const cm::Replica& rep : c.regions(0).replicas()) {
    if (rep.machine() == 1) key = rep.key();
  }
  ASSERT_NE(key, 0u);
  auto q = (*reader)->CreateQueue();
  ASSERT_TRUE(q.ok());
  uint64_t word = 0;
  ASSERT_TRUE((*reader)->RegisterLocal(&word, sizeof(word)).ok());
  EXPECT_TRUE(fabric::SyncRead(**q, {1, key, 0}, &word, 8).ok());
  EXPECT_FALSE(machines[0]->evicted());

  cm.reset();  // no renewal can succeed from now on
  while (!(machines[0]->evicted() && machines[1]->evicted())) {
    ASSERT_LT(absl::Now(), deadline + absl::Seconds(10)) << "a machine without a lease kept serving";
    absl::SleepFor(absl::Milliseconds(5));
  }
  absl::Status s = fabric::SyncRead(**q, {1, key, 0}, &word, 8);
  EXPECT_FALSE(s.ok()) << "a fenced machine's region is still readable";
}

}  // namespace
}  // namespace dctk::farm::server
