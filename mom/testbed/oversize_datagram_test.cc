// Datagrams longer than a switch receives whole, on a real mom_switch: its
// --max_datagram_bytes (here 1968: 2 KiB ring slots, two to a page) sizes the
// af_packet ring slots that hold each port's reassembled datagrams, so a
// longer one arrives truncated. Several of the largest datagrams go first, so
// the rings wrap past their first blocks (slots that do not tile a block
// exactly once silenced a port there). The
// switch must drop it whole, name the reason (too_big, not malformed), keep
// forwarding what follows, and send no part of it on: the receiver sees
// neither the datagram nor any fragment of it (its namespace's IPv4
// reassembly counters show only the fragments of delivered datagrams). Needs
// root; skipped otherwise.
//
//   leaf0 (one leaf, one spine): host0_0 sends, host0_1 and host0_2 receive.
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/process/run_command.h"
#include "gtest/gtest.h"
#include "mom/controller/switch_config.h"
#include "mom/design.h"
#include "mom/testbed/testbed_suite.h"

namespace dctk::mom {
namespace {

constexpr uint32_t kMaxDatagram = 1968;                // IPv4 total length the switch takes
constexpr size_t kLargestPayload = kMaxDatagram - 28;  // less the IPv4 and UDP headers
constexpr int kFragmentsOfLargest = 2;                 // 1948 IP payload bytes at MTU 1500
constexpr int kLargestFirst = 8;                       // 4 pages of receive ring slots

std::string RandomPayload(size_t size, uint32_t seed) {
  std::mt19937 random(seed);
  std::string s(size, '\0');
  for (char& c : s) c = static_cast<char>(random());
  return s;
}

// IPv4 counters ("ReasmReqds", "ReasmOKs", "ReasmFails", ...) of a namespace,
// from its /proc/net/snmp (a header line and a value line, both "Ip:").
std::map<std::string, int64_t> IpCounters(const std::string& netns) {
  std::map<std::string, int64_t> counters;
  std::istringstream in(
      RunCommand(absl::StrCat("ip netns exec ", netns, " cat /proc/net/snmp")).value_or(""));
  std::string names, values;
  while (std::getline(in, names) && names.rfind("Ip:", 0) != 0) {}
  std::getline(in, values);
  std::istringstream n(names), v(values);
  std::string name, value;
  n >> name;
  v >> value;  // the "Ip:" labels
  while (n >> name && v >> value) counters[name] = std::stoll(value);
  return counters;
}

class OversizeDatagramTest : public TestbedSuite<> {
 protected:
  static void SetUpTestSuite() {
    StartTestbed(Topology::LeafSpine(1, 1, 3), {.max_datagram_bytes = kMaxDatagram});
  }
  void SetUp() override {
    TestbedSuite::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    leaf_ = Node("leaf0");
    ASSERT_GE(leaf_, 0);
  }

  static bool NothingWaiting(int fd) {
    char c;
    return recv(fd, &c, 1, MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  std::string LeafStats() {
    absl::StatusOr<SwitchStats> st = bed_->Stats(leaf_);
    return st.ok() ? st->ShortDebugString() : st.status().ToString();
  }

  uint64_t LeafDrops(const std::string& reason) {
    absl::StatusOr<SwitchStats> st = bed_->Stats(leaf_);
    EXPECT_TRUE(st.ok()) << st.status();
    if (!st.ok()) return 0;
    auto it = st->drops().find(reason);
    return it == st->drops().end() ? 0 : it->second;
  }

  // Sends kLargestFirst of the largest datagrams the switch takes, one byte
  // more, and the largest again, to `to`; each receiver in `in` (on host
  // `hosts[i]`) must get exactly all but the oversize one, and no fragment
  // of it.
  void SendAcrossTheLimit(uint32_t to, const std::vector<int>& hosts, const std::vector<int>& in) {
    const int out = Sender(hosts_[0]);
    std::vector<std::map<std::string, int64_t>> before;
    for (int h : hosts) before.push_back(IpCounters(bed_->netns(h)));
    const uint64_t too_big = LeafDrops("too_big"), malformed = LeafDrops("malformed");
    std::vector<std::string> first;
    for (int n = 0; n < kLargestFirst; ++n) first.push_back(RandomPayload(kLargestPayload, n));
    const std::string over = RandomPayload(kLargestPayload + 1, 100);
    const std::string last = RandomPayload(kLargestPayload, 101);
    for (const std::string& d : first) Send(out, to, d);
    Send(out, to, over);
    Send(out, to, last);
    for (size_t i = 0; i < in.size(); ++i) {
      SCOPED_TRACE(absl::StrCat("receiver on ", bed_->topology().node(hosts[i]).name));
      for (int n = 0; n < kLargestFirst; ++n) {
        ASSERT_TRUE(Receive(in[i]) == first[n])
            << "largest datagram " << n << " the switch takes\n" << LeafStats();
      }
      // Links are FIFO: had the oversize datagram crossed, it would come now.
      EXPECT_TRUE(Receive(in[i]) == last) << "the datagram after the oversize one";
      EXPECT_TRUE(NothingWaiting(in[i]));
      const std::map<std::string, int64_t> after = IpCounters(bed_->netns(hosts[i]));
      EXPECT_EQ(after.at("ReasmOKs") - before[i].at("ReasmOKs"), kLargestFirst + 1);
      EXPECT_EQ(after.at("ReasmReqds") - before[i].at("ReasmReqds"),
                (kLargestFirst + 1) * kFragmentsOfLargest)
          << "a fragment of the oversize datagram reached the receiver";
      EXPECT_EQ(after.at("ReasmFails"), before[i].at("ReasmFails"));
    }
    EXPECT_EQ(LeafDrops("too_big") - too_big, 1u) << "dropped once, at the ingress";
    EXPECT_EQ(LeafDrops("malformed"), malformed);
  }

  int leaf_ = -1;
};

TEST_F(OversizeDatagramTest, UnicastBeyondTheLimitIsDroppedWholeAsTooBig) {
  ASSERT_TRUE(bed_->Configure({}).ok());
  const int receiver = hosts_[1];
  SendAcrossTheLimit(bed_->ip(receiver), {receiver}, {Receiver(receiver, {})});
}

TEST_F(OversizeDatagramTest, MulticastBeyondTheLimitReachesNoMember) {
  const std::vector<int> members = {hosts_[1], hosts_[2]};
  absl::StatusOr<std::vector<GroupRoutes>> routes = bed_->Configure(
      {GroupSpec{.group_id = 9, .senders = {hosts_[0]}, .receivers = members,
                 .design = Design::kTopologyAware}});
  ASSERT_TRUE(routes.ok()) << routes.status();
  std::vector<int> in;
  for (int m : members) in.push_back(Receiver(m, ChannelIps((*routes)[0])));
  SendAcrossTheLimit(SenderChannelIp((*routes)[0], 0), members, in);
}

}  // namespace
}  // namespace dctk::mom
