// The workload's lookup table on an in-process 3-machine cluster: built by a
// transaction, then read from another machine with farm/kv's one-sided
// reader and multi-get client: every key has its value, absent keys miss,
// and the table is contiguous in one region.
#include "farm/workload/lookup_table.h"

#include <memory>
#include <vector>

#include "farm/kv/hashtable_client.h"
#include "farm/kv/hashtable_reader.h"
#include "farm/tx/test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm::workload {
namespace {

TEST(LookupTableTest, OneSidedLookupsFindEveryKeyAndMissTheRest) {
  auto c = tx::MakeShmCluster();
  constexpr int kKeys = 300;
  absl::StatusOr<LookupTable> t = LookupTable::Create(c->client(1), kKeys, /*seed=*/7);
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<RegionInfo> region = c->table().Lookup(t->first().region());
  ASSERT_TRUE(region.ok()) << region.status();
  const Replica primary = region->primary();
  const fabric::MachineId reader_machine = primary.machine == 1 ? 2 : 1;
  fabric::ShmFabric& f = c->fabric(reader_machine);
  auto queue = f.CreateQueue();
  ASSERT_TRUE(queue.ok()) << queue.status();
  const fabric::RemoteAddress at{primary.machine, primary.key, t->first().offset()};

  auto reader = kv::HashTableReader<fabric::ShmFabric>::Create(f, queue->get(), at, t->config());
  ASSERT_TRUE(reader.ok()) << reader.status();
  for (int i = 0; i < kKeys; ++i) {
    absl::StatusOr<absl::optional<kv::Value>> v = (*reader)->Lookup(t->KeyOf(i));
    ASSERT_TRUE(v.ok()) << i << ": " << v.status();
    ASSERT_TRUE(v->has_value()) << "key " << i << " missing";
    EXPECT_EQ(**v, t->ValueOf(i)) << "key " << i;
  }
  for (int i = kKeys; i < kKeys + 50; ++i) {
    absl::StatusOr<absl::optional<kv::Value>> v = (*reader)->Lookup(t->KeyOf(i));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_FALSE(v->has_value()) << "key " << i << " should miss";
  }

  auto client = kv::HashTableClient<fabric::ShmFabric>::Create(f, queue->get(), {at}, t->config());
  ASSERT_TRUE(client.ok()) << client.status();
  std::vector<kv::Key> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back(t->KeyOf(i));
  std::vector<kv::HashTableClient<fabric::ShmFabric>::Result> got = (*client)->MultiLookup(keys);
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_TRUE(got[i].ok() && got[i]->has_value()) << "key " << i;
    EXPECT_EQ(**got[i], t->ValueOf(i));
  }
}

TEST(LookupTableTest, ValuesDependOnTheSeed) {
  auto c = tx::MakeShmCluster();
  absl::StatusOr<LookupTable> a = LookupTable::Create(c->client(1), 4, 1);
  absl::StatusOr<LookupTable> b = LookupTable::Create(c->client(2), 4, 2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->ValueOf(3), b->ValueOf(3));
  EXPECT_NE(a->first(), b->first());
}

TEST(LookupTableTest, RejectsNoKeys) {
  auto c = tx::MakeShmCluster();
  EXPECT_FALSE(LookupTable::Create(c->client(1), 0, 1).ok());
}

}  // namespace
}  // namespace dctk::farm::workload
