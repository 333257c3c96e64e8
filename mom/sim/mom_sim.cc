#include "mom/sim/mom_sim.h"

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "mom/controller/routes.h"
#include "mom/controller/switch_config.h"
#include "mom/controller/topology.h"
#include "mom/mom.pb.h"
#include "mom/sim/tos_filter.h"
#include "ns3/applications-module.h"
#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"
#include "ns3/traffic-control-module.h"

namespace dctk::mom {
namespace {

constexpr uint16_t kMomPort = 5000;
constexpr uint16_t kSinkPort = 9;
constexpr uint32_t kGroupId = 1;
constexpr uint8_t kTosEf = 46 << 2;  // DSCP 46 in the TOS byte
constexpr absl::Duration kDrain = absl::Milliseconds(2);

ns3::Time ToNs3(absl::Duration d) { return ns3::NanoSeconds(absl::ToInt64Nanoseconds(d)); }

uint64_t StreamSeed(uint64_t seed, uint64_t stream) {
  std::seed_seq seq{seed, stream, uint64_t{0x4d4f4d}};  // "MOM"
  uint64_t out;
  seq.generate(reinterpret_cast<uint32_t*>(&out), reinterpret_cast<uint32_t*>(&out) + 2);
  return out;
}

// The same per-channel addresses the controller gives real switches.
ns3::Ipv4Address ChannelAddress(int channel) {
  return ns3::Ipv4Address(ChannelGroupIp(kGroupId, channel));
}

// Send times, by sender (1-based) and sequence number, for one-way latency.
using SendTimes = std::vector<std::vector<ns3::Time>>;

// A group member: records the order in which MOM messages arrive and how long
// each took.
class MomSink {
 public:
  MomSink(ns3::Ptr<ns3::Node> node, int index, ReorderMeter* meter, const SendTimes* sent,
          std::vector<double>* latencies_us)
      : index_(index), meter_(meter), sent_(sent), latencies_us_(latencies_us) {
    socket_ = ns3::Socket::CreateSocket(node, ns3::UdpSocketFactory::GetTypeId());
    socket_->Bind(ns3::InetSocketAddress(ns3::Ipv4Address::GetAny(), kMomPort));
    socket_->SetRecvCallback(ns3::MakeCallback(&MomSink::OnReceive, this));
  }

 private:
  void OnReceive(ns3::Ptr<ns3::Socket> socket) {
    while (ns3::Ptr<ns3::Packet> p = socket->Recv()) {
      buffer_.resize(p->GetSize());
      p->CopyData(reinterpret_cast<uint8_t*>(buffer_.data()), buffer_.size());
      MomPacket m;
      if (!m.ParseFromString(buffer_)) continue;
      meter_->Record(index_, MessageId{m.sender_id(), m.sender_seq()});
      const ns3::Time sent = (*sent_)[m.sender_id()][m.sender_seq()];
      latencies_us_->push_back((ns3::Simulator::Now() - sent).GetNanoSeconds() / 1e3);
    }
  }

  int index_;
  ReorderMeter* meter_;
  const SendTimes* sent_;
  std::vector<double>* latencies_us_;
  ns3::Ptr<ns3::Socket> socket_;
  std::string buffer_;
};

// A MOM sender: Poisson multicasts of MomPackets to its channel's address.
class MomSource {
 public:
  MomSource(ns3::Ptr<ns3::Node> node, uint32_t sender_id, ns3::Ipv4Address channel,
            const MomSimConfig& c, uint64_t rng_seed, SendTimes* send_times)
      : sender_id_(sender_id), tos_(HighPriority(c.design) ? kTosEf : 0),
        send_times_(send_times), rng_(rng_seed), gap_(c.messages_per_second),
        end_(ToNs3(c.warmup + c.duration)) {
    socket_ = ns3::Socket::CreateSocket(node, ns3::UdpSocketFactory::GetTypeId());
    socket_->Bind();
    socket_->Connect(ns3::InetSocketAddress(channel, kMomPort));
    packet_.set_group_id(kGroupId);
    if (Serialized(c.design)) packet_.set_group_seq(0);  // slot the sequencer stamps
    packet_.set_sender_id(sender_id);
    packet_.set_incarnation(1);
    packet_.set_payload(std::string(c.message_bytes, '\0'));
    ns3::Simulator::Schedule(ToNs3(c.warmup) + NextGap(), &MomSource::Send, this);
  }
  uint64_t sent() const { return sent_; }

 private:
  ns3::Time NextGap() { return ns3::Seconds(gap_(rng_)); }
  void Send() {
    if (ns3::Simulator::Now() >= end_) return;
    packet_.set_sender_seq(++sent_);
    std::vector<ns3::Time>& times = (*send_times_)[sender_id_];
    times.resize(sent_ + 1);
    times[sent_] = ns3::Simulator::Now();
    const std::string wire = packet_.SerializeAsString();
    ns3::Ptr<ns3::Packet> p =
        ns3::Create<ns3::Packet>(reinterpret_cast<const uint8_t*>(wire.data()), wire.size());
    if (tos_ != 0) {
      ns3::SocketIpTosTag tag;
      tag.SetTos(tos_);
      p->ReplacePacketTag(tag);
    }
    socket_->Send(p);
    ns3::Simulator::Schedule(NextGap(), &MomSource::Send, this);
  }

  uint32_t sender_id_;
  uint8_t tos_;
  SendTimes* send_times_;
  std::mt19937_64 rng_;
  std::exponential_distribution<double> gap_;
  ns3::Time end_;
  ns3::Ptr<ns3::Socket> socket_;
  MomPacket packet_;
  uint64_t sent_ = 0;
};

absl::Status Validate(const MomSimConfig& c, int hosts) {
  if (c.senders < 1 || c.receivers < 2 || c.senders + c.receivers > hosts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mom sim: need senders >= 1, receivers >= 2 and senders + receivers <= ", hosts,
        " hosts (got ", c.senders, " + ", c.receivers, ")"));
  }
  if (c.senders > 255) return absl::InvalidArgumentError("mom sim: at most 255 senders");
  if (!(c.load >= 0 && c.load < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("mom sim: load ", c.load, " not in [0, 1)"));
  }
  if (!(c.messages_per_second > 0) || c.link_bps == 0 || c.queue_packets == 0 ||
      c.duration <= absl::ZeroDuration() || c.warmup < absl::ZeroDuration() ||
      c.flow_sizes == nullptr) {
    return absl::InvalidArgumentError(
        "mom sim: rate, link speed, queue size and duration must be positive");
  }
  return absl::OkStatus();
}

// Per-port queueing: strict priority, band 0 for DSCP 46, each band a FIFO.
ns3::TrafficControlHelper PriorityQueues(uint32_t packets) {
  ns3::TrafficControlHelper tch;
  const uint16_t handle = tch.SetRootQueueDisc(
      "ns3::PrioQueueDisc", "Priomap", ns3::StringValue("1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"));
  // Registers the filter's TypeId: a static library's self-registration would be
  // dropped by the linker, as nothing else refers to tos_filter.o.
  tch.AddPacketFilter(handle, ns3::MomTosPacketFilter::GetTypeId().GetName());
  ns3::TrafficControlHelper::ClassIdList classes =
      tch.AddQueueDiscClasses(handle, 2, "ns3::QueueDiscClass");
  for (uint16_t cls : classes) {
    tch.AddChildQueueDisc(handle, cls, "ns3::FifoQueueDisc", "MaxSize",
                          ns3::QueueSizeValue(ns3::QueueSize(absl::StrCat(packets, "p"))));
  }
  return tch;
}

}  // namespace

absl::StatusOr<MomSimResult> RunMomSimulation(const MomSimConfig& c) {
  absl::StatusOr<Topology> topo_or = Topology::FatTree(c.k);
  if (!topo_or.ok()) return topo_or.status();
  Topology& topo = *topo_or;
  std::vector<int> hosts = topo.hosts();
  if (absl::Status s = Validate(c, static_cast<int>(hosts.size())); !s.ok()) return s;

  // Failures, from the seed only (a stream of their own).
  std::vector<int> core_links;
  for (int l = 0; l < static_cast<int>(topo.links().size()); ++l) {
    if (topo.node(topo.links()[l].a).tier == 3 || topo.node(topo.links()[l].b).tier == 3) {
      core_links.push_back(l);
    }
  }
  if (c.failed_core_links < 0 || c.failed_core_links > static_cast<int>(core_links.size())) {
    return absl::InvalidArgumentError(absl::StrCat("mom sim: failed_core_links ",
                                                   c.failed_core_links, " not in [0, ",
                                                   core_links.size(), "]"));
  }
  std::mt19937_64 fail_rng(StreamSeed(c.seed, 1000));
  std::shuffle(core_links.begin(), core_links.end(), fail_rng);
  core_links.resize(c.failed_core_links);
  for (int l : core_links) topo.FailLink(l);

  // Placement, from the seed only.
  std::mt19937_64 place_rng(StreamSeed(c.seed, 0));
  std::shuffle(hosts.begin(), hosts.end(), place_rng);
  GroupSpec spec{.group_id = kGroupId, .design = c.design};
  spec.receivers.assign(hosts.begin(), hosts.begin() + c.receivers);
  spec.senders.assign(hosts.begin() + c.receivers, hosts.begin() + c.receivers + c.senders);
  absl::StatusOr<GroupRoutes> routes = ComputeRoutes(topo, spec);
  if (!routes.ok()) return routes.status();
  if (absl::Status s = VerifyRoutes(topo, *routes); !s.ok()) return s;

  ns3::RngSeedManager::SetSeed(1 + static_cast<uint32_t>(c.seed % 0x7ffffffe));
  ns3::RngSeedManager::SetRun(1);
  ns3::Config::SetDefault("ns3::Ipv4GlobalRouting::RandomEcmpRouting", ns3::BooleanValue(true));
  ns3::Config::SetDefault("ns3::TcpSocket::SegmentSize", ns3::UintegerValue(1448));
  ns3::Config::SetDefault("ns3::TcpSocketBase::MinRto", ns3::TimeValue(ns3::MilliSeconds(5)));

  ns3::NodeContainer nodes;
  nodes.Create(topo.num_nodes());
  ns3::InternetStackHelper stack;
  stack.Install(nodes);

  ns3::PointToPointHelper p2p;
  p2p.SetDeviceAttribute("DataRate", ns3::DataRateValue(ns3::DataRate(c.link_bps)));
  p2p.SetChannelAttribute("Delay", ns3::TimeValue(ToNs3(c.link_delay)));
  // A one-packet device queue: the backlog waits in the priority queue disc.
  p2p.SetQueue("ns3::DropTailQueue<Packet>", "MaxSize", ns3::StringValue("1p"));
  ns3::TrafficControlHelper tch = PriorityQueues(c.queue_packets);
  ns3::Ipv4AddressHelper addresses;
  addresses.SetBase("10.0.0.0", "255.255.255.252");

  // iface[node][port]: the ns-3 interface index of a topology port.
  std::vector<std::vector<uint32_t>> iface(topo.num_nodes());
  for (int n = 0; n < topo.num_nodes(); ++n) iface[n].resize(topo.ports(n).size());
  for (const Link& link : topo.links()) {
    ns3::NetDeviceContainer devs = p2p.Install(nodes.Get(link.a), nodes.Get(link.b));
    tch.Install(devs);  // before Assign, which would install FqCoDel otherwise
    addresses.Assign(devs);
    addresses.NewNetwork();
    for (int end = 0; end < 2; ++end) {
      const int n = end == 0 ? link.a : link.b;
      const int peer = end == 0 ? link.b : link.a;
      iface[n][topo.PortTo(n, peer)] =
          nodes.Get(n)->GetObject<ns3::Ipv4>()->GetInterfaceForDevice(devs.Get(end));
    }
  }
  for (int l : core_links) {  // before global routing computes its tables
    for (int n : {topo.links()[l].a, topo.links()[l].b}) {
      const int peer = n == topo.links()[l].a ? topo.links()[l].b : topo.links()[l].a;
      nodes.Get(n)->GetObject<ns3::Ipv4>()->SetDown(iface[n][topo.PortTo(n, peer)]);
    }
  }
  ns3::Ipv4GlobalRoutingHelper::PopulateRoutingTables();

  ns3::Ipv4StaticRoutingHelper static_routing;
  auto routing_of = [&](int n) {
    return static_routing.GetStaticRouting(nodes.Get(n)->GetObject<ns3::Ipv4>());
  };
  for (const ForwardingRule& rule : routes->rules) {
    std::vector<uint32_t> outs;
    for (int out : rule.out_neighbors) outs.push_back(iface[rule.node][topo.PortTo(rule.node, out)]);
    routing_of(rule.node)->AddMulticastRoute(
        ns3::Ipv4Address::GetAny(), ChannelAddress(rule.channel),
        iface[rule.node][topo.PortTo(rule.node, rule.in_neighbor)], outs);
  }
  auto host_address = [&](int h) {
    return nodes.Get(h)->GetObject<ns3::Ipv4>()->GetAddress(iface[h][0], 0).GetLocal();
  };

  MomSimResult result;
  result.roots = c.design == Design::kNaive ? 0 : static_cast<int>(routes->channels.size());
  result.eligible_roots = static_cast<int>(routes->eligible_roots.size());
  ReorderMeter meter(c.receivers);
  SendTimes send_times(c.senders + 1);
  std::vector<double> latencies_us;
  std::vector<std::unique_ptr<MomSink>> sinks;
  for (int i = 0; i < c.receivers; ++i) {
    sinks.push_back(std::make_unique<MomSink>(nodes.Get(spec.receivers[i]), i, &meter,
                                              &send_times, &latencies_us));
  }
  std::vector<std::unique_ptr<MomSource>> sources;
  for (int i = 0; i < c.senders; ++i) {
    const int h = spec.senders[i];
    routing_of(h)->SetDefaultMulticastRoute(iface[h][0]);
    sources.push_back(std::make_unique<MomSource>(
        nodes.Get(h), static_cast<uint32_t>(i + 1),
        ChannelAddress(routes->senders[i].channel), c, StreamSeed(c.seed, 1 + i),
        &send_times));
  }

  // Background: Poisson TCP flow arrivals between uniformly random host pairs.
  ns3::ApplicationContainer sink_apps;
  ns3::PacketSinkHelper sink_helper(
      "ns3::TcpSocketFactory", ns3::InetSocketAddress(ns3::Ipv4Address::GetAny(), kSinkPort));
  for (int h : topo.hosts()) sink_apps.Add(sink_helper.Install(nodes.Get(h)));
  sink_apps.Start(ns3::Seconds(0));
  const std::vector<int> all_hosts = topo.hosts();
  const double end_s = absl::ToDoubleSeconds(c.warmup + c.duration);
  if (c.load > 0) {
    std::mt19937_64 bg_rng(StreamSeed(c.seed, 1000));
    const double flows_per_s = c.load * static_cast<double>(c.link_bps) * all_hosts.size() /
                               (8.0 * c.flow_sizes->MeanBytes());
    std::exponential_distribution<double> gap(flows_per_s);
    std::uniform_int_distribution<size_t> pick(0, all_hosts.size() - 1);
    for (double t = gap(bg_rng); t < end_s; t += gap(bg_rng)) {
      const int src = all_hosts[pick(bg_rng)];
      int dst = src;
      while (dst == src) dst = all_hosts[pick(bg_rng)];
      const uint64_t bytes = c.flow_sizes->Sample(bg_rng);
      ns3::BulkSendHelper flow("ns3::TcpSocketFactory",
                               ns3::InetSocketAddress(host_address(dst), kSinkPort));
      flow.SetAttribute("MaxBytes", ns3::UintegerValue(bytes));
      flow.SetAttribute("SendSize", ns3::UintegerValue(1448));
      flow.Install(nodes.Get(src)).Start(ns3::Seconds(t));
      ++result.background_flows;
      result.background_bytes_offered += bytes;
    }
  }

  ns3::Simulator::Stop(ToNs3(c.warmup + c.duration + kDrain));
  ns3::Simulator::Run();
  for (uint32_t i = 0; i < sink_apps.GetN(); ++i) {
    result.background_bytes_received +=
        ns3::DynamicCast<ns3::PacketSink>(sink_apps.Get(i))->GetTotalRx();
  }
  for (const auto& s : sources) result.messages_sent += s->sent();
  ns3::Simulator::Destroy();
  result.reorder = meter.Compute();
  result.copies_received = latencies_us.size();
  if (!latencies_us.empty()) {
    std::sort(latencies_us.begin(), latencies_us.end());
    double sum = 0;
    for (double l : latencies_us) sum += l;
    result.latency_mean_us = sum / latencies_us.size();
    result.latency_p99_us = latencies_us[latencies_us.size() * 99 / 100];
    result.latency_max_us = latencies_us.back();
  }
  return result;
}

}  // namespace dctk::mom
