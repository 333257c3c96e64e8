#include "mom/switch/egress.h"

#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_mbuf.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "mom/switch/packet.h"

namespace dctk::mom {
namespace {

// A fragment's direct mbuf holds the Ethernet header (prepended into the
// headroom) and the IPv4 header (at most 60 bytes).
constexpr uint16_t kHeaderDataRoom = RTE_PKTMBUF_HEADROOM + 64;
constexpr unsigned kPoolCache = 64;

uint16_t IpTotalLength(const rte_mbuf* m) {
  const uint8_t* ip = rte_pktmbuf_mtod(m, const uint8_t*) + kEthernetHeaderSize;
  return static_cast<uint16_t>(ip[2] << 8 | ip[3]);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Egress>> Egress::Create(std::vector<uint16_t> mtus,
                                                       size_t queue_packets) {
  if (mtus.empty() || static_cast<int>(mtus.size()) > ForwardingTable::kMaxPorts) {
    return absl::InvalidArgumentError(absl::StrCat("MOM switch egress: ", mtus.size(),
                                                   " ports (1 to ",
                                                   ForwardingTable::kMaxPorts, ")"));
  }
  for (size_t p = 0; p < mtus.size(); ++p) {
    if (mtus[p] < RTE_ETHER_MIN_MTU) {
      return absl::InvalidArgumentError(
          absl::StrCat("MOM switch egress: port ", p, " has MTU ", mtus[p], " (< 68)"));
    }
  }
  // Every queued frame may be a fragment; a datagram being cut needs a few more.
  const unsigned mbufs =
      static_cast<unsigned>(mtus.size() * kPortBands * queue_packets + kMaxFragments);
  static std::atomic<int> instance{0};
  const int id = instance++;
  rte_mempool* direct = rte_pktmbuf_pool_create(absl::StrCat("mom_frag_hdr", id).c_str(), mbufs,
                                                kPoolCache, 0, kHeaderDataRoom, rte_socket_id());
  rte_mempool* indirect = rte_pktmbuf_pool_create(absl::StrCat("mom_frag_ind", id).c_str(),
                                                  mbufs, kPoolCache, 0, 0, rte_socket_id());
  if (direct == nullptr || indirect == nullptr) {
    const std::string error = rte_strerror(rte_errno);
    rte_mempool_free(direct);
    rte_mempool_free(indirect);
    return absl::ResourceExhaustedError(
        absl::StrCat("MOM switch egress: fragment mbuf pools of ", mbufs, ": ", error));
  }
  return std::unique_ptr<Egress>(new Egress(std::move(mtus), queue_packets, direct, indirect));
}

Egress::Egress(std::vector<uint16_t> mtus, size_t queue_packets, rte_mempool* direct,
               rte_mempool* indirect)
    : mtus_(std::move(mtus)),
      counters_(mtus_.size()),
      queues_(static_cast<int>(mtus_.size()), queue_packets),
      direct_(direct),
      indirect_(indirect) {}

Egress::~Egress() {
  for (int p = 0; p < num_ports(); ++p) {
    while (absl::optional<rte_mbuf*> m = queues_.Dequeue(p)) rte_pktmbuf_free(*m);
  }
  rte_mempool_free(direct_);
  rte_mempool_free(indirect_);
}

bool Egress::Idle() const {
  for (int p = 0; p < num_ports(); ++p) {
    for (int band = 0; band < kPortBands; ++band) {
      if (queues_.size(p, band) != 0) return false;
    }
  }
  return true;
}

void Egress::Enqueue(rte_mbuf* m, const Forwarding& f, SwitchCore* core) {
  const uint16_t ip_total = IpTotalLength(m);
  uint64_t whole = 0, longer = 0;
  for (uint64_t bits = f.out_ports; bits != 0; bits &= bits - 1) {
    const int p = __builtin_ctzll(bits);
    (ip_total <= mtus_[p] ? whole : longer) |= uint64_t{1} << p;
  }
  rte_mbuf* fragments[kMaxFragments];
  while (longer != 0) {  // one fragment set per distinct MTU
    const uint16_t mtu = mtus_[__builtin_ctzll(longer)];
    uint64_t same = 0;
    for (uint64_t bits = longer; bits != 0; bits &= bits - 1) {
      const int p = __builtin_ctzll(bits);
      if (mtus_[p] == mtu) same |= uint64_t{1} << p;
    }
    longer &= ~same;
    int n = 0;
    if (absl::optional<DropReason> r = Fragment(m, mtu, fragments, &n)) {
      core->CountDrop(*r, __builtin_popcountll(same));
      continue;
    }
    for (uint64_t bits = same; bits != 0; bits &= bits - 1) {
      ++counters_[__builtin_ctzll(bits)].fragmented;
    }
    QueueOn(same, f.band, fragments, n, core);
  }
  // The fragments hold their own references to m's buffer.
  QueueOn(whole, f.band, &m, 1, core);
}

absl::optional<DropReason> Egress::Fragment(rte_mbuf* m, uint16_t mtu, rte_mbuf** out, int* n) {
  const uint8_t* ethernet = rte_pktmbuf_mtod(m, const uint8_t*);
  const uint32_t frame_len = kEthernetHeaderSize + IpTotalLength(m);
  if (rte_pktmbuf_pkt_len(m) > frame_len) {  // Ethernet padding is not IP payload
    rte_pktmbuf_trim(m, static_cast<uint16_t>(rte_pktmbuf_pkt_len(m) - frame_len));
  }
  // rte_ipv4_fragment_packet wants the IP header first; the Ethernet header's
  // bytes stay in m's buffer, and prepend gives them back afterwards.
  rte_pktmbuf_adj(m, kEthernetHeaderSize);
  const int32_t count =
      rte_ipv4_fragment_packet(m, out, kMaxFragments, mtu, direct_, indirect_);
  const char* restored = rte_pktmbuf_prepend(m, kEthernetHeaderSize);
  CHECK(reinterpret_cast<const uint8_t*>(restored) == ethernet);
  if (count < 0) {
    // -ENOTSUP: DF set; -EINVAL: more than kMaxFragments.
    return count == -ENOMEM ? DropReason::kNoBuffers : DropReason::kTooBig;
  }
  for (int i = 0; i < count; ++i) {
    char* header = rte_pktmbuf_prepend(out[i], kEthernetHeaderSize);
    CHECK(header != nullptr) << "fragment header mbuf without headroom";
    std::memcpy(header, ethernet, kEthernetHeaderSize);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(header + kEthernetHeaderSize);
    ip->hdr_checksum = rte_ipv4_cksum(ip);  // rte_ipv4_fragment_packet left it 0
  }
  *n = count;
  return absl::nullopt;
}

void Egress::QueueOn(uint64_t ports, int band, rte_mbuf** frames, int n, SwitchCore* core) {
  const int copies = __builtin_popcountll(ports);
  for (int i = 0; i < n; ++i) {
    if (copies == 0) {
      rte_pktmbuf_free(frames[i]);
    } else if (copies > 1) {
      rte_pktmbuf_refcnt_update(frames[i], static_cast<int16_t>(copies - 1));
    }
  }
  for (uint64_t bits = ports; bits != 0; bits &= bits - 1) {
    const int p = __builtin_ctzll(bits);
    if (queues_.capacity() - queues_.size(p, band) < static_cast<size_t>(n)) {
      counters_[p].queue_full[band] += n;
      core->CountDrop(DropReason::kQueueFull, n);
      for (int i = 0; i < n; ++i) rte_pktmbuf_free(frames[i]);  // this port's reference
      continue;
    }
    for (int i = 0; i < n; ++i) queues_.Enqueue(p, band, frames[i]);
    counters_[p].enqueued[band] += n;
  }
}

}  // namespace dctk::mom
