// The MOM group primitive itself (MomSender / MomReceiver over UdpTransport)
// on the real switch fabric: a 2-leaf, 2-spine leaf-spine of mom_switch
// processes, each host a network namespace whose endpoint runs a UdpTransport
// on a thread inside it. Configured by the controller for the topology-aware
// and serialized designs, with FabricGroupConfig telling each sender its
// channel. Needs root; skipped otherwise.
//
//   leaf0: host0_0 host0_1 host0_2      leaf1: host1_0 host1_1 host1_2
//   senders host0_0, host1_0; members host0_1, host1_1, host1_2. host1_2
//   loses every 25th MOM copy (nftables in its namespace) and must report
//   exactly those as gaps.
#include <unistd.h>

#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/transport/udp_transport.h"
#include "gtest/gtest.h"
#include "mom/controller/fabric_group.h"
#include "mom/group.h"
#include "mom/test_message.pb.h"
#include "mom/testbed/netns.h"
#include "mom/testbed/testbed_suite.h"

namespace dctk::mom {
namespace {

constexpr uint16_t kPort = 7300;
constexpr int kPerSender = 150;
constexpr int kDropEvery = 25;  // the lossy member drops arrivals k with k % 25 == 10
constexpr int kDropPhase = 10;
// Only against hanging when copies are lost; never reached in a passing run.
constexpr absl::Duration kGuard = absl::Seconds(60);

struct Delivered {
  uint32_t sender_id;
  uint64_t sender_seq;
  Arrival arrival;
  uint64_t skipped;
  uint64_t group_seq;
};

// One host's MOM endpoint: a UdpTransport run by a thread that lives in the
// host's namespace. A member records its deliveries; a sender multicasts.
class Host : public transport::TransportReceiver {
 public:
  Host(std::string netns, uint32_t ip, GroupConfig group, bool member, uint32_t sender_id,
       int expected)
      : netns_(std::move(netns)), ip_(ip), group_(std::move(group)), member_(member),
        sender_id_(sender_id), expected_(expected) {}
  ~Host() override { Stop(); }

  // Starts the thread; returns once the endpoint is registered (and joined).
  absl::Status Start() {
    thread_ = std::thread([this] { Loop(); });
    ready_.WaitForNotification();
    return start_status_;
  }
  // Multicasts kPerSender messages (on the loop thread).
  void SendAll() {
    transport_->Post([this] {
      for (int n = 1; n <= kPerSender; ++n) {
        TestOp op;
        op.set_sender(sender_id_);
        op.set_n(n);
        EXPECT_TRUE(sender_->Multicast(op).ok());
      }
    });
  }
  bool WaitAll() { return all_.WaitForNotificationWithTimeout(kGuard); }
  void Stop() {
    if (!thread_.joinable()) return;
    if (transport_ != nullptr) transport_->Stop();
    thread_.join();
  }

  // After Stop().
  const std::vector<Delivered>& delivered() const { return delivered_; }
  const MomReceiver::Stats& stats() const { return receiver_->stats(); }

  void ReceiveMessage(const transport::Address& from, const transport::Envelope& m) override {
    if (receiver_ != nullptr) receiver_->Handle(from, m);
  }

 private:
  void Loop() {
    start_status_ = Setup();
    ready_.Notify();
    if (start_status_.ok()) transport_->Run();
  }
  absl::Status Setup() {
    if (absl::Status s = EnterNetns(netns_); !s.ok()) return s;
    absl::StatusOr<std::unique_ptr<transport::UdpTransport>> t = transport::UdpTransport::Create();
    if (!t.ok()) return t.status();
    transport_ = std::move(*t);
    transport::EndpointOptions options = SenderEndpointOptions(group_);
    options.multicast_interface_ip = ip_;
    absl::StatusOr<transport::Address> bound =
        transport_->Register(this, transport::Address(ip_, kPort), options);
    if (!bound.ok()) return bound.status();
    if (member_) {
      receiver_ = std::make_unique<MomReceiver>(
          transport_.get(), this, group_, [this](const MomDelivery& d) {
            delivered_.push_back({d.sender_id, d.sender_seq, d.arrival, d.skipped, d.group_seq});
            if (static_cast<int>(delivered_.size()) == expected_) all_.Notify();
          });
      return receiver_->Join();
    }
    absl::StatusOr<std::unique_ptr<MomSender>> sender =
        MomSender::Create(transport_.get(), this, group_, sender_id_, /*incarnation=*/1);
    if (!sender.ok()) return sender.status();
    sender_ = std::move(*sender);
    return absl::OkStatus();
  }

  const std::string netns_;
  const uint32_t ip_;
  const GroupConfig group_;
  const bool member_;
  const uint32_t sender_id_;
  const int expected_;
  std::thread thread_;
  absl::Notification ready_, all_;
  absl::Status start_status_;
  std::unique_ptr<transport::UdpTransport> transport_;
  std::unique_ptr<MomReceiver> receiver_;
  std::unique_ptr<MomSender> sender_;
  std::vector<Delivered> delivered_;
};

class GroupFabricTest : public TestbedSuite<::testing::TestWithParam<Design>> {
 protected:
  static void SetUpTestSuite() { StartTestbed(Topology::LeafSpine(2, 2, 3)); }
  void TearDown() override {
    if (lossy_ >= 0) EXPECT_TRUE(bed_->RunIn(lossy_, "nft delete table ip momgroupdrop").ok());
    TestbedSuite::TearDown();
  }

  int lossy_ = -1;
};

TEST_P(GroupFabricTest, EveryMemberGetsEveryMessageInSenderOrderAndGapsAreReported) {
  const Design design = GetParam();
  const std::vector<int> h = bed_->topology().hosts();
  const std::vector<int> senders = {h[0], h[3]}, members = {h[1], h[4], h[5]};
  const std::vector<uint32_t> sender_ids = {1, 2};
  const uint32_t group_id = 60 + static_cast<uint32_t>(design);
  absl::StatusOr<std::vector<GroupRoutes>> routes = bed_->Configure(
      {GroupSpec{.group_id = group_id, .senders = senders, .receivers = members,
                 .design = design}});
  ASSERT_TRUE(routes.ok()) << routes.status();
  absl::StatusOr<GroupConfig> group = FabricGroupConfig((*routes)[0], kPort, sender_ids);
  ASSERT_TRUE(group.ok()) << group.status();

  lossy_ = members[2];
  ASSERT_TRUE(bed_->RunIn(lossy_, "nft add table ip momgroupdrop").ok());
  ASSERT_TRUE(bed_->RunIn(lossy_, "nft add chain ip momgroupdrop pre "
                                  "'{ type filter hook prerouting priority -300; }'")
                  .ok());
  ASSERT_TRUE(bed_->RunIn(lossy_, absl::StrCat("nft add rule ip momgroupdrop pre ip daddr "
                                               "239.0.0.0/8 numgen inc mod ",
                                               kDropEvery, " == ", kDropPhase, " drop"))
                  .ok());
  constexpr int kTotal = 2 * kPerSender;
  int dropped = 0;
  for (int k = 0; k < kTotal; ++k) dropped += k % kDropEvery == kDropPhase;

  std::vector<std::unique_ptr<Host>> receivers, sources;
  for (int m : members) {
    receivers.push_back(std::make_unique<Host>(bed_->netns(m), bed_->ip(m), *group, true, 0,
                                               m == lossy_ ? kTotal - dropped : kTotal));
    ASSERT_TRUE(receivers.back()->Start().ok());
  }
  for (size_t s = 0; s < senders.size(); ++s) {
    sources.push_back(std::make_unique<Host>(bed_->netns(senders[s]), bed_->ip(senders[s]),
                                             *group, false, sender_ids[s], 0));
    ASSERT_TRUE(sources.back()->Start().ok());
  }
  for (auto& s : sources) s->SendAll();
  std::vector<bool> complete;
  for (auto& r : receivers) complete.push_back(r->WaitAll());
  for (auto& s : sources) s->Stop();
  for (auto& r : receivers) r->Stop();

  std::vector<Delivered> reference;  // a lossless member's sequence
  for (size_t i = 0; i < receivers.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("member ", i));
    const bool lossy = members[i] == lossy_;
    const std::vector<Delivered>& got = receivers[i]->delivered();
    const MomReceiver::Stats& st = receivers[i]->stats();
    EXPECT_TRUE(complete[i]) << got.size() << " delivered";
    ASSERT_EQ(static_cast<int>(got.size()), lossy ? kTotal - dropped : kTotal);
    std::map<uint32_t, uint64_t> last;
    uint64_t skipped = 0;  // numbers jumped over, summed over after-gap arrivals
    for (const Delivered& d : got) {
      EXPECT_GT(d.sender_seq, last[d.sender_id]) << "sender " << d.sender_id << " out of order";
      last[d.sender_id] = d.sender_seq;
      EXPECT_TRUE(d.arrival == Arrival::kInOrder || (lossy && d.arrival == Arrival::kAfterGap));
      if (d.arrival == Arrival::kAfterGap) skipped += d.skipped;
    }
    // A sender's dropped last messages leave no gap to see (no later number
    // arrives from it): with unevenly interleaved senders the drop pattern
    // can hit one's last message.
    uint64_t trailing = 0;
    for (uint32_t id : sender_ids) trailing += kPerSender - last[id];
    EXPECT_EQ(st.count(Arrival::kDuplicate), 0u);
    const uint64_t seen_missing = lossy ? static_cast<uint64_t>(dropped) - trailing : 0;
    EXPECT_EQ(st.missing, seen_missing);
    EXPECT_EQ(skipped, seen_missing);
    if (design != Design::kSerialized) {
      for (const Delivered& d : got) EXPECT_EQ(d.group_seq, 0u);
      continue;
    }
    // One sequencer: stamps 1..kTotal, every member in the same order; the
    // lossy one also sees its losses as stamp gaps.
    EXPECT_EQ(st.group_seq_missing, lossy ? static_cast<uint64_t>(dropped) : 0u);
    if (lossy) continue;
    for (size_t k = 0; k < got.size(); ++k) EXPECT_EQ(got[k].group_seq, k + 1);
    if (reference.empty()) {
      reference = got;
      continue;
    }
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].sender_id, reference[k].sender_id) << "position " << k;
      EXPECT_EQ(got[k].sender_seq, reference[k].sender_seq) << "position " << k;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Designs, GroupFabricTest,
                         ::testing::Values(Design::kTopologyAware, Design::kSerialized),
                         [](const ::testing::TestParamInfo<Design>& p) {
                           std::string name(DesignName(p.param));
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace dctk::mom
