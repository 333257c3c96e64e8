// cm_ctl: runs one command against the replicated configuration manager and
// prints the configuration it answers with (text proto) on stdout.
//
//   cm_ctl --config=cluster.conf [--group=cm] [--bind=10.88.0.9] [--timeout=2s] COMMAND
//     init REPLICAS REGION_SIZE LEASE_MS   initialise (or check the parameters)
//     join MACHINE ENDPOINT [CONTROL]      register a machine / renew its lease
//     renew MACHINE                        renew a machine's lease
//     tick                                 expire machines whose lease ran out
//     create-region                        place a new region
//     get                                  print the configuration
//
// Exit status 0 on success; otherwise the CM's (or the network's) error on
// stderr and status 1 (2 for bad usage).
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "tests/integration/cm_client.h"

ABSL_FLAG(std::string, config, "", "cluster config file (common/config text proto)");
ABSL_FLAG(std::string, group, "cm", "the CM replica group in the config");
ABSL_FLAG(std::string, bind, "127.0.0.1", "IP address the client binds (its own address)");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(2), "how long the command may take");

namespace dctk::integration {
namespace {

namespace cm = farm::cm;

template <typename T>
absl::StatusOr<T> Number(const std::vector<std::string>& args, size_t i, absl::string_view what) {
  T v{};
  if (i >= args.size() || !absl::SimpleAtoi(args[i], &v)) {
    return absl::InvalidArgumentError(absl::StrCat(args[0], ": ", what, " must be a number"));
  }
  return v;
}

absl::StatusOr<cm::Configuration> Run(CmClient& client, const std::vector<std::string>& args) {
  const std::string& op = args[0];
  if (op == "init") {
    absl::StatusOr<uint32_t> replicas = Number<uint32_t>(args, 1, "REPLICAS");
    absl::StatusOr<uint64_t> size = Number<uint64_t>(args, 2, "REGION_SIZE");
    absl::StatusOr<int64_t> lease = Number<int64_t>(args, 3, "LEASE_MS");
    if (!replicas.ok()) return replicas.status();
    if (!size.ok()) return size.status();
    if (!lease.ok()) return lease.status();
    if (absl::Status s = client.Initialize(*replicas, *size, *lease); !s.ok()) return s;
    return client.GetConfiguration();
  }
  if (op == "join") {
    absl::StatusOr<uint32_t> machine = Number<uint32_t>(args, 1, "MACHINE");
    if (!machine.ok()) return machine.status();
    if (args.size() < 3) return absl::InvalidArgumentError("join: ENDPOINT missing");
    return client.Join(*machine, args[2], args.size() > 3 ? args[3] : "");
  }
  if (op == "renew") {
    absl::StatusOr<uint32_t> machine = Number<uint32_t>(args, 1, "MACHINE");
    if (!machine.ok()) return machine.status();
    return client.Renew(*machine);
  }
  if (op == "tick") {
    absl::StatusOr<std::vector<uint32_t>> removed = client.Tick();
    if (!removed.ok()) return removed.status();
    return client.GetConfiguration();
  }
  if (op == "create-region") {
    absl::StatusOr<uint32_t> region = client.CreateRegion();
    if (!region.ok()) return region.status();
    return client.GetConfiguration();
  }
  if (op == "get") return client.GetConfiguration();
  return absl::InvalidArgumentError(absl::StrCat("unknown command '", op, "'"));
}

int Main(std::vector<std::string> args) {
  if (args.empty()) {
    std::cerr << "usage: cm_ctl --config=FILE COMMAND [ARGS] (see the file's header)\n";
    return 2;
  }
  absl::StatusOr<CmClientOptions> o =
      CmClientOptionsFromClusterFile(absl::GetFlag(FLAGS_config), absl::GetFlag(FLAGS_group));
  if (!o.ok()) {
    std::cerr << o.status() << "\n";
    return 2;
  }
  absl::StatusOr<transport::Address> bind =
      transport::Address::Parse(absl::StrCat(absl::GetFlag(FLAGS_bind), ":0"));
  if (!bind.ok()) {
    std::cerr << "--bind: " << bind.status() << "\n";
    return 2;
  }
  o->bind = *bind;
  o->call_timeout = absl::GetFlag(FLAGS_timeout);
  absl::StatusOr<std::unique_ptr<CmClient>> client = CmClient::Create(*o);
  if (!client.ok()) {
    std::cerr << client.status() << "\n";
    return 1;
  }
  absl::StatusOr<cm::Configuration> c = Run(**client, args);
  if (!c.ok()) {
    std::cerr << "cm_ctl " << args[0] << ": " << c.status() << "\n";
    return absl::IsInvalidArgument(c.status()) ? 2 : 1;
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(*c, &text);
  std::cout << text;
  return 0;
}

}  // namespace
}  // namespace dctk::integration

int main(int argc, char** argv) {
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  return dctk::integration::Main(std::vector<std::string>(rest.begin() + 1, rest.end()));
}
