// The DPDK switch forwarding real frames between network namespaces: four
// hosts, each on a veth whose other end is a net_af_packet port of the switch.
// Needs root (namespaces, veths, AF_PACKET); skipped otherwise.
#include "mom/switch/dpdk_switch.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "mom/switch/test_frames.h"

namespace dctk::mom {
namespace {

constexpr int kHosts = 4;
constexpr uint32_t kGroupIp = 0xef000500;  // 239.0.5.0
constexpr int kMessages = 20;

bool Run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

// Namespaces h0..h3 with veths; removed (with their veths) on destruction.
class Hosts {
 public:
  Hosts() : tag_(absl::StrCat(getpid() % 100000)) {
    for (int i = 0; i < kHosts; ++i) {
      const std::string ns = netns(i), h = absl::StrCat("mh", tag_, "_", i), sw = veth(i);
      ok_ = ok_ && Run("ip netns add " + ns) &&
            Run(absl::StrCat("ip link add ", sw, " type veth peer name ", h)) &&
            Run(absl::StrCat("ip link set ", h, " netns ", ns)) &&
            Run(absl::StrCat("ip -n ", ns, " addr add ", ip_text(i), "/24 dev ", h)) &&
            Run(absl::StrCat("ip -n ", ns, " link set ", h, " up")) &&
            Run(absl::StrCat("ip -n ", ns, " route add 224.0.0.0/4 dev ", h)) &&
            Run(absl::StrCat("ip link set ", sw, " up"));
    }
  }
  ~Hosts() {
    for (int i = 0; i < kHosts; ++i) {
      Run("ip netns del " + netns(i));
      Run("ip link del " + veth(i));
    }
  }
  bool ok() const { return ok_; }
  std::string netns(int i) const { return absl::StrCat("momsw", tag_, "_", i); }
  std::string veth(int i) const { return absl::StrCat("ms", tag_, "_", i); }
  std::string ip_text(int i) const { return absl::StrCat("10.77.0.", i + 1); }
  uint32_t ip(int i) const { return 0x0a4d0001 + i; }

  // A UDP socket created inside host i's namespace.
  int Socket(int i) const {
    const int self = open("/proc/self/ns/net", O_RDONLY);
    const int target = open(("/var/run/netns/" + netns(i)).c_str(), O_RDONLY);
    int fd = -1;
    if (self >= 0 && target >= 0 && setns(target, CLONE_NEWNET) == 0) {
      fd = socket(AF_INET, SOCK_DGRAM, 0);
      setns(self, CLONE_NEWNET);
    }
    if (self >= 0) close(self);
    if (target >= 0) close(target);
    return fd;
  }

 private:
  std::string tag_;
  bool ok_ = true;
};

sockaddr_in Sockaddr(uint32_t ip, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(ip);
  sa.sin_port = htons(port);
  return sa;
}

// Joins the group on host i and binds `port` (0: any); returns the socket.
int Receiver(const Hosts& hosts, int i, uint16_t* port) {
  const int fd = hosts.Socket(i);
  sockaddr_in sa = Sockaddr(INADDR_ANY, *port);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  socklen_t len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  *port = ntohs(sa.sin_port);
  ip_mreq mreq{};
  mreq.imr_multiaddr.s_addr = htonl(kGroupIp);
  mreq.imr_interface.s_addr = htonl(hosts.ip(i));
  EXPECT_EQ(setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)), 0);
  timeval guard{5, 0};  // only against hanging if frames are lost
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof(guard));
  return fd;
}

TEST(DpdkSwitchTest, ReplicatesToMembersAndStampsOneSequence) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for namespaces, veths and AF_PACKET";
  Hosts hosts;
  ASSERT_TRUE(hosts.ok()) << "could not create namespaces / veths";

  // Host 0 sends; hosts 1 and 2 are members; host 3 is not. Port i = host i.
  SwitchConfig config;
  config.set_switch_name("s0");
  MulticastRule* rule = config.add_rules();
  rule->set_group_ip(kGroupIp);
  rule->set_group_id(5);
  rule->set_in_port(0);
  rule->add_out_ports(1);
  rule->add_out_ports(2);
  rule->set_high_priority(true);
  rule->set_stamp_group_seq(true);
  absl::StatusOr<ForwardingTable> table = ForwardingTable::Create(config, kHosts);
  ASSERT_TRUE(table.ok()) << table.status();
  std::vector<std::string> vdevs;
  for (int i = 0; i < kHosts; ++i) {
    vdevs.push_back(DpdkSwitch::AfPacketVdev(i, hosts.veth(i)));
  }
  absl::StatusOr<std::unique_ptr<DpdkSwitch>> sw = DpdkSwitch::Create(vdevs, *std::move(table));
  ASSERT_TRUE(sw.ok()) << sw.status();

  uint16_t port = 0;
  int receivers[kHosts] = {-1, -1, -1, -1};
  for (int i = 1; i < kHosts; ++i) receivers[i] = Receiver(hosts, i, &port);

  std::atomic<bool> stop{false};
  std::thread loop([&] {
    while (!stop.load(std::memory_order_relaxed)) (*sw)->Poll();
  });

  const int sender = hosts.Socket(0);
  in_addr iface{htonl(hosts.ip(0))};
  setsockopt(sender, IPPROTO_IP, IP_MULTICAST_IF, &iface, sizeof(iface));
  const int tos = 46 << 2;
  setsockopt(sender, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
  const sockaddr_in group = Sockaddr(kGroupIp, port);
  for (int seq = 1; seq <= kMessages; ++seq) {
    const std::string payload = testing::MomPayload(1, seq);
    ASSERT_EQ(sendto(sender, payload.data(), payload.size(), 0,
                     reinterpret_cast<const sockaddr*>(&group), sizeof(group)),
              static_cast<ssize_t>(payload.size()));
  }

  std::vector<uint64_t> stamps[kHosts];
  for (int i = 1; i <= 2; ++i) {
    char buf[2048];
    for (int n = 0; n < kMessages; ++n) {
      const ssize_t got = recv(receivers[i], buf, sizeof(buf), 0);
      if (got <= 0) break;
      std::vector<uint8_t> frame(42, 0);  // ParseMom reads after the UDP header
      frame.insert(frame.end(), buf, buf + got);
      stamps[i].push_back(testing::ParseMom(frame).group_seq());
    }
  }
  char buf[2048];
  const ssize_t leaked = recv(receivers[3], buf, sizeof(buf), MSG_DONTWAIT);
  stop = true;
  loop.join();

  std::vector<uint64_t> want;
  for (int s = 1; s <= kMessages; ++s) want.push_back(s);
  EXPECT_EQ(stamps[1], want);
  EXPECT_EQ(stamps[2], want);
  EXPECT_LT(leaked, 0) << "a non-member got a copy";
  EXPECT_EQ((*sw)->core().group_seq(5), static_cast<uint64_t>(kMessages));
  close(sender);
  for (int fd : receivers) {
    if (fd >= 0) close(fd);
  }
}

// DPDK's af_packet driver finds ring slot i at i * framesz, the kernel puts
// it in block i / (blocksz / framesz): they agree only if slots tile blocks
// exactly (1584-byte slots for --max_datagram_bytes=1500 once silenced a port
// after its second frame). No root needed.
TEST(AfPacketVdevTest, RingSlotsTileBlocksAndHoldTheDatagram) {
  const uint32_t page = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  for (uint32_t max : {1500u, 1968u, 2000u, 4016u, 4017u, 8000u, 32688u, 40000u, 61360u}) {
    SCOPED_TRACE(absl::StrCat("max_datagram_bytes ", max));
    std::map<std::string, uint32_t> geometry;
    for (absl::string_view kv : absl::StrSplit(DpdkSwitch::AfPacketVdev(0, "x", max), ',')) {
      std::pair<std::string, std::string> p = absl::StrSplit(kv, '=');
      uint32_t value;
      if (absl::SimpleAtoi(p.second, &value)) geometry[p.first] = value;
    }
    const uint32_t frame = geometry["framesz"], block = geometry["blocksz"];
    ASSERT_GT(frame, 0u);
    EXPECT_GE(frame, max + kAfPacketFrameOverhead) << "a datagram of max bytes fits a slot";
    EXPECT_EQ(block % page, 0u);
    EXPECT_EQ(block % frame, 0u) << "slots tile a block";
    EXPECT_EQ(geometry["framecnt"] % (block / frame), 0u) << "whole blocks";
    EXPECT_GE(geometry["framecnt"], 512u);
  }
}

}  // namespace
}  // namespace dctk::mom
