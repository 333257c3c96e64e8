#include "bastion/manager/running_state.h"

#include <random>

#include "bastion/manager/state_file.h"
#include "gtest/gtest.h"

namespace dctk::bastion {
namespace {

// Random entries among containers 1..12 (and a host id as a rule destination).
DatapathState RandomEntries(std::mt19937& rng, int n) {
  std::uniform_int_distribution<uint32_t> id(1, 12);
  DatapathState s;
  for (int i = 0; i < n; ++i) {
    const uint32_t a = id(rng), b = rng() % 4 == 0 ? kHostIdFirst : id(rng);
    switch (rng() % 4) {
      case 0:
        s.endpoints[0x0a000000 + rng() % 16] = ContainerEndpoint{.container_id = a};
        break;
      case 1:
        s.bindings[static_cast<int>(rng() % 16)] = Binding{.container_id = a};
        break;
      case 2:
        s.dependencies.insert({a, b});
        break;
      default: {
        const uint16_t port = rng() % 8;
        s.rules.insert({a, b, 6, port, port});
      }
    }
  }
  return s;
}

bool Equal(const DatapathState& a, const DatapathState& b) {
  auto ids = [](const auto& m) {
    std::map<int64_t, uint32_t> out;
    for (const auto& [k, v] : m) out[k] = v.container_id;
    return out;
  };
  return a.audit == b.audit && ids(a.endpoints) == ids(b.endpoints) &&
         ids(a.bindings) == ids(b.bindings) && a.hosts == b.hosts &&
         a.dependencies == b.dependencies && a.rules == b.rules;
}

// After random patches (PatchState semantics, keys overwritten by other containers
// included), the state equals a plain patched copy and every slice equals SliceOf.
TEST(RunningStateTest, SlicesMatchAFullScanAfterRandomPatches) {
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    RunningState running;
    DatapathState plain = RandomEntries(rng, 40);
    running.Reset(plain);
    for (int step = 0; step < 20; ++step) {
      DatapathState remove = SliceOf(plain, {static_cast<uint32_t>(1 + rng() % 12)});
      DatapathState add = RandomEntries(rng, 6);
      add.audit = rng() % 2;
      add.hosts = {{0x0a000001, kHostIdFirst}};
      running.Patch(remove, add);
      PatchState(plain, remove, add);
      plain.audit = add.audit;
      ASSERT_TRUE(Equal(running.state(), plain)) << "round " << round << " step " << step;
      std::set<uint32_t> ids;
      for (int k = rng() % 4; k > 0; --k) ids.insert(1 + rng() % 12);
      ASSERT_TRUE(Equal(running.Slice(ids), SliceOf(plain, ids)))
          << "round " << round << " step " << step;
    }
  }
}

}  // namespace
}  // namespace dctk::bastion
