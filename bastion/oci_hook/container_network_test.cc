// ReadContainerNetwork against namespaces of a test lab (root): a process in a container
// namespace is found with its veth peer, address, MAC and gateway; a process in the
// caller's namespace is host network; a missing interface, a non-veth interface and a
// gone process are told apart.
#include "bastion/oci_hook/container_network.h"

#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bastion/datapath/testing/netns_lab.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion::oci_hook {
namespace {

using ::dctk::bastion::testing::StartChild;
using ::dctk::bastion::testing::NetnsLab;
using ::testing::HasSubstr;

std::string Dotted(uint32_t ip) {
  return absl::StrCat(ip >> 24, ".", (ip >> 16) & 0xff, ".", (ip >> 8) & 0xff, ".", ip & 0xff);
}

class ContainerNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    absl::StatusOr<std::unique_ptr<NetnsLab>> lab = NetnsLab::Create("10.214.7", {"a"});
    ASSERT_TRUE(lab.ok()) << lab.status();
    lab_ = std::move(*lab);
    ASSERT_TRUE(lab_->EnterHost().ok());  // the hook runs where the host veths are
    // A process in the container: its first line is its pid.
    process_ = StartChild(
        lab_->Exec(lab_->container("a").netns) + "sh -c 'echo $$; exec sleep 600'");
    absl::StatusOr<std::string> line = process_->ReadLine(absl::Seconds(10));
    ASSERT_TRUE(line.ok()) << line.status();
    ASSERT_TRUE(absl::SimpleAtoi(*line, &pid_)) << *line;
  }

  void TearDown() override {
    process_.reset();
    if (lab_) lab_->LeaveHost().IgnoreError();
    lab_.reset();
  }

  std::unique_ptr<NetnsLab> lab_;
  std::unique_ptr<ChildProcess> process_;
  int pid_ = 0;
};

TEST_F(ContainerNetworkTest, FindsTheVethPeerAddressMacAndGateway) {
  const NetnsLab::Container& a = lab_->container("a");
  absl::StatusOr<ContainerNetwork> net = ReadContainerNetwork(pid_, "eth0");
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_FALSE(net->host_network);
  EXPECT_TRUE(net->has_interface);
  EXPECT_EQ(net->host_veth, a.host_veth);
  EXPECT_EQ(net->ip, Dotted(a.ip));
  EXPECT_EQ(net->mac, a.mac.ToString());
  EXPECT_EQ(net->gateway, "10.214.7.1");
}

TEST_F(ContainerNetworkTest, ProcessInTheCallersNamespaceIsHostNetwork) {
  absl::StatusOr<ContainerNetwork> net = ReadContainerNetwork(getpid(), "eth0");
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_TRUE(net->host_network);
}

TEST_F(ContainerNetworkTest, TellsMissingNonVethAndGoneApart) {
  absl::StatusOr<ContainerNetwork> net = ReadContainerNetwork(pid_, "eth9");
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_FALSE(net->has_interface);

  net = ReadContainerNetwork(pid_, "lo");
  EXPECT_TRUE(absl::IsFailedPrecondition(net.status())) << net.status();
  EXPECT_THAT(net.status().message(), HasSubstr("lo is not a veth"));

  const pid_t gone = fork();
  if (gone == 0) _exit(0);
  ASSERT_GT(gone, 0);
  waitpid(gone, nullptr, 0);
  net = ReadContainerNetwork(gone, "eth0");
  EXPECT_TRUE(absl::IsNotFound(net.status())) << net.status();
}

}  // namespace
}  // namespace dctk::bastion::oci_hook
