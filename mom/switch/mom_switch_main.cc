// mom_switch: runs the MOM switch on DPDK af_packet ports until SIGINT/SIGTERM.
//
//   mom_switch --ifaces=veth0,veth1,veth2 --config=switch.textproto
//
// Port i is the i-th interface. The config is a dctk.mom.SwitchConfig in
// protobuf text format (controller/switch_config.proto), e.g. as produced by
// the controller's SwitchConfigs(). On exit it prints forwarded and dropped
// packet counts by reason.
#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/text_format.h"
#include "mom/switch/dpdk_switch.h"

ABSL_FLAG(std::string, ifaces, "", "comma-separated interfaces, one per switch port");
ABSL_FLAG(std::string, config, "", "SwitchConfig in protobuf text format");

namespace {
volatile std::sig_atomic_t stop = 0;
void OnSignal(int) { stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::vector<std::string> ifaces =
      absl::StrSplit(absl::GetFlag(FLAGS_ifaces), ',', absl::SkipEmpty());
  std::ifstream in(absl::GetFlag(FLAGS_config));
  if (ifaces.empty() || !in) {
    std::cerr << "mom_switch: need --ifaces and a readable --config\n";
    return 2;
  }
  std::stringstream text;
  text << in.rdbuf();
  dctk::mom::SwitchConfig config;
  if (!google::protobuf::TextFormat::ParseFromString(text.str(), &config)) {
    std::cerr << "mom_switch: " << absl::GetFlag(FLAGS_config)
              << " is not a valid SwitchConfig text proto\n";
    return 2;
  }
  absl::StatusOr<dctk::mom::ForwardingTable> table =
      dctk::mom::ForwardingTable::Create(config, static_cast<int>(ifaces.size()));
  if (!table.ok()) {
    std::cerr << "mom_switch: " << table.status() << "\n";
    return 2;
  }
  std::vector<std::string> vdevs;
  for (size_t i = 0; i < ifaces.size(); ++i) {
    vdevs.push_back(absl::StrCat("net_af_packet", i, ",iface=", ifaces[i]));
  }
  absl::StatusOr<std::unique_ptr<dctk::mom::DpdkSwitch>> sw =
      dctk::mom::DpdkSwitch::Create(vdevs, *std::move(table));
  if (!sw.ok()) {
    std::cerr << "mom_switch: " << sw.status() << "\n";
    return 1;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::cout << "mom_switch: " << ifaces.size() << " ports, " << config.rules_size()
            << " multicast rules, " << config.unicast_routes_size() << " unicast routes\n";
  while (!stop) (*sw)->Poll();
  const dctk::mom::SwitchCore& core = (*sw)->core();
  std::cout << "forwarded " << core.forwarded();
  for (int r = 0; r < dctk::mom::kNumDropReasons; ++r) {
    std::cout << " " << dctk::mom::DropReasonName(static_cast<dctk::mom::DropReason>(r)) << " "
              << core.drops()[r];
  }
  std::cout << "\n";
  return 0;
}
