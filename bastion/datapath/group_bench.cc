// Group delivery through Bastion vs replicated unicast, same lab, same run.
//
// Three member containers and a sender on a bridge, Bastion attached, the policy of
// group_integration_test. Each round the sender sends --messages MOM datagrams as fast as
// it can, either once to the group (the datapath stamps and copies each to the three
// members) or once to each member by unicast (what MOM's kReplicatedUnicast does; Bastion
// direct-forwards each copy). Members count what arrives. Printed per mode (median of
// --rounds): messages/s delivered to every member (the slowest member's count over the
// time from the first send to the last arrival), sender syscalls/s, loss.
//
//   bazel run -c opt //bastion/datapath:group_bench -- --messages=20000 --rounds=5  (root)
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "bastion/datapath/bpf_datapath.h"
#include "bastion/datapath/testing/group_traffic.h"
#include "bastion/datapath/testing/netns_lab.h"
#include "bastion/policy/apply.h"
#include "bastion/policy/compiler.h"
#include "bastion/policy/policy.h"

ABSL_FLAG(int, messages, 20000, "messages per round");
ABSL_FLAG(int, rounds, 5, "rounds per mode (alternating)");

namespace dctk::bastion {
namespace {

constexpr uint16_t kPort = 7000;
const uint32_t kGroupIp = Ipv4(239, 7, 0, 1);

constexpr char kPolicy[] = R"(version: 1
groups:
  - {name: cm, address: 239.7.0.1, port: 7000, members: {labels: {role: cm}}}
services:
  - name: cm
    select: {labels: {role: cm}}
  - name: client
    select: {names: [s]}
    depends_on:
      - group: cm
      - service: cm
        ports: [udp/7000]
)";

struct Result {
  double delivered_per_s = 0;  // messages every member got, per second
  double sends_per_s = 0;      // sender syscalls per second
  double loss = 0;             // fraction of copies lost
};

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "group_bench: %s\n", std::string(s.message()).c_str());
  return 1;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return absl::StrCat(a, " ", b, " ", c);
}

int Run() {
  if (geteuid() != 0) return Fail(absl::PermissionDeniedError("run as root"));
  auto lab = testing::NetnsLab::Create("10.217.0", {"m1", "m2", "m3", "s"});
  if (!lab.ok()) return Fail(lab.status());
  if (absl::Status s = (*lab)->EnterHost(); !s.ok()) return Fail(s);
  auto dp = BpfDatapath::Create({});
  if (!dp.ok()) return Fail(dp.status());
  std::vector<ContainerInfo> containers;
  uint32_t id = 1;
  for (const std::string& name : {"m1", "m2", "m3", "s"}) {
    const auto& ct = (*lab)->container(name);
    ContainerInfo c{.id = id++, .name = name, .labels = {}, .ip = ct.ip, .mac = ct.mac,
                    .host_ifindex = ct.host_ifindex, .gateway = (*lab)->gateway_ip()};
    if (name[0] == 'm') c.labels["role"] = "cm";
    containers.push_back(c);
    if (absl::Status s = (*dp)->Attach(ct.host_ifindex); !s.ok()) return Fail(s);
  }
  auto policy = ParsePolicy(kPolicy, "bench.yaml");
  if (!policy.ok()) return Fail(policy.status());
  auto state = CompilePolicy(*policy, containers);
  if (!state.ok()) return Fail(state.status());
  if (absl::Status s = ApplyState(**dp, {}, *state); !s.ok()) return Fail(s);

  std::vector<int> members;
  for (const std::string& name : {"m1", "m2", "m3"}) {
    auto fd = (*lab)->SocketIn(name, AF_INET, SOCK_DGRAM);
    if (!fd.ok()) return Fail(fd.status());
    int big = 8 << 20;
    setsockopt(*fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
    if (absl::Status s = testing::BindAndJoin(*fd, kPort, kGroupIp, (*lab)->container(name).ip);
        !s.ok()) {
      return Fail(s);
    }
    members.push_back(*fd);
  }
  auto sender = (*lab)->SocketIn("s", AF_INET, SOCK_DGRAM);
  if (!sender.ok()) return Fail(sender.status());
  if (absl::Status s = testing::MulticastFrom(*sender, (*lab)->container("s").ip); !s.ok()) {
    return Fail(s);
  }

  const int n = absl::GetFlag(FLAGS_messages);
  auto round = [&](bool group) {
    std::vector<std::atomic<int>> got(members.size());
    std::vector<absl::Time> last(members.size(), absl::InfinitePast());
    std::vector<std::thread> readers;
    for (size_t m = 0; m < members.size(); ++m) {
      readers.emplace_back([&, m] {
        for (;;) {
          auto d = testing::Receive(members[m], absl::Milliseconds(300));
          if (!d.ok()) return;  // idle: the round is over
          last[m] = absl::Now();
          if (got[m].fetch_add(1) + 1 == n) return;
        }
      });
    }
    const std::string msg = testing::MomDatagram(1, 64);
    const sockaddr_in to_group = testing::SocketAddress(kGroupIp, kPort);
    std::vector<sockaddr_in> to_members;
    for (const std::string& name : {"m1", "m2", "m3"}) {
      to_members.push_back(testing::SocketAddress((*lab)->container(name).ip, kPort));
    }
    const absl::Time start = absl::Now();
    int sends = 0;
    for (int i = 0; i < n; ++i) {
      if (group) {
        sendto(*sender, msg.data(), msg.size(), 0, reinterpret_cast<const sockaddr*>(&to_group),
               sizeof(to_group));
        ++sends;
      } else {
        for (const sockaddr_in& to : to_members) {
          sendto(*sender, msg.data(), msg.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                 sizeof(to));
          ++sends;
        }
      }
    }
    const absl::Duration send_time = absl::Now() - start;
    for (std::thread& t : readers) t.join();
    int min_got = n, total = 0;
    absl::Time end = start;
    for (size_t m = 0; m < members.size(); ++m) {
      min_got = std::min(min_got, got[m].load());
      total += got[m].load();
      end = std::max(end, last[m]);
    }
    Result r;
    r.delivered_per_s = min_got / absl::ToDoubleSeconds(end - start);
    r.sends_per_s = sends / absl::ToDoubleSeconds(send_time);
    r.loss = 1.0 - static_cast<double>(total) / (static_cast<double>(n) * members.size());
    return r;
  };

  std::printf("load average before: %s\n", LoadAverage().c_str());
  std::vector<Result> by_mode[2];
  for (int i = 0; i < absl::GetFlag(FLAGS_rounds); ++i) {
    for (bool group : {true, false}) by_mode[group].push_back(round(group));
  }
  auto median = [](std::vector<Result> v, double Result::*field) {
    std::sort(v.begin(), v.end(), [field](const Result& a, const Result& b) {
      return a.*field < b.*field;
    });
    return v[v.size() / 2].*field;
  };
  std::printf("%d messages x %d rounds, 3 members, %zu-byte MOM datagrams\n", n,
              absl::GetFlag(FLAGS_rounds), testing::MomDatagram(1, 64).size());
  std::printf("%-36s %16s %14s %8s\n", "mode", "delivered msg/s", "sendto/s", "loss");
  for (bool group : {true, false}) {
    std::printf("%-36s %16.0f %14.0f %7.2f%%\n",
                group ? "Bastion group (1 send, 3 clones)" : "unicast to each member (3 sends)",
                median(by_mode[group], &Result::delivered_per_s),
                median(by_mode[group], &Result::sends_per_s),
                100 * median(by_mode[group], &Result::loss));
  }
  auto counters = (*dp)->ReadCounters();
  if (counters.ok()) {
    std::printf("datapath: group_forwarded %llu, group_copy_failed %llu, forwarded %llu\n",
                static_cast<unsigned long long>((*counters)[BASTION_PASS_GROUP]),
                static_cast<unsigned long long>((*counters)[BASTION_GROUP_COPY_FAILED]),
                static_cast<unsigned long long>((*counters)[BASTION_PASS_FORWARDED]));
  }
  std::printf("load average after: %s\n", LoadAverage().c_str());
  for (int fd : members) close(fd);
  close(*sender);
  dp->reset();
  return 0;
}

}  // namespace
}  // namespace dctk::bastion

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dctk::bastion::Run();
}
