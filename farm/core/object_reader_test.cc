// ReadLockFree over the shm fabric: one read in the common case, retries on
// locks, and torn reads (forced deterministically, and from a concurrent
// writer in adversarial mode) are detected, never returned.
#include "farm/core/object_reader.h"

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "farm/fabric/shm_fabric.h"
#include "glog/logging.h"
#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

using fabric::ShmFabric;

constexpr RegionId kRegion = 9;

class ObjectReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (fabric::MachineId id : {1u, 2u}) {
      ShmFabric::Options o;
      o.machine_id = id;
      auto f = ShmFabric::Create(o);
      ASSERT_TRUE(f.ok());
      (id == 1 ? reader_machine_ : holder_) = std::move(*f);
    }
    auto r = holder_->Register(1 << 20);
    ASSERT_TRUE(r.ok());
    region_ = *r;
    ASSERT_TRUE(table_.Upsert({kRegion, region_.size, {{2, region_.key}}}).ok());
    ASSERT_TRUE(reader_machine_->Connect(2, holder_->endpoint()).ok());
    auto q = reader_machine_->CreateQueue();
    ASSERT_TRUE(q.ok());
    queue_ = std::move(*q);
    auto reader = ObjectReader<ShmFabric>::Create(*reader_machine_, queue_.get(), &cache_, 50);
    ASSERT_TRUE(reader.ok());
    reader_ = std::move(*reader);
  }

  uint8_t* Local(uint32_t offset) { return static_cast<uint8_t*>(region_.base) + offset; }

  // A local write at the holder: lock, write, unlock.
  void WriteAtHolder(uint32_t offset, size_t lines, const void* data, size_t len) {
    uint8_t* obj = Local(offset);
    uint64_t header;
    do {
      header = __atomic_load_n(reinterpret_cast<uint64_t*>(obj), __ATOMIC_ACQUIRE);
    } while (IsLocked(header) || !ObjectWriter::TryLock(obj, VersionOf(header)));
    ObjectWriter::Write(obj, lines, data, len);
    ObjectWriter::Unlock(obj, true);
  }

  std::unique_ptr<ShmFabric> holder_, reader_machine_;  // holder outlives the reader's connection
  fabric::MemoryRegion region_;
  RegionTable table_;
  RegionTable::Cache cache_{&table_};
  std::unique_ptr<ShmFabric::Queue> queue_;
  std::unique_ptr<ObjectReader<ShmFabric>> reader_;
};

TEST_F(ObjectReaderTest, CommonCaseIsOneReadOfTheWholeObject) {
  const std::string value(1000, 'x');
  InitObject(Local(4096), ObjectLines(value.size()));
  WriteAtHolder(4096, ObjectLines(value.size()), value.data(), value.size());
  std::string out(value.size(), '\0');
  ASSERT_TRUE(reader_->ReadLockFree(GlobalAddress(kRegion, 4096), out.data(), out.size()).ok());
  EXPECT_EQ(out, value);
  EXPECT_EQ(reader_->stats().reads, 1u);
}

TEST_F(ObjectReaderTest, LockedObjectIsRetriedThenReportedAborted) {
  InitObject(Local(0), 1);
  ASSERT_TRUE(ObjectWriter::TryLock(Local(0), 1));
  char out[8];
  absl::Status s = reader_->ReadLockFree(GlobalAddress(kRegion, 0), out, sizeof(out));
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_EQ(reader_->stats().locked, 50u);
  ObjectWriter::Unlock(Local(0), false);
  EXPECT_TRUE(reader_->ReadLockFree(GlobalAddress(kRegion, 0), out, sizeof(out)).ok());
}

TEST_F(ObjectReaderTest, BadAddressesGiveClearErrors) {
  char out[8];
  EXPECT_EQ(reader_->ReadLockFree(GlobalAddress(kRegion, 64), out, 8).code(),
            absl::StatusCode::kFailedPrecondition);  // never allocated
  EXPECT_EQ(reader_->ReadLockFree(GlobalAddress(kRegion + 1, 0), out, 8).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(reader_->ReadLockFree(GlobalAddress(kRegion, (1 << 20) - 64), out, 100).code(),
            absl::StatusCode::kOutOfRange);
}

// An address on line 1 of an object whose payload there looks like an
// allocated, locked header at the object's version: refused at the first
// read (no start bit), not taken for an object nor retried as locked.
TEST_F(ObjectReaderTest, AddressInsideAnObjectIsRefusedAtOnce) {
  const size_t lines = 2;
  InitObject(Local(0), lines);
  uint64_t payload[PayloadCapacity(lines) / 8] = {};
  payload[6] = kLockBit | kAllocatedBit | 2;  // the first word of line 1
  WriteAtHolder(0, lines, payload, sizeof(payload));
  char out[8];
  const GlobalAddress inside(kRegion, kLineSize);
  absl::Status s = reader_->ReadLockFree(inside, out, sizeof(out));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find(inside.ToString()), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("not the start of an object"), absl::string_view::npos) << s;
  EXPECT_EQ(reader_->stats().reads, 1u);
  std::vector<ObjectRead> batch = {{inside, out, sizeof(out)}};
  reader_->MultiReadLockFree(absl::MakeSpan(batch));
  EXPECT_EQ(batch[0].status.code(), absl::StatusCode::kFailedPrecondition) << batch[0].status;
}

TEST_F(ObjectReaderTest, WriteInTheMiddleOfAReadIsDetectedAndReadAgain) {
  const size_t len = 200, lines = ObjectLines(len);
  InitObject(Local(0), lines);
  const std::string first(len, 'a'), second(len, 'b');
  WriteAtHolder(0, lines, first.data(), len);
  int boundaries = 0;
  fabric::FaultOptions faults;
  faults.adversarial = true;
  faults.max_spin = 1;
  faults.on_line_boundary = [&] {
    if (++boundaries == 2) WriteAtHolder(0, lines, second.data(), len);  // after line 0
  };
  queue_->SetFaultOptions(faults);
  std::string out(len, '\0');
  ASSERT_TRUE(reader_->ReadLockFree(GlobalAddress(kRegion, 0), out.data(), len).ok());
  EXPECT_EQ(out, second);
  EXPECT_EQ(reader_->stats().reads, 2u);
  EXPECT_EQ(reader_->stats().torn, 1u);
}

TEST_F(ObjectReaderTest, ConcurrentWriterNeverYieldsAMixedSnapshot) {
  const size_t len = 1000, lines = ObjectLines(len);
  InitObject(Local(0), lines);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> writes{0};
  std::thread writer([&] {
    std::vector<uint8_t> data(len);
    uint64_t rng = 88172645463325252ULL;
    for (uint8_t round = 1; !stop.load(std::memory_order_relaxed); ++round) {
      std::memset(data.data(), round, len);
      WriteAtHolder(0, lines, data.data(), len);
      writes.fetch_add(1, std::memory_order_relaxed);
      // Pace the writer to about one write per read, so reads both race it
      // and sometimes finish between writes (a writer that never pauses
      // starves lock-free readers, on RDMA as here).
      rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
      for (uint64_t spin = rng % 20000; spin > 0; --spin) asm volatile("" ::: "memory");
      if (rng & 1) std::this_thread::yield();
    }
  });
  fabric::FaultOptions faults;
  faults.adversarial = true;
  faults.max_spin = 100;
  queue_->SetFaultOptions(faults);
  auto reader = ObjectReader<ShmFabric>::Create(*reader_machine_, queue_.get(), &cache_, 1000000);
  ASSERT_TRUE(reader.ok());
  std::vector<uint8_t> out(len);
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE((*reader)->ReadLockFree(GlobalAddress(kRegion, 0), out.data(), len).ok());
    for (size_t j = 1; j < len; ++j) {
      ASSERT_EQ(out[j], out[0]) << "mixed snapshot returned at byte " << j << " of read " << i;
    }
  }
  stop = true;
  writer.join();
  const ObjectReaderStats& st = (*reader)->stats();
  LOG(INFO) << "2000 snapshots over " << st.reads << " reads: " << st.torn << " torn and "
            << st.locked << " locked copies rejected; " << writes.load() << " writes";
  EXPECT_EQ(st.objects, 2000u);
}

}  // namespace
}  // namespace dctk::farm
