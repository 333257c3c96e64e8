#include "mom/switch/dpdk_switch.h"

#include <linux/if_packet.h>
#include <net/if.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "mom/switch/link_probe.h"

namespace dctk::mom {
namespace {

absl::Status DpdkError(absl::string_view what, int rc) {
  return absl::InternalError(absl::StrCat("DPDK ", what, " failed: ", rte_strerror(-rc)));
}

constexpr uint16_t kRxDescriptors = 512;
constexpr uint16_t kTxDescriptors = 512;
constexpr unsigned kPoolMbufs = 4095;
constexpr double kShaperBurstBytes = 2 * 1514;
constexpr uint32_t kRingSlots = 512;  // per ring, as DPDK's af_packet default
constexpr uint32_t kMinMaxDatagram = 1500;
// The largest ring slot a 16-bit mbuf data room can mirror (see DataRoomFor)
// that is a whole number of pages, less the slot's overhead.
constexpr uint32_t kMaxMaxDatagram = 61440 - kAfPacketFrameOverhead;

// af_packet (TPACKET_V2) ring geometry for datagrams up to `max_datagram`.
struct Ring {
  uint32_t frame_size;  // one slot
  uint32_t block_size;  // a multiple of the page size
  uint32_t frame_count;
};

// DPDK 22.11's af_packet driver addresses slot i at i * frame_size, but the
// kernel starts every block with a fresh slot and leaves a block's tail unused
// when frame_size does not divide it: the driver then polls an address the
// kernel never writes, and the port goes silent after a block's first slots.
// So slots tile blocks exactly: up to a page, the next power of two (blocks
// of a page); beyond, whole pages, one slot per block.
Ring RingFor(uint32_t max_datagram) {
  const uint32_t page = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  const uint32_t need = max_datagram + kAfPacketFrameOverhead;
  Ring r;
  if (need <= page) {
    r.frame_size = 64;
    while (r.frame_size < need) r.frame_size *= 2;
    r.block_size = page;
  } else {
    r.frame_size = (need + page - 1) / page * page;
    r.block_size = r.frame_size;
  }
  const uint32_t per_block = r.block_size / r.frame_size;
  r.frame_count = (kRingSlots + per_block - 1) / per_block * per_block;
  return r;
}

// The longest frame (Ethernet header included) a slot of `ring` holds: the
// slot less the headers before the IPv4 header, plus the Ethernet header.
uint32_t MaxFrameFor(const Ring& ring) {
  return ring.frame_size - kAfPacketFrameOverhead + kEthernetHeaderSize;
}

// The frame's IPv4 header promises more bytes than arrived: the ring slot
// truncated it (the kernel delivers whole frames otherwise).
bool Truncated(absl::Span<const uint8_t> frame) {
  if (frame.size() < kEthernetHeaderSize + 20) return false;
  const uint8_t* ip = frame.data() + kEthernetHeaderSize;
  return kEthernetHeaderSize + (size_t{ip[2]} << 8 | ip[3]) > frame.size();
}

// The mbuf data room af_packet's receive queue asks for with `ring`: the slot
// minus its tpacket2 header, plus headroom.
uint16_t DataRoomFor(const Ring& ring) {
  return static_cast<uint16_t>(ring.frame_size - 32 + RTE_PKTMBUF_HEADROOM);
}

struct PortIfaceInfo {
  std::string name;  // "" for devices without a kernel interface
  int index = 0;
};

// The kernel interface behind `port` (af_packet).
absl::StatusOr<PortIfaceInfo> PortIface(uint16_t port) {
  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(port, &info); rc != 0) {
    return DpdkError(absl::StrCat("device info of port ", port), rc);
  }
  char name[IF_NAMESIZE];
  if (info.if_index > 0 && if_indextoname(info.if_index, name) != nullptr) {
    return PortIfaceInfo{name, static_cast<int>(info.if_index)};
  }
  return PortIfaceInfo{};
}

// This process's AF_PACKET sockets bound to interface `if_index` (DPDK's
// af_packet driver keeps its socket to itself).
std::vector<int> PacketSockets(int if_index) {
  std::vector<int> fds;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    int fd;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &fd)) continue;
    sockaddr_ll sll{};
    socklen_t len = sizeof(sll);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&sll), &len) == 0 &&
        sll.sll_family == AF_PACKET && sll.sll_ifindex == if_index) {
      fds.push_back(fd);
    }
  }
  return fds;
}

// The transmit ring DPDK's af_packet driver mapped for its socket on
// `if_index`: the socket's one mapping (/proc/self/maps names it
// "socket:[INODE]") holds the receive ring, then the transmit ring,
// `ring_bytes` each. nullptr if there is no such socket or mapping.
uint8_t* TxRingOf(int if_index, size_t ring_bytes) {
  const std::vector<int> fds = PacketSockets(if_index);
  struct stat st {};
  if (fds.size() != 1 || fstat(fds[0], &st) != 0) return nullptr;
  const std::string name = absl::StrCat(" socket:[", st.st_ino, "]");
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    uintptr_t start = 0, end = 0;
    if (!absl::EndsWith(line, name) ||
        std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR, &start, &end) != 2 ||
        end - start != 2 * ring_bytes) {
      continue;
    }
    return reinterpret_cast<uint8_t*>(start + ring_bytes);
  }
  return nullptr;
}

// Whether `frame` is of EtherType `type`.
bool IsEtherType(absl::Span<const uint8_t> frame, uint16_t type) {
  return frame.size() >= kEthernetHeaderSize && frame[12] == (type >> 8) &&
         frame[13] == (type & 0xff);
}

// The MTU of `iface` (read through `fd`, a socket in its namespace), else
// what DPDK says of `port`.
absl::StatusOr<uint16_t> PortMtu(uint16_t port, const std::string& iface, int fd) {
  if (!iface.empty()) {
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, iface.c_str(), IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFMTU, &ifr) != 0) {
      return absl::InternalError(absl::StrCat("MOM switch: cannot read the MTU of ", iface,
                                              " (port ", port, "): ", std::strerror(errno)));
    }
    return static_cast<uint16_t>(std::min(ifr.ifr_mtu, 65535));
  }
  uint16_t mtu = 0;
  if (int rc = rte_eth_dev_get_mtu(port, &mtu); rc != 0) {
    return DpdkError(absl::StrCat("MTU of port ", port), rc);
  }
  return mtu;
}

absl::Status StartPort(uint16_t port, rte_mempool* pool) {
  rte_eth_conf conf{};
  if (int rc = rte_eth_dev_configure(port, 1, 1, &conf); rc < 0) {
    return DpdkError(absl::StrCat("configure port ", port), rc);
  }
  const int socket = rte_eth_dev_socket_id(port);
  if (int rc = rte_eth_rx_queue_setup(port, 0, kRxDescriptors, socket, nullptr, pool); rc < 0) {
    return DpdkError(absl::StrCat("rx queue setup port ", port), rc);
  }
  if (int rc = rte_eth_tx_queue_setup(port, 0, kTxDescriptors, socket, nullptr); rc < 0) {
    return DpdkError(absl::StrCat("tx queue setup port ", port), rc);
  }
  if (int rc = rte_eth_dev_start(port); rc < 0) {
    return DpdkError(absl::StrCat("start port ", port), rc);
  }
  rte_eth_promiscuous_enable(port);
  return absl::OkStatus();
}

// rte_eal_cleanup, plus the runtime directory (/var/run/dpdk/<file-prefix>)
// that EAL leaves behind.
void CleanupEal() {
  const std::string runtime_dir = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::error_code ignored;
  std::filesystem::remove_all(runtime_dir, ignored);
}

}  // namespace

std::string DpdkSwitch::AfPacketVdev(int index, absl::string_view iface,
                                     uint32_t max_datagram_bytes) {
  const Ring r = RingFor(max_datagram_bytes);
  return absl::StrCat("net_af_packet", index, ",iface=", iface, ",framesz=", r.frame_size,
                      ",blocksz=", r.block_size, ",framecnt=", r.frame_count);
}

absl::StatusOr<std::unique_ptr<DpdkSwitch>> DpdkSwitch::Create(
    const std::vector<std::string>& vdevs, ForwardingTable table, DpdkSwitchOptions options) {
  if (vdevs.empty() || static_cast<int>(vdevs.size()) != table.num_ports()) {
    return absl::InvalidArgumentError(absl::StrCat("MOM switch: ", vdevs.size(),
                                                   " vdevs for a table of ", table.num_ports(),
                                                   " ports"));
  }
  if (options.max_datagram_bytes < kMinMaxDatagram ||
      options.max_datagram_bytes > kMaxMaxDatagram) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MOM switch: max_datagram_bytes ", options.max_datagram_bytes, " is not in [",
        kMinMaxDatagram, ", ", kMaxMaxDatagram, "]"));
  }
  const uint16_t data_room = DataRoomFor(RingFor(options.max_datagram_bytes));
  // EAL memory: the receive pool plus room for the rest (fragment pools, rings).
  const uint64_t pool_mb = (uint64_t{kPoolMbufs} * (data_room + 256) >> 20) + 1;
  std::vector<std::string> args = {"mom_switch", "--no-huge", "-m", absl::StrCat(96 + pool_mb * 5 / 4), "--no-pci",
                                   "--no-telemetry", "--log-level=lib.eal:error",
                                   absl::StrCat("--file-prefix=mom_switch_", getpid())};
  for (const std::string& v : vdevs) args.push_back(absl::StrCat("--vdev=", v));
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    return absl::InternalError(
        absl::StrCat("DPDK EAL init failed: ", rte_strerror(rte_errno),
                     " (one switch per process; vdevs: ", absl::StrJoin(vdevs, " "), ")"));
  }
  if (rte_eth_dev_count_avail() != vdevs.size()) {
    CleanupEal();
    return absl::FailedPreconditionError(absl::StrCat(
        "MOM switch: DPDK found ", rte_eth_dev_count_avail(), " ports for ", vdevs.size(),
        " vdevs (is every iface present?)"));
  }
  rte_mempool* pool = rte_pktmbuf_pool_create("mom_switch_pool", kPoolMbufs, 256, 0, data_room,
                                              rte_socket_id());
  if (pool == nullptr) {
    CleanupEal();
    return absl::ResourceExhaustedError(
        absl::StrCat("DPDK mbuf pool: ", rte_strerror(rte_errno)));
  }
  std::vector<uint16_t> ports;
  uint16_t id;
  RTE_ETH_FOREACH_DEV(id) { ports.push_back(id); }
  // Opened here, so in the ports' namespace: interface names and flags
  // are looked up there for the switch's lifetime.
  const int link_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  absl::Status status =
      link_fd >= 0 ? absl::OkStatus()
                   : absl::InternalError(absl::StrCat("MOM switch: socket: ", std::strerror(errno)));
  std::vector<uint16_t> mtus;
  std::vector<std::string> ifaces;
  std::vector<int> if_indexes;
  for (uint16_t p : ports) {
    if (!status.ok()) break;
    absl::StatusOr<PortIfaceInfo> iface = PortIface(p);
    absl::StatusOr<uint16_t> mtu = iface.ok() ? PortMtu(p, iface->name, link_fd) : iface.status();
    status = mtu.ok() ? StartPort(p, pool) : mtu.status();
    if (!status.ok()) break;
    mtus.push_back(*mtu);
    ifaces.push_back(iface->name);
    if_indexes.push_back(iface->index);
  }
  absl::StatusOr<std::unique_ptr<Egress>> egress =
      status.ok() ? Egress::Create(std::move(mtus), kQueuePackets) : status;
  if (!egress.ok()) {
    if (link_fd >= 0) close(link_fd);
    for (uint16_t q : ports) rte_eth_dev_close(q);
    rte_mempool_free(pool);
    CleanupEal();
    return egress.status();
  }
  const Ring ring = RingFor(options.max_datagram_bytes);
  return std::unique_ptr<DpdkSwitch>(new DpdkSwitch(
      std::move(ports), std::move(ifaces), std::move(if_indexes), link_fd, pool, std::move(table),
      *std::move(egress), MaxFrameFor(ring), ring.frame_size, ring.frame_count));
}

DpdkSwitch::DpdkSwitch(std::vector<uint16_t> ports, std::vector<std::string> ifaces,
                       std::vector<int> if_indexes, int link_fd, rte_mempool* pool,
                       ForwardingTable table, std::unique_ptr<Egress> egress, uint32_t max_frame,
                       uint32_t ring_frame_size, uint32_t ring_frames)
    : ports_(std::move(ports)),
      ifaces_(std::move(ifaces)),
      if_indexes_(std::move(if_indexes)),
      link_was_up_(ports_.size(), true),
      link_fd_(link_fd),
      max_frame_(max_frame),
      ring_frame_size_(ring_frame_size),
      ring_frames_(ring_frames),
      shapers_(ports_.size()),
      pool_(pool),
      core_(std::move(table)),
      egress_(std::move(egress)) {
  for (int index : if_indexes_) {
    tx_rings_.push_back(index > 0 ? TxRingOf(index, size_t{ring_frame_size} * ring_frames)
                                  : nullptr);
  }
}

DpdkSwitch::~DpdkSwitch() {
  egress_.reset();  // frees queued frames and fragments before their pools go
  for (int p = 0; p < num_ports(); ++p) {
    rte_eth_dev_stop(ports_[p]);
    rte_eth_dev_close(ports_[p]);
  }
  rte_mempool_free(pool_);
  CleanupEal();
  close(link_fd_);
}

int DpdkSwitch::Poll() {
  int received = 0;
  rte_mbuf* burst[kBurst];
  for (int in = 0; in < num_ports(); ++in) {
    const uint16_t n = rte_eth_rx_burst(ports_[in], 0, burst, kBurst);
    received += n;
    egress_->counters()[in].rx_packets += n;
    for (uint16_t i = 0; i < n; ++i) {
      rte_mbuf* m = burst[i];
      Forwarding f;
      // af_packet delivers each frame in one segment.
      absl::Span<uint8_t> frame(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m));
      const bool probe = IsEtherType(frame, kProbeEtherType) || IsArpProbeReply(frame);
      if (probe || IsEtherType(frame, kVoidEtherType)) {  // link traffic, not forwarded
        egress_->counters()[in].probes_received += probe;
        --egress_->counters()[in].rx_packets;
        rte_pktmbuf_free(m);
        continue;
      }
      if (frame.size() >= max_frame_ && Truncated(frame)) {  // beyond max_datagram_bytes
        core_.CountDrop(DropReason::kTooBig);
        rte_pktmbuf_free(m);
        continue;
      }
      if (core_.Process(in, frame, &f).has_value() || f.out_ports == 0) {
        rte_pktmbuf_free(m);
        continue;
      }
      egress_->Enqueue(m, f, &core_);
    }
  }
  for (int out = 0; out < num_ports(); ++out) Transmit(out);
  return received;
}

void DpdkSwitch::SetPortRate(int port, uint64_t bits_per_second) {
  Shaper& s = shapers_[port];
  s.bytes_per_cycle = static_cast<double>(bits_per_second) / 8 / rte_get_tsc_hz();
  s.tokens = kShaperBurstBytes;
  s.last_cycles = rte_get_tsc_cycles();
}

bool DpdkSwitch::LinkUp(int port) const {
  if (ifaces_[port].empty()) {
    rte_eth_link link{};
    return rte_eth_link_get_nowait(ports_[port], &link) == 0 &&
           link.link_status == RTE_ETH_LINK_UP;
  }
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifaces_[port].c_str(), IFNAMSIZ - 1);
  // IFF_RUNNING: the operational state is up, i.e. up and with carrier.
  return ioctl(link_fd_, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP) &&
         (ifr.ifr_flags & IFF_RUNNING);
}

void DpdkSwitch::WatchLinks() {
  for (int p = 0; p < num_ports(); ++p) CheckLink(p);
}

void DpdkSwitch::CheckLink(int port) {
  const bool up = LinkUp(port);
  if (!up) VoidStaleFrames(port);
  if (up && !link_was_up_[port] && if_indexes_[port] > 0) {
    for (int fd : PacketSockets(if_indexes_[port])) {
      int error = 0;
      socklen_t len = sizeof(error);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);  // reading clears it
      sendto(fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0);    // sends what waits in the ring
    }
  }
  link_was_up_[port] = up;
}

void DpdkSwitch::VoidStaleFrames(int port) {
  uint8_t* ring = tx_rings_[port];
  if (ring == nullptr) return;
  for (uint32_t i = 0; i < ring_frames_; ++i) {
    auto* h = reinterpret_cast<tpacket2_hdr*>(ring + size_t{i} * ring_frame_size_);
    if (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_SEND_REQUEST) continue;
    // Where DPDK's driver and the kernel (tpacket_parse_header) put the frame.
    uint8_t* frame = reinterpret_cast<uint8_t*>(h) + TPACKET2_HDRLEN - sizeof(sockaddr_ll);
    if (h->tp_len == kEthernetHeaderSize &&
        IsEtherType(absl::MakeConstSpan(frame, kEthernetHeaderSize), kVoidEtherType)) {
      continue;  // voided before
    }
    frame[12] = kVoidEtherType >> 8;
    frame[13] = kVoidEtherType & 0xff;
    h->tp_len = kEthernetHeaderSize;
    ++egress_->counters()[port].stale_voided;
  }
}

void DpdkSwitch::SendProbes(const std::vector<uint32_t>& ports) {
  for (uint32_t p : ports) {
    SendProbe(p, [](absl::Span<uint8_t> d) {
      std::memset(d.data(), 0xff, 6);  // broadcast: the peer switch reads every frame
      std::memcpy(&d[6], kProbeMac, 6);
      d[12] = kProbeEtherType >> 8;
      d[13] = kProbeEtherType & 0xff;
    });
  }
}

void DpdkSwitch::SendHostProbes(const std::vector<std::pair<uint32_t, uint32_t>>& hosts) {
  for (const auto& [port, ip] : hosts) {
    SendProbe(port, [ip = ip](absl::Span<uint8_t> d) { WriteArpProbe(ip, d); });
  }
}

template <typename Write>
void DpdkSwitch::SendProbe(uint32_t port, Write write) {
  if (port >= ports_.size() || !LinkUp(static_cast<int>(port))) return;
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) return;
  auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, kProbeFrameBytes));
  std::memset(d, 0, kProbeFrameBytes);
  write(absl::MakeSpan(d, kProbeFrameBytes));
  if (rte_eth_tx_burst(ports_[port], 0, &m, 1) == 1) {
    ++egress_->counters()[port].probes_sent;
  } else {
    rte_pktmbuf_free(m);
  }
}

bool DpdkSwitch::Idle() const { return egress_->Idle(); }

SwitchCounters DpdkSwitch::Counters() const {
  SwitchCounters c;
  c.forwarded = core_.forwarded();
  c.drops = core_.drops();
  c.group_seqs.insert(core_.group_seqs().begin(), core_.group_seqs().end());
  c.ports = egress_->counters();
  for (int p = 0; p < num_ports(); ++p) {
    rte_eth_stats stats{};
    if (rte_eth_stats_get(ports_[p], &stats) == 0) {
      c.ports[p].rx_missed = stats.imissed + stats.ierrors;
    }
    for (int band = 0; band < kPortBands; ++band) c.ports[p].depth[band] = egress_->depth(p, band);
  }
  return c;
}

void DpdkSwitch::Transmit(int port) {
  Shaper& shaper = shapers_[port];
  const bool shaped = shaper.bytes_per_cycle > 0;
  if (shaped) {
    const uint64_t now = rte_get_tsc_cycles();
    shaper.tokens = std::min(kShaperBurstBytes,
                             shaper.tokens + (now - shaper.last_cycles) * shaper.bytes_per_cycle);
    shaper.last_cycles = now;
  }
  rte_mbuf* burst[kBurst];
  for (;;) {
    uint16_t n = 0;
    while (n < kBurst && (!shaped || shaper.tokens > 0)) {
      absl::optional<rte_mbuf*> m = egress_->Dequeue(port);
      if (!m) break;
      if (shaped) shaper.tokens -= rte_pktmbuf_pkt_len(*m);
      burst[n++] = *m;
    }
    if (n == 0) return;
    // A link seen down may be back: its ring and socket are set right before
    // frames go in, so none sent after it came back waits for WatchLinks.
    if (!link_was_up_[port]) CheckLink(port);
    const uint16_t sent = rte_eth_tx_burst(ports_[port], 0, burst, n);
    PortCounters& counters = egress_->counters()[port];
    counters.tx_packets += sent;
    counters.tx_full += n - sent;
    // The device is full: count and free the rest rather than reorder queues.
    for (uint16_t i = sent; i < n; ++i) {
      core_.CountDrop(DropReason::kTxFull);
      rte_pktmbuf_free(burst[i]);
    }
    if (sent < n) return;
  }
}

}  // namespace dctk::mom
