#include "bastion/bpf/testing/packets.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace dctk::bastion::testing {
namespace {

void Put(Frame& f, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  f.insert(f.end(), b, b + n);
}
void Put16(Frame& f, uint16_t host) {
  uint16_t n = htons(host);
  Put(f, &n, 2);
}
void Put32(Frame& f, uint32_t host) {
  uint32_t n = htonl(host);
  Put(f, &n, 4);
}
void PutMac(Frame& f, const MacAddress& m) { Put(f, m.bytes.data(), 6); }

void PutEther(Frame& f, const MacAddress& src, const MacAddress& dst, uint16_t type) {
  PutMac(f, dst);
  PutMac(f, src);
  Put16(f, type);
}

}  // namespace

MacAddress Mac(uint8_t last) {
  MacAddress m;
  m.bytes = {0x02, 0, 0, 0, 0, last};
  return m;
}

Frame Ipv4Frame(const Ipv4Spec& s) {
  Frame f;
  PutEther(f, s.src_mac, s.dst_mac, 0x0800);
  const bool ports = s.proto == kTcp || s.proto == kUdp;
  const size_t l4 = s.proto == kTcp ? 20 : 8;
  f.push_back(0x45);  // version 4, ihl 5
  f.push_back(0);
  Put16(f, static_cast<uint16_t>(20 + l4 + s.payload));
  Put16(f, s.ip_id);
  Put16(f, static_cast<uint16_t>((s.more_fragments ? 0x2000 : 0) | (s.frag_offset & 0x1fff)));
  f.push_back(64);  // ttl
  f.push_back(s.proto);
  Put16(f, 0);  // checksum
  Put32(f, s.saddr);
  Put32(f, s.daddr);
  size_t l4_start = f.size();
  if (ports) {
    Put16(f, s.sport);
    Put16(f, s.dport);
  }
  f.resize(l4_start + l4 + s.payload, 0);
  if (s.proto == kTcp) f[l4_start + 12] = 5 << 4;  // data offset
  if (s.proto == kUdp) {
    const uint16_t len = static_cast<uint16_t>(8 + s.payload);
    f[l4_start + 4] = static_cast<uint8_t>(len >> 8);
    f[l4_start + 5] = static_cast<uint8_t>(len & 0xff);
  }
  return f;
}

Frame ArpFrame(const ArpSpec& s) {
  Frame f;
  PutEther(f, s.eth_src, s.eth_dst, 0x0806);
  Put16(f, 1);       // Ethernet
  Put16(f, 0x0800);  // IPv4
  f.push_back(6);
  f.push_back(4);
  Put16(f, s.op);
  PutMac(f, s.sha);
  Put32(f, s.spa);
  PutMac(f, s.tha);
  Put32(f, s.tpa);
  f.resize(60, 0);  // minimum Ethernet frame, as on the wire
  return f;
}

Frame EtherFrame(const MacAddress& src, const MacAddress& dst, uint16_t ethertype,
                 size_t payload) {
  Frame f;
  PutEther(f, src, dst, ethertype);
  f.resize(f.size() + payload, 0);
  return f;
}

uint16_t UdpChecksum(const Frame& f) {
  const size_t ip = 14, udp = 14 + 20;
  const size_t udp_len = size_t{f[udp + 4]} << 8 | f[udp + 5];
  uint32_t sum = 0;
  auto add16 = [&sum](uint8_t hi, uint8_t lo) { sum += uint32_t{hi} << 8 | lo; };
  for (size_t i = 0; i < 8; i += 2) add16(f[ip + 12 + i], f[ip + 13 + i]);  // addresses
  sum += 17 + udp_len;
  for (size_t i = 0; i < udp_len; i += 2) {
    if (i == 6) continue;  // the checksum field itself
    add16(f[udp + i], i + 1 < udp_len ? f[udp + i + 1] : 0);
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  const uint16_t c = static_cast<uint16_t>(~sum);
  return c == 0 ? 0xffff : c;
}

void SetUdpChecksum(Frame& f, uint16_t checksum) {
  f[14 + 20 + 6] = static_cast<uint8_t>(checksum >> 8);
  f[14 + 20 + 7] = static_cast<uint8_t>(checksum & 0xff);
}

uint16_t GetUdpChecksum(const Frame& f) {
  return static_cast<uint16_t>(f[14 + 20 + 6] << 8 | f[14 + 20 + 7]);
}

absl::StatusOr<TestRun> RunProgram(int prog_fd, const Frame& frame, int repeat) {
  TestRun run;
  run.out.resize(frame.size() + 256);
  __sk_buff ctx{};
  ctx.ifindex = 1;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
              .data_out = run.out.data(), .data_size_in = static_cast<__u32>(frame.size()),
              .data_size_out = static_cast<__u32>(run.out.size()), .ctx_in = &ctx,
              .ctx_size_in = sizeof(ctx), .repeat = repeat);
  if (int err = bpf_prog_test_run_opts(prog_fd, &opts)) {
    return absl::ErrnoToStatus(-err, absl::StrCat("BPF_PROG_TEST_RUN on program fd ", prog_fd));
  }
  run.action = static_cast<int>(opts.retval);
  run.out.resize(opts.data_size_out);
  run.duration_ns = opts.duration;
  return run;
}

absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> NonZeroCounters(Datapath& dp) {
  absl::StatusOr<VerdictCounters> c = dp.ReadCounters();
  if (!c.ok()) return c.status();
  std::vector<std::pair<std::string, uint64_t>> out;
  for (uint32_t i = 0; i < c->size(); ++i) {
    if ((*c)[i]) out.emplace_back(std::string(VerdictName(i)), (*c)[i]);
  }
  return out;
}

absl::StatusOr<std::vector<VerdictEvent>> PendingEvents(Datapath& dp) {
  std::vector<VerdictEvent> events;
  absl::StatusOr<int> n =
      dp.PollEvents(absl::ZeroDuration(), [&](const VerdictEvent& e) { events.push_back(e); });
  if (!n.ok()) return n.status();
  return events;
}

}  // namespace dctk::bastion::testing
