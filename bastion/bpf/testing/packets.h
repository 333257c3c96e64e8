// Crafted frames and BPF_PROG_TEST_RUN for Bastion datapath tests and benchmarks.
//
// Example:
//   Frame f = Ipv4Frame({.src_mac = a_mac, .dst_mac = b_mac, .saddr = Ipv4(10, 0, 0, 2),
//                        .daddr = Ipv4(10, 0, 0, 3), .proto = kTcp, .dport = 80});
//   absl::StatusOr<TestRun> r = RunProgram(datapath->from_container_fd(), f);
//   EXPECT_EQ(r->action, TC_ACT_REDIRECT);
// Checksums are left zero (UdpChecksum fills one in); the UDP length is set.
#ifndef DCTK_BASTION_BPF_TESTING_PACKETS_H_
#define DCTK_BASTION_BPF_TESTING_PACKETS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "bastion/datapath/datapath.h"

namespace dctk::bastion::testing {

using Frame = std::vector<uint8_t>;

struct Ipv4Spec {
  MacAddress src_mac;
  MacAddress dst_mac;
  uint32_t saddr = 0;  // host order
  uint32_t daddr = 0;
  uint8_t proto = kTcp;
  uint16_t sport = 40000;
  uint16_t dport = 80;
  uint16_t frag_offset = 0;  // in 8-byte units; non-zero makes a non-first fragment
  bool more_fragments = false;  // MF flag: with frag_offset 0, a first fragment
  uint16_t ip_id = 1;
  size_t payload = 16;
};
Frame Ipv4Frame(const Ipv4Spec& spec);

struct ArpSpec {
  uint16_t op = 1;  // 1 request, 2 reply
  MacAddress eth_src;
  MacAddress eth_dst;  // broadcast for requests
  MacAddress sha;
  uint32_t spa = 0;
  MacAddress tha;
  uint32_t tpa = 0;
};
Frame ArpFrame(const ArpSpec& spec);

// A frame with an arbitrary ethertype and `payload` zero bytes.
Frame EtherFrame(const MacAddress& src, const MacAddress& dst, uint16_t ethertype,
                 size_t payload);

struct TestRun {
  int action = 0;  // the program's return value (TC_ACT_*)
  Frame out;       // the frame after the program (rewrites visible here)
  uint32_t duration_ns = 0;  // average per repetition, as the kernel reports it
};

// Runs a tc program once (or `repeat` times) on `frame` arriving on interface 1 (lo:
// the kernel needs a real device, and the tests bind their container to it).
absl::StatusOr<TestRun> RunProgram(int prog_fd, const Frame& frame, int repeat = 1);

MacAddress Mac(uint8_t last);  // 02:00:00:00:00:<last>, a locally administered MAC

// A UDP datagram's payload in `frame` (Ethernet + 20-byte IPv4 header + UDP).
constexpr size_t kUdpPayloadOffset = 14 + 20 + 8;
// The UDP checksum `frame` should carry (pseudo header + UDP header and payload, with
// the checksum field taken as 0). Set it with SetUdpChecksum.
uint16_t UdpChecksum(const Frame& frame);
void SetUdpChecksum(Frame& frame, uint16_t checksum);
uint16_t GetUdpChecksum(const Frame& frame);

// The datapath's non-zero verdict counters, by name, in code order.
absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> NonZeroCounters(Datapath& dp);
// The verdict events waiting in the datapath's ring buffer (does not wait).
absl::StatusOr<std::vector<VerdictEvent>> PendingEvents(Datapath& dp);

}  // namespace dctk::bastion::testing

#endif  // DCTK_BASTION_BPF_TESTING_PACKETS_H_
