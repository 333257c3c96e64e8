// The net fabric between machines in two network namespaces joined by a veth
// pair (as FaRM machines in separate containers): the initiator, in one
// namespace, reads, writes and CASes the target's region in the other. Needs
// root; skipped otherwise. Namespaces (and with them the veths) are deleted
// in TearDown, also on failure.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/sync.h"
#include "gtest/gtest.h"

namespace dctk::farm::fabric {
namespace {

struct TargetInfo {
  RegionKey key;
  char endpoint[64];
};

bool Shell(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

bool EnterNetns(const std::string& name) {
  const int fd = open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = setns(fd, CLONE_NEWNET) == 0;
  close(fd);
  return ok;
}

class NetFabricNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    const std::string id = absl::StrCat(getpid());
    ns_[0] = "dctk-farm-a-" + id;
    ns_[1] = "dctk-farm-b-" + id;
    const std::string va = "dfa" + id, vb = "dfb" + id;
    ASSERT_TRUE(Shell("ip netns add " + ns_[0]));
    ASSERT_TRUE(Shell("ip netns add " + ns_[1]));
    ASSERT_TRUE(Shell(absl::StrCat("ip link add ", va, " netns ", ns_[0], " type veth peer name ", vb,
                                 " netns ", ns_[1])));
    ASSERT_TRUE(Shell(absl::StrCat("ip -n ", ns_[0], " addr add 10.231.0.1/24 dev ", va)));
    ASSERT_TRUE(Shell(absl::StrCat("ip -n ", ns_[1], " addr add 10.231.0.2/24 dev ", vb)));
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(Shell(absl::StrCat("ip -n ", ns_[i], " link set ", i == 0 ? va : vb, " up")));
      ASSERT_TRUE(Shell(absl::StrCat("ip -n ", ns_[i], " link set lo up")));
    }
  }
  void TearDown() override {
    for (pid_t& pid : children_) {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
    for (const std::string& ns : ns_) {
      if (!ns.empty()) Shell("ip netns del " + ns);
    }
  }

  std::string ns_[2];
  pid_t children_[2] = {-1, -1};
};

TEST_F(NetFabricNetnsTest, OneSidedOpsCrossNamespaces) {
  int up[2], down[2];
  ASSERT_EQ(pipe(up), 0);
  ASSERT_EQ(pipe(down), 0);
  children_[1] = fork();  // the target, in namespace b
  ASSERT_GE(children_[1], 0);
  if (children_[1] == 0) {
    if (!EnterNetns(ns_[1])) _exit(20);
    NetFabric::Options o;
    o.machine_id = 2;
    o.listen_host = "10.231.0.2";
    auto f = NetFabric::Create(o);
    if (!f.ok()) _exit(21);
    auto r = (*f)->Register(1 << 16);
    if (!r.ok()) _exit(22);
    std::memset(r->base, 0x42, 1 << 16);
    TargetInfo info{};
    info.key = r->key;
    std::strncpy(info.endpoint, (*f)->endpoint().c_str(), sizeof(info.endpoint) - 1);
    if (write(up[1], &info, sizeof(info)) != sizeof(info)) _exit(23);
    char go;
    if (read(down[0], &go, 1) != 1) _exit(24);
    _exit(static_cast<uint8_t*>(r->base)[64] == 0x99 ? 0 : 25);
  }
  TargetInfo info{};
  ASSERT_EQ(read(up[0], &info, sizeof(info)), static_cast<ssize_t>(sizeof(info)));
  EXPECT_EQ(std::string(info.endpoint).rfind("10.231.0.2:", 0), 0u) << info.endpoint;

  children_[0] = fork();  // the initiator, in namespace a
  ASSERT_GE(children_[0], 0);
  if (children_[0] == 0) {
    if (!EnterNetns(ns_[0])) _exit(30);
    NetFabric::Options o;
    o.machine_id = 1;
    o.listen_host = "10.231.0.1";
    auto f = NetFabric::Create(o);
    if (!f.ok() || !(*f)->Connect(2, info.endpoint).ok()) _exit(31);
    auto q = (*f)->CreateQueue();
    uint8_t buf[4096];
    if (!SyncRead(**q, {2, info.key, 0}, buf, sizeof(buf)).ok()) _exit(32);
    for (uint8_t b : buf) {
      if (b != 0x42) _exit(33);
    }
    const uint8_t mark = 0x99;
    if (!SyncWrite(**q, {2, info.key, 64}, &mark, 1).ok()) _exit(34);
    uint64_t scratch;
    auto old = SyncCompareAndSwap(**q, {2, info.key, 128}, 0x4242424242424242ULL, 7, &scratch);
    if (!old.ok() || *old != 0x4242424242424242ULL) _exit(35);
    if (SyncRead(**q, {2, info.key + 1, 0}, buf, 8).code() != absl::StatusCode::kNotFound) _exit(36);
    _exit(0);
  }
  int st = 0;
  ASSERT_EQ(waitpid(children_[0], &st, 0), children_[0]);
  children_[0] = -1;
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << "initiator failed at step " << WEXITSTATUS(st);
  ASSERT_EQ(write(down[1], "g", 1), 1);
  ASSERT_EQ(waitpid(children_[1], &st, 0), children_[1]);
  children_[1] = -1;
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << "target saw wrong memory, code " << WEXITSTATUS(st);
  for (int fd : {up[0], up[1], down[0], down[1]}) close(fd);
}

}  // namespace
}  // namespace dctk::farm::fabric
