// MultiReadLockFree: objects on 1..3 machines read in one call, one batch per
// machine, same answers as ReadLockFree (including missing objects, unknown
// regions and out-of-range addresses), and whole values under a concurrent
// writer in adversarial mode.
#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "farm/core/object_reader.h"
#include "farm/fabric/shm_fabric.h"
#include "glog/logging.h"
#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

using fabric::ShmFabric;

constexpr uint32_t kHolders = 3;
constexpr RegionId kFirstRegion = 10;  // region 10 + h lives on machine 2 + h
constexpr size_t kLen = 200;           // 4 lines
constexpr uint32_t kObjects = 64;      // per region, at offsets i * 256

class MultiReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ShmFabric::Options o;
    o.machine_id = 1;
    reader_machine_ = std::move(*ShmFabric::Create(o));
    for (uint32_t h = 0; h < kHolders; ++h) {
      o.machine_id = 2 + h;
      holders_.push_back(std::move(*ShmFabric::Create(o)));
      auto r = holders_.back()->Register(1 << 20);
      ASSERT_TRUE(r.ok());
      regions_.push_back(*r);
      ASSERT_TRUE(table_.Upsert({kFirstRegion + h, r->size, {{o.machine_id, r->key}}}).ok());
      ASSERT_TRUE(reader_machine_->Connect(o.machine_id, holders_.back()->endpoint()).ok());
      for (uint32_t i = 0; i < kObjects; ++i) {
        InitObject(Object(h, i), ObjectLines(kLen));
        Write(h, i, 0);
      }
    }
    queue_ = std::move(*reader_machine_->CreateQueue());
    reader_ = std::move(*ObjectReader<ShmFabric>::Create(*reader_machine_, queue_.get(), &cache_));
  }

  uint8_t* Object(uint32_t h, uint32_t i) { return static_cast<uint8_t*>(regions_[h].base) + i * 256; }
  static uint64_t Tag(uint32_t h, uint32_t i) { return (uint64_t{h} << 48) | (uint64_t{i} << 32); }
  // Every word of object (h, i) becomes Tag(h, i) | round.
  void Write(uint32_t h, uint32_t i, uint32_t round) {
    uint64_t words[kLen / 8];
    for (auto& w : words) w = Tag(h, i) | round;
    uint8_t* obj = Object(h, i);
    uint64_t header;
    do {
      header = __atomic_load_n(reinterpret_cast<uint64_t*>(obj), __ATOMIC_ACQUIRE);
    } while (IsLocked(header) || !ObjectWriter::TryLock(obj, VersionOf(header)));
    ObjectWriter::Write(obj, ObjectLines(kLen), words, kLen);
    ObjectWriter::Unlock(obj, true);
  }
  static GlobalAddress Addr(uint32_t h, uint32_t i) { return GlobalAddress(kFirstRegion + h, i * 256); }

  std::unique_ptr<ShmFabric> reader_machine_;
  std::vector<std::unique_ptr<ShmFabric>> holders_;
  std::vector<fabric::MemoryRegion> regions_;
  RegionTable table_;
  RegionTable::Cache cache_{&table_};
  std::unique_ptr<ShmFabric::Queue> queue_;
  std::unique_ptr<ObjectReader<ShmFabric>> reader_;
};

TEST_F(MultiReadTest, SameAnswersAsSingleReadsWithOneBatchPerMachine) {
  std::vector<GlobalAddress> addrs;
  for (uint32_t i = 0; i < 20; ++i) addrs.push_back(Addr(i % kHolders, i));
  addrs.push_back(Addr(0, 3));                        // duplicate
  addrs.push_back(Addr(1, kObjects + 5));             // no object allocated there
  addrs.push_back(GlobalAddress(kFirstRegion + 7, 0));  // unknown region
  addrs.push_back(GlobalAddress(kFirstRegion, (1 << 20) - 64));  // runs past the region
  std::vector<std::string> outs(addrs.size(), std::string(kLen, '\0'));
  std::vector<ObjectRead> batch;
  for (size_t j = 0; j < addrs.size(); ++j) batch.push_back({addrs[j], outs[j].data(), kLen, {}});
  reader_->MultiReadLockFree(absl::MakeSpan(batch));
  EXPECT_EQ(reader_->stats().machine_batches, kHolders);
  for (size_t j = 0; j < addrs.size(); ++j) {
    std::string single(kLen, '\0');
    absl::Status s = reader_->ReadLockFree(addrs[j], single.data(), kLen);
    ASSERT_EQ(batch[j].status.code(), s.code()) << addrs[j].ToString() << ": " << batch[j].status << " vs " << s;
    if (s.ok()) EXPECT_EQ(outs[j], single) << addrs[j].ToString();
  }
  EXPECT_TRUE(batch[0].status.ok());
  EXPECT_EQ(batch[21].status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(batch[22].status.ok());
  EXPECT_FALSE(batch[23].status.ok());
}

TEST_F(MultiReadTest, LargeBatchesSpanSeveralRounds) {
  std::vector<std::string> outs(kHolders * kObjects * 2, std::string(kLen, '\0'));
  std::vector<ObjectRead> batch;
  for (size_t j = 0; j < outs.size(); ++j) {
    const uint32_t h = j % kHolders, i = (j / kHolders) % kObjects;
    batch.push_back({Addr(h, i), outs[j].data(), kLen, {}});
  }
  reader_->MultiReadLockFree(absl::MakeSpan(batch));
  for (size_t j = 0; j < outs.size(); ++j) {
    ASSERT_TRUE(batch[j].status.ok()) << batch[j].status;
    uint64_t w;
    std::memcpy(&w, outs[j].data(), 8);
    ASSERT_EQ(w, Tag(j % kHolders, (j / kHolders) % kObjects));
  }
}

TEST_F(MultiReadTest, ValuesStayWholeUnderAConcurrentWriter) {
  std::atomic<bool> stop{false};
  std::atomic<uint32_t> rounds{0};
  std::thread writer([&] {
    std::mt19937_64 rng(3);
    for (uint32_t round = 1; !stop.load(std::memory_order_relaxed); ++round) {
      rounds.store(round, std::memory_order_relaxed);
      Write(rng() % kHolders, rng() % 8, round);  // 24 hot objects
      std::this_thread::yield();
    }
  });
  fabric::FaultOptions faults;
  faults.adversarial = true;
  faults.max_spin = 50;
  queue_->SetFaultOptions(faults);
  while (rounds.load() < 50) {
  }
  std::mt19937_64 rng(4);
  for (int n = 0; n < 200; ++n) {
    std::vector<std::string> outs(16, std::string(kLen, '\0'));
    std::vector<ObjectRead> batch;
    std::vector<std::pair<uint32_t, uint32_t>> which;
    for (auto& out : outs) {
      which.push_back({static_cast<uint32_t>(rng() % kHolders), static_cast<uint32_t>(rng() % 8)});
      batch.push_back({Addr(which.back().first, which.back().second), out.data(), kLen, {}});
    }
    reader_->MultiReadLockFree(absl::MakeSpan(batch));
    for (size_t j = 0; j < outs.size(); ++j) {
      ASSERT_TRUE(batch[j].status.ok()) << batch[j].status;
      uint64_t first;
      std::memcpy(&first, outs[j].data(), 8);
      ASSERT_EQ(first & ~uint64_t{0xffffffff}, Tag(which[j].first, which[j].second));
      for (size_t k = 8; k < kLen; k += 8) {
        uint64_t w;
        std::memcpy(&w, outs[j].data() + k, 8);
        ASSERT_EQ(w, first) << "torn object returned";
      }
    }
  }
  stop = true;
  writer.join();
  LOG(INFO) << "200 batches of 16 under a writer: " << reader_->stats().reads << " reads, "
            << reader_->stats().torn << " torn, " << reader_->stats().locked << " locked, "
            << rounds.load() << " writer rounds";
}

}  // namespace
}  // namespace dctk::farm
