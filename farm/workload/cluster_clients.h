// The FaRM clients of a workload run against a farmd cluster: one FarmClient
// per coordinator thread (fabric ids first_id, first_id + 1, ...), each with
// its own fabric (net: listening on `host`, at fabric_port + i or any free
// port; shm: same host only), joined to the CM service at `cm_address`. An
// id the CM refuses because an earlier run's client had it (FailedPrecondition:
// removed once its lease ran out; AlreadyExists: still listed) is skipped for
// the next one, so runs one after another against one cluster need no new
// first_id.
// Shared by the bank workload (cluster_workload.h) and TATP (cluster_tatp.h).
//
// A transaction that failed other than by a conflict (Unavailable,
// DeadlineExceeded, Unknown: a machine failed, the configuration changed) is
// followed by RefreshAfterFailure: a short pause, then the configuration and
// the rings are brought up to date from the CM before the next try.
//
// At the end of a run LeaveClients has every client leave the cluster
// (FarmClient::Leave): the CM takes them out without a reconfiguration, and
// the next run's clients get the same ids (before, each run's clients
// stayed members until their leases ran out, which cost a recovery each and
// retired their ids: shm ids are < 256).
//
// ReportPeriodically paces a run's progress lines.
//
// Example:
//   ClusterClientOptions o{.cm_address = "127.0.0.1:7101", .fabric = "shm"};
//   absl::StatusOr<ClusterClients<fabric::ShmFabric>> clients =
//   ConnectClients<fabric::ShmFabric>(o, 2); client::FarmClient<fabric::ShmFabric>& c =
//   *clients->clients[0]; absl::Status s = c.tx().Begin().Commit(); if (!s.ok() &&
//   !absl::IsAborted(s)) RefreshAfterFailure(c);
#ifndef DCTK_FARM_WORKLOAD_CLUSTER_CLIENTS_H_
#define DCTK_FARM_WORKLOAD_CLUSTER_CLIENTS_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "farm/client/farm_client.h"

namespace dctk::farm::workload {

struct ClusterClientOptions {
  std::string cm_address;          // the CM service (farmd --role=cm or cm_driver)
  std::string fabric = "net";      // net | shm (shm: same host only)
  std::string host = "127.0.0.1";  // the clients' net fabrics listen here
  int fabric_port = 0;      // client i's net fabric at host:fabric_port + i; 0: any free ports
  uint32_t first_id = 100;  // fabric ids of the clients (not storage machines'; shm: < 256)
  absl::Duration rpc_timeout = absl::Milliseconds(300);
  absl::Duration outcome_timeout = absl::Seconds(20);
  absl::Duration wait_ready = absl::Seconds(60);  // for the cluster to finish starting
};

// InvalidArgument naming the option (`what` prefixes the message) if `o`
// cannot connect `clients` clients.
absl::Status ValidateClusterClientOptions(const ClusterClientOptions& o, int clients,
                                          const char* what);

template <typename F>
struct ClusterClients {
  std::vector<std::unique_ptr<client::FarmClient<F>>> clients;
  std::vector<F*>
      fabrics;  // clients[i]'s fabric (it owns it): one-sided reads outside transactions
};

// `n` clients joined to the cluster; an error names the client that failed.
// Instantiated for fabric::NetFabric and fabric::ShmFabric.
template <typename F>
absl::StatusOr<ClusterClients<F>> ConnectClients(const ClusterClientOptions& o, int n);

// Every client leaves (FarmClient::Leave); prints
//   left clients=N clean=K ids=FIRST-LAST
// (clean: left with nothing unfinished, ids free again) and returns the first
// client's error, naming it. Instantiated for fabric::NetFabric and
// fabric::ShmFabric.
template <typename F>
absl::Status LeaveClients(ClusterClients<F>& clients, FILE* out);

// Calls report(t, secs) every `every` (t: seconds since the start, secs:
// since the last call; a last, shorter interval ends at `duration`) until
// `duration` has passed or `stop` is set: a run's progress lines.
void ReportPeriodically(absl::Duration duration, absl::Duration every,
                        const std::atomic<bool>& stop,
                        const std::function<void(double t, double secs)>& report);

template <typename F>
void RefreshAfterFailure(client::FarmClient<F>& c) {
  absl::SleepFor(
      absl::Milliseconds(10));  // a machine or the CM is changing: learn the new configuration
  (void)c.Refresh();
}

}  // namespace dctk::farm::workload

#endif  // DCTK_FARM_WORKLOAD_CLUSTER_CLIENTS_H_
