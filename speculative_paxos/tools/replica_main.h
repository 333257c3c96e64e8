// ReplicaMain: the body of a replica process (Speculative Paxos, VR or the
// unreplicated baseline on UdpTransport, configured from a common/config
// cluster file), for binaries that bring their own App - e.g. FaRM's
// configuration manager as a replicated state machine.
//
// It parses the command line (flags defined here, listed in spaxos_replica's
// usage: --config, --group, --index, --protocol, --multicast, --mom, --batch,
// --recover, --metrics; the binary may define more, e.g. to pick its app),
// builds the app with `make_app` after parsing, serves until SIGINT / SIGTERM
// and returns the process exit status (2 on bad flags or config).
//
// Example:
//   int main(int argc, char** argv) {
//     return dctk::spaxos::ReplicaMain(argc, argv, []() -> absl::StatusOr<std::unique_ptr<App>> {
//       return std::make_unique<ConfigManagerApp>();
//     });
//   }
#ifndef DCTK_SPECULATIVE_PAXOS_TOOLS_REPLICA_MAIN_H_
#define DCTK_SPECULATIVE_PAXOS_TOOLS_REPLICA_MAIN_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "speculative_paxos/app.h"

namespace dctk::spaxos {

using AppFactory = std::function<absl::StatusOr<std::unique_ptr<App>>()>;

int ReplicaMain(int argc, char** argv, const AppFactory& make_app);

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_TOOLS_REPLICA_MAIN_H_
