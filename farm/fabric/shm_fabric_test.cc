// ShmFabric-specific behaviour: one-sided operations on a stopped target
// process, torn reads in adversarial mode, queue overflow, lost peers, key
// slots reused after deregistration.
#include "farm/fabric/shm_fabric.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/clock.h"
#include "farm/fabric/sync.h"
#include "glog/logging.h"
#include "gtest/gtest.h"

namespace dctk::farm::fabric {
namespace {

constexpr uint64_t kSize = 256 * 1024;
constexpr uint64_t kWriteWord = 100;
constexpr uint64_t kWriteValue = 0xfeedfacecafebeefULL;
constexpr uint64_t kCasWord = 200;

uint64_t Pattern(uint64_t i) { return i * 0x9E3779B97F4A7C15ULL + 1; }

struct TargetInfo {
  RegionKey key;
  char endpoint[100];
};

std::unique_ptr<ShmFabric> MakeFabric(MachineId id) {
  ShmFabric::Options o;
  o.machine_id = id;
  auto f = ShmFabric::Create(o);
  CHECK(f.ok()) << f.status();
  return std::move(*f);
}

// The target machine: registers a region, fills it, reports its key, then
// waits for the parent and checks that the parent's writes landed.
[[noreturn]] void RunTarget(int to_parent, int from_parent) {
  ShmFabric::Options o;
  o.machine_id = 2;
  auto f = ShmFabric::Create(o);
  if (!f.ok()) _exit(10);
  auto r = (*f)->Register(kSize);
  if (!r.ok()) _exit(11);
  auto* w = static_cast<uint64_t*>(r->base);
  for (uint64_t i = 0; i < kSize / 8; ++i) w[i] = Pattern(i);
  TargetInfo info{};
  info.key = r->key;
  std::strncpy(info.endpoint, (*f)->endpoint().c_str(), sizeof(info.endpoint) - 1);
  if (write(to_parent, &info, sizeof(info)) != sizeof(info)) _exit(13);
  char go;
  if (read(from_parent, &go, 1) != 1) _exit(14);
  _exit(w[kWriteWord] == kWriteValue && w[kCasWord] == Pattern(kCasWord) + 1 ? 0 : 12);
}

char ProcessState(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_field, comm, state;
  stat >> pid_field >> comm >> state;
  return state.empty() ? '?' : state[0];
}

class StoppedTargetTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (child_ > 0) {
      kill(child_, SIGKILL);
      waitpid(child_, nullptr, 0);
    }
  }
  pid_t child_ = -1;
};

TEST_F(StoppedTargetTest, OneSidedOpsCompleteWhileTargetProcessIsStopped) {
  int up[2], down[2];
  ASSERT_EQ(pipe(up), 0);
  ASSERT_EQ(pipe(down), 0);
  // Fork before this process starts any thread (the fabric starts two).
  child_ = fork();
  ASSERT_GE(child_, 0);
  if (child_ == 0) RunTarget(up[1], down[0]);
  close(up[1]);
  close(down[0]);
  TargetInfo info{};
  ASSERT_EQ(read(up[0], &info, sizeof(info)), static_cast<ssize_t>(sizeof(info)));

  auto a = MakeFabric(1);
  ASSERT_TRUE(a->Connect(2, info.endpoint).ok());
  auto q = a->CreateQueue();
  ASSERT_TRUE(q.ok());

  ASSERT_EQ(kill(child_, SIGSTOP), 0);
  int st = 0;
  ASSERT_EQ(waitpid(child_, &st, WUNTRACED), child_);
  ASSERT_TRUE(WIFSTOPPED(st));

  std::vector<uint64_t> buf(kSize / 8);
  ASSERT_TRUE(SyncRead(**q, {2, info.key, 0}, buf.data(), kSize).ok());
  for (uint64_t i = 0; i < kSize / 8; ++i) ASSERT_EQ(buf[i], Pattern(i)) << "word " << i;
  ASSERT_TRUE(SyncWrite(**q, {2, info.key, kWriteWord * 8}, &kWriteValue, 8).ok());
  uint64_t scratch;
  auto old = SyncCompareAndSwap(**q, {2, info.key, kCasWord * 8}, Pattern(kCasWord),
                                Pattern(kCasWord) + 1, &scratch);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(*old, Pattern(kCasWord));
  uint64_t back = 0;
  ASSERT_TRUE(SyncRead(**q, {2, info.key, kWriteWord * 8}, &back, 8).ok());
  EXPECT_EQ(back, kWriteValue);
  // The target never ran: it is still stopped after all of the above.
  EXPECT_EQ(ProcessState(child_), 'T');

  ASSERT_EQ(kill(child_, SIGCONT), 0);
  ASSERT_EQ(write(down[1], "g", 1), 1);
  ASSERT_EQ(waitpid(child_, &st, 0), child_);
  child_ = -1;
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << "target saw wrong contents after the one-sided writes";
  close(up[0]);
  close(down[1]);
}

TEST_F(StoppedTargetTest, KilledTargetProcessGivesRemoteErrorsNotHangs) {
  int up[2], down[2];
  ASSERT_EQ(pipe(up), 0);
  ASSERT_EQ(pipe(down), 0);
  child_ = fork();  // before this process starts threads
  ASSERT_GE(child_, 0);
  if (child_ == 0) RunTarget(up[1], down[0]);
  close(up[1]);
  close(down[0]);
  TargetInfo info{};
  ASSERT_EQ(read(up[0], &info, sizeof(info)), static_cast<ssize_t>(sizeof(info)));
  auto a = MakeFabric(1);
  ASSERT_TRUE(a->Connect(2, info.endpoint).ok());
  auto q = a->CreateQueue();
  uint64_t word;
  ASSERT_TRUE(SyncRead(**q, {2, info.key, 0}, &word, 8).ok());
  ASSERT_EQ(kill(child_, SIGKILL), 0);
  ASSERT_EQ(waitpid(child_, nullptr, 0), child_);
  child_ = -1;
  // The kernel closes the dead machine's control socket; a's control thread
  // marks it unreachable (bounded wait for that asynchronous notice).
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  absl::Status s;
  do {
    s = SyncRead(**q, {2, info.key, 0}, &word, 8);
  } while (s.ok() && absl::Now() < deadline);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("REMOTE_ERROR"), std::string::npos) << s;
  close(up[0]);
  close(down[1]);
}

TEST(ShmFabricTest, AdversarialModeExposesTornReadsAcrossCacheLines) {
  auto a = MakeFabric(1);
  auto b = MakeFabric(2);
  auto r = b->Register(4096);
  ASSERT_TRUE(r.ok());
  auto* words = static_cast<uint64_t*>(r->base);
  for (int i = 0; i < 32; ++i) words[i] = 1;
  ASSERT_TRUE(a->Connect(2, b->endpoint()).ok());
  auto q = a->CreateQueue();
  ASSERT_TRUE(q.ok());
  int boundary = 0;
  FaultOptions faults;
  faults.adversarial = true;
  faults.max_spin = 10;
  // A writer updates the whole object while the read is between lines 0 and 1.
  faults.on_line_boundary = [&] {
    if (++boundary == 2) {
      for (int i = 0; i < 32; ++i) __atomic_store_n(&words[i], 2, __ATOMIC_RELEASE);
    }
  };
  (*q)->SetFaultOptions(faults);
  uint64_t out[32];
  ASSERT_TRUE(SyncRead(**q, {2, r->key, 0}, out, sizeof(out)).ok());
  EXPECT_EQ(boundary, 4);  // 256 bytes = 4 cache lines
  for (int i = 0; i < 8; ++i) EXPECT_EQ(out[i], 1u) << i;   // line 0: before the write
  for (int i = 8; i < 32; ++i) EXPECT_EQ(out[i], 2u) << i;  // lines 1-3: after it
}

TEST(ShmFabricTest, FullCompletionQueueRejectsPostsUntilPolled) {
  auto a = MakeFabric(1);
  auto r = a->Register(4096);
  ASSERT_TRUE(r.ok());
  auto q = a->CreateQueue();
  ASSERT_TRUE(q.ok());
  uint64_t word;
  for (uint32_t i = 0; i < ShmFabric::Queue::kDepth; ++i) {
    ASSERT_TRUE((*q)->PostRead({1, r->key, 0}, &word, 8, i).ok());
  }
  absl::Status s = (*q)->PostRead({1, r->key, 0}, &word, 8, 999);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  Completion c;
  ASSERT_EQ((*q)->PollCompletions(absl::MakeSpan(&c, 1)), 1);
  EXPECT_EQ(c.wr_id, 0u);
  EXPECT_TRUE((*q)->PostRead({1, r->key, 0}, &word, 8, 999).ok());
}

TEST(ShmFabricTest, OperationsToAMachineThatWentAwayFailWithRemoteError) {
  auto a = MakeFabric(1);
  auto b = MakeFabric(2);
  auto r = b->Register(4096);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(a->Connect(2, b->endpoint()).ok());
  auto q = a->CreateQueue();
  ASSERT_TRUE(q.ok());
  uint64_t word;
  ASSERT_TRUE(SyncRead(**q, {2, r->key, 0}, &word, 8).ok());
  b.reset();
  // The loss is noticed by a's control thread; wait for it (bounded).
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  absl::Status s;
  do {
    s = SyncRead(**q, {2, r->key, 0}, &word, 8);
  } while (s.ok() && absl::Now() < deadline);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("REMOTE_ERROR"), std::string::npos) << s;
}

// A restarted process comes back under its machine id at a new endpoint:
// Connect again once the old peer is lost (here at once, before or after the
// control thread noticed the loss), and operations reach the new process.
TEST(ShmFabricTest, AMachineIdWhosePeerWasLostCanBeConnectedAgain) {
  auto a = MakeFabric(1);
  auto b = MakeFabric(2);
  ASSERT_TRUE(a->Connect(2, b->endpoint()).ok());
  b.reset();
  auto restarted = MakeFabric(2);
  auto r2 = restarted->Register(4096);
  ASSERT_TRUE(r2.ok());
  static_cast<uint64_t*>(r2->base)[1] = kWriteValue;
  ASSERT_TRUE(a->Connect(2, restarted->endpoint()).ok());
  auto q = a->CreateQueue();
  ASSERT_TRUE(q.ok());
  uint64_t word = 0;
  ASSERT_TRUE(SyncRead(**q, {2, r2->key, 8}, &word, 8).ok());
  EXPECT_EQ(word, kWriteValue);
  // A region the restarted process registers later is followed too.
  auto r3 = restarted->Register(4096);
  ASSERT_TRUE(r3.ok());
  EXPECT_TRUE(SyncRead(**q, {2, r3->key, 0}, &word, 8).ok());
  // A reachable peer is not replaced.
  EXPECT_EQ(a->Connect(2, restarted->endpoint()).code(), absl::StatusCode::kAlreadyExists);
}

// A machine that registers and deregisters (rings of clients that come and
// go) reuses its key slots: with room for 3 regions at once it registers
// 10,000 in turn, no key is handed out twice, a peer reaches each new region
// under its key, and the deregistered region's key fails at the peer
// (kInvalidKey, never the region now in its slot), as does a write through
// it, which leaves the new region untouched.
TEST(ShmFabricTest, DeregisteredKeySlotsAreReusedAndTheOldKeysStayInvalid) {
  ShmFabric::Options o;
  o.machine_id = 2;
  o.max_regions = 4;
  auto b = ShmFabric::Create(o);
  ASSERT_TRUE(b.ok()) << b.status();
  auto a = MakeFabric(1);
  ASSERT_TRUE(a->Connect(2, (*b)->endpoint()).ok());
  auto q = a->CreateQueue();
  ASSERT_TRUE(q.ok());
  auto kept = (*b)->Register(4096);  // stays registered throughout
  ASSERT_TRUE(kept.ok());
  absl::flat_hash_set<RegionKey> keys = {kept->key};
  auto old = (*b)->Register(4096);
  ASSERT_TRUE(old.ok());
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE((*b)->Deregister(old->key).ok()) << i;
    auto next = (*b)->Register(4096);
    ASSERT_TRUE(next.ok()) << "registration " << i << ": " << next.status();
    ASSERT_TRUE(keys.insert(next->key).second) << "key " << next->key << " handed out twice";
    ASSERT_EQ(next->key % ShmFabric::kSlots, old->key % ShmFabric::kSlots)
        << "the freed slot is reused";
    static_cast<uint64_t*>(next->base)[0] = i;
    uint64_t word = 0;
    ASSERT_TRUE(SyncRead(**q, {2, next->key, 0}, &word, 8).ok()) << i;
    ASSERT_EQ(word, static_cast<uint64_t>(i));
    if (i % 1000 == 0) {
      absl::Status stale = SyncRead(**q, {2, old->key, 0}, &word, 8);
      EXPECT_NE(stale.message().find("INVALID_KEY"), std::string::npos) << stale;
      stale = SyncWrite(**q, {2, old->key, 0}, &kWriteValue, 8);
      EXPECT_NE(stale.message().find("INVALID_KEY"), std::string::npos) << stale;
      EXPECT_EQ(static_cast<uint64_t*>(next->base)[0], static_cast<uint64_t>(i));
    }
    old = std::move(next);
  }
  // Full: the kept region, the last one and one more.
  ASSERT_TRUE((*b)->Register(4096).ok());
  absl::StatusOr<MemoryRegion> full = (*b)->Register(4096);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted) << full.status();
}

TEST(ShmFabricTest, ConnectChecksTheMachineIdAndRejectsBadEndpoints) {
  auto a = MakeFabric(1);
  auto b = MakeFabric(2);
  EXPECT_EQ(a->Connect(3, b->endpoint()).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(a->Connect(2, "no-such-endpoint").ok());
  EXPECT_EQ(a->Connect(1, b->endpoint()).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(a->Connect(2, b->endpoint()).ok());
  EXPECT_EQ(a->Connect(2, b->endpoint()).code(), absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace dctk::farm::fabric
