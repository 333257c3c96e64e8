// cm_replica: one replica of FaRM's configuration manager, replicated with
// Speculative Paxos over UdpTransport, configured from a common/config
// cluster file (the replica group named by --group; this process is member
// --index and serves at that member's address).
//
//   cm_replica --config=cluster.conf [--group=cm] --index=0 [--recover]
//              [--state_out=/path/cm0.state]
//
// --recover: this replica restarted and lost its state; it rejoins through
// Speculative Paxos's recovery protocol (state transfer re-executes the log).
// --state_out: the replica's status and the configuration it holds, as a
// dctk.farm.cm.Configuration text proto preceded by '#' lines (status, view,
// leader, commit point). Rewritten atomically (rename) within 50 ms of a
// change and at a clean stop (SIGINT / SIGTERM), so a test or the demo can
// watch the group (who leads, whether a restarted replica rejoined) and check
// that the replicas agree.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/config/cluster_config.h"
#include "common/transport/timeout.h"
#include "common/transport/udp_transport.h"
#include "glog/logging.h"
#include "google/protobuf/text_format.h"
#include "speculative_paxos/replica.h"
#include "tests/integration/cm_app.h"
#include "tests/integration/cm_client.h"

ABSL_FLAG(std::string, config, "", "cluster config file (common/config text proto)");
ABSL_FLAG(std::string, group, "cm", "the CM replica group in the config");
ABSL_FLAG(int, index, 0, "this replica's index in the group");
ABSL_FLAG(std::string, mom_group, "",
          "multicast group of the config file that clients send requests through (MOM; cm_driver "
          "--mom_group); empty: requests come as one unicast copy per replica");
ABSL_FLAG(bool, recover, false, "restarted without state; run recovery");
ABSL_FLAG(std::string, state_out, "", "file the final configuration is written to (optional)");
ABSL_FLAG(uint64_t, checkpoint_interval, dctk::spaxos::ReplicaConfig().checkpoint_interval,
          "log compaction: a checkpoint of the configuration every N committed commands");

namespace dctk::integration {
namespace {

constexpr const char* kStatusNames[] = {"normal", "changing", "transfer", "recovering"};

std::string StateText(const CmApp& app, const spaxos::Replica& r) {
  std::string config;
  google::protobuf::TextFormat::PrintToString(app.config(), &config);
  return absl::StrCat(
      "# replica: ", r.index(), "\n# status: ", kStatusNames[static_cast<int>(r.status())],
      "\n# view: ", r.stamp().view, "\n# leader: ", r.IsLeader() ? "true" : "false",
      "\n# commit_point: ", r.commit_point(), "\n# checkpoint: ", r.checkpoint_slot(),
      "\n# snapshots_installed: ", r.stats().snapshots_installed, "\n", config);
}

// Writes `text` to `path` through a temporary file and a rename, so readers
// never see a partial file.
absl::Status WriteAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::ofstream out(tmp, std::ios::trunc);
  out << text;
  out.close();
  if (!out || std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("--state_out: cannot write ", path));
  }
  return absl::OkStatus();
}

int Main() {
  const std::string path = absl::GetFlag(FLAGS_config);
  absl::StatusOr<config::ClusterConfig> cluster = config::ClusterConfig::Load(path);
  if (!cluster.ok()) {
    std::cerr << cluster.status() << "\n";
    return 2;
  }
  const config::ClusterConfig::Group* group = cluster->FindGroup(absl::GetFlag(FLAGS_group));
  if (group == nullptr || group->replication != config::ReplicaGroup::CONSENSUS) {
    std::cerr << path << ": no CONSENSUS replica group named '" << absl::GetFlag(FLAGS_group)
              << "'\n";
    return 2;
  }
  const int index = absl::GetFlag(FLAGS_index);
  if (index < 0 || index >= static_cast<int>(group->addresses.size())) {
    std::cerr << "--index=" << index << " out of range (" << group->addresses.size()
              << " replicas in group " << group->name << ")\n";
    return 2;
  }

  // SIGINT / SIGTERM go to a thread that stops the loop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<transport::UdpTransport>> net =
      transport::UdpTransport::Create();
  if (!net.ok()) {
    std::cerr << net.status() << "\n";
    return 1;
  }
  spaxos::ReplicaConfig rc;
  rc.replicas = group->addresses;
  rc.sync_interval = cluster->heartbeat_interval();
  rc.leader_timeout = cluster->view_change_timeout();
  rc.checkpoint_interval = absl::GetFlag(FLAGS_checkpoint_interval);
  if (const std::string multicast = absl::GetFlag(FLAGS_mom_group); !multicast.empty()) {
    absl::StatusOr<mom::GroupConfig> g = CmMomGroup(*cluster, *group, path, multicast);
    if (!g.ok()) {
      std::cerr << g.status() << "\n";
      return 2;
    }
    rc.mom = *std::move(g);
  }
  if (absl::Status s = rc.Validate(); !s.ok()) {
    std::cerr << path << ": group " << group->name << ": " << s << "\n";
    return 2;
  }
  CmApp app;
  auto replica = std::make_unique<spaxos::Replica>(net->get(), rc, index, &app,
                                                   absl::GetFlag(FLAGS_recover));
  if (absl::Status s = replica->Start(); !s.ok()) {
    std::cerr << "cm replica " << index << ": " << s << "\n";
    return 1;
  }
  // The state file, rewritten on the loop when it changed.
  const std::string state_out = absl::GetFlag(FLAGS_state_out);
  std::string written;
  auto write_state = [&]() -> absl::Status {
    std::string text = StateText(app, *replica);
    if (text == written) return absl::OkStatus();
    written = std::move(text);
    return WriteAtomically(state_out, written);
  };
  std::unique_ptr<transport::Timeout> state_timer;
  if (!state_out.empty()) {
    state_timer = std::make_unique<transport::Timeout>(net->get(), absl::Milliseconds(50), [&] {
      if (absl::Status s = write_state(); !s.ok()) LOG(ERROR) << s;
    });
    state_timer->Start();
  }
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    (*net)->Stop();
  });
  std::cerr << "cm replica " << index << " serving at " << group->addresses[index].ToString()
            << "\n";
  (*net)->Run();
  stopper.join();
  const spaxos::ReplicaStats& s = replica->stats();
  std::cerr << "cm replica " << index << ": requests " << s.requests << " commits " << s.commits
            << " view_changes " << s.view_changes << " transfers " << s.transfers
            << " rolled_back " << s.rolled_back << " config_id " << app.config().id() << "\n";
  state_timer.reset();
  int rc_exit = 0;
  if (!state_out.empty()) {
    if (absl::Status w = write_state(); !w.ok()) {
      std::cerr << w << "\n";
      rc_exit = 1;
    }
  }
  replica.reset();
  return rc_exit;
}

}  // namespace
}  // namespace dctk::integration

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  google::InitGoogleLogging(argv[0]);
  return dctk::integration::Main();
}
