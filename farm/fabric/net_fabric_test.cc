// NetFabric-specific behaviour: one-sided operations are served by the
// target's progress thread while its application thread is blocked, and a
// killed target gives REMOTE_ERROR completions, not hangs.
#include "farm/fabric/net_fabric.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
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

}  // namespace
}  // namespace dctk::farm::fabric
