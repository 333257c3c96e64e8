// TestbedSuite: the setup the privileged testbed tests share. One Testbed per
// test suite (switch processes and namespaces are slow to make), started by
// the suite's SetUpTestSuite and removed after its last test; every test is
// skipped without root; sockets a test opens are closed after it; and the
// few ways those tests send and receive plain UDP datagrams between hosts.
//
// Example:
//   class MyTest : public TestbedSuite<> {
//    protected:
//     static void SetUpTestSuite() { StartTestbed(Topology::LeafSpine(2, 2, 3)); }
//   };
//   TEST_F(MyTest, Unicast) {
//     ASSERT_TRUE(bed_->Configure({}).ok());
//     const int in = Receiver(hosts_[4], {});
//     Send(Sender(hosts_[0]), bed_->ip(hosts_[4]), "hello");
//     EXPECT_EQ(Receive(in), "hello") << FabricStats();
//   }
// A derived SetUp/TearDown calls the suite's first and returns if the test
// was skipped or failed there (IsSkipped() || HasFatalFailure()).
// `Base` is ::testing::Test or, for parameterized suites, ::testing::TestWithParam<T>.
#ifndef DCTK_MOM_TESTBED_TESTBED_SUITE_H_
#define DCTK_MOM_TESTBED_TESTBED_SUITE_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mom/controller/topology.h"
#include "mom/testbed/testbed.h"

namespace dctk::mom {

template <typename Base = ::testing::Test>
class TestbedSuite : public Base {
 protected:
  // From the derived suite's SetUpTestSuite. Does nothing without root (the
  // tests skip); `options.switch_binary` defaults to the runfile mom_switch.
  static void StartTestbed(absl::StatusOr<Topology> topology, TestbedOptions options = {}) {
    if (geteuid() != 0) return;
    ASSERT_TRUE(topology.ok()) << topology.status();
    if (options.switch_binary.empty()) options.switch_binary = "mom/switch/mom_switch";
    absl::StatusOr<std::unique_ptr<Testbed>> bed =
        Testbed::Create(*std::move(topology), std::move(options));
    ASSERT_TRUE(bed.ok()) << bed.status();
    bed_ = bed->release();
  }
  static void TearDownTestSuite() {
    delete bed_;
    bed_ = nullptr;
  }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespaces, veths and DPDK af_packet";
    ASSERT_NE(bed_, nullptr) << "the suite's testbed did not start";
    hosts_ = bed_->topology().hosts();
  }
  void TearDown() override {
    for (int fd : fds_) close(fd);
    fds_.clear();
  }

  // A socket on `host` bound to port_ (0: the kernel picks one, remembered
  // for the test's later receivers and sends), joined to `groups`.
  int Receiver(int host, const std::vector<uint32_t>& groups) {
    absl::StatusOr<int> fd = bed_->GroupReceiver(host, &port_, groups);
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (!fd.ok()) return -1;
    fds_.push_back(*fd);
    return *fd;
  }

  // A socket on `host` that multicasts from the host's interface, its
  // datagrams marked with `dscp` (46: MOM's high priority) if not negative.
  int Sender(int host, int dscp = -1) {
    absl::StatusOr<int> fd = bed_->UdpSocket(host);
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (!fd.ok()) return -1;
    fds_.push_back(*fd);
    in_addr iface{htonl(bed_->ip(host))};
    setsockopt(*fd, IPPROTO_IP, IP_MULTICAST_IF, &iface, sizeof(iface));
    if (dscp >= 0) {
      const int tos = dscp << 2;
      setsockopt(*fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
    }
    return *fd;
  }

  // Sends `datagram` to `ip` (host order), port_.
  void Send(int fd, uint32_t ip, const std::string& datagram) {
    const sockaddr_in to = Sockaddr(ip, port_);
    ASSERT_EQ(sendto(fd, datagram.data(), datagram.size(), 0,
                     reinterpret_cast<const sockaddr*>(&to), sizeof(to)),
              static_cast<ssize_t>(datagram.size()));
  }

  // The next datagram on `fd` ("" if none came within the receiver's guard time).
  static std::string Receive(int fd) {
    std::string buf(65536, '\0');
    const ssize_t len = recv(fd, buf.data(), buf.size(), 0);
    buf.resize(len > 0 ? static_cast<size_t>(len) : 0);
    return buf;
  }

  // Every switch's counters, one line each, for failure messages.
  static std::string FabricStats() {
    std::string text;
    for (int sw : bed_->topology().switches()) {
      absl::StatusOr<SwitchStats> st = bed_->Stats(sw);
      absl::StrAppend(&text, "\n", st.ok() ? st->ShortDebugString() : st.status().ToString());
    }
    return text;
  }

  // The switch or host named `name` (e.g. "leaf0").
  static int Node(const std::string& name) {
    absl::StatusOr<int> node = bed_->topology().FindNode(name);
    EXPECT_TRUE(node.ok()) << node.status();
    return node.ok() ? *node : -1;
  }

  inline static Testbed* bed_ = nullptr;
  std::vector<int> hosts_;  // the topology's hosts, in node order
  uint16_t port_ = 0;
  std::vector<int> fds_;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_TESTBED_TESTBED_SUITE_H_
