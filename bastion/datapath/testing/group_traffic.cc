#include "bastion/datapath/testing/group_traffic.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "bastion/datapath/bpf_datapath.h"
#include "common/transport/framing.h"

namespace dctk::bastion::testing {
namespace {

constexpr size_t kGroupSeqAt = transport::kFrameHeaderSize + 1;
constexpr size_t kSenderSeqAt = kGroupSeqAt + 8 + 1;

void PutLe64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t Le64(absl::string_view s, size_t at) {
  if (s.size() < at + 8) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(s[at + i])} << (8 * i);
  return v;
}

}  // namespace

std::string MomDatagram(uint64_t sender_seq, size_t padding) {
  std::string body;
  body.push_back(0x09);  // MomPacket field 1 (group_seq), fixed64
  PutLe64(body, 0);
  body.push_back(0x21);  // field 4 (sender_seq), fixed64
  PutLe64(body, sender_seq);
  if (padding > 0) {
    body.push_back(0x3a);  // field 7 (payload), bytes
    body.push_back(static_cast<char>(padding & 0x7f));
    body.append(padding & 0x7f, 'p');
  }
  std::string out(transport::kFrameHeaderSize, '\0');
  transport::EncodeFrameHeader(BpfDatapath::MomPacketTypeId(), static_cast<uint32_t>(body.size()),
                               out.data());
  return out + body;
}

uint64_t GroupSeqOf(absl::string_view datagram) { return Le64(datagram, kGroupSeqAt); }
uint64_t SenderSeqOf(absl::string_view datagram) { return Le64(datagram, kSenderSeqAt); }

sockaddr_in SocketAddress(uint32_t ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(ip);
  return a;
}

absl::Status BindAndJoin(int fd, uint16_t port, uint32_t group, uint32_t local) {
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in any = SocketAddress(INADDR_ANY, port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof(any)) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("binding udp port ", port));
  }
  ip_mreq join{};
  join.imr_multiaddr.s_addr = htonl(group);
  join.imr_interface.s_addr = htonl(local);
  if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &join, sizeof(join)) != 0) {
    return absl::ErrnoToStatus(errno, "IP_ADD_MEMBERSHIP");
  }
  return absl::OkStatus();
}

absl::Status MulticastFrom(int fd, uint32_t local) {
  in_addr iface{.s_addr = htonl(local)};
  if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &iface, sizeof(iface)) != 0) {
    return absl::ErrnoToStatus(errno, "IP_MULTICAST_IF");
  }
  unsigned char loop = 0;
  if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) != 0) {
    return absl::ErrnoToStatus(errno, "IP_MULTICAST_LOOP");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Receive(int fd, absl::Duration timeout) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  int n = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (n < 0) return absl::ErrnoToStatus(errno, "poll");
  if (n == 0) return absl::DeadlineExceededError("no datagram");
  std::string buf(65536, '\0');
  ssize_t got = recv(fd, buf.data(), buf.size(), 0);
  if (got < 0) return absl::ErrnoToStatus(errno, "recv");
  buf.resize(static_cast<size_t>(got));
  return buf;
}

}  // namespace dctk::bastion::testing
