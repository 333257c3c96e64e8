// bastion_demo_agent: Bastion on a few namespace containers for the demo (demo.sh): binds
// and attaches the named containers, allows the listed flows, prints "ready", then prints
// every verdict event in plain words as it happens (but drops of the host's multicast),
// until SIGINT/SIGTERM (then detaches).
// Run in the namespace that holds the containers' host-side veths.
//
//   ip netns exec HOST bastion_demo_agent --gateway=10.217.0.1 \
//       --containers=web:vweb:10.217.0.2:02:00:00:00:00:02,db:vdb:10.217.0.3:02:00:00:00:00:03 \
//       --allow=web:db:tcp:5432
// prints, for a blocked connection attempt:
//   DROPPED web 10.217.0.2:40312 -> db 10.217.0.3:22 tcp: protocol/port not allowed
//   between the two containers [policy_denied]
#include <arpa/inet.h>
#include <net/if.h>
#include <signal.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bastion/bpf/lib/drop_reasons.h"
#include "bastion/datapath/bpf_datapath.h"

ABSL_FLAG(std::string, gateway, "", "the bridge (gateway) IPv4 address");
ABSL_FLAG(std::vector<std::string>, containers, {},
          "containers as name:host_veth:ipv4:mac (the MAC's colons included)");
ABSL_FLAG(std::vector<std::string>, allow, {}, "allowed flows as src:dst:tcp|udp:port");

namespace dctk::bastion {
namespace {

constexpr uint32_t kGatewayId = kHostIdFirst;

struct Container {
  std::string name;
  uint32_t id = 0;
  int ifindex = 0;
  uint32_t ip = 0;
  MacAddress mac;
};

absl::StatusOr<uint32_t> ParseIpv4(const std::string& text) {
  in_addr addr{};
  if (inet_pton(AF_INET, text.c_str(), &addr) != 1) {
    return absl::InvalidArgumentError("'" + text + "' is not an IPv4 address");
  }
  return ntohl(addr.s_addr);
}

absl::StatusOr<Container> ParseContainer(const std::string& spec, uint32_t id) {
  std::vector<std::string> f = absl::StrSplit(spec, absl::MaxSplits(':', 3));
  if (f.size() != 4) return absl::InvalidArgumentError("'" + spec + "' is not name:veth:ip:mac");
  Container c{.name = f[0], .id = id};
  c.ifindex = static_cast<int>(if_nametoindex(f[1].c_str()));
  if (c.ifindex == 0) return absl::NotFoundError("no interface " + f[1] + " in this namespace");
  absl::StatusOr<uint32_t> ip = ParseIpv4(f[2]);
  if (!ip.ok()) return ip.status();
  c.ip = *ip;
  absl::StatusOr<MacAddress> mac = MacAddress::Parse(f[3]);
  if (!mac.ok()) return mac.status();
  c.mac = *mac;
  return c;
}

// The drop reason in plain words, from the same list the kernel programs use.
const char* Explain(uint32_t reason) {
  switch (reason) {
#define BASTION_HELP_(code, value, name, help, auditable) \
  case code:                                              \
    return help;
    BASTION_FOR_EACH_DROP_REASON(BASTION_HELP_)
#undef BASTION_HELP_
  }
  return "unknown reason";
}

std::string ProtoName(uint8_t proto) {
  return proto == kTcp ? "tcp" : proto == kUdp ? "udp" : proto == kIcmp ? "icmp" : "ip";
}

class Agent {
 public:
  absl::Status Run() {
    absl::StatusOr<uint32_t> gateway = ParseIpv4(absl::GetFlag(FLAGS_gateway));
    if (!gateway.ok()) return gateway.status();
    names_[*gateway] = "gateway";
    sigset_t stop;
    sigemptyset(&stop);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop, sig);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);

    absl::StatusOr<std::unique_ptr<BpfDatapath>> dp = BpfDatapath::Create({});
    if (!dp.ok()) return dp.status();
    dp_ = std::move(*dp);
    if (absl::Status s = dp_->UpsertHost(*gateway, kGatewayId); !s.ok()) return s;
    uint32_t id = 1;
    for (const std::string& spec : absl::GetFlag(FLAGS_containers)) {
      absl::StatusOr<Container> c = ParseContainer(spec, id++);
      if (!c.ok()) return c.status();
      if (absl::Status s = dp_->UpsertEndpoint(c->ip, {c->id, c->mac, c->ifindex}); !s.ok()) {
        return s;
      }
      if (absl::Status s = dp_->BindInterface(c->ifindex, {c->id, c->ip, c->mac}); !s.ok()) {
        return s;
      }
      names_[c->ip] = c->name;
      by_id_[c->id] = c->name;
      containers_[c->name] = *c;
    }
    for (const std::string& rule : absl::GetFlag(FLAGS_allow)) {
      if (absl::Status s = Allow(rule); !s.ok()) return s;
    }
    for (const auto& [name, c] : containers_) {
      if (absl::Status s = dp_->Attach(c.ifindex); !s.ok()) return s;
    }
    std::printf("ready\n");
    std::fflush(stdout);
    while (true) {
      timespec none{0, 0};
      if (sigtimedwait(&stop, nullptr, &none) > 0) return absl::OkStatus();
      absl::StatusOr<int> n = dp_->PollEvents(absl::Milliseconds(100),
                                              [this](const VerdictEvent& e) { Print(e); });
      if (!n.ok()) return n.status();
    }
  }

 private:
  // "web:db:tcp:5432": web may reach db on TCP 5432.
  absl::Status Allow(const std::string& rule) {
    std::vector<std::string> f = absl::StrSplit(rule, ':');
    uint32_t port = 0;
    if (f.size() != 4 || !containers_.contains(f[0]) || !containers_.contains(f[1]) ||
        (f[2] != "tcp" && f[2] != "udp") || !absl::SimpleAtoi(f[3], &port) || port > 65535) {
      return absl::InvalidArgumentError("--allow '" + rule + "': want src:dst:tcp|udp:port");
    }
    uint32_t src = containers_[f[0]].id, dst = containers_[f[1]].id;
    if (absl::Status s = dp_->AddDependency(src, dst, 0); !s.ok()) return s;
    auto p = static_cast<uint16_t>(port);
    return dp_->UpsertPolicy({.src_id = src, .dst_id = dst, .proto = f[2] == "tcp" ? kTcp : kUdp,
                              .first_port = p, .last_port = p});
  }

  std::string Who(uint32_t ip) const {
    auto it = names_.find(ip);
    return it == names_.end() ? Ipv4ToString(ip) : it->second + " " + Ipv4ToString(ip);
  }

  void Print(const VerdictEvent& e) const {
    // The host's own multicast (IGMP reports) is dropped at every veth too: not news.
    if (e.l3_proto != 0x0806 && (e.daddr >> 28) == 0xe) return;
    std::string what;
    if (e.l3_proto == 0x0806) {
      what = absl::StrCat("ARP: ", Who(e.saddr), " asks for ", Who(e.daddr));
    } else if (e.proto == kTcp || e.proto == kUdp) {
      what = absl::StrCat(Who(e.saddr), ":", e.sport, " -> ", Who(e.daddr), ":", e.dport, " ",
                          ProtoName(e.proto));
    } else {
      what = absl::StrCat(Who(e.saddr), " -> ", Who(e.daddr), " ", ProtoName(e.proto));
    }
    auto owner = by_id_.find(e.container_id);
    std::string where = owner == by_id_.end() ? "" : absl::StrCat(
        e.to_container ? " (entering " : " (sent by ", owner->second, ")");
    std::printf("DROPPED %s%s: %s [%s]\n", what.c_str(), where.c_str(), Explain(e.reason),
                VerdictName(e.reason).data());
    std::fflush(stdout);
  }

  std::unique_ptr<BpfDatapath> dp_;
  std::map<std::string, Container> containers_;
  std::map<uint32_t, std::string> names_;
  std::map<uint32_t, std::string> by_id_;  // container id -> name
};

}  // namespace
}  // namespace dctk::bastion

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  dctk::bastion::Agent agent;
  absl::Status s = agent.Run();  // the datapath detaches from every veth as the agent goes
  if (!s.ok()) {
    std::fprintf(stderr, "bastion_demo_agent: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
