// NetFabric-specific behaviour: one-sided operations are served by the
// target's progress thread while its application thread is blocked, a
// killed target gives REMOTE_ERROR completions, not hangs, and waiters sleep:
// doorbells ring on remote writes, queues wait for their responses.
#include "farm/fabric/net_fabric.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "farm/fabric/internal/atomic_copy.h"
#include "farm/fabric/sync.h"
#include "gtest/gtest.h"

namespace dctk::farm::fabric {
namespace {

struct TargetInfo {
  RegionKey key;
  char endpoint[64];
};

// The target: registers a region, reports it, then its only application
// thread blocks in read() until the parent says go, and checks the parent's write.
[[noreturn]] void RunTarget(int to_parent, int from_parent) {
  NetFabric::Options o;
  o.machine_id = 2;
  auto f = NetFabric::Create(o);
  if (!f.ok()) _exit(10);
  auto r = (*f)->Register(1 << 16);
  if (!r.ok()) _exit(11);
  // Local stores to a registered region race with the progress thread's
  // one-sided reads by design, so they are atomic word stores, as the
  // fabric's own (the reads only come after the parent hears of the region,
  // an order through a pipe and TCP that ThreadSanitizer cannot see).
  const std::vector<uint8_t> pattern(4096, 0x5A);
  internal::AtomicWrite(static_cast<uint8_t*>(r->base), pattern.data(), pattern.size(),
                        internal::NoDelay{});
  TargetInfo info{};
  info.key = r->key;
  std::strncpy(info.endpoint, (*f)->endpoint().c_str(), sizeof(info.endpoint) - 1);
  if (write(to_parent, &info, sizeof(info)) != sizeof(info)) _exit(13);
  char go;
  if (read(from_parent, &go, 1) != 1) _exit(14);
  const uint8_t written = __atomic_load_n(static_cast<uint8_t*>(r->base) + 100, __ATOMIC_ACQUIRE);
  _exit(written == 0xEE ? 0 : 12);
}

class NetTargetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(pipe(up_), 0);
    ASSERT_EQ(pipe(down_), 0);
    child_ = fork();  // before this process starts threads
    ASSERT_GE(child_, 0);
    if (child_ == 0) RunTarget(up_[1], down_[0]);
    ASSERT_EQ(read(up_[0], &info_, sizeof(info_)), static_cast<ssize_t>(sizeof(info_)));
    NetFabric::Options o;
    o.machine_id = 1;
    auto f = NetFabric::Create(o);
    ASSERT_TRUE(f.ok());
    fabric_ = std::move(*f);
    ASSERT_TRUE(fabric_->Connect(2, info_.endpoint).ok());
    auto q = fabric_->CreateQueue();
    ASSERT_TRUE(q.ok());
    queue_ = std::move(*q);
  }
  void TearDown() override {
    queue_.reset();
    fabric_.reset();
    if (child_ > 0) {
      kill(child_, SIGKILL);
      waitpid(child_, nullptr, 0);
    }
    for (int fd : {up_[0], up_[1], down_[0], down_[1]}) close(fd);
  }

  int up_[2] = {-1, -1}, down_[2] = {-1, -1};
  pid_t child_ = -1;
  TargetInfo info_{};
  std::unique_ptr<NetFabric> fabric_;
  std::unique_ptr<NetFabric::Queue> queue_;
};

TEST_F(NetTargetTest, ProgressThreadServesOpsWhileApplicationThreadIsBlocked) {
  uint8_t buf[4096];
  ASSERT_TRUE(SyncRead(*queue_, {2, info_.key, 0}, buf, sizeof(buf)).ok());
  for (uint8_t b : buf) ASSERT_EQ(b, 0x5A);
  const uint8_t mark = 0xEE;
  ASSERT_TRUE(SyncWrite(*queue_, {2, info_.key, 100}, &mark, 1).ok());
  uint64_t scratch;
  auto old = SyncCompareAndSwap(*queue_, {2, info_.key, 8}, 0x5A5A5A5A5A5A5A5AULL, 1, &scratch);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(*old, 0x5A5A5A5A5A5A5A5AULL);
  ASSERT_EQ(write(down_[1], "g", 1), 1);
  int st = 0;
  ASSERT_EQ(waitpid(child_, &st, 0), child_);
  child_ = -1;
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST_F(NetTargetTest, KilledTargetGivesRemoteErrorsNotHangs) {
  uint64_t word;
  ASSERT_TRUE(SyncRead(*queue_, {2, info_.key, 0}, &word, 8).ok());
  kill(child_, SIGKILL);
  waitpid(child_, nullptr, 0);
  child_ = -1;
  absl::Status s = SyncRead(*queue_, {2, info_.key, 0}, &word, 8);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("REMOTE_ERROR"), std::string::npos) << s;
}

// Two machines in this process: machine 1 reads and writes machine 2's region.
struct LocalPair {
  explicit LocalPair(bool blocking_waits = true) {
    NetFabric::Options o;
    o.blocking_waits = blocking_waits;
    o.machine_id = 2;
    target = std::move(*NetFabric::Create(o));
    o.machine_id = 1;
    initiator = std::move(*NetFabric::Create(o));
    region = *target->Register(1 << 16);
    EXPECT_TRUE(initiator->Connect(2, target->endpoint()).ok());
    queue = std::move(*initiator->CreateQueue());
  }
  std::unique_ptr<NetFabric> target, initiator;
  MemoryRegion region;
  std::unique_ptr<NetFabric::Queue> queue;
};

TEST(NetDoorbellTest, RemoteWritesAndSwapsRingTheRegionsBellReadsDoNot) {
  LocalPair p;
  auto bell = p.target->NewDoorbell();
  ASSERT_TRUE(bell.ok()) << bell.status();
  ASSERT_TRUE(p.target->AttachDoorbell(static_cast<uint8_t*>(p.region.base) + 100, *bell).ok());
  const uint32_t before = (*bell)->epoch();
  uint64_t word = 0;
  ASSERT_TRUE(SyncRead(*p.queue, {2, p.region.key, 0}, &word, 8).ok());
  EXPECT_EQ((*bell)->epoch(), before);  // a read writes nothing
  // The bell rings before the WRITE's response is sent, so it has rung when
  // SyncWrite returns.
  word = 42;
  ASSERT_TRUE(SyncWrite(*p.queue, {2, p.region.key, 64}, &word, 8).ok());
  const uint32_t after_write = (*bell)->epoch();
  EXPECT_NE(after_write, before);
  ASSERT_TRUE(SyncCompareAndSwap(*p.queue, {2, p.region.key, 64}, 42, 43, &word).ok());
  EXPECT_NE((*bell)->epoch(), after_write);
  // A failed write (out of bounds) touches nothing and rings nothing.
  const uint32_t after_cas = (*bell)->epoch();
  EXPECT_FALSE(SyncWrite(*p.queue, {2, p.region.key, 1 << 16}, &word, 8).ok());
  EXPECT_EQ((*bell)->epoch(), after_cas);
}

TEST(NetDoorbellTest, AWaiterSleepsUntilARemoteWriteLands) {
  LocalPair p;
  Doorbell* bell = *p.target->NewDoorbell();
  ASSERT_TRUE(p.target->AttachDoorbell(p.region.base, bell).ok());
  const auto* flag = static_cast<const uint64_t*>(p.region.base);
  std::thread receiver([&] {
    while (true) {
      const uint32_t seen = bell->epoch();
      if (__atomic_load_n(flag, __ATOMIC_ACQUIRE) == 7) return;
      bell->Wait(seen, absl::Hours(1));  // only the write can end this wait
    }
  });
  const uint64_t seven = 7;
  ASSERT_TRUE(SyncWrite(*p.queue, {2, p.region.key, 0}, &seven, 8).ok());
  receiver.join();
}

TEST(NetDoorbellTest, AttachNeedsARegisteredAddressAndBlockingWaits) {
  LocalPair p;
  Doorbell* bell = *p.target->NewDoorbell();
  uint64_t unregistered = 0;
  EXPECT_EQ(p.target->AttachDoorbell(&unregistered, bell).code(), absl::StatusCode::kNotFound);
  LocalPair spinning(/*blocking_waits=*/false);
  EXPECT_EQ(spinning.target->NewDoorbell().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(spinning.queue->WaitForCompletions(absl::Hours(1)));
  uint64_t word;
  ASSERT_TRUE(SyncRead(*spinning.queue, {2, spinning.region.key, 0}, &word, 8).ok());
}

TEST(NetQueueWaitTest, WaitsForOutstandingResponsesOnly) {
  LocalPair p;
  EXPECT_FALSE(p.queue->WaitForCompletions(absl::Hours(1)));  // nothing outstanding
  std::vector<uint64_t> words(4);
  for (uint64_t i = 0; i < words.size(); ++i) {
    ASSERT_TRUE(p.queue->PostRead({2, p.region.key, i * 8}, &words[i], 8, i).ok());
  }
  // One completion at a time: responses already received but not yet
  // returned make WaitForCompletions return at once.
  for (uint64_t want = 0; want < words.size(); ++want) {
    Completion c;
    while (p.queue->PollCompletions(absl::MakeSpan(&c, 1)) == 0) {
      ASSERT_TRUE(p.queue->WaitForCompletions(absl::Hours(1)));
    }
    EXPECT_TRUE(c.ok()) << c.ToStatus();
    EXPECT_EQ(c.wr_id, want);
  }
  EXPECT_FALSE(p.queue->WaitForCompletions(absl::Hours(1)));
  // Failures known at post time are completions waiting to be polled.
  ASSERT_TRUE(p.queue->PostRead({9, 1, 0}, &words[0], 8, 99).ok());
  EXPECT_TRUE(p.queue->WaitForCompletions(absl::Hours(1)));
}

}  // namespace
}  // namespace dctk::farm::fabric
