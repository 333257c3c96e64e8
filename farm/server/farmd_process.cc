#include "farm/server/farmd_process.h"

#include <signal.h>

#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "farm/server/control.h"
#include "farm/server/control.pb.h"

namespace dctk::farm::server {

namespace {

// farmd with its stdout piped (its lines read one by one) and its stderr in
// `stderr_path` (truncated; empty: the test's own), stopped with SIGTERM.
absl::StatusOr<std::unique_ptr<ChildProcess>> StartFarmd(std::vector<std::string> args,
                                                         const std::string& stderr_path = "") {
  return ChildProcess::Start(
      std::move(args),
      {.out = ChildOutput::Pipe(),
       .err = stderr_path.empty() ? ChildOutput::Inherit()
                                  : ChildOutput::File(stderr_path, /*append=*/false),
       .stop_signal = SIGTERM});
}

}  // namespace

std::string WriteFarmConfig(const std::string& dir, int machines, int lease_ms) {
  const std::string conf = dir + "/cluster.conf";
  std::ofstream f(conf);
  f << "nodes { name: \"cm\" address: \"127.0.0.1:0\" }\n";
  std::string members;
  for (int i = 1; i <= machines; ++i) {
    f << "nodes { name: \"m" << i << "\" address: \"127.0.0." << i + 1 << ":0\" }\n";
    absl::StrAppend(&members, i > 1 ? ", " : "", "\"m", i, "\"");
  }
  // A primary-backup group lists f + 1 members; the CM's --replicas=2 sets the copies.
  f << "groups { name: \"farm\" replication: PRIMARY_BACKUP f: " << machines - 1 << " members: [" << members
    << "] }\n"
    << "timeouts { lease_ms: " << lease_ms << " }\n";
  return conf;
}

FarmdCluster::FarmdCluster(std::string conf, std::string dir, std::string fabric,
                           std::vector<std::string> machine_flags)
    : conf_(std::move(conf)), dir_(std::move(dir)), fabric_(std::move(fabric)), machine_flags_(std::move(machine_flags)) {}

absl::Status FarmdCluster::StartCm(const std::string& host) {
  std::vector<std::string> args{"farm/server/farmd", "--config=" + conf_, "--role=cm", "--cm_host=" + host,
                                "--replicas=2",      "--regions=6",        "--region_mb=4"};
  args.insert(args.end(), cm_flags_.begin(), cm_flags_.end());
  absl::StatusOr<std::unique_ptr<ChildProcess>> cm = StartFarmd(std::move(args));
  if (!cm.ok()) return cm.status();
  cm_ = *std::move(cm);
  const std::string line = cm_->ReadLine().value_or("");
  std::vector<std::string> words = absl::StrSplit(line, ' ');
  if (words.size() != 2 || words[0] != "cm") return absl::InternalError(absl::StrCat("CM printed '", line, "'"));
  cm_address_ = words[1];
  return absl::OkStatus();
}

std::vector<std::string> FarmdCluster::MachineArgs(int slot) const {
  std::vector<std::string> args{"farm/server/farmd",      "--config=" + conf_,    "--role=machine",
                                absl::StrCat("--name=m", slot), "--cm=" + cm_address_, "--fabric=" + fabric_,
                                "--txlog_dir=" + dir_};
  args.insert(args.end(), machine_flags_.begin(), machine_flags_.end());
  return args;
}

absl::Status FarmdCluster::Start(int n) {
  absl::Status s = StartCm("127.0.0.1");
  if (!s.ok()) return s;
  for (int slot = 1; slot <= n; ++slot) {
    absl::StatusOr<uint32_t> id = RestartMachine(slot);
    if (!id.ok()) return id.status();
  }
  return absl::OkStatus();
}

absl::Status FarmdCluster::RestartCm() {
  if (cm_) cm_->Kill(SIGKILL);
  return StartCm(cm_address_);
}

absl::StatusOr<uint32_t> FarmdCluster::RestartMachine(int slot, const std::string& stderr_path) {
  if (auto it = machines_.find(slot); it != machines_.end()) it->second->Kill(SIGKILL);
  absl::StatusOr<std::unique_ptr<ChildProcess>> machine =
      StartFarmd(MachineArgs(slot), stderr_path);
  if (!machine.ok()) return machine.status();
  machines_[slot] = *std::move(machine);
  const std::string line = machines_[slot]->ReadLine().value_or("");
  std::vector<std::string> words = absl::StrSplit(line, ' ');
  uint32_t id = 0;
  if (words.size() != 3 || words[0] != "machine" || !absl::SimpleAtoi(words[1], &id)) {
    return absl::InternalError(absl::StrCat("machine m", slot, " printed '", line, "'"));
  }
  return id;
}

void FarmdCluster::KillAll() {
  for (auto& [slot, m] : machines_) m->Kill(SIGKILL);
  if (cm_) cm_->Kill(SIGKILL);
}

absl::StatusOr<std::pair<bool, cm::Configuration>> FarmdCluster::CmState() const {
  absl::StatusOr<std::unique_ptr<ControlChannel>> ch = ControlChannel::Connect(cm_address_);
  if (!ch.ok()) return ch.status();
  absl::StatusOr<std::string> bytes = (*ch)->Call(CM_STATE, "", absl::Seconds(5));
  if (!bytes.ok()) return bytes.status();
  server::CmState state;
  if (!state.ParseFromString(*bytes)) return absl::DataLossError("malformed CmState");
  return std::make_pair(state.ready(), state.config());
}

bool FullyReplicated(const cm::Configuration& c, int storage) {
  int live = 0;
  for (const cm::Machine& m : c.machines()) live += !m.client();
  if (live != storage) return false;
  for (const cm::Region& r : c.regions()) {
    if (r.lost() || r.replicas_size() != 2) return false;
    for (const cm::Replica& rep : r.replicas()) {
      if (rep.copying() || rep.key() == 0) return false;
    }
  }
  return true;
}

}  // namespace dctk::farm::server
