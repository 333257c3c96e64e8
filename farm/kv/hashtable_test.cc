// The hashtable against std::unordered_map: random puts, overwrites, erases
// and lookups up to 90% occupancy, reads per lookup counted; and lookups
// racing a writer in adversarial mode never see a wrong or torn value.
#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/hash/hash.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/kv/hashtable_reader.h"
#include "farm/kv/hashtable_writer.h"
#include "glog/logging.h"
#include "gtest/gtest.h"

namespace dctk::farm::kv {
namespace {

using fabric::ShmFabric;

Key MakeKey(uint64_t i) {
  Key k{};
  std::memcpy(k.data(), &i, 8);
  k[15] = 0x5a;
  return k;
}
// Every word of a value names its key and the Put that wrote it.
Value MakeValue(uint64_t i, uint64_t round) {
  Value v;
  for (size_t j = 0; j < v.size(); j += 8) {
    const uint64_t w = (i << 32) | (round & 0xffffffff);
    std::memcpy(v.data() + j, &w, 8);
  }
  return v;
}

struct KeyHash {
  size_t operator()(const Key& k) const { return absl::HashOf(std::string(k.begin(), k.end())); }
};

class HashTableTest : public ::testing::Test {
 protected:
  void Build(TableConfig config) {
    config_ = config;
    for (fabric::MachineId id : {1u, 2u}) {
      ShmFabric::Options o;
      o.machine_id = id;
      (id == 1 ? reader_machine_ : owner_) = std::move(*ShmFabric::Create(o));
    }
    auto region = owner_->Register(TableBytes(config));
    ASSERT_TRUE(region.ok());
    auto w = HashTableWriter::Create(static_cast<uint8_t*>(region->base), config);
    ASSERT_TRUE(w.ok()) << w.status();
    writer_ = std::make_unique<HashTableWriter>(*std::move(w));
    ASSERT_TRUE(reader_machine_->Connect(2, owner_->endpoint()).ok());
    queue_ = std::move(*reader_machine_->CreateQueue());
    auto r = HashTableReader<ShmFabric>::Create(*reader_machine_, queue_.get(), {2, region->key, 0}, config);
    ASSERT_TRUE(r.ok());
    reader_ = std::move(*r);
  }

  TableConfig config_;
  std::unique_ptr<ShmFabric> owner_, reader_machine_;
  std::unique_ptr<ShmFabric::Queue> queue_;
  std::unique_ptr<HashTableWriter> writer_;
  std::unique_ptr<HashTableReader<ShmFabric>> reader_;
};

TEST_F(HashTableTest, MatchesUnorderedMapUpToNinetyPercentOccupancy) {
  Build({.buckets = 1024, .overflow_blocks = 256});
  std::unordered_map<Key, Value, KeyHash> model;
  std::mt19937_64 rng(11);
  const uint64_t target = writer_->capacity() * 9 / 10;
  uint64_t next_key = 0;
  for (int step = 0; model.size() < target; ++step) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 6 || model.empty()) {  // insert a new key
      const Key k = MakeKey(next_key++);
      const Value v = MakeValue(next_key, 0);
      ASSERT_TRUE(writer_->Put(k, v).ok()) << "at occupancy " << model.size();
      model[k] = v;
    } else if (op < 8) {  // overwrite or erase an existing key
      const Key k = MakeKey(rng() % next_key);
      if (op == 6) {
        const Value v = MakeValue(step, 1);
        ASSERT_TRUE(writer_->Put(k, v).ok());
        model[k] = v;
      } else {
        EXPECT_EQ(*writer_->Erase(k), model.erase(k) == 1);
      }
    } else {  // look up a present or absent key remotely
      const Key k = MakeKey(rng() % (next_key + 10));
      auto got = reader_->Lookup(k);
      ASSERT_TRUE(got.ok()) << got.status();
      auto it = model.find(k);
      ASSERT_EQ(got->has_value(), it != model.end());
      if (it != model.end()) ASSERT_EQ(**got, it->second);
    }
  }
  EXPECT_EQ(writer_->size(), model.size());
  // Every key once more, at 90% occupancy, counting reads.
  const uint64_t reads_before = reader_->reads(), lookups_before = reader_->lookups();
  for (const auto& [k, v] : model) {
    auto got = reader_->Lookup(k);
    ASSERT_TRUE(got.ok() && got->has_value());
    ASSERT_EQ(**got, v);
  }
  const double per_lookup = static_cast<double>(reader_->reads() - reads_before) /
                            static_cast<double>(reader_->lookups() - lookups_before);
  LOG(INFO) << "90% occupancy: " << per_lookup << " reads per lookup, " << writer_->overflow_used()
            << " overflow blocks, " << writer_->displacements() << " hopscotch moves";
  EXPECT_LT(per_lookup, 1.1);
}

TEST_F(HashTableTest, FullTableReportsResourceExhausted) {
  Build({.buckets = 4, .overflow_blocks = 1});
  absl::Status s;
  uint64_t i = 0;
  while ((s = writer_->Put(MakeKey(i), MakeValue(i, 0))).ok()) ++i;
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_GE(i, 4u * kSlots);  // most of the 48 slots: neighborhoods limit the rest
  for (uint64_t j = 0; j < i; ++j) ASSERT_TRUE(reader_->Lookup(MakeKey(j))->has_value());
}

TEST_F(HashTableTest, LookupsRacingAWriterNeverSeeWrongOrTornValues) {
  Build({.buckets = 64, .overflow_blocks = 64});
  constexpr uint64_t kKeys = 400;  // ~78% of 520 slots
  for (uint64_t i = 0; i < kKeys; ++i) ASSERT_TRUE(writer_->Put(MakeKey(i), MakeValue(i, 0)).ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> rounds{0};
  std::thread writer([&] {
    std::mt19937_64 rng(5);
    for (uint64_t round = 1; !stop.load(std::memory_order_relaxed); ++round) {
      rounds.store(round, std::memory_order_relaxed);
      // Paced so lookups both race writes and complete between them.
      for (uint64_t spin = rng() % 4000; spin > 0; --spin) asm volatile("" ::: "memory");
      std::this_thread::yield();  // share the core when the machine is busy
      const uint64_t i = rng() % kKeys;
      // Erase and re-insert (moves keys between buckets and chains) or overwrite.
      if (round % 3 == 0) {
        ASSERT_TRUE(*writer_->Erase(MakeKey(i)));
      }
      ASSERT_TRUE(writer_->Put(MakeKey(i), MakeValue(i, round)).ok());
    }
  });
  fabric::FaultOptions faults;
  faults.adversarial = true;
  faults.max_spin = 50;
  queue_->SetFaultOptions(faults);
  while (rounds.load() < 100) {  // the writer is running before lookups start
  }
  std::mt19937_64 rng(9);
  int absent = 0;
  for (int n = 0; n < 2000; ++n) {
    const uint64_t i = rng() % kKeys;
    auto got = reader_->Lookup(MakeKey(i));
    ASSERT_TRUE(got.ok()) << got.status();
    if (!got->has_value()) {
      ++absent;  // erased and not yet re-inserted: allowed
      continue;
    }
    // Every word of a value comes from the same Put of this key.
    uint64_t first;
    std::memcpy(&first, (*got)->data(), 8);
    ASSERT_EQ(first >> 32, i) << "value of another key";
    for (size_t j = 8; j < 32; j += 8) {
      uint64_t w;
      std::memcpy(&w, (*got)->data() + j, 8);
      ASSERT_EQ(w, first) << "torn value for key " << i;
    }
  }
  stop = true;
  writer.join();
  LOG(INFO) << "2000 racing lookups: " << reader_->reads() << " reads, " << absent << " absent, "
            << rounds.load() << " writer rounds";
}

}  // namespace
}  // namespace dctk::farm::kv
