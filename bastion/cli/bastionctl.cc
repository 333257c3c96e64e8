// bastionctl: the command line of bastiond's gRPC API.
//
//   bastionctl [--server=unix:/run/bastion/bastiond.sock] COMMAND
//     containers                 list discovered containers
//     policy show                print the running policy
//     policy validate FILE       parse and compile FILE against the current containers
//     policy diff FILE           what applying FILE would change in the maps
//     policy apply FILE          apply FILE (all or nothing; an invalid file changes nothing)
//     monitor [--count=N] [--json]  print verdict events as they happen (N events, 0 = forever)
//     counters                   packets per verdict, and uncovered flows (policy drops)
//
// Exit status: 0 on success, 1 if the server refused (the message says why), 2 on usage.
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bastion/manager/bastion.grpc.pb.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, server, "unix:/run/bastion/bastiond.sock", "bastiond's gRPC address");
ABSL_FLAG(int, count, 0, "monitor: stop after this many events (0 = run until interrupted)");
ABSL_FLAG(bool, drops_only, false, "monitor: skip audit (would-drop) events");
ABSL_FLAG(bool, json, false, "monitor: one JSON object per event and line, for scripts");

namespace dctk::bastion {
namespace {

namespace api = ::dctk::bastion::api;

int Fail(const grpc::Status& s) {
  std::cerr << "bastionctl: " << s.error_message() << "\n";
  return 1;
}

int Usage() {
  std::cerr << absl::ProgramUsageMessage() << "\n";
  return 2;
}

void PrintChange(const api::PolicyChange& change) {
  for (const std::string& line : change.lines()) std::cout << line << "\n";
  std::cout << absl::StrFormat("%d added, %d changed, %d removed\n", change.added(),
                               change.changed(), change.removed());
}

int Containers(api::Bastion::Stub& stub) {
  grpc::ClientContext ctx;
  api::ListContainersResponse out;
  if (grpc::Status s = stub.ListContainers(&ctx, {}, &out); !s.ok()) return Fail(s);
  std::cout << absl::StrFormat("%-4s %-16s %-15s %-17s %-7s %-7s %s\n", "ID", "NAME", "IP",
                               "MAC", "VETH", "NET", "LABELS");
  for (const api::Container& c : out.containers()) {
    std::vector<std::string> labels;
    for (const auto& [k, v] : c.labels()) labels.push_back(k + "=" + v);
    std::sort(labels.begin(), labels.end());
    std::cout << absl::StrFormat("%-4d %-16s %-15s %-17s %-7d %-7s %s\n", c.id(), c.name(),
                                 c.ip(), c.mac(), c.host_ifindex(),
                                 c.network_mode().empty() ? "-" : c.network_mode(),
                                 absl::StrJoin(labels, ","));
  }
  return 0;
}

int Policy(api::Bastion::Stub& stub, const std::vector<char*>& args) {
  if (args.size() < 3) return Usage();
  const std::string verb = args[2];
  grpc::ClientContext ctx;
  if (verb == "show") {
    api::GetPolicyResponse out;
    if (grpc::Status s = stub.GetPolicy(&ctx, {}, &out); !s.ok()) return Fail(s);
    std::cout << "# " << (out.file().empty() ? "(no policy)" : out.file()) << ": "
              << out.dependencies() << " dependencies, " << out.rules() << " port blocks\n"
              << out.text();
    return 0;
  }
  if (args.size() != 4) return Usage();
  std::ifstream in(args[3]);
  if (!in) {
    std::cerr << "bastionctl: cannot read " << args[3] << "\n";
    return 1;
  }
  std::stringstream text;
  text << in.rdbuf();
  api::PolicyRequest req;
  req.set_text(text.str());
  req.set_file(args[3]);
  api::PolicyChange change;
  grpc::Status s;
  if (verb == "validate") {
    s = stub.ValidatePolicy(&ctx, req, &change);
    if (s.ok()) std::cout << args[3] << ": valid\n";
    return s.ok() ? 0 : Fail(s);
  }
  if (verb == "diff") {
    s = stub.DiffPolicy(&ctx, req, &change);
  } else if (verb == "apply") {
    s = stub.ApplyPolicy(&ctx, req, &change);
  } else {
    return Usage();
  }
  if (!s.ok()) return Fail(s);
  PrintChange(change);
  return 0;
}

int Monitor(api::Bastion::Stub& stub) {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<api::VerdictEvent>> reader = stub.StreamEvents(&ctx, {});
  reader->WaitForInitialMetadata();
  // On stderr in JSON mode, so stdout stays one object per line.
  (absl::GetFlag(FLAGS_json) ? std::cerr : std::cout) << "monitoring verdict events" << std::endl;
  const int count = absl::GetFlag(FLAGS_count);
  int seen = 0;
  api::VerdictEvent e;
  while (reader->Read(&e)) {
    if (e.audit() && absl::GetFlag(FLAGS_drops_only)) continue;
    if (absl::GetFlag(FLAGS_json)) {
      // Names and verdicts are plain words and addresses: no escaping needed.
      std::cout << absl::StrFormat(
                       "{\"action\":\"%s\",\"verdict\":\"%s\",\"src\":\"%s\","
                       "\"dst\":\"%s\",\"protocol\":\"%s\",\"sport\":%u,\"dport\":%u,"
                       "\"container\":\"%s\",\"to_container\":%s,\"timestamp_ns\":%u}\n",
                       e.audit() ? "audit" : "drop", e.verdict(), e.src(), e.dst(), e.protocol(),
                       e.sport(), e.dport(), e.container(), e.to_container() ? "true" : "false",
                       e.timestamp_ns())
                << std::flush;
      if (count > 0 && ++seen >= count) {
        ctx.TryCancel();
        break;
      }
      continue;
    }
    std::string ports;
    if (e.protocol() == "tcp" || e.protocol() == "udp") {
      ports = absl::StrFormat(" %u -> %u", e.sport(), e.dport());
    }
    std::cout << absl::StrFormat("%s %s %s -> %s %s%s (on %s, %s)\n",
                                 e.audit() ? "AUDIT" : "DROP", e.verdict(), e.src(), e.dst(),
                                 e.protocol(), ports, e.container().empty() ? "?" : e.container(),
                                 e.to_container() ? "into it" : "from it")
              << std::flush;
    if (count > 0 && ++seen >= count) {
      ctx.TryCancel();
      break;
    }
  }
  reader->Finish().IgnoreError();
  return 0;
}

int Counters(api::Bastion::Stub& stub) {
  grpc::ClientContext ctx;
  api::GetCountersResponse out;
  if (grpc::Status s = stub.GetCounters(&ctx, {}, &out); !s.ok()) return Fail(s);
  std::map<std::string, uint64_t> sorted(out.verdicts().begin(), out.verdicts().end());
  for (const auto& [name, n] : sorted) std::cout << absl::StrFormat("%-20s %d\n", name, n);
  if (!out.uncovered().empty()) std::cout << "\nuncovered flows (dropped by policy):\n";
  for (const api::UncoveredFlow& f : out.uncovered()) {
    std::cout << absl::StrFormat("  %s -> %s %s/%u %s x%d\n", f.src(), f.dst(), f.protocol(),
                                 f.dport(), f.verdict(), f.count());
  }
  return 0;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "bastionctl [--server=ADDR] containers | policy show | policy validate|diff|apply FILE | "
      "monitor [--count=N] | counters");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) return Usage();
  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials());
  std::unique_ptr<api::Bastion::Stub> stub = api::Bastion::NewStub(channel);
  const std::string command = args[1];
  if (command == "containers") return Containers(*stub);
  if (command == "policy") return Policy(*stub, args);
  if (command == "monitor") return Monitor(*stub);
  if (command == "counters") return Counters(*stub);
  return Usage();
}

}  // namespace
}  // namespace dctk::bastion

int main(int argc, char** argv) { return dctk::bastion::Main(argc, argv); }
