// The gRPC control path end to end in one process: SwitchClient -> gRPC on a
// loopback port -> ControlService -> DataPlaneMailbox -> a data-plane thread
// that owns the SwitchCore (as mom_switch runs it, minus DPDK).
#include "mom/switch/control_service.h"

#include <atomic>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mom/controller/switch_client.h"
#include "mom/switch/test_frames.h"

namespace dctk::mom {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kGroupIp = 0xef000500;  // 239.0.5.0
constexpr int kPorts = 3;

SwitchConfig Sequencer() {
  SwitchConfig c;
  c.set_switch_name("s0");
  MulticastRule* r = c.add_rules();
  r->set_group_ip(kGroupIp);
  r->set_group_id(5);
  r->set_in_port(0);
  r->add_out_ports(1);
  r->add_out_ports(2);
  r->set_stamp_group_seq(true);
  return c;
}

class ControlServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<ForwardingTable> empty = ForwardingTable::Create(SwitchConfig(), kPorts);
    ASSERT_TRUE(empty.ok());
    core_ = std::make_unique<SwitchCore>(*std::move(empty));
    loop_ = std::thread([this] {
      while (!stop_.load()) {
        mailbox_.Drain(*core_);
        std::this_thread::yield();
      }
      mailbox_.Close();
    });
    service_.set_prober([this](const StatsRequest& request) {
      probed_.push_back(request.ShortDebugString());  // on the data-plane thread, read once it ran
    });
    int port = 0;
    absl::StatusOr<std::unique_ptr<grpc::Server>> server =
        StartControlServer("127.0.0.1:0", &service_, &port);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    absl::StatusOr<std::unique_ptr<SwitchClient>> client =
        SwitchClient::Connect(absl::StrCat("127.0.0.1:", port), absl::Seconds(10));
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }
  void TearDown() override {
    StopDataPlane();
    if (server_) server_->Shutdown();
  }
  void StopDataPlane() {
    stop_ = true;
    if (loop_.joinable()) loop_.join();
  }

  // Sends a MOM frame from port 0 through the data plane; returns its stamp.
  uint64_t ProcessOnDataPlane(uint64_t sender_seq) {
    std::vector<uint8_t> frame =
        testing::UdpFrame(0x0a000001, kGroupIp, 0, testing::MomPayload(1, sender_seq));
    EXPECT_TRUE(mailbox_.Run([&](SwitchCore& core) {
                          Forwarding f;
                          EXPECT_FALSE(core.Process(0, absl::MakeSpan(frame), &f).has_value());
                          EXPECT_EQ(f.out_ports, 0b110u);
                        }).ok());
    return testing::ParseMom(frame).group_seq();
  }

  DataPlaneMailbox mailbox_;
  ControlService service_{"s0", kPorts, &mailbox_};
  std::unique_ptr<SwitchCore> core_;
  std::atomic<bool> stop_{false};
  std::thread loop_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<SwitchClient> client_;
  std::vector<std::string> probed_;  // the requests the prober was called with
};

TEST_F(ControlServiceTest, ConfigureInstallsTableBeforeReturning) {
  absl::StatusOr<uint64_t> version = client_->Configure(Sequencer());
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 1u);
  EXPECT_EQ(ProcessOnDataPlane(1), 1u);
  EXPECT_EQ(ProcessOnDataPlane(2), 2u);
}

TEST_F(ControlServiceTest, InvalidConfigIsRejectedAndOldTableKept) {
  ASSERT_TRUE(client_->Configure(Sequencer()).ok());
  SwitchConfig bad = Sequencer();
  bad.mutable_rules(0)->add_out_ports(7);  // the switch has 3 ports
  absl::StatusOr<uint64_t> version = client_->Configure(bad);
  ASSERT_FALSE(version.ok());
  EXPECT_EQ(version.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(version.status().message(), HasSubstr("switch s0"));
  EXPECT_EQ(ProcessOnDataPlane(1), 1u);  // still the sequencer table
}

TEST_F(ControlServiceTest, StatsReportCountersAndSequencesAcrossReconfiguration) {
  ASSERT_TRUE(client_->Configure(Sequencer()).ok());
  ProcessOnDataPlane(1);
  ProcessOnDataPlane(2);
  ASSERT_TRUE(client_->Configure(Sequencer()).ok());
  EXPECT_EQ(ProcessOnDataPlane(3), 3u);  // numbering continues
  ASSERT_TRUE(mailbox_.Run([](SwitchCore& core) {
                        std::vector<uint8_t> f = testing::UdpFrame(1, 0xef000999, 0, "x");
                        Forwarding out;
                        core.Process(0, absl::MakeSpan(f), &out);
                      }).ok());
  absl::StatusOr<SwitchStats> stats = client_->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->switch_name(), "s0");
  EXPECT_EQ(stats->config_version(), 2u);
  EXPECT_EQ(stats->forwarded(), 3u);
  EXPECT_EQ(stats->drops().at("no_route"), 1u);
  EXPECT_EQ(stats->drops().size(), static_cast<size_t>(kNumDropReasons));
  ASSERT_EQ(stats->group_sequences_size(), 1);
  EXPECT_EQ(stats->group_sequences(0).group_id(), 5u);
  EXPECT_EQ(stats->group_sequences(0).last_stamped(), 3u);
}

TEST_F(ControlServiceTest, StatsRequestSendsProbesOutOfTheNamedPortsOnly) {
  ASSERT_TRUE(client_->Stats().ok());
  StatsRequest request;
  request.add_probe_ports(1);
  request.add_probe_ports(2);
  ASSERT_TRUE(client_->Stats(request).ok());
  StatsRequest hosts;
  HostProbe* h = hosts.add_host_probes();
  h->set_port(0);
  h->set_ip(0x0ac90003);
  ASSERT_TRUE(client_->Stats(hosts).ok());
  StatsRequest bad;
  bad.add_probe_ports(kPorts);
  StatsRequest bad_host;
  bad_host.add_host_probes()->set_port(kPorts);
  for (const StatsRequest& r : {bad, bad_host}) {
    absl::StatusOr<SwitchStats> stats = client_->Stats(r);
    ASSERT_FALSE(stats.ok());
    EXPECT_EQ(stats.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(stats.status().message(), HasSubstr("switch s0: probe port 3 of 3 ports"));
  }
  StopDataPlane();  // the prober's calls are read after its thread ended
  EXPECT_EQ(probed_, (std::vector<std::string>{"probe_ports: 1 probe_ports: 2",
                                               "host_probes { ip: 180944899 }"}));
}

TEST_F(ControlServiceTest, PushConfigsClearsSwitchesWithoutRulesAndChecksNames) {
  std::map<std::string, SwitchClient*> fabric = {{"s0", client_.get()}};
  SwitchConfig other = Sequencer();
  other.set_switch_name("s9");
  absl::Status unknown = PushConfigs(fabric, {other});
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.message(), HasSubstr("s9"));
  ASSERT_TRUE(PushConfigs(fabric, {Sequencer()}).ok());
  ASSERT_TRUE(PushConfigs(fabric, {}).ok());  // s0 gets an empty table
  std::vector<uint8_t> frame = testing::UdpFrame(1, kGroupIp, 0, testing::MomPayload(1, 1));
  absl::optional<DropReason> drop;
  ASSERT_TRUE(mailbox_.Run([&](SwitchCore& core) {
                        Forwarding f;
                        drop = core.Process(0, absl::MakeSpan(frame), &f);
                      }).ok());
  EXPECT_EQ(drop, DropReason::kNoRoute);
}

TEST_F(ControlServiceTest, CallsFailOnceTheDataPlaneStopped) {
  StopDataPlane();
  EXPECT_EQ(mailbox_.Run([](SwitchCore&) {}).code(), absl::StatusCode::kUnavailable);
  absl::StatusOr<uint64_t> version = client_->Configure(Sequencer());
  EXPECT_EQ(version.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace dctk::mom
