#include "farm/workload/cluster_clients.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"

namespace dctk::farm::workload {
namespace {

// The CM refuses the id of a client it removed (an earlier run's, once its
// lease ran out: FailedPrecondition) or still lists at another fabric
// endpoint (an earlier run's whose lease has not run out yet:
// AlreadyExists); ConnectClients then tries the next ids, this many at most.
constexpr int kMaxSkippedIds = 64;

// Client i's fabric under `id`.
template <typename F>
absl::StatusOr<std::unique_ptr<F>> MakeFabric(const ClusterClientOptions& o, int i,
                                              fabric::MachineId id);
template <>
absl::StatusOr<std::unique_ptr<fabric::NetFabric>> MakeFabric(const ClusterClientOptions& o, int i,
                                                              fabric::MachineId id) {
  const std::string listen =
      o.fabric_port == 0 ? o.host : absl::StrCat(o.host, ":", o.fabric_port + i);
  return fabric::NetFabric::Create({.machine_id = id, .listen_host = listen});
}
template <>
absl::StatusOr<std::unique_ptr<fabric::ShmFabric>> MakeFabric(const ClusterClientOptions&, int,
                                                              fabric::MachineId id) {
  return fabric::ShmFabric::Create({.machine_id = id});
}

}  // namespace

absl::Status ValidateClusterClientOptions(const ClusterClientOptions& o, int clients,
                                          const char* what) {
  if (o.cm_address.empty())
    return absl::InvalidArgumentError(absl::StrCat(what, ": the CM address is required"));
  if (o.fabric != "net" && o.fabric != "shm") {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": fabric must be net or shm, not '", o.fabric, "'"));
  }
  if (o.fabric_port < 0 || o.fabric_port + clients > 65536) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": fabric ports from ", o.fabric_port, " out of range"));
  }
  return absl::OkStatus();
}

template <typename F>
absl::StatusOr<ClusterClients<F>> ConnectClients(const ClusterClientOptions& o, int n) {
  ClusterClients<F> out;
  fabric::MachineId id = o.first_id;
  int skipped = 0;
  for (int i = 0; i < n; ++i, ++id) {
    for (;; ++id) {
      absl::StatusOr<std::unique_ptr<F>> fabric = MakeFabric<F>(o, i, id);
      if (!fabric.ok()) return fabric.status();
      F* f = fabric->get();
      client::FarmClientOptions co;
      co.machine = id;
      co.cm_address = o.cm_address;
      co.wait_ready = o.wait_ready;
      co.tx.rpc_timeout = o.rpc_timeout;
      co.tx.outcome_timeout = o.outcome_timeout;
      auto c = client::FarmClient<F>::Connect(co, std::move(*fabric));
      const bool id_taken =
          absl::IsFailedPrecondition(c.status()) || absl::IsAlreadyExists(c.status());
      if (id_taken && ++skipped <= kMaxSkippedIds) continue;
      if (!c.ok())
        return absl::Status(c.status().code(),
                            absl::StrCat("client ", id, ": ", c.status().message()));
      out.fabrics.push_back(f);
      out.clients.push_back(std::move(*c));
      break;
    }
  }
  return out;
}

template <typename F>
absl::Status LeaveClients(ClusterClients<F>& clients, FILE* out) {
  absl::Status first;
  int clean = 0;
  fabric::MachineId low = ~fabric::MachineId{0}, high = 0;
  for (size_t i = 0; i < clients.clients.size(); ++i) {
    const fabric::MachineId id = clients.fabrics[i]->machine_id();
    low = std::min(low, id);
    high = std::max(high, id);
    absl::Status s = clients.clients[i]->Leave();
    if (s.ok()) ++clean;
    if (!s.ok() && first.ok()) first = s;
  }
  fprintf(out, "left clients=%zu clean=%d ids=%u-%u\n", clients.clients.size(), clean,
          clients.clients.empty() ? 0 : low, high);
  fflush(out);
  return first;
}

void ReportPeriodically(absl::Duration duration, absl::Duration every,
                        const std::atomic<bool>& stop,
                        const std::function<void(double t, double secs)>& report) {
  const absl::Time start = absl::Now();
  const absl::Time end =
      duration == absl::InfiniteDuration() ? absl::InfiniteFuture() : start + duration;
  absl::Time last = start;
  for (absl::Time tick = start + every; !stop.load() && last < end; tick += every) {
    while (absl::Now() < std::min(tick, end) && !stop.load()) {
      absl::SleepFor(std::min(absl::Milliseconds(20), std::min(tick, end) - absl::Now()));
    }
    const absl::Time now = absl::Now();
    report(absl::ToDoubleSeconds(now - start), std::max(1e-9, absl::ToDoubleSeconds(now - last)));
    last = now;
  }
}

template absl::StatusOr<ClusterClients<fabric::NetFabric>> ConnectClients(
    const ClusterClientOptions&, int);
template absl::StatusOr<ClusterClients<fabric::ShmFabric>> ConnectClients(
    const ClusterClientOptions&, int);
template absl::Status LeaveClients(ClusterClients<fabric::NetFabric>&, FILE*);
template absl::Status LeaveClients(ClusterClients<fabric::ShmFabric>&, FILE*);

}  // namespace dctk::farm::workload
