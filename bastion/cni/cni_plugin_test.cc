// bastion-cni as the runtime runs it, against a real bastiond (root): a lab host
// namespace with a bridge and a container namespace on a veth (the state the bridge
// plugin leaves), bastiond watching a test-made containers directory, and the plugin
// binary run with the CNI environment and the chained config (with prevResult) on stdin.
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bastion/datapath/datapath.h"
#include "bastion/datapath/testing/netns_lab.h"
#include "common/process/run_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace dctk::bastion {
namespace {

using testing::StartChild;
using ::testing::HasSubstr;
using testing::NetnsLab;
using ::testing::Not;

constexpr char kCniBin[] = "/usr/lib/cni";  // Debian's containernetworking-plugins

class CniPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, BPF)";
    const std::string tag = absl::StrCat(getpid());
    const char* tmp = getenv("TEST_TMPDIR");
    tmp_ = tmp ? tmp : "/tmp";
    dir_ = absl::StrCat(tmp_, "/containers-", tag);
    pin_dir_ = "/sys/fs/bpf/bcni" + tag;
    socket_ = "unix:/tmp/bcni" + tag + ".sock";
    policy_ = absl::StrCat(tmp_, "/policy-", tag, ".yaml");
    std::ofstream(policy_) << "version: 1\nservices:\n"
                              "  - name: web\n    select: {labels: {role: web}}\n";
    absl::StatusOr<std::unique_ptr<NetnsLab>> lab = NetnsLab::Create("10.219.0", {"a"});
    ASSERT_TRUE(lab.ok()) << lab.status();
    lab_ = std::move(*lab);
    ASSERT_TRUE(RunCommand("mkdir -p " + dir_).ok());
    bastiond_ = StartChild(
        absl::StrCat("bastion/manager/bastiond --netns=", lab_->host_netns(), " --listen=", socket_,
                     " --netns_dir=", dir_, " --pin_dir=", pin_dir_, " --state_file=", tmp_,
                     "/state-", tag, ".json --policy=", policy_, " --cleanup_on_exit"));
    for (;;) {
      absl::StatusOr<std::string> line = bastiond_->ReadLine(absl::Seconds(20));
      ASSERT_TRUE(line.ok()) << "waiting for bastiond: " << line.status() << " / "
                             << bastiond_->ReadErrLine(absl::Seconds(1)).value_or("");
      if (absl::StrContains(*line, "bastiond: ready")) break;
    }
  }

  void TearDown() override {
    if (pin_dir_.empty()) return;  // skipped before making anything
    bastiond_.reset();  // SIGKILL; the namespaces below take the veths and filters
    lab_.reset();
    const std::string tag = absl::StrCat(getpid());
    RunCommand(absl::StrCat("rm -rf ", pin_dir_, " ", dir_, " ", socket_.substr(5), " ", policy_, " ",
                       tmp_, "/state-", tag, ".json ", tmp_, "/stdin-", tag, " ", tmp_, "/ipam-",
                       tag))
        .IgnoreError();
  }

  std::string Config() const {
    const NetnsLab::Container& a = lab_->container("a");
    return absl::StrCat(
        R"({"cniVersion": "1.0.0", "name": "lab", "type": "bastion-cni", "containersDir": ")", dir_,
        R"(", "timeoutMs": 20000, "labels": {"role": "web"}, "prevResult": {)",
        R"("cniVersion": "1.0.0", "interfaces": [{"name": "br0"}, {"name": ")", a.host_veth,
        R"("}, {"name": "eth0", "mac": ")", a.mac.ToString(), R"(", "sandbox": "/run/netns/)",
        a.netns, R"("}], "ips": [{"address": ")", Ipv4ToString(a.ip), R"(/24", "gateway": ")",
        Ipv4ToString(lab_->gateway_ip()), R"(", "interface": 2}]}})");
  }

  // Runs a CNI plugin in the lab's host namespace; returns stdout and "rc=N".
  std::string Run(const std::string& binary, const std::string& command, const std::string& config,
                  const std::string& netns) {
    const std::string in = absl::StrCat(tmp_, "/stdin-", getpid());
    std::ofstream(in) << config;
    absl::StatusOr<std::string> out = RunCommand(absl::StrCat(
        "ip netns exec ", lab_->host_netns(), " env CNI_COMMAND=", command, " CNI_CONTAINERID=ctr",
        getpid(), " CNI_NETNS=/run/netns/", netns, " CNI_IFNAME=eth0 CNI_PATH=", kCniBin,
        " CNI_ARGS='IgnoreUnknown=1;BASTION_NAME=web-a' ", binary, " < ", in, "; echo rc=$?"));
    return out.ok() ? *out : std::string(out.status().message());
  }

  std::string Plugin(const std::string& command, const std::string& config) {
    return Run("bastion/cni/bastion-cni", command, config, lab_->container("a").netns);
  }

  std::string Ctl(const std::string& args) {
    absl::StatusOr<std::string> out =
        RunCommand(absl::StrCat("bastion/cli/bastionctl --server=", socket_, " ", args));
    return out.ok() ? *out : std::string(out.status().message());
  }

  std::string Filters(std::string veth = "") {
    if (veth.empty()) veth = lab_->container("a").host_veth;
    absl::StatusOr<std::string> out = RunCommand(absl::StrCat(
        "ip netns exec ", lab_->host_netns(), " tc filter show dev ", veth, " ingress; ",
        "ip netns exec ", lab_->host_netns(), " tc filter show dev ", veth, " egress"));
    return out.ok() ? *out : std::string(out.status().message());
  }

  std::string tmp_, dir_, pin_dir_, socket_, policy_;
  std::unique_ptr<NetnsLab> lab_;
  std::unique_ptr<ChildProcess> bastiond_;
};

TEST_F(CniPluginTest, AddCheckDel) {
  EXPECT_THAT(Filters(), Not(HasSubstr("bastion_")));
  // CHECK before ADD: not registered.
  std::string out = Plugin("CHECK", Config());
  EXPECT_THAT(out, HasSubstr("rc=1"));
  EXPECT_THAT(out, HasSubstr("not registered"));

  out = Plugin("ADD", Config());
  ASSERT_THAT(out, HasSubstr("rc=0")) << out;
  const std::string result = out.substr(0, out.find("rc="));
  nlohmann::json j = nlohmann::json::parse(result);
  EXPECT_EQ(j["ips"][0]["address"], absl::StrCat(Ipv4ToString(lab_->container("a").ip), "/24"));
  EXPECT_EQ(j["interfaces"].size(), 3u);
  EXPECT_THAT(Filters(), HasSubstr("bastion_from_co"));
  EXPECT_THAT(Filters(), HasSubstr("bastion_to_cont"));
  // bastiond knows it under its CNI_ARGS name, with the labels of the config.
  const std::string containers = Ctl("containers");
  EXPECT_THAT(containers, HasSubstr("web-a"));
  EXPECT_THAT(containers, HasSubstr(Ipv4ToString(lab_->container("a").ip)));

  out = Plugin("CHECK", Config());
  EXPECT_EQ(out, "rc=0\n");

  out = Plugin("DEL", Config());
  EXPECT_EQ(out, "rc=0\n");
  EXPECT_THAT(Filters(), Not(HasSubstr("bastion_")));
  EXPECT_THAT(Ctl("containers"), Not(HasSubstr("web-a")));
  // Idempotent, and without prevResult or netns.
  out =
      Plugin("DEL", R"({"cniVersion": "1.0.0", "name": "lab", "containersDir": ")" + dir_ + "\"}");
  EXPECT_EQ(out, "rc=0\n");

  out = Plugin("CHECK", Config());
  EXPECT_THAT(out, HasSubstr("rc=1"));
}

TEST_F(CniPluginTest, ErrorsAreCniJson) {
  std::string out = Plugin("ADD", R"({"cniVersion": "1.0.0", "name": "lab"})");
  ASSERT_THAT(out, HasSubstr("rc=1"));
  nlohmann::json j = nlohmann::json::parse(out.substr(0, out.find("rc=")));
  EXPECT_EQ(j["code"], 7);
  EXPECT_THAT(j["msg"].get<std::string>(), HasSubstr("prevResult"));

  out = Plugin("VERSION", "");
  ASSERT_THAT(out, HasSubstr("rc=0"));
  EXPECT_THAT(out, HasSubstr("supportedVersions"));
}

// Chained after the real bridge plugin (with host-local IPAM): its result is the
// prevResult, as a runtime would pass it.
TEST_F(CniPluginTest, ChainedAfterRealBridgePlugin) {
  const std::string bridge = absl::StrCat(kCniBin, "/bridge");
  if (access(bridge.c_str(), X_OK) != 0) GTEST_SKIP() << "no " << bridge;
  const std::string netns = absl::StrCat("bcni", getpid(), "x");
  ASSERT_TRUE(RunCommand("ip netns add " + netns).ok());
  struct NetnsDeleter {
    std::string name;
    ~NetnsDeleter() { RunCommand("ip netns del " + name).IgnoreError(); }
  } deleter{netns};
  const std::string conf = absl::StrCat(
      R"({"cniVersion": "1.0.0", "name": "bcni", "type": "bridge", "bridge": "cbr0",)",
      R"( "isGateway": true, "ipMasq": false, "containersDir": ")", dir_,
      R"(", "timeoutMs": 20000, "ipam": {"type": "host-local", "subnet": "10.219.1.0/24",)",
      R"( "dataDir": ")", tmp_, "/ipam-", getpid(), R"("}})");

  std::string out = Run(bridge, "ADD", conf, netns);
  ASSERT_THAT(out, HasSubstr("rc=0")) << out;
  nlohmann::json prev = nlohmann::json::parse(out.substr(0, out.find("rc=")));
  std::string host_veth;
  for (const auto& itf : prev["interfaces"]) {
    if (!itf.contains("sandbox") && itf["name"] != "cbr0") host_veth = itf["name"];
  }
  ASSERT_FALSE(host_veth.empty()) << prev.dump();
  nlohmann::json chained = nlohmann::json::parse(conf);
  chained["type"] = "bastion-cni";
  chained["prevResult"] = prev;

  out = Run("bastion/cni/bastion-cni", "ADD", chained.dump(), netns);
  ASSERT_THAT(out, HasSubstr("rc=0")) << out;
  EXPECT_EQ(nlohmann::json::parse(out.substr(0, out.find("rc=")))["ips"], prev["ips"]);
  EXPECT_THAT(Filters(host_veth), HasSubstr("bastion_from_co"));
  EXPECT_THAT(Ctl("containers"), HasSubstr("web-a"));
  EXPECT_EQ(Run("bastion/cni/bastion-cni", "CHECK", chained.dump(), netns), "rc=0\n");

  EXPECT_EQ(Run("bastion/cni/bastion-cni", "DEL", chained.dump(), netns), "rc=0\n");
  EXPECT_THAT(Filters(host_veth), Not(HasSubstr("bastion_")));
  EXPECT_THAT(Ctl("containers"), Not(HasSubstr("web-a")));
  EXPECT_THAT(Run(bridge, "DEL", conf, netns), HasSubstr("rc=0"));
}

}  // namespace
}  // namespace dctk::bastion
